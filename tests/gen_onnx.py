#!/usr/bin/python3
"""gen_onnx.py - PyTorch models exported to ONNX for tests/test_onnx.c.

Run with Debian's python3-torch and python3-onnx:
    /usr/bin/python3 tests/gen_onnx.py              # writes tests/fixtures/onnx/
    /usr/bin/python3 tests/gen_onnx.py --fashion    # only the Fashion-MNIST-trained CNN
    /usr/bin/python3 tests/gen_onnx.py --bn-train   # only batchnorm in training mode
    /usr/bin/python3 tests/gen_onnx.py --check DIR  # onnx.checker on every .onnx in DIR
                                                    # (dl.h's exports: build/onnx_export)
Each model is exported with torch.onnx.export at opsets 13 and 17 (15 and
17 for the one exported with local functions) with a symbolic batch dim: NAME_opK.onnx. NAME.in.pb and NAME.out.pb are the input
(batch 3) and PyTorch's output as TensorProto files, which the C test reads
with dl.h's own protobuf reader. Batchnorm statistics are set to non-trivial
values and models are exported in eval mode.
"""
import copy
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "onnx")
OPSETS = (13, 17)


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) or isinstance(m, nn.BatchNorm1d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)


class RefCNN(nn.Module):
    """The README's reference CNN: conv32-bn-prelu-pool-conv64-bn-prelu-pool-dense10."""
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.PReLU(32), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.PReLU(64), nn.MaxPool2d(2))
        self.fc = nn.Linear(64 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.f(x), 1))


class Residual(nn.Module):
    """A ResNet basic block, then global average pooling and a classifier."""
    def __init__(self, c=8):
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, 5)

    def forward(self, x):
        h = torch.relu(self.b1(self.c1(x)))
        h = torch.relu(self.b2(self.c2(h)) + x)
        return self.fc(torch.flatten(self.pool(h), 1))


class MLP(nn.Module):
    """x.view(x.size(0), -1): the Shape/Gather/Unsqueeze/Concat/Reshape chain older exports carry."""
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(20, 32)
        self.l2 = nn.Linear(32, 16)
        self.l3 = nn.Linear(16, 4)

    def forward(self, x):
        h = x.view(x.size(0), -1)
        h = torch.tanh(self.l2(torch.relu(self.l1(h))))
        return torch.softmax(self.l3(h), dim=1)


class Mixed(nn.Module):
    """Strided, grouped, dilated and 1x1 convolutions, average pooling, elu,
    leaky relu, sigmoid, concat and mul of branches, dropout."""
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 8, 3, stride=2, padding=2, dilation=2, groups=4)
        self.c = nn.Conv2d(16, 8, 1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.AvgPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(8 * 4 * 4, 6)

    def forward(self, x):
        a = nn.functional.elu(self.a(x))
        b = nn.functional.leaky_relu(self.b(x), 0.2)
        h = self.c(torch.cat([a, b * torch.sigmoid(a)], 1))
        h = self.drop(self.pool(self.bn(h)))
        return self.fc(h.flatten(1))


class Block(nn.Module):
    """conv-bn-relu with a skip: exported as an ONNX local function (see FUNCTIONS)."""
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.slope = nn.LeakyReLU(0.1)

    def forward(self, x):
        return self.slope(self.bn(self.conv(x)) + x)


class Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.b1 = Block(6)
        self.b2 = Block(6)
        self.fc = nn.Linear(6 * 6 * 6, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.b2(self.b1(self.stem(x))), 1))


class MobileBlock(nn.Module):
    """MobileNetV2/V3-style: expand 1x1, depthwise 3x3, ReLU6, hard-swish,
    squeeze-excite (global pool, 1x1 convs, hard-sigmoid, broadcast mul), project, residual."""
    def __init__(self, c=8, e=16):
        super().__init__()
        self.expand = nn.Conv2d(c, e, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(e)
        self.dw = nn.Conv2d(e, e, 3, padding=1, groups=e, bias=False)
        self.bn2 = nn.BatchNorm2d(e)
        self.se1 = nn.Conv2d(e, 4, 1)
        self.se2 = nn.Conv2d(4, e, 1)
        self.project = nn.Conv2d(e, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, 5)

    def forward(self, x):
        h = nn.functional.relu6(self.bn1(self.expand(x)))
        h = nn.functional.hardswish(self.bn2(self.dw(h)))
        s = nn.functional.hardsigmoid(self.se2(torch.relu(self.se1(nn.functional.adaptive_avg_pool2d(h, 1)))))
        h = self.bn3(self.project(h * s)) + x
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


class UNetDecoder(nn.Module):
    """A small U-Net decoder step: transposed convolution up, skip concat, nearest upsampling."""
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.mix = nn.Conv2d(7, 4, 3, padding=1)
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        d = torch.relu(self.down(x))
        h = torch.relu(self.mix(torch.cat([self.up(d), x], 1)))
        return self.out(nn.functional.interpolate(h, scale_factor=2, mode="nearest"))


class LogSoftmaxMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(12, 16)
        self.l2 = nn.Linear(16, 5)

    def forward(self, x):
        return torch.log_softmax(self.l2(torch.relu(self.l1(x))), dim=1)


MODELS = {
    "ref_cnn": (RefCNN, (1, 28, 28)),
    "residual": (Residual, (8, 8, 8)),
    "mlp": (MLP, (4, 5)),
    "mixed": (Mixed, (4, 16, 16)),
    "blocks": (Blocks, (3, 6, 6)),
    # waiting for issue 11's layers (clip, hard-swish, broadcasting, transposed
    # convolution, upsampling, log-softmax): the C test accepts UNSUPPORTED
    "mobile": (MobileBlock, (8, 8, 8)),
    "unet": (UNetDecoder, (3, 8, 8)),
    "logsoftmax_mlp": (LogSoftmaxMLP, (12,)),
}
# Models whose submodules are exported as ONNX local functions (opset 15 on),
# which the importer inlines.
FUNCTIONS = {"blocks": {Block}}


def save_tensor(a, path, name):
    t = numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), name)
    with open(path, "wb") as f:
        f.write(t.SerializeToString())


def generate():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(12)
    for name, (cls, shape) in MODELS.items():
        torch.manual_seed(sum(name.encode()))       # not hash(): that changes per run
        model = cls()
        randomize_bn(model, gen)
        model.eval()
        x = torch.randn((3,) + shape, generator=gen)
        with torch.no_grad():
            y = model(x)
        save_tensor(x.numpy(), os.path.join(OUT, name + ".in.pb"), "x")
        save_tensor(y.numpy(), os.path.join(OUT, name + ".out.pb"), "y")
        for opset in ((15, 17) if name in FUNCTIONS else OPSETS):
            path = os.path.join(OUT, "%s_op%d.onnx" % (name, opset))
            torch.onnx.export(copy.deepcopy(model), x, path, opset_version=opset,   # a fresh copy: exporting
                              # with functions leaves hooks behind that trip a second export
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=False,
                              training=torch.onnx.TrainingMode.PRESERVE,   # keeps batchnorm unfused
                              export_modules_as_functions=FUNCTIONS.get(name, False))
            onnx.checker.check_model(onnx.load(path), full_check=True)
            print("%-22s %7d bytes  ops %s" % (os.path.basename(path), os.path.getsize(path),
                  sorted({n.op_type for n in onnx.load(path).graph.node})))


def fashion_subset(part):
    """examples/data/fashion-mnist-subset as (images [n,1,28,28] in [0,1], labels)."""
    import gzip
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "data", "fashion-mnist-subset")
    with gzip.open(os.path.join(d, "%s-images-idx3-ubyte.gz" % part)) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
    with gzip.open(os.path.join(d, "%s-labels-idx1-ubyte.gz" % part)) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())


def fashion():
    """The reference CNN trained one epoch on the shipped Fashion-MNIST subset
    (5000 images), exported at opset 13: ref_cnn_fashion_op13.onnx, and its
    test accuracy on the subset's 1000 test images in ref_cnn_fashion.acc.
    test_onnx.c imports it, freezes it, trains a new classifier one epoch and
    hands the re-export to ONNX Runtime."""
    torch.manual_seed(7)
    x, y = fashion_subset("train")
    tx, ty = fashion_subset("t10k")
    model = RefCNN()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    perm = torch.randperm(len(x))
    for k in range(0, len(x), 32):
        i = perm[k:k + 32]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(tx).argmax(1) == ty).float().mean().item()
    path = os.path.join(OUT, "ref_cnn_fashion_op13.onnx")
    torch.onnx.export(model, tx[:3], path, opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    with open(os.path.join(OUT, "ref_cnn_fashion.acc"), "w") as f:
        f.write("%.4f\n" % acc)
    print("%-22s %7d bytes  test accuracy %.4f" % (os.path.basename(path), os.path.getsize(path), acc))


def bn_train():
    """Batchnorm exported in training mode (batch statistics) with a fixed
    batch, at opset 12 (BatchNormalization with the outputs mean, var,
    saved_mean and saved_var, which mean training before opset 14) and 15
    (training_mode 1): bn_train_opK.onnx, bn_train.in.pb, bn_train.out.pb;
    bn_train_saved_var_op12.onnx has saved_var as a graph output too."""
    torch.manual_seed(5)
    gen = torch.Generator().manual_seed(5)
    model = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU())     # on the input: a whole fixed-batch tensor
    randomize_bn(model, gen)
    model.train()
    x = torch.randn((3, 4, 6, 5), generator=gen)
    with torch.no_grad():
        y = copy.deepcopy(model)(x)
    save_tensor(x.numpy(), os.path.join(OUT, "bn_train.in.pb"), "x")
    save_tensor(y.numpy(), os.path.join(OUT, "bn_train.out.pb"), "y")
    for opset in (12, 15):
        path = os.path.join(OUT, "bn_train_op%d.onnx" % opset)
        torch.onnx.export(copy.deepcopy(model), x, path, opset_version=opset, input_names=["x"], output_names=["y"],
                          do_constant_folding=False, training=torch.onnx.TrainingMode.TRAINING)
        onnx.checker.check_model(onnx.load(path), full_check=True)
        print("%-22s %7d bytes  %s" % (os.path.basename(path), os.path.getsize(path),
              [(n.op_type, list(n.output)) for n in onnx.load(path).graph.node if n.op_type == "BatchNormalization"]))
    m = onnx.load(os.path.join(OUT, "bn_train_op12.onnx"))     # saved_var read: ONNX leaves it undefined
    bn = [n for n in m.graph.node if n.op_type == "BatchNormalization"][0]
    m.graph.output.append(onnx.helper.make_tensor_value_info(bn.output[4], onnx.TensorProto.FLOAT, [4]))
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, os.path.join(OUT, "bn_train_saved_var_op12.onnx"))


def check(folder):
    bad = 0
    for f in sorted(os.listdir(folder)):
        if f.endswith(".onnx"):
            try:
                m = onnx.load(os.path.join(folder, f))
                onnx.checker.check_model(m, full_check=True)
                print("ok   %s (ir %d, opset %d)" % (f, m.ir_version, m.opset_import[0].version))
            except Exception as e:   # noqa: BLE001 - report every file
                bad += 1
                print("FAIL %s: %s" % (f, e))
    print("%d checked, %d failed" % (len([f for f in os.listdir(folder) if f.endswith('.onnx')]), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) == 2 and sys.argv[1] == "--fashion":     # that model alone
        fashion()
        sys.exit(0)
    if len(sys.argv) == 2 and sys.argv[1] == "--bn-train":    # that model alone
        bn_train()
        sys.exit(0)
    generate()
    fashion()
    bn_train()
