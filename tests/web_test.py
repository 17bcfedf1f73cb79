"""web_test.py - the page in build/web (make web) in headless Chromium, run by
tests/test_web.sh: serves build/web on 127.0.0.1 (python3 -m http.server on a
free port, stopped at the end), opens index.html?test=<every sample> through
tests/web_check.js, and checks that the page's top class and probability for
each sample match build/classify's, that it requested nothing but this
server, and that a screenshot was saved (build/web_test.png). Prints the
page's inference time and the module's size (numbers, not checks).
Last line: "N passed, N failed"."""
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")
    passed, failed = passed + bool(ok), failed + (not ok)


def serve():
    """python3 -m http.server on port 0: the kernel picks a free port, the log names it."""
    srv = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                            "--directory", "build/web"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.search(r"port (\d+)", srv.stdout.readline())
    if not m:
        srv.kill()
        raise RuntimeError("http.server did not start")
    return srv, int(m.group(1))


def write_upload(pgm, path, scale=8):
    """The sample as a visitor's photo: a BMP, scaled up, dark on light (the page must invert it)."""
    with open(pgm, "rb") as f:
        pixels = f.read()[-784:]
    side = 28 * scale
    rows = [b"".join(bytes([255 - pixels[(y // scale) * 28 + x // scale]]) * 3 for x in range(side))
            for y in reversed(range(side))]            # BMP rows run bottom-up; 224 * 3 bytes need no padding
    data = b"".join(rows)
    header = b"BM" + struct.pack("<IHHI", 54 + len(data), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(header + info + data)


def main():
    samples = sorted(glob.glob("build/web/samples/*.pgm"))
    check("make web wrote samples", len(samples) == 10, f"{len(samples)} files")
    want = {}
    for line in subprocess.run(["build/classify", "build/web/fashion.dl"] + samples, capture_output=True,
                               text=True).stdout.splitlines():
        path, rest = line.split(": ", 1)
        cls, prob = re.match(r"(.+?) ([0-9.]+),", rest).groups()
        want[os.path.relpath(path, "build/web")] = (cls, float(prob))
    check("build/classify classified every sample", len(want) == len(samples))
    # the upload: the sample build/classify is surest about, so cropping and resampling keep its class
    sure = max(want, key=lambda k: want[k][1])
    write_upload(os.path.join("build/web", sure), "build/web_upload.bmp")
    srv, port = serve()
    profile = tempfile.mkdtemp(prefix="dl-chromium-")
    try:
        rel = ",".join(os.path.relpath(s, "build/web") for s in samples)
        run = subprocess.run(["node", "tests/web_check.js", f"http://127.0.0.1:{port}/index.html?test={rel}",
                              "build/web_test.png", profile, os.path.abspath("build/web_upload.bmp")],
                             capture_output=True, text=True, timeout=120)
    finally:
        srv.kill()
        srv.wait()
        shutil.rmtree(profile, ignore_errors=True)
    check("the page loaded the model and classified", run.returncode == 0, run.stdout + run.stderr[-2000:])
    result = json.loads(run.stdout) if run.returncode == 0 else {"text": "", "requests": []}
    times = []
    for line in result["text"].splitlines()[:-1]:
        path, cls, prob, ms = line.split("\t")[:4]
        times.append(float(ms.split()[0]))
        w = want.get(path, ("?", -1))
        check(f"{path}: {cls} {prob} in the page, {w[0]} {w[1]:.3f} from build/classify",
              cls == w[0] and abs(float(prob) - w[1]) <= 0.0015)
    up = result.get("uploaded") or {"top": [], "invert": False}
    check(f"upload {sure}, scaled and inverted as a BMP: {up['top'][:1]}, invert box {up['invert']}",
          len(up["top"]) == 3 and up["top"][0].startswith(want[sure][0] + " ") and up["invert"])
    drawn = result.get("drawn") or {"top": [], "ink": 0}
    check(f"a stroke drawn with the mouse: {drawn['top'][:1]}, {drawn['ink']:.0f} pixels of ink seen",
          len(drawn["top"]) == 3 and 20 < drawn["ink"] < 300)   # a thin light stroke on dark
    check("a result for every sample", len(times) == len(samples), f"{len(times)} of {len(samples)}")
    local = f"http://127.0.0.1:{port}/"
    outside = [u for u in result["requests"] if not u.startswith((local, "blob:" + local))]  # blob: the upload
    check("no request leaves the static server", result["requests"] and not outside, " ".join(outside))
    with open("build/web_test.png", "rb") as f:
        check("screenshot build/web_test.png", f.read(8) == b"\x89PNG\r\n\x1a\n")
    if times:
        print(f"inference in Chromium: {sum(times) / len(times):.3f} ms per image (mean over {len(times)} images)")
    sizes = [os.path.getsize(f"build/web/dlh.{e}") for e in ("wasm", "js")]
    print(f"module: dlh.wasm {sizes[0]} bytes + dlh.js {sizes[1]} bytes = {sum(sizes)} bytes")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
