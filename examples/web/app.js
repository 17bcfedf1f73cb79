'use strict';
/* app.js - the page's side of dl.h (dlh.js + dlh.wasm, built by `make web`).
   The model is fetched from this server and read with dl_net_load_mem once;
   every drawing is then one dl_predict on 28x28 floats in [0,1], light on
   dark like Fashion-MNIST. Test hook: ?test=a.pgm,b.pgm classifies those
   images as given and writes one line per image into #test. */
const CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const $ = (id) => document.getElementById(id);

/* The model: predict(Float32Array(784)) -> Float32Array(10) probabilities. */
async function loadModel(dlh, url) {
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  const bytes = new Uint8Array(await resp.arrayBuffer());
  const file = dlh._malloc(bytes.length);
  const st = dlh._malloc(260);              /* dl_status: int code; char msg[256] */
  dlh.HEAPU8.set(bytes, file);
  const net = dlh._dl_net_load_mem(file, bytes.length, st);
  const msg = dlh.UTF8ToString(st + 4);
  dlh._free(file);
  dlh._free(st);
  if (!net) throw new Error(`dl_net_load_mem: ${msg}`);
  if (dlh._dl_layer_size(dlh._dl_net_layer(net, 0)) !== 784 ||
      dlh._dl_layer_size(dlh._dl_net_layer(net, -1)) !== 10) {
    throw new Error(`${url}: not a Fashion-MNIST model (784 pixels in, 10 classes out)`);
  }
  const x = dlh._malloc(784 * 4);           /* the input, reused by every call */
  return {
    predict(pixels) {
      dlh.HEAPF32.set(pixels, x >> 2);      /* HEAPF32 is looked up each time: memory may grow */
      const p = dlh._dl_predict(net, dlh._dl_net_output(net), x, 1);
      if (!p) throw new Error(`dl_predict: ${dlh.UTF8ToString(dlh._dl_net_error(net))}`);
      return dlh.HEAPF32.slice(p >> 2, (p >> 2) + 10);
    },
  };
}

function top3(probs) {
  return [...probs.keys()].sort((a, b) => probs[b] - probs[a]).slice(0, 3);
}

function show(pixels, probs) {
  const seen = $('seen').getContext('2d');
  const img = seen.createImageData(28, 28);
  pixels.forEach((v, i) => { img.data.fill(Math.round(v * 255), 4 * i, 4 * i + 3); img.data[4 * i + 3] = 255; });
  seen.putImageData(img, 0, 0);
  $('top').innerHTML = top3(probs).map((c) =>
    `<li>${CLASSES[c]} <b>${(100 * probs[c]).toFixed(1)}%</b>` +
    `<span class="bar" style="width:${(100 * probs[c]).toFixed(1)}%"></span></li>`).join('');
}

/* 28x28 pixels onto the drawing canvas, each a 10x10 block. */
function paint(pixels) {
  const canvas = $('draw'), ctx = canvas.getContext('2d'), k = canvas.width / 28;
  pixels.forEach((v, i) => {
    const g = Math.round(v * 255);
    ctx.fillStyle = `rgb(${g},${g},${g})`;
    ctx.fillRect((i % 28) * k, Math.floor(i / 28) * k, k, k);
  });
}

/* The drawing canvas as the model wants it: gray, inverted on request, the
   object's bounding square scaled to 28x28 by area averaging (Fashion-MNIST
   items fill their frame). */
function canvasPixels(canvas, invert) {
  const { width: W, height: H } = canvas;
  const rgba = canvas.getContext('2d').getImageData(0, 0, W, H).data;
  const gray = new Float32Array(W * H);
  let x0 = W, y0 = H, x1 = -1, y1 = -1;
  for (let i = 0; i < W * H; i++) {
    let v = (0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]) / 255;
    if (invert) v = 1 - v;
    gray[i] = v;
    if (v > 0.1) {
      const x = i % W, y = (i - x) / W;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
  }
  const out = new Float32Array(784);
  if (x1 < 0) return out;
  const size = Math.max(x1 - x0, y1 - y0) + 1, step = size / 28;
  const ox = (x0 + x1 + 1 - size) / 2, oy = (y0 + y1 + 1 - size) / 2;
  const span = (o, k) => [Math.floor(o + k * step), Math.max(Math.floor(o + k * step) + 1, Math.ceil(o + (k + 1) * step))];
  for (let Y = 0; Y < 28; Y++) {
    const [sy0, sy1] = span(oy, Y);
    for (let X = 0; X < 28; X++) {
      const [sx0, sx1] = span(ox, X);
      let sum = 0;
      for (let sy = Math.max(sy0, 0); sy < Math.min(sy1, H); sy++) {
        for (let sx = Math.max(sx0, 0); sx < Math.min(sx1, W); sx++) sum += gray[sy * W + sx];
      }
      out[Y * 28 + X] = sum / ((sy1 - sy0) * (sx1 - sx0));   /* outside the canvas counts as dark */
    }
  }
  return out;
}

/* A binary PGM (P5), 8-bit, 28x28 -> 784 floats in [0,1]. */
function parsePgm(buf) {
  const b = new Uint8Array(buf), fields = [];
  let i = 2;
  if (b[0] !== 0x50 || b[1] !== 0x35) throw new Error('not a binary PGM');
  while (fields.length < 3) {
    if (b[i] === 0x23) while (b[i] !== 0x0a) i++;           /* # comment */
    else if (b[i] >= 0x30 && b[i] <= 0x39) {
      let n = 0;
      while (b[i] >= 0x30 && b[i] <= 0x39) n = 10 * n + b[i++] - 0x30;
      fields.push(n);
      continue;
    }
    i++;
  }
  const [w, h, max] = fields;
  if (w !== 28 || h !== 28 || b.length < i + 1 + 784) throw new Error('not a 28x28 8-bit PGM');
  return Float32Array.from(b.subarray(i + 1, i + 1 + 784), (v) => v / max);
}

/* For tests/test_web.sh: each image's top class and probability, and the
   mean time of one dl_predict over many runs. */
async function runTests(model, urls) {
  const lines = [];
  for (const url of urls) {
    const pixels = parsePgm(await (await fetch(url)).arrayBuffer());
    const probs = model.predict(pixels);
    const [c] = top3(probs);
    let runs = 0;
    const t0 = performance.now();
    do { model.predict(pixels); runs++; } while (runs < 20 || performance.now() - t0 < 300);
    const ms = (performance.now() - t0) / runs;
    show(pixels, probs);
    paint(pixels);
    lines.push(`${url}\t${CLASSES[c]}\t${probs[c].toFixed(4)}\t${ms.toFixed(4)} ms\t${runs} runs`);
  }
  $('test').textContent = lines.join('\n') + '\ndone\n';
}

function setupDrawing(model) {
  const canvas = $('draw'), ctx = canvas.getContext('2d');
  const clear = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  let drawing = false, queued = false;
  const classify = () => {
    queued = false;
    const pixels = canvasPixels(canvas, $('invert').checked);
    const t0 = performance.now();
    const probs = model.predict(pixels);
    $('status').textContent = `dl_predict: ${(performance.now() - t0).toFixed(2)} ms`;
    show(pixels, probs);
  };
  const later = () => { if (!queued) { queued = true; requestAnimationFrame(classify); } };
  const at = (e) => { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  clear();
  ctx.lineCap = ctx.lineJoin = 'round';
  ctx.lineWidth = 18;
  ctx.strokeStyle = '#fff';
  canvas.addEventListener('pointerdown', (e) => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    ctx.beginPath();
    ctx.moveTo(...at(e));
  });
  canvas.addEventListener('pointermove', (e) => { if (drawing) { ctx.lineTo(...at(e)); ctx.stroke(); later(); } });
  canvas.addEventListener('pointerup', () => { drawing = false; later(); });
  $('clear').addEventListener('click', () => { clear(); $('invert').checked = false; later(); });   /* back to drawing */
  $('invert').addEventListener('change', later);
  $('file').addEventListener('change', () => {
    const f = $('file').files[0];
    if (!f) return;
    const img = new Image();
    img.onload = () => {
      const s = Math.min(canvas.width / img.width, canvas.height / img.height);
      clear();
      ctx.drawImage(img, (canvas.width - s * img.width) / 2, (canvas.height - s * img.height) / 2,
                    s * img.width, s * img.height);
      URL.revokeObjectURL(img.src);
      /* photos are usually dark things on a light background: invert those */
      const corner = ctx.getImageData(0, 0, 4, 4).data;
      $('invert').checked = corner[0] + corner[1] + corner[2] > 3 * 128;
      later();
    };
    img.src = URL.createObjectURL(f);
  });
}

async function main() {
  try {
    const dlh = await createDlh();
    const model = await loadModel(dlh, 'fashion.dl');
    $('status').textContent = 'model loaded: draw something';
    setupDrawing(model);
    const test = new URLSearchParams(location.search).get('test');
    if (test) await runTests(model, test.split(','));
  } catch (e) {
    $('status').textContent = `error: ${e.message}`;
    $('test').textContent = `error: ${e.message}\n`;
  }
}
main();
