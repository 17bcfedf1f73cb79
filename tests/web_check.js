'use strict';
/* web_check.js - drives headless Chromium over the DevTools protocol on a pipe
   (--remote-debugging-pipe: no port, no npm package) for tests/test_web.sh.

     node tests/web_check.js URL SCREENSHOT.png PROFILE_DIR [UPLOAD_IMAGE]

   Opens URL, waits for the page's #test element to end in "done" or start
   with "error", then uploads UPLOAD_IMAGE through the page's file input (as
   a visitor would) and waits for its classification, draws a stroke with
   the mouse, saves a screenshot, and prints one JSON line: the test text,
   the upload's and the drawing's results, and every URL the page requested. Exits 1 on a timeout. */
const { spawn } = require('child_process');
const fs = require('fs');

const [url, shot, profile, upload] = process.argv.slice(2);
const chrome = spawn(process.env.CHROMIUM || '/usr/bin/chromium', [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage', `--user-data-dir=${profile}`, '--window-size=900,700',
  '--remote-debugging-pipe', 'about:blank',
], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
let stderr = '';
chrome.stderr.on('data', (d) => { stderr += d; });

/* Draws a stroke on the canvas with the mouse, as a visitor would, and returns
   the classes shown and how much ink the 28x28 image the model saw holds. */
async function draw(evaluate, sessionId) {
  await evaluate("document.getElementById('clear').click(); document.getElementById('status').textContent = 'drawing'");
  const r = await evaluate("(({ x, y }) => ({ x, y }))(document.getElementById('draw').getBoundingClientRect())");
  const mouse = (type, dx, dy) => send('Input.dispatchMouseEvent',
    { type, x: r.x + dx, y: r.y + dy, button: 'left', buttons: type === 'mouseReleased' ? 0 : 1, clickCount: 1 }, sessionId);
  await mouse('mousePressed', 100, 40);
  for (let i = 1; i <= 10; i++) await mouse('mouseMoved', 100 + 8 * i, 40 + 20 * i);
  await mouse('mouseReleased', 180, 240);
  for (const t0 = Date.now(); Date.now() - t0 < 20000; await sleep(200)) {
    if ((await evaluate("document.getElementById('status').textContent")).startsWith('dl_predict')) {
      return evaluate(`({ top: [...document.querySelectorAll('#top li')].map((li) => li.textContent),
        ink: document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data
               .filter((v, i) => i % 4 === 0).reduce((a, v) => a + v / 255, 0) })`);
    }
  }
  return null;
}

/* Messages are JSON, each ended by a NUL byte, out on fd 3 and in on fd 4. */
const pending = new Map(), requests = [];
let nextId = 1, inbox = Buffer.alloc(0);
chrome.stdio[4].on('data', (chunk) => {
  inbox = Buffer.concat([inbox, chunk]);
  for (let end; (end = inbox.indexOf(0)) >= 0; inbox = inbox.subarray(end + 1)) {
    const msg = JSON.parse(inbox.subarray(0, end).toString());
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) reject(new Error(JSON.stringify(msg.error)));
      else resolve(msg.result);
    } else if (msg.method === 'Network.requestWillBeSent') {
      requests.push(msg.params.request.url);
    }
  }
});
function send(method, params = {}, sessionId) {
  const id = nextId++;
  chrome.stdio[3].write(JSON.stringify({ id, method, params, sessionId }) + '\0');
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
  await send('Network.enable', {}, sessionId);
  await send('Page.enable', {}, sessionId);
  await send('Page.navigate', { url }, sessionId);
  let text = '';
  for (const t0 = Date.now(); Date.now() - t0 < 60000; await sleep(200)) {
    const r = await send('Runtime.evaluate', {
      expression: "(document.getElementById('test') || {}).textContent || ''", returnByValue: true,
    }, sessionId);
    text = r.result.value;
    if (/(^error|done\n$)/.test(text)) break;
  }
  const evaluate = async (expression) =>
    (await send('Runtime.evaluate', { expression, returnByValue: true }, sessionId)).result.value;
  let uploaded = null;
  if (upload && /done\n$/.test(text)) {
    await evaluate("document.getElementById('status').textContent = 'uploading'");
    const { root } = await send('DOM.getDocument', {}, sessionId);
    const { nodeId } = await send('DOM.querySelector', { nodeId: root.nodeId, selector: '#file' }, sessionId);
    await send('DOM.setFileInputFiles', { nodeId, files: [upload] }, sessionId);
    for (const t0 = Date.now(); Date.now() - t0 < 20000; await sleep(200)) {
      if ((await evaluate("document.getElementById('status').textContent")).startsWith('dl_predict')) {
        uploaded = await evaluate(`({ top: [...document.querySelectorAll('#top li')].map((li) => li.textContent),
                                      invert: document.getElementById('invert').checked })`);
        break;
      }
    }
  }
  const drawn = /done\n$/.test(text) ? await draw(evaluate, sessionId) : null;
  const png = await send('Page.captureScreenshot', { format: 'png' }, sessionId);
  fs.writeFileSync(shot, Buffer.from(png.data, 'base64'));
  console.log(JSON.stringify({ text, uploaded, drawn, requests }));
  return /done\n$/.test(text) && (!upload || uploaded) ? 0 : 1;
}

const kill = setTimeout(() => { console.error('web_check: timed out\n' + stderr); chrome.kill('SIGKILL'); process.exit(1); }, 90000);
main().then((rc) => {
  clearTimeout(kill);
  send('Browser.close').catch(() => {});
  const hard = setTimeout(() => chrome.kill('SIGKILL'), 5000);
  chrome.on('exit', () => { clearTimeout(hard); process.exit(rc); });
}, (e) => {
  console.error(`web_check: ${e.message}\n${stderr}`);
  chrome.kill('SIGKILL');
  process.exit(1);
});
