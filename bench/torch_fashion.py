#!/usr/bin/python3
"""The reference CNN of examples/fashion.c in PyTorch, for the side-by-side table.

Same model, initialisation, data, optimizer, batch and per-epoch shuffling as
`build/fashion` with its defaults:

  input 1x28x28 in [0,1] -> conv 3x3 32 pad 1 -> batchnorm -> PReLU -> maxpool 2
  -> conv 3x3 64 pad 1 -> batchnorm -> PReLU -> maxpool 2 -> flatten -> dense 10
  -> softmax cross-entropy; Adam lr 1e-3, batch 64 (last batch partial).
  Weights PyTorch's default U(+-1/sqrt(fan_in)), biases 0, PReLU 0.25 per channel,
  batchnorm eps 1e-5 momentum 0.1.

Run with Debian's python3-torch:
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_fashion.py --epochs 5 --seed 1 --threads 2
Prints one line per epoch (test accuracy, test loss, training images/s) and, last,
"test accuracy: 0.NNNN". The shuffle order differs from dl.h's (another
generator), so runs agree in distribution, not bit for bit.
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FULL = "/usr/share/datasets/fashion-mnist"
SUBSET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "data", "fashion-mnist-subset")


def read_idx(folder, name):
    for ext in (".gz", ""):
        path = os.path.join(folder, name + ext)
        if os.path.exists(path):
            with (gzip.open if ext else open)(path, "rb") as f:
                data = f.read()
            magic, count = struct.unpack(">II", data[:8])
            if magic == 0x803:
                rows, cols = struct.unpack(">II", data[8:16])
                return np.frombuffer(data, np.uint8, count * rows * cols, 16).reshape(count, 1, rows, cols)
            return np.frombuffer(data, np.uint8, count, 8)
    sys.exit(f"{folder}: no {name}(.gz)")


def load(folder):
    xtr, ytr, xte, yte = (read_idx(folder, n) for n in NAMES)
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))
    return to_x(xtr), to_y(ytr), to_x(xte), to_y(yte)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.act1 = nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.PReLU(32, 0.25)
        self.conv2, self.bn2, self.act2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.PReLU(64, 0.25)
        self.fc = nn.Linear(64 * 7 * 7, 10)
        for m in (self.conv1, self.conv2, self.fc):   # weights as PyTorch's default, biases 0 as in dl.h
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.max_pool2d(self.act1(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(self.act2(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(x, 1))


def evaluate(model, x, y, device, batch=1000):
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb, yb = x[i:i + batch].to(device), y[i:i + batch].to(device)
            out = model(xb)
            loss += F.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
    return correct / len(x), loss / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--data", default=None, help="folder with the four IDX files (default: the Debian package, else the shipped subset)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    folder = a.data or (FULL if os.path.exists(os.path.join(FULL, NAMES[0] + ".gz")) else SUBSET)
    xtr, ytr, xte, yte = load(folder)
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        xtr, ytr = xtr.to(device), ytr.to(device)
    print(f"torch {torch.__version__}, {a.device}, {torch.get_num_threads()} threads; data {folder}: "
          f"{len(xtr)} train, {len(xte)} test; batch {a.batch}, adam lr {a.lr}, seed {a.seed}", flush=True)

    model = Net().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    gen = torch.Generator().manual_seed(a.seed)
    n = len(xtr)
    for epoch in range(1, a.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen).to(xtr.device)
        total, seen = 0.0, 0
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(0, n, a.batch):
            idx = order[i:i + a.batch]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
            seen += len(idx)
        if device.type == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        acc, tloss = evaluate(model, xte, yte, device)
        print(f"epoch {epoch}/{a.epochs}: train loss {float(total) / seen:.4f}, {seen / secs:.0f} images/s, "
              f"test accuracy {acc:.4f}, test loss {tloss:.4f}", flush=True)
    print(f"test accuracy: {acc:.4f}")


if __name__ == "__main__":
    main()
