#!/usr/bin/python3
"""gen_fixtures.py - PyTorch reference values for tests/test_torch.c.

Run from the repository root with Debian's PyTorch (1.13):

    /usr/bin/python3 tests/gen_fixtures.py

It rewrites tests/fixtures/*.bin. The fixtures are committed, so the C tests
need no PyTorch. Every case draws its float32 inputs and parameters from a
fixed torch seed, then computes the references in float64 from those float32
values (`.double()`), and stores the references rounded to float32.

FILE FORMAT (all little-endian)
    "DLFX"                  4 bytes, magic
    u32 version             1
    u32 count               number of named tensors
    count times:
        u32 name_len, name  name_len bytes of ASCII, no terminator
        u32 ndim            0 for a scalar (one value)
        u32 dims[ndim]
        f32 data[prod(dims)]   row-major

NAMES
    Layer cases: "x" the input batch, "dout" the gradient fed to backward,
    "y" the output, "dx" the input gradient; every parameter and buffer by its
    PyTorch state_dict name ("conv.weight", "bn.running_mean"), which is also
    its dl.h name because the C test names its layers like the modules here;
    "<param>.grad" its gradient, "<buffer>.new" a buffer after the forward.
    Optimizer cases: "<param>" the start, "<param>.g<k>" the gradient given
    at step k, "<param>.s<k>" the value after step k (k = 1, 2, 3).
    Other cases document their own names below.
"""
import copy
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join("tests", "fixtures")
torch.set_num_threads(1)            # reduction order, hence every bit, fixed


def f32(v):
    """A hyperparameter as dl.h holds it: rounded to float32."""
    return float(np.float32(v))


def seed(name):
    torch.manual_seed(zlib.crc32(name.encode()))


def write(name, tensors):
    path = os.path.join(OUT, name + ".bin")
    with open(path, "wb") as f:
        f.write(b"DLFX")
        f.write(struct.pack("<II", 1, len(tensors)))
        for key, t in tensors:
            if isinstance(t, torch.Tensor):
                t = t.detach().cpu().numpy()
            a = np.ascontiguousarray(np.asarray(t, dtype="<f4"))
            kb = key.encode("ascii")
            f.write(struct.pack("<I", len(kb)) + kb)
            f.write(struct.pack("<I", a.ndim))
            f.write(struct.pack("<%dI" % a.ndim, *a.shape))
            f.write(a.tobytes())
    return path


class M(nn.Module):
    """A module made of named submodules and a forward function."""
    def __init__(self, fwd, **mods):
        super().__init__()
        for k, v in mods.items():
            setattr(self, k, v)
        self.fwd = fwd

    def forward(self, x):
        return self.fwd(self, x)


def buffers_of(m):
    return [(k, b) for k, b in m.named_buffers() if not k.endswith("num_batches_tracked")]


def layer_case(name, model, x, train=True):
    """Forward and backward of model (float32 parameters) on x (float32)."""
    tensors = [("x", x)]
    tensors += [(k, p) for k, p in model.named_parameters()]
    tensors += buffers_of(model)
    m = copy.deepcopy(model).double()
    m.train(train)
    x64 = x.double().requires_grad_(True)
    y = m(x64)
    dout = torch.randn(y.shape)
    y.backward(dout.double())
    tensors += [("dout", dout), ("y", y), ("dx", x64.grad)]
    tensors += [(k + ".grad", p.grad) for k, p in m.named_parameters()]
    tensors += [(k + ".new", b) for k, b in buffers_of(m)]
    write(name, tensors)


def randomize_bn(bn):
    c = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(1 + 0.3 * torch.randn(c))
        bn.bias.copy_(0.2 * torch.randn(c))
        bn.running_mean.copy_(0.5 * torch.randn(c))
        bn.running_var.copy_(0.5 + torch.rand(c))
    return bn


# ---- layers -----------------------------------------------------------------
def dense_cases():
    seed("dense")
    layer_case("dense", M(lambda s, x: s.fc(x), fc=nn.Linear(12, 7)), torch.randn(3, 12))
    seed("dense_nobias")
    layer_case("dense_nobias", M(lambda s, x: s.fc(x), fc=nn.Linear(12, 5, bias=False)), torch.randn(3, 12))
    seed("dense_flatten")
    layer_case("dense_flatten", M(lambda s, x: s.fc(x.flatten(1)), fc=nn.Linear(60, 6)), torch.randn(3, 3, 5, 4))


# name, batch, (C, H, W), conv kwargs. The C test repeats these shapes.
CONVS = [
    ("conv_k3_p1_b1",    1, (3, 7, 9),   dict(out_channels=5, kernel_size=3, padding=1)),
    ("conv_k3_p0_b3",    3, (5, 9, 7),   dict(out_channels=7, kernel_size=3)),
    ("conv_k5_s2_p2",    3, (3, 11, 9),  dict(out_channels=6, kernel_size=5, stride=2, padding=2)),
    ("conv_dil2",        2, (4, 9, 11),  dict(out_channels=5, kernel_size=3, dilation=2, padding=2)),
    ("conv_groups2",     3, (6, 7, 5),   dict(out_channels=10, kernel_size=3, padding=1, groups=2)),
    ("conv_depthwise",   3, (5, 8, 7),   dict(out_channels=5, kernel_size=3, padding=1, groups=5)),
    ("conv_depthwise_x2", 3, (3, 7, 6),  dict(out_channels=6, kernel_size=3, stride=2, padding=1, groups=3)),
    ("conv_1x1",         3, (9, 5, 7),   dict(out_channels=11, kernel_size=1)),
    ("conv_1x1_s2",      3, (9, 5, 7),   dict(out_channels=4, kernel_size=1, stride=2)),
    ("conv_nobias",      3, (3, 6, 5),   dict(out_channels=4, kernel_size=3, padding=1, bias=False)),
    ("conv_rect",        3, (2, 9, 8),   dict(out_channels=3, kernel_size=(3, 2), stride=(2, 1), padding=(2, 1))),
    ("conv_wide",        3, (16, 12, 12), dict(out_channels=12, kernel_size=3, padding=1)),
]


def conv_cases():
    for name, n, (c, h, w), kw in CONVS:
        seed(name)
        model = M(lambda s, x: s.conv(x), conv=nn.Conv2d(c, **kw))
        layer_case(name, model, torch.randn(n, c, h, w))


def sum_argmax(vi):
    return vi[0] + vi[1].to(vi[0].dtype)


def pool_cases():
    P = [
        ("maxpool_k2",      (3, 8, 6), lambda x: F.max_pool2d(x, 2, 2)),
        ("maxpool_k3_s2_p1", (3, 9, 7), lambda x: F.max_pool2d(x, 3, 2, 1)),
        ("maxpool_rect",    (2, 7, 8), lambda x: F.max_pool2d(x, (3, 2), (1, 2), (1, 1))),
        ("avgpool_k2",      (3, 8, 6), lambda x: F.avg_pool2d(x, 2, 2)),
        ("avgpool_k3_s2_p1", (3, 9, 7), lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)),
        ("avgpool_k3_s1_p1", (2, 5, 6), lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=True)),
        ("global_avgpool",  (5, 4, 6), lambda x: x.mean((2, 3))),
    ]
    for name, (c, h, w), f in P:
        seed(name)
        layer_case(name, M(lambda s, x, f=f: f(x)), torch.randn(3, c, h, w))
    seed("maxpool_argmax")          # the maxima plus their indices in the plane (dl_maxpool2d_argmax)
    layer_case("maxpool_argmax", M(lambda s, x: sum_argmax(F.max_pool2d(x, 3, 2, 1, return_indices=True))), torch.randn(3, 3, 9, 7))
    seed("global_avgpool_cl")       # (C, L) per sample
    layer_case("global_avgpool_cl", M(lambda s, x: x.mean(2)), torch.randn(3, 5, 6))


def batchnorm_cases():
    for train in (True, False):
        mode = "train" if train else "eval"
        seed("bn2d_" + mode)
        bn = randomize_bn(nn.BatchNorm2d(4))
        layer_case("bn2d_" + mode, M(lambda s, x: s.bn(x), bn=bn), 1.5 + 2 * torch.randn(3, 4, 5, 3), train)
        seed("bn1d_" + mode)
        model = M(lambda s, x: s.bn(s.fc(x)), fc=nn.Linear(7, 6), bn=randomize_bn(nn.BatchNorm1d(6)))
        layer_case("bn1d_" + mode, model, torch.randn(5, 7), train)
    seed("bn_cl_train")             # (C, L) per sample: BatchNorm1d on (N, C, L)
    bn = randomize_bn(nn.BatchNorm1d(4))
    layer_case("bn_cl_train", M(lambda s, x: s.bn(x), bn=bn), 1 + torch.randn(3, 4, 7), True)
    seed("bn2d_ex_train")           # dl_batchnorm_ex: eps 1e-3, momentum 0.3; batch 1
    bn = randomize_bn(nn.BatchNorm2d(3, eps=f32(1e-3), momentum=f32(0.3)))
    layer_case("bn2d_ex_train", M(lambda s, x: s.bn(x), bn=bn), 0.5 - torch.randn(1, 3, 4, 5), True)


def activation_cases():
    A = [
        ("relu", lambda s, x: F.relu(x)),
        ("leaky_relu", lambda s, x: F.leaky_relu(x, f32(0.1))),
        ("elu", lambda s, x: F.elu(x, f32(0.7))),
        ("sigmoid", lambda s, x: torch.sigmoid(x)),
        ("tanh", lambda s, x: torch.tanh(x)),
    ]
    for name, f in A:
        seed(name)
        layer_case(name, M(f), 2 * torch.randn(3, 3, 4, 5))
    for name, shape in (("prelu", (3, 3, 4, 5)), ("prelu_1d", (4, 6))):
        seed(name)
        act = nn.PReLU(shape[1])
        with torch.no_grad():
            act.weight.copy_(0.05 + 0.45 * torch.rand(shape[1]))
        layer_case(name, M(lambda s, x: s.act(x), act=act), 2 * torch.randn(*shape))
    B = [                           # the activations of exported models (dl.h ops 22 on)
        ("clip", lambda s, x: torch.clamp(x, f32(-0.5), f32(1.2))),
        ("relu6", lambda s, x: F.relu6(x)),
        ("hard_sigmoid", lambda s, x: F.hardsigmoid(x)),
        ("hard_sigmoid_onnx", lambda s, x: torch.clamp(f32(0.2) * x + f32(0.5), 0, 1)),
        ("hard_swish", lambda s, x: F.hardswish(x)),
        ("selu", lambda s, x: F.selu(x)),
        ("gelu", lambda s, x: F.gelu(x)),
        ("gelu_tanh", lambda s, x: F.gelu(x, approximate="tanh")),
        ("silu", lambda s, x: F.silu(x)),
        ("softplus", lambda s, x: F.softplus(x)),
        ("log_softmax_nchw", lambda s, x: F.log_softmax(x, 1)),
    ]
    for name, f in B:
        seed(name)
        layer_case(name, M(f), 3 * torch.randn(3, 3, 4, 5))
    seed("sqrt_softplus")            # softplus keeps sqrt's input positive for every suite's inputs
    layer_case("sqrt_softplus", M(lambda s, x: torch.sqrt(F.softplus(x))), 3 * torch.randn(3, 3, 4, 5))
    seed("log_softmax_1d")
    layer_case("log_softmax_1d", M(lambda s, x: F.log_softmax(x, 1)), 3 * torch.randn(4, 9))
    seed("softmax_nchw")
    layer_case("softmax_nchw", M(lambda s, x: torch.softmax(x, 1)), 2 * torch.randn(3, 5, 3, 4))
    seed("softmax_1d")
    layer_case("softmax_1d", M(lambda s, x: torch.softmax(x, 1)), 3 * torch.randn(4, 9))


def combine_cases():
    seed("add2")
    model = M(lambda s, x: s.ca(x) + s.cb(x), ca=nn.Conv2d(3, 4, 1), cb=nn.Conv2d(3, 4, 3, padding=1))
    layer_case("add2", model, torch.randn(3, 3, 5, 4))
    seed("add3")
    model = M(lambda s, x: s.fa(x) + s.fb(x) + x, fa=nn.Linear(6, 6), fb=nn.Linear(6, 6))
    layer_case("add3", model, torch.randn(3, 6))
    seed("concat")
    model = M(lambda s, x: torch.cat([s.ca(x), x, s.cb(x)], 1), ca=nn.Conv2d(3, 2, 1), cb=nn.Conv2d(3, 4, 3, padding=1))
    layer_case("concat", model, torch.randn(3, 3, 5, 4))
    seed("concat_1d")
    model = M(lambda s, x: torch.cat([s.fa(x), x], 1), fa=nn.Linear(5, 3))
    layer_case("concat_1d", model, torch.randn(3, 5))
    seed("mul")
    model = M(lambda s, x: s.ca(x) * x, ca=nn.Conv2d(3, 3, 1))
    layer_case("mul", model, torch.randn(3, 3, 4, 5))
    seed("matmul_2d")               # per sample (4,6) x (6,5)
    model = M(lambda s, x: x @ s.fb(x.flatten(1)).view(-1, 6, 5), fb=nn.Linear(24, 30))
    layer_case("matmul_2d", model, torch.randn(3, 4, 6))
    seed("matmul_3d")               # per sample (2,3,4) x (2,4,5)
    model = M(lambda s, x: x @ s.fb(x.flatten(1)).view(-1, 2, 4, 5), fb=nn.Linear(24, 40))
    layer_case("matmul_3d", model, torch.randn(3, 2, 3, 4))
    seed("reshape")                 # (4,3,5) -conv-> (6,3,5) -reshape-> (10,9) -softmax over dim 0
    model = M(lambda s, x: torch.softmax(s.conv(x).reshape(-1, 10, 9), 1), conv=nn.Conv2d(4, 6, 1))
    layer_case("reshape", model, torch.randn(3, 4, 3, 5))
    seed("flatten")                 # (2,3,4) -flatten-> (24) -softmax
    layer_case("flatten", M(lambda s, x: torch.softmax(x.flatten(1), 1)), torch.randn(3, 2, 3, 4))


def same_pads(n, k, s, d, upper):
    """TensorFlow's / ONNX's SAME_UPPER and SAME_LOWER: the (begin, end) pads for ceil(n / s) outputs."""
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    begin = total // 2 if upper else total - total // 2
    return begin, total - begin


def padding_cases():
    """Asymmetric and "same" padding, ceil_mode, count_include_pad off, dilated
    max pooling, global max pooling. PyTorch pads one amount per axis, so
    each asymmetric case is an explicit F.pad (-inf for max pooling) in front
    of an unpadded layer: the SAME cases are checked against the explicit
    pads TensorFlow and ONNX define. pads are (top, left, bottom, right)."""
    def tblr(t, l, b, r):
        return (l, r, t, b)             # F.pad's order
    def maxpool_padded(name, chw, k, s, pads):
        seed(name)
        f = lambda s_, x: F.max_pool2d(F.pad(x, tblr(*pads), value=float("-inf")), k, s)
        layer_case(name, M(f), torch.randn(3, *chw))
    def avgpool_padded_excl(name, chw, k, s, pads):
        seed(name)
        def f(s_, x):                   # the mean over the input cells of each window
            ones = torch.ones_like(x[:1, :1])
            return F.avg_pool2d(F.pad(x, tblr(*pads)), k, s) / F.avg_pool2d(F.pad(ones, tblr(*pads)), k, s)
        layer_case(name, M(f), torch.randn(3, *chw))
    def conv_padded(name, chw, filters, k, s, pads):
        seed(name)
        model = M(lambda s_, x: s_.conv(F.pad(x, tblr(*pads))), conv=nn.Conv2d(chw[0], filters, k, s))
        layer_case(name, model, torch.randn(3, *chw))
    maxpool_padded("maxpool_pads_asym", (3, 7, 6), 2, 2, (0, 1, 1, 0))
    th, bh = same_pads(7, 2, 2, 1, True); tw, bw = same_pads(5, 2, 2, 1, True)
    maxpool_padded("maxpool_same_upper", (2, 7, 5), 2, 2, (th, tw, bh, bw))
    th, bh = same_pads(8, 3, 2, 1, False); tw, bw = same_pads(6, 3, 2, 1, False)
    maxpool_padded("maxpool_same_lower", (2, 8, 6), 3, 2, (th, tw, bh, bw))
    seed("maxpool_ceil")
    layer_case("maxpool_ceil", M(lambda s_, x: F.max_pool2d(x, 3, 2, ceil_mode=True)), torch.randn(3, 2, 8, 8))
    seed("maxpool_dil2")
    layer_case("maxpool_dil2", M(lambda s_, x: F.max_pool2d(x, 3, 2, 1, dilation=2)), torch.randn(3, 2, 9, 8))
    seed("avgpool_ceil")
    layer_case("avgpool_ceil", M(lambda s_, x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True)),
               torch.randn(3, 2, 8, 8))
    seed("avgpool_excl_pad")
    layer_case("avgpool_excl_pad", M(lambda s_, x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)), torch.randn(3, 3, 9, 7))
    seed("avgpool_ceil_excl")
    layer_case("avgpool_ceil_excl", M(lambda s_, x: F.avg_pool2d(x, 2, 2, 1, ceil_mode=True, count_include_pad=False)),
               torch.randn(3, 2, 7, 6))
    th, bh = same_pads(7, 2, 2, 1, True); tw, bw = same_pads(5, 2, 2, 1, True)
    avgpool_padded_excl("avgpool_same_upper", (2, 7, 5), 2, 2, (th, tw, bh, bw))
    seed("global_maxpool")
    layer_case("global_maxpool", M(lambda s_, x: x.amax((2, 3))), torch.randn(3, 5, 4, 6))
    conv_padded("conv_pads_asym", (3, 7, 6), 4, 3, 1, (0, 2, 1, 1))
    th, bh = same_pads(9, 4, 2, 1, True); tw, bw = same_pads(8, 4, 2, 1, True)
    conv_padded("conv_same_upper_k4_s2", (3, 9, 8), 5, 4, 2, (th, tw, bh, bw))
    th, bh = same_pads(6, 2, 1, 1, False); tw, bw = same_pads(5, 2, 1, 1, False)
    conv_padded("conv_same_lower_k2", (2, 6, 5), 3, 2, 1, (th, tw, bh, bw))


def const(t):
    """A dl_constant as PyTorch sees it: a submodule whose buffer "value" is the tensor."""
    m = nn.Module()
    m.register_buffer("value", t)
    return m


def broadcast_cases():
    """Broadcasting add, sub, mul, div and constants (dl_constant: "<name>.value")."""
    seed("bcast_affine")            # x * scale (3,1,1) + shift (1,4,5), both constants
    model = M(lambda s, x: x * s.scale.value + s.shift.value, scale=const(torch.randn(3, 1, 1)), shift=const(torch.randn(1, 4, 5)))
    layer_case("bcast_affine", model, torch.randn(3, 3, 4, 5))
    seed("bcast_div")               # x / (softplus(mean over H, W of x) + 1): per channel, the 1 a scalar constant
    model = M(lambda s, x: x / (F.softplus(x.mean((2, 3)).view(-1, 3, 1, 1)) + s.one.value), one=const(torch.ones(1)))
    layer_case("bcast_div", model, torch.randn(3, 3, 4, 5))
    seed("bcast_sub")               # x - conv(x) with one filter: (3,4,5) - (1,4,5)
    model = M(lambda s, x: x - s.conv(x), conv=nn.Conv2d(3, 1, 1))
    layer_case("bcast_sub", model, torch.randn(3, 3, 4, 5))
    seed("bcast_mul_scalar")        # x * fc(x): (3,4,5) times a per-sample scalar
    model = M(lambda s, x: x * s.fc(x.flatten(1)).view(-1, 1, 1, 1), fc=nn.Linear(60, 1))
    layer_case("bcast_mul_scalar", model, torch.randn(3, 3, 4, 5))


# name, batch, (C, H, W), ConvTranspose2d kwargs. tests/ops.h repeats these shapes.
CONVTS = [
    ("convT_k3_s2_p1_op1", 3, (4, 5, 4), dict(out_channels=3, kernel_size=3, stride=2, padding=1, output_padding=1)),
    ("convT_groups2_dil2", 2, (4, 6, 5), dict(out_channels=6, kernel_size=3, padding=2, dilation=2, groups=2)),
    ("convT_k2_s2_nobias", 3, (3, 4, 3), dict(out_channels=5, kernel_size=2, stride=2, bias=False)),
    ("convT_rect", 2, (2, 5, 6), dict(out_channels=4, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), output_padding=(1, 0))),
]


def conv_transpose_cases():
    for name, n, (c, h, w), kw in CONVTS:
        seed(name)
        model = M(lambda s, x: s.conv(x), conv=nn.ConvTranspose2d(c, **kw))
        layer_case(name, model, torch.randn(n, c, h, w))


def shape_cases():
    """pad (constant, reflect, edge), transpose, upsample (nearest, bilinear), channel slice."""
    S = [
        ("pad_constant", (3, 4, 5), lambda s, x: F.pad(x, (1, 2, 0, 1), value=f32(0.5))),
        ("pad_reflect", (2, 5, 6), lambda s, x: F.pad(x, (2, 1, 1, 2), mode="reflect")),
        ("pad_edge", (2, 4, 3), lambda s, x: F.pad(x, (1, 3, 2, 0), mode="replicate")),
        ("transpose_hwc", (3, 4, 5), lambda s, x: x.permute(0, 2, 3, 1)),
        ("upsample_nearest2", (2, 3, 4), lambda s, x: F.interpolate(x, scale_factor=2, mode="nearest")),
        ("upsample_bilinear", (2, 3, 4), lambda s, x: F.interpolate(x, scale_factor=(2, 3), mode="bilinear", align_corners=False)),
        ("upsample_bilinear_ac", (2, 4, 3), lambda s, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)),
        ("slice_channels", (5, 3, 4), lambda s, x: x[:, 1:4]),
    ]
    for name, chw, f in S:
        seed(name)
        layer_case(name, M(f), torch.randn(3, *chw))
    R = [
        ("reduce_sum_hw_keep", (3, 4, 5), lambda s, x: x.sum((2, 3), keepdim=True)),
        ("reduce_mean_all", (3, 4, 5), lambda s, x: x.mean((1, 2, 3)).view(-1, 1)),
        ("reduce_sum_c", (4, 3, 5), lambda s, x: x.sum(1)),
    ]
    for name, chw, f in R:
        seed(name)
        layer_case(name, M(f), torch.randn(3, *chw))
    seed("transpose_2d")
    layer_case("transpose_2d", M(lambda s, x: x.transpose(1, 2)), torch.randn(3, 4, 6))


def custom_cases():
    """dl_custom with tests/ops.h's square layer, y = scale * x^2 + shift, then a dense "fc"."""
    seed("custom_square")
    sq = nn.Module()
    sq.scale = nn.Parameter(torch.tensor([0.5]))
    sq.shift = nn.Parameter(0.1 + 0.2 * torch.randn(5))
    model = M(lambda s, x: s.fc(s.square.scale * x * x + s.square.shift), square=sq, fc=nn.Linear(5, 3))
    layer_case("custom_square", model, torch.randn(3, 5))


# ---- dropout: dl.h's documented mask hash, reproduced ---------------------------
MASK64 = (1 << 64) - 1


def dropout_keep(seed_, i, p):
    """dl_dropout_keep: a splitmix64 hash of (seed, i) compared with p."""
    z = (seed_ + (i + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return (z >> 40) / 16777216.0 >= f32(p)


# The seeds and probabilities are repeated in test_torch.c.
DROPOUT_SEEDS = [(0, 0.5), (0x0123456789ABCDEF, 0.25), (0xFFFFFFFFFFFFFFFF, 0.9)]


def dropout_cases():
    """"keep<j>": 1000 keep bits for seed j of DROPOUT_SEEDS."""
    write("dropout_keep", [("keep%d" % j, [float(dropout_keep(s, i, p)) for i in range(1000)])
                           for j, (s, p) in enumerate(DROPOUT_SEEDS)])


# ---- losses -------------------------------------------------------------------
def loss_cases():
    """"logits", "labels" (as floats), "loss" (scalar), "dlogits";
    "out", "target", "loss", "dout"."""
    seed("loss_ce")
    logits, labels = 2 * torch.randn(5, 7), torch.randint(0, 7, (5,))
    z = logits.double().requires_grad_(True)
    loss = F.cross_entropy(z, labels)
    loss.backward()
    write("loss_ce", [("logits", logits), ("labels", labels.float()), ("loss", loss), ("dlogits", z.grad)])
    seed("loss_nll")                # "logp" (log_softmax of random logits), "labels", "loss", "dlogp"
    logp, labels = F.log_softmax(2 * torch.randn(5, 7), 1), torch.randint(0, 7, (5,))
    z = logp.double().requires_grad_(True)
    loss = F.nll_loss(z, labels)
    loss.backward()
    write("loss_nll", [("logp", logp), ("labels", labels.float()), ("loss", loss), ("dlogp", z.grad)])
    seed("loss_mse")
    out, target = torch.randn(4, 6), torch.randn(4, 6)
    o = out.double().requires_grad_(True)
    loss = F.mse_loss(o, target.double())
    loss.backward()
    write("loss_mse", [("out", out), ("target", target), ("loss", loss), ("dout", o.grad)])


# ---- optimizers ---------------------------------------------------------------
def small_net():
    return M(lambda s, x: s.fc2(F.relu(s.fc1(x))), fc1=nn.Linear(5, 4), fc2=nn.Linear(4, 3))


# name, optimizer factory on float64 params, clip norm, lr for steps 2 and 3
# (None: unchanged), gradient scale per step. The C test repeats this table.
OPTIMS = [
    ("sgd",              lambda p: torch.optim.SGD(p, lr=f32(0.1)), 0, None, None, (1, 1, 1)),
    ("sgd_momentum",     lambda p: torch.optim.SGD(p, lr=f32(0.1), momentum=f32(0.9)), 0, None, None, (1, 1, 1)),
    ("sgd_nesterov",     lambda p: torch.optim.SGD(p, lr=f32(0.1), momentum=f32(0.9), nesterov=True), 0, None, None, (1, 1, 1)),
    ("sgd_wd",           lambda p: torch.optim.SGD(p, lr=f32(0.1), weight_decay=f32(0.05)), 0, None, None, (1, 1, 1)),
    ("sgd_momentum_wd",  lambda p: torch.optim.SGD(p, lr=f32(0.1), momentum=f32(0.5), weight_decay=f32(0.05)), 0, None, None, (1, 1, 1)),
    ("adam",             lambda p: torch.optim.Adam(p, lr=f32(0.01)), 0, None, None, (1, 1, 1)),
    ("adam_wd",          lambda p: torch.optim.Adam(p, lr=f32(0.01), weight_decay=f32(0.1)), 0, None, None, (1, 1, 1)),
    ("adam_betas",       lambda p: torch.optim.Adam(p, lr=f32(0.02), betas=(f32(0.8), f32(0.95)), eps=f32(1e-6)), 0, None, None, (1, 1, 1)),
    ("adamw",            lambda p: torch.optim.AdamW(p, lr=f32(0.01), weight_decay=f32(0.1)), 0, None, None, (1, 1, 1)),
    ("adamw_default_wd", lambda p: torch.optim.AdamW(p, lr=f32(0.01)), 0, None, None, (1, 1, 1)),
    ("rmsprop",          lambda p: torch.optim.RMSprop(p, lr=f32(0.01)), 0, None, None, (1, 1, 1)),
    ("rmsprop_momentum", lambda p: torch.optim.RMSprop(p, lr=f32(0.01), momentum=f32(0.9)), 0, None, None, (1, 1, 1)),
    ("rmsprop_centered", lambda p: torch.optim.RMSprop(p, lr=f32(0.01), centered=True), 0, None, None, (1, 1, 1)),
    ("rmsprop_centered_momentum_wd",
     lambda p: torch.optim.RMSprop(p, lr=f32(0.01), momentum=f32(0.5), centered=True, weight_decay=f32(0.1)), 0, None, None, (1, 1, 1)),
    # the global norm is about 6 * scale (39 floats): above the limit at steps 1 and 3, below at 2
    ("sgd_momentum_clip", lambda p: torch.optim.SGD(p, lr=f32(0.1), momentum=f32(0.9)), f32(1.0), None, None, (3, 0.1, 1)),
    ("adam_clip",        lambda p: torch.optim.Adam(p, lr=f32(0.01), weight_decay=f32(0.1)), f32(0.5), None, None, (1, 0.05, 2)),
    ("sgd_momentum_lr",  lambda p: torch.optim.SGD(p, lr=f32(0.1), momentum=f32(0.9)), 0, f32(0.03), f32(0.2), (1, 1, 1)),
    ("adam_lr",          lambda p: torch.optim.Adam(p, lr=f32(0.01)), 0, f32(0.003), f32(0.02), (1, 1, 1)),
    ("rmsprop_lr",       lambda p: torch.optim.RMSprop(p, lr=f32(0.01), momentum=f32(0.9)), 0, f32(0.05), None, (1, 1, 1)),
    ("sgd_dampening",    lambda p: torch.optim.SGD(p, lr=f32(0.1), momentum=f32(0.9), dampening=f32(0.3)), 0, None, None, (1, 1, 1)),
]


def optim_cases():
    for name, make, clip, lr2, lr3, scales in OPTIMS:
        seed("optim_" + name)
        net = small_net()
        tensors = [(k, p) for k, p in net.named_parameters()]
        params = [(k, p.detach().double().requires_grad_(True)) for k, p in net.named_parameters()]
        opt = make([p for _, p in params])
        for step, lr in ((1, None), (2, lr2), (3, lr3)):
            if lr is not None:
                for g in opt.param_groups:
                    g["lr"] = lr
            for k, p in params:
                g = (scales[step - 1] * torch.randn(p.shape)).float()
                tensors.append(("%s.g%d" % (k, step), g))
                p.grad = g.double()
            if clip:
                torch.nn.utils.clip_grad_norm_([p for _, p in params], clip)
            opt.step()
            tensors += [("%s.s%d" % (k, step), p.detach().clone()) for k, p in params]
        write("optim_" + name, tensors)


def train_step_cases():
    """End to end through dl_train_step / dl_train_step_mse, 3 steps on one
    batch: "x", "labels" or "target", the parameters and statistics at the
    start, "loss<k>" the loss that step k reports, "<name>.s<k>" after it."""
    seed("train_ce")                # dense -> batchnorm -> relu -> dense, SGD with momentum
    net = M(lambda s, x: s.fc2(F.relu(s.bn(s.fc1(x)))), fc1=nn.Linear(8, 10),
            bn=randomize_bn(nn.BatchNorm1d(10)), fc2=nn.Linear(10, 4))
    x, labels = torch.randn(6, 8), torch.randint(0, 4, (6,))
    train_run("train_ce", net, x, labels.float(), lambda o: F.cross_entropy(o, labels),
              lambda p: torch.optim.SGD(p, lr=f32(0.1), momentum=f32(0.9)), "labels")
    seed("train_mse")               # conv -> relu -> flatten -> dense, Adam
    net = M(lambda s, x: s.fc(F.relu(s.conv(x)).flatten(1)), conv=nn.Conv2d(2, 3, 3, padding=1), fc=nn.Linear(3 * 4 * 5, 3))
    x, target = torch.randn(4, 2, 4, 5), torch.randn(4, 3)
    train_run("train_mse", net, x, target, lambda o: F.mse_loss(o, target.double()),
              lambda p: torch.optim.Adam(p, lr=f32(0.01)), "target")


def train_run(name, net, x, target, loss_fn, make, target_name):
    tensors = [("x", x), (target_name, target)]
    tensors += [(k, p) for k, p in net.named_parameters()] + buffers_of(net)
    m = copy.deepcopy(net).double()
    m.train()
    opt = make(list(m.parameters()))
    for step in (1, 2, 3):
        opt.zero_grad()
        loss = loss_fn(m(x.double()))
        loss.backward()
        opt.step()
        tensors.append(("loss%d" % step, loss))
        tensors += [("%s.s%d" % (k, step), p.detach().clone()) for k, p in m.named_parameters()]
        tensors += [("%s.s%d" % (k, step), b.clone()) for k, b in buffers_of(m)]
    write(name, tensors)


def main():
    if not os.path.isfile("dl.h"):
        sys.exit("run from the repository root: /usr/bin/python3 tests/gen_fixtures.py")
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".bin"):
            os.remove(os.path.join(OUT, f))
    dense_cases()
    conv_cases()
    pool_cases()
    batchnorm_cases()
    activation_cases()
    combine_cases()
    custom_cases()
    shape_cases()
    conv_transpose_cases()
    broadcast_cases()
    padding_cases()
    dropout_cases()
    loss_cases()
    optim_cases()
    train_step_cases()
    files = sorted(os.listdir(OUT))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in files)
    print("%d fixtures, %d bytes, torch %s" % (len(files), total, torch.__version__))


if __name__ == "__main__":
    main()
