"""PyTorch on the bench nets, for bench/bench.c (make bench), set up as a
tuned deployment runs it (../shared/BENCHMARKING.md): the caller sets
OPENBLAS_NUM_THREADS=1 and GLIBC_TUNABLES (malloc keeps its memory); this
sets torch.set_num_threads(T), and times inference both eager and as
TorchScript frozen + optimize_for_inference under inference_mode.

Prints "key value" lines (keys as bench.c's), and one "info" line naming
the BLAS the process loaded. Usage:
  torch_ref.py --net NAME [--secs S] [--busy] [--onnx PATH]   figures (--busy: training only)
  torch_ref.py --net NAME --train-rss     peak RSS of a process that only trains
  torch_ref.py --import-floor             peak RSS of `import torch` alone
  torch_ref.py --device cuda [--secs S]   GPU throughput: reference, cifar, resnet at 64/256/1024 (tests/gpu_check.sh)"""
import argparse, resource, time

import torch
import torch.nn as nn


def bn_relu(c):
    return [nn.BatchNorm2d(c), nn.ReLU()]


def conv(cin, cout, k, stride=1, groups=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups)


def reference():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.PReLU(32), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.PReLU(64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 10))


def cifar():
    return nn.Sequential(
        conv(3, 32, 5), nn.ReLU(), nn.MaxPool2d(2), conv(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def dw_sep(cin, cout, stride):
    return [conv(cin, cin, 3, stride, cin), *bn_relu(cin), conv(cin, cout, 1), *bn_relu(cout)]


def mobile():
    return nn.Sequential(
        conv(3, 32, 3, 2), *bn_relu(32), *dw_sep(32, 64, 1), *dw_sep(64, 128, 2), *dw_sep(128, 128, 1),
        *dw_sep(128, 256, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(conv(cin, cout, 3, stride), *bn_relu(cout), conv(cout, cout, 3), nn.BatchNorm2d(cout))
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def resnet():
    return nn.Sequential(conv(3, 16, 3), *bn_relu(16), Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


NETS = {"reference": (reference, (1, 28, 28)), "cifar": (cifar, (3, 32, 32)), "mlp": (mlp, (784,)),
        "mobile": (mobile, (3, 32, 32)), "resnet": (resnet, (3, 32, 32))}


def timed(fn, seconds, warm=3):
    for _ in range(warm):
        fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        t = time.perf_counter() - t0
        if t >= seconds:
            return n, t


def blas():
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "blas" in line.lower() and "/" in line})
    return " ".join(libs) or "none"


def train_ips(make, shape, threads, secs):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = make()
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x = torch.rand(64, *shape)
    y = torch.randint(0, 10, (64,))

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    n, t = timed(step, secs)
    return n * 64 / t


def inference(make, shape, threads, secs, tag):
    """Images/s at batch 1, 64, 256 and the median batch-1 latency, eager and scripted."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    eager = make().eval()
    with torch.inference_mode():
        script = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(make().eval())))
    for prefix, m in (("", eager), ("script_", script)):
        with torch.inference_mode():
            for b in (1, 64, 256):
                x = torch.rand(b, *shape)
                n, t = timed(lambda: m(x), secs)
                print("%sinfer_ips_b%d_%d" % (prefix, b, threads), n * b / t)
            x1 = torch.rand(1, *shape)
            for _ in range(20):
                m(x1)
            lat, t0 = [], time.perf_counter()
            while len(lat) < 50 or time.perf_counter() - t0 < secs:
                s = time.perf_counter()
                m(x1)
                lat.append(time.perf_counter() - s)
            lat.sort()
            print("%slatency_us_%d" % (prefix, threads), lat[len(lat) // 2] * 1e6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="reference")
    ap.add_argument("--secs", type=float, default=1.0)
    ap.add_argument("--busy", action="store_true")
    ap.add_argument("--onnx", default="")
    ap.add_argument("--train-rss", action="store_true")
    ap.add_argument("--import-floor", action="store_true")
    ap.add_argument("--device", default="cpu", help="cuda: GPU throughput at batch 64, 256 and 1024 (cuDNN autotuned)")
    a = ap.parse_args()
    if a.device != "cpu":
        return gpu(a)
    if a.import_floor:
        print("train_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
        return
    make, shape = NETS[a.net]
    if a.train_rss:
        train_ips(make, shape, torch.get_num_threads(), 0.3)
        print("train_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
        return
    print("info torch %s, BLAS loaded: %s, OPENBLAS_NUM_THREADS=1, malloc not trimming" % (torch.__version__, blas()))
    for threads in (1, 2):
        print("%strain_ips_%d" % ("busy_" if a.busy else "", threads), train_ips(make, shape, threads, a.secs), flush=True)
        if not a.busy:
            inference(make, shape, threads, a.secs, a.net)
    if a.onnx:
        torch.manual_seed(0)
        torch.onnx.export(make().eval(), torch.zeros(1, *shape), a.onnx, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=13)


def gpu(a):
    """Training and inference images/s on the GPU, random data, as build/test_cuda --bench measures dl.h:
    the reference CNN, the cifar and resnet nets at batch 64, 256 and 1024. Keys: cuda_train_ips_NET_BATCH,
    cuda_infer_ips_NET_BATCH (and, for the reference CNN, the older cuda_train_ips_BATCH)."""
    torch.backends.cudnn.benchmark = True
    dev = torch.device(a.device)
    secs = a.secs
    if dev.type == "cuda":
        print("gpu", torch.cuda.get_device_name(dev).replace(" ", "_"))

    def synced(fn):
        def run():
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
        return run
    for name in ("reference", "cifar", "resnet"):
        make, shape = NETS[name]
        for batch in (64, 256, 1024):
            x = torch.rand(batch, *shape, device=dev)
            y = torch.randint(0, 10, (batch,), device=dev)
            m = make().to(dev)
            opt = torch.optim.Adam(m.parameters(), 1e-3)

            def step():
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(m(x), y).backward()
                opt.step()
            for _ in range(10):
                step()
            n, t = timed(synced(step), secs)
            print("cuda_train_ips_%s_%d" % (name, batch), n * batch / t, flush=True)
            if name == "reference":
                print("cuda_train_ips_%d" % batch, n * batch / t)
            m.eval()
            with torch.no_grad():
                for _ in range(10):
                    m(x)
                n, t = timed(synced(lambda: m(x)), secs)
                print("cuda_infer_ips_%s_%d" % (name, batch), n * batch / t, flush=True)
                if name == "reference":
                    print("cuda_infer_ips_%d" % batch, n * batch / t)


if __name__ == "__main__":
    main()
