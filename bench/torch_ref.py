"""PyTorch on the reference CNN, for bench/bench.c (make bench).

Prints "key value" lines: training and inference images/s at 1 and 2
threads (batch 64), median batch-1 latency, peak RSS of a training process,
and exports the model to ONNX for bench/ort_ref.js. Run with Debian's
python3-torch and OPENBLAS_NUM_THREADS=1 (otherwise its BLAS threads fight
torch's own and it runs at 60% of its speed)."""
import argparse, os, resource, subprocess, sys, time

import torch
import torch.nn as nn


def reference_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.PReLU(32), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.PReLU(64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 10))


def timed(fn, seconds):
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        t = time.perf_counter() - t0
        if t >= seconds:
            return n, t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--onnx", default="")
    ap.add_argument("--train-only", type=int, default=0, help="(internal) train with N threads, print peak RSS")
    ap.add_argument("--device", default="cpu", help="cuda: GPU throughput at batch 64 and 256 (cuDNN autotuned)")
    a = ap.parse_args()
    if a.device != "cpu":
        return gpu(a)
    secs = 0.5 if a.quick else 2.0
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    if a.train_only:
        torch.set_num_threads(a.train_only)
        m = reference_cnn()
        opt = torch.optim.Adam(m.parameters(), 1e-3)
        for _ in range(30):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        print("train_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
        return
    for threads in (1, 2):
        torch.set_num_threads(threads)
        m = reference_cnn()
        opt = torch.optim.Adam(m.parameters(), 1e-3)

        def step():
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        n, t = timed(step, secs)
        print("train_ips_%d" % threads, n * 64 / t)
        m.eval()
        with torch.no_grad():
            n, t = timed(lambda: m(x), secs)
            print("infer_ips_%d" % threads, n * 64 / t)
            x1 = x[:1]
            lat = []
            t0 = time.perf_counter()
            m(x1)
            while len(lat) < 50 or time.perf_counter() - t0 < secs:
                s = time.perf_counter()
                m(x1)
                lat.append(time.perf_counter() - s)
            lat.sort()
            print("latency_us_%d" % threads, lat[len(lat) // 2] * 1e6)
    sys.stdout.flush()
    out = subprocess.run([sys.executable, __file__, "--train-only", "2"], capture_output=True, text=True,
                         env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    sys.stdout.write(out.stdout)
    if a.onnx:
        m = reference_cnn().eval()
        torch.onnx.export(m, torch.zeros(1, 1, 28, 28), a.onnx, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=13)


def gpu(a):
    """Training and inference images/s on the GPU, random data, as build/test_cuda --bench measures dl.h."""
    torch.backends.cudnn.benchmark = True
    dev = torch.device(a.device)
    secs = 1.0 if a.quick else 3.0
    if dev.type == "cuda":
        print("gpu", torch.cuda.get_device_name(dev).replace(" ", "_"))
    for batch in (64, 256):
        x = torch.rand(batch, 1, 28, 28, device=dev)
        y = torch.randint(0, 10, (batch,), device=dev)
        m = reference_cnn().to(dev)
        opt = torch.optim.Adam(m.parameters(), 1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()

        def synced(fn):
            def run():
                fn()
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
            return run
        for _ in range(20):
            step()
        n, t = timed(synced(step), secs)
        print("cuda_train_ips_%d" % batch, n * batch / t)
        m.eval()
        with torch.no_grad():
            for _ in range(20):
                m(x)
            n, t = timed(synced(lambda: m(x)), secs)
            print("cuda_infer_ips_%d" % batch, n * batch / t)


if __name__ == "__main__":
    main()
