// ONNX Runtime (npm onnxruntime-node, its bundled CPU library) on a bench net
// exported by bench/torch_ref.py, for bench/bench.c (make bench): all graph
// optimisations, intra-op threads T, inter-op 1. Prints "key value" lines
// (bench.c's keys): images/s at batch 1, 64 and 256 and the median batch-1
// latency (the JavaScript call included), at 1 and 2 threads.
// Usage: node bench/ort_ref.js model.onnx C,H,W [seconds per figure]
const ort = require('onnxruntime-node');
const model = process.argv[2], shape = process.argv[3].split(',').map(Number), secs = Number(process.argv[4] || 1.0);
const now = () => Number(process.hrtime.bigint()) / 1e9;
(async () => {
  for (const threads of [1, 2]) {
    const s = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1,
                                                         executionMode: 'sequential', graphOptimizationLevel: 'all' });
    for (const b of [1, 64, 256]) {
      const x = tensor(b, shape);
      for (let i = 0; i < 3; i++) await s.run({ x });
      let n = 0; const t0 = now();
      while (now() - t0 < secs) { await s.run({ x }); n++; }
      console.log(`infer_ips_b${b}_${threads} ${(n * b / (now() - t0)).toFixed(1)}`);
    }
    const x1 = tensor(1, shape);
    for (let i = 0; i < 20; i++) await s.run({ x: x1 });
    const lat = [], t0 = now();
    while (lat.length < 50 || now() - t0 < secs) { const a = now(); await s.run({ x: x1 }); lat.push(now() - a); }
    lat.sort((a, b) => a - b);
    console.log(`latency_us_${threads} ${(lat[lat.length >> 1] * 1e6).toFixed(1)}`);
  }
})();

function tensor(b, shape) {
  const n = shape.reduce((a, c) => a * c, b);
  const data = new Float32Array(n).map((_, i) => ((i * 2654435761) >>> 24) / 255);
  return new ort.Tensor('float32', data, [b, ...shape]);
}
