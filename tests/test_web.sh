#!/bin/sh
# The classifier page in a browser: `make web` (emscripten), then
# tests/web_test.py serves build/web on 127.0.0.1 and checks it in headless
# Chromium. Without emcc, chromium, node or python3 it says "not run" and
# counts nothing. Last line: "N passed, N failed".
cd "$(dirname "$0")/.." || exit 1
PY=$(command -v /usr/bin/python3 || command -v python3)
missing=
for t in "${EMCC:-emcc}" "${CHROMIUM:-/usr/bin/chromium}" node "$PY"; do
    command -v "$t" >/dev/null 2>&1 || missing="$missing ${t:-python3}"
done
if [ -n "$missing" ]; then
    echo "web tests: not run (missing:$missing)"
    [ -n "$DL_TEST_REQUIRE_ALL" ] && { echo "0 passed, 1 failed"; exit 1; }   # CI: missing is a failure
    echo "0 passed, 0 failed"
    exit 0
fi
out=$(${MAKE:-make} -s web build/classify 2>&1) || { printf '%s\n' "$out"; echo "FAIL make web"; echo "0 passed, 1 failed"; exit 1; }
exec "$PY" tests/web_test.py
