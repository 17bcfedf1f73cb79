// onnx_ort.js - ONNX Runtime (npm onnxruntime-node) runs the models dl.h
// exported (build/onnx_export/, written by build/test_onnx) and compares its
// outputs with dl.h's: |ort - dl| <= 1e-5 |dl| + 1e-6 for every float.
// Usage: node tests/onnx_ort.js build/onnx_export     (make onnx-ort)
// Last line: "N passed, N failed", like the C tests.
const fs = require('fs');
const path = require('path');
let ort;
try { ort = require('onnxruntime-node'); } catch (e) {
  console.log('onnxruntime-node not installed: not run');
  const strict = !!process.env.DL_TEST_REQUIRE_ALL;
  console.log(strict ? '0 passed, 1 failed' : '0 passed, 0 failed'); process.exit(strict ? 1 : 0);
}
const dir = process.argv[2] || 'build/onnx_export';
const floats = (f) => { const b = fs.readFileSync(f); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
(async () => {
  let passed = 0, failed = 0;
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const name = f.slice(0, -5), meta = JSON.parse(fs.readFileSync(path.join(dir, f)));
    try {
      const s = await ort.InferenceSession.create(path.join(dir, name + '.onnx'));
      const x = new ort.Tensor('float32', floats(path.join(dir, name + '.in.f32')), meta.shape);
      const y = (await s.run({ [meta.input]: x }))[meta.output].data, want = floats(path.join(dir, name + '.out.f32'));
      let worst = 0, bad = y.length !== want.length ? 1 : 0;
      for (let i = 0; i < want.length && !bad; i++) {
        const e = Math.abs(y[i] - want[i]);
        worst = Math.max(worst, e / (Math.abs(want[i]) + 1e-30));
        if (!(e <= 1e-5 * Math.abs(want[i]) + 1e-6)) bad = 1;
      }
      console.log(`${bad ? 'FAIL' : 'ok  '} ${name}: ${want.length} outputs, max relative error ${worst.toExponential(1)}`);
      bad ? failed++ : passed++;
    } catch (e) { console.log(`FAIL ${name}: ${e.message}`); failed++; }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
