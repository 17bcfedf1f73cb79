#!/bin/sh
# dl.h's ONNX exports checked by tools nobody here wrote: ONNX Runtime (npm
# onnxruntime-node, installed into build/node_modules as make bench does)
# runs each model build/test_onnx exported to build/onnx_export and must give
# dl.h's outputs (tests/onnx_ort.js), and python3-onnx's onnx.checker must
# accept each file (tests/gen_onnx.py --check) when it is installed. Without
# node or onnxruntime-node it says "not run". Last line: "N passed, N failed".
cd "$(dirname "$0")/.." || exit 1
B=build
notrun() {
    echo "ONNX Runtime check: not run ($1)"
    [ -n "$DL_TEST_REQUIRE_ALL" ] && { echo "0 passed, 1 failed"; exit 1; }   # CI: missing is a failure
    echo "0 passed, 0 failed"
    exit 0
}
command -v node >/dev/null 2>&1 || notrun "no node"
if [ ! -d $B/node_modules/onnxruntime-node ] && command -v npm >/dev/null 2>&1; then
    ONNXRUNTIME_NODE_INSTALL=skip npm install --silent --prefix $B onnxruntime-node >/dev/null 2>&1
fi
NODE_PATH=$B/node_modules node -e "require('onnxruntime-node')" 2>/dev/null || notrun "npm could not install onnxruntime-node"
${MAKE:-make} -s $B/test_onnx >/dev/null || { echo "building test_onnx failed"; echo "0 passed, 1 failed"; exit 1; }
$B/test_onnx >/dev/null 2>&1             # writes $B/onnx_export (its own failures count in make test)
extra=0
if /usr/bin/python3 -c 'import onnx, torch' 2>/dev/null; then     # gen_onnx.py imports both
    /usr/bin/python3 tests/gen_onnx.py --check $B/onnx_export || extra=1
fi
out=$(NODE_PATH=$B/node_modules node tests/onnx_ort.js $B/onnx_export); rc=$?
# A Concat of a layer with a constant, run at batch 3: a [1, ..] initializer
# there is an ONNX Runtime error, so dl.h exports the constant expanded to
# the batch. It must have been exported and run, not skipped.
printf '%s\n' "$out" | grep -q '^ok   concat_const:' || { echo "FAIL concat_const: not exported or not run at batch 3"; extra=$((extra + 1)); }
printf '%s\n' "$out" | sed '$d'
last=$(printf '%s\n' "$out" | tail -n 1)
p=$(printf '%s\n' "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
f=$(printf '%s\n' "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
[ -n "$p" ] || { echo "onnx_ort.js: no summary (exit $rc)"; p=0; f=1; }
echo "$p passed, $((f + extra)) failed"
[ $((f + extra)) -eq 0 ]
