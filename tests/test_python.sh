#!/bin/sh
# The Python binding's tests (python/test_dl.py) on libdlh.so, with Debian's
# python3 and python3-numpy (and python3-torch for the comparisons). Without
# them it says "not run" and counts nothing. Last line: "N passed, N failed".
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
if [ -z "$PY" ] || ! "$PY" -c 'import numpy' 2>/dev/null; then
    echo "python tests: not run (no python3/numpy)"
    [ -n "$DL_TEST_REQUIRE_ALL" ] && { echo "0 passed, 1 failed"; exit 1; }   # CI: missing is a failure
    echo "0 passed, 0 failed"
    exit 0
fi
${MAKE:-make} -s lib >/dev/null || { echo "make lib failed"; echo "0 passed, 1 failed"; exit 1; }
exec "$PY" python/test_dl.py
