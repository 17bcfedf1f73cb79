// ONNX Runtime (npm onnxruntime-node, its bundled CPU library) on the reference
// CNN exported by bench/torch_ref.py, for bench/bench.c (make bench).
// Prints "key value" lines: inference images/s at batch 64 and median batch-1
// latency, with 1 and 2 intra-op threads. Usage: node bench/ort_ref.js model.onnx [--quick]
const ort = require('onnxruntime-node');
const model = process.argv[2], secs = process.argv.includes('--quick') ? 0.5 : 2.0;
const now = () => Number(process.hrtime.bigint()) / 1e9;
(async () => {
  for (const threads of [1, 2]) {
    const s = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1,
                                                         executionMode: 'sequential' });
    const data = new Float32Array(64 * 784).map((_, i) => ((i * 2654435761) >>> 24) / 255);
    const x = new ort.Tensor('float32', data, [64, 1, 28, 28]);
    await s.run({ x });
    let n = 0, t0 = now();
    while (now() - t0 < secs) { await s.run({ x }); n++; }
    console.log(`ort_infer_ips_${threads} ${(n * 64 / (now() - t0)).toFixed(1)}`);
    const x1 = new ort.Tensor('float32', data.slice(0, 784), [1, 1, 28, 28]);
    await s.run({ x: x1 });
    const lat = [];
    t0 = now();
    while (lat.length < 50 || now() - t0 < secs) { const a = now(); await s.run({ x: x1 }); lat.push(now() - a); }
    lat.sort((a, b) => a - b);
    console.log(`ort_latency_us_${threads} ${(lat[lat.length >> 1] * 1e6).toFixed(1)}`);
  }
})();
