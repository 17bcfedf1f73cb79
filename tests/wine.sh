#!/bin/sh
# Runs one Windows test program under wine (make test-win sets WINEPREFIX and
# WINEDEBUG) and passes on its output without the \r of Windows line ends, so
# tests/run.sh can read the summary line.
out=$(wine "$@" 2>&1); rc=$?
printf '%s\n' "$out" | tr -d '\r'
exit $rc
