"""bench_predict.py - what the binding adds to one prediction: a tiny net, batch 1,
timed through Net.predict, through the bare ctypes call, and from C (a loop
compiled here against the same libdlh.so). A number, not a test.

    make lib && /usr/bin/python3 python/bench_predict.py
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dl  # noqa: E402

C_LOOP = r"""
#include <dl.h>
#include <stdio.h>
#include <time.h>
int main(int argc, char **argv) {
    dl_status st; float x[36] = {0}; int i, n = atoi(argv[2]); struct timespec a, b; dl_layer *out;
    dl_net *net = dl_net_load(argv[1], &st);
    if (!net) return 1;
    dl_net_set_threads(net, 1);
    out = dl_net_output(net);
    dl_predict(net, out, x, 1);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < n; i++) { x[i % 36] = (float)i; if (!dl_predict(net, out, x, 1)) return 1; }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.3f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n / 1e3);
    dl_net_free(net);
    return 0;
}
"""


def per_call_us(fn, n):
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main(n=20000):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    net = dl.Net(seed=1, threads=1)
    h = net.input(1, 6, 6).conv2d(4, 3, pad=1).relu().maxpool2d(2)
    h.flatten().dense(3).softmax()
    x = np.random.default_rng(0).random((1, 1, 6, 6), dtype=np.float32)
    out = net.layers[-1]
    best = lambda f: min(per_call_us(f, n) for _ in range(3))  # noqa: E731
    py = best(lambda: net.predict(x))
    lib, p, xp = dl._lib, net._ptr, x.ctypes.data
    raw = best(lambda: lib.dl_predict(p, out._ptr, xp, 1))
    c = None
    with tempfile.TemporaryDirectory() as d:
        net.save(os.path.join(d, "m.dl"))
        with open(os.path.join(d, "loop.c"), "w") as f:
            f.write(C_LOOP.replace("<stdio.h>", "<stdio.h>\n#include <stdlib.h>"))
        build = os.path.join(root, "build")
        if subprocess.run(["cc", "-O2", "-I" + root, os.path.join(d, "loop.c"), "-L" + build, "-ldlh",
                           "-Wl,-rpath," + os.path.abspath(build), "-o", os.path.join(d, "loop")]).returncode == 0:
            c = min(float(subprocess.run([os.path.join(d, "loop"), os.path.join(d, "m.dl"), str(n)],
                                         capture_output=True, text=True, check=True).stdout) for _ in range(3))
    print(f"dl.Net.predict, batch 1: {py:.2f} us per call")
    print(f"bare ctypes dl_predict:  {raw:.2f} us per call")
    if c is not None:
        print(f"C dl_predict:            {c:.2f} us per call")
        print(f"Python overhead:         {py - c:.2f} us per call (ctypes alone: {raw - c:.2f} us)")


if __name__ == "__main__":
    main()
