"""dl.py - dl.h from Python: ctypes over libdlh.so (`make lib`), NumPy in and out.

    import numpy as np, dl
    net = dl.Net(seed=1)
    x = net.input(1, 28, 28)
    h = x.conv2d(8, 3, pad=1).batchnorm().relu().maxpool2d(2)
    logits = h.flatten().dense(10)
    probs = logits.softmax()
    opt = net.adam(1e-3)
    loss = net.train_step(opt, logits, images, labels)   # images (n,1,28,28) float32, labels (n,) ints
    p = net.predict(images, probs)                      # (n, 10), a copy
    net.save("model.dl"); again = dl.load("model.dl")
    w = net.params()["conv2d_1.weight"]                  # a view on the net's buffer

Arrays in are converted to C-contiguous float32 (int32 labels) only when they
are not already; arrays out are copies, except parameters: Net.params() and
Param.data / Param.grad are NumPy views on the net's own buffers, written
through and read without copying. Those views keep the net alive, and stay
valid until a layer with parameters is added to the net (the buffers then
move; take the views again). Every failure raises DLError with dl.h's
message (dl_net_error, or dl_status.msg for loads) and its dl_code.

The library is found in $DLH_LIBRARY, else ../build/libdlh.so next to this
file (a source tree after `make lib`), else the system's libdlh.
"""
import ctypes
import ctypes.util
import math
import os

import numpy as np

__all__ = ["DLError", "Net", "Layer", "Param", "Optim", "load", "load_bytes", "add", "concat", "mul", "matmul"]

OK, ERR_ARG, ERR_SHAPE, ERR_NOMEM, ERR_IO, ERR_FORMAT, ERR_NUMERIC, ERR_BACKEND, ERR_UNSUPPORTED = range(9)
OP_INPUT, OP_SOFTMAX = 0, 15
SGD, ADAM, ADAMW, RMSPROP = range(4)
INITS = {"default": 0, "he_uniform": 1, "he_normal": 2, "glorot_uniform": 3, "glorot_normal": 4,
         "zeros": 5, "torch_uniform": 6}


class DLError(Exception):
    """A dl.h call failed: str(e) is dl.h's message, e.code its dl_code."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


# ---- the C side: structs as dl.h declares them, and each function's types ----
_I, _F, _P, _S = ctypes.c_int, ctypes.c_float, ctypes.c_void_p, ctypes.c_size_t


class _Status(ctypes.Structure):
    _fields_ = [("code", _I), ("msg", ctypes.c_char * 256)]


class _Param(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 48), ("layer", _P), ("ndim", _I), ("shape", _I * 4), ("size", _I),
                ("data", _P), ("grad", _P), ("trainable", _I), ("frozen", _I), ("offset", _S)]


class _OptimDesc(ctypes.Structure):
    _fields_ = [("kind", _I), ("lr", _F), ("momentum", _F), ("nesterov", _I), ("beta1", _F), ("beta2", _F),
                ("eps", _F), ("alpha", _F), ("centered", _I), ("weight_decay", _F), ("clip_norm", _F),
                ("dampening", _F)]


class _ConvDesc(ctypes.Structure):
    _fields_ = [(f, _I) for f in ("filters", "kernel", "stride", "pad", "dilation", "kernel_h", "kernel_w",
                                  "stride_h", "stride_w", "pad_h", "pad_w", "dilation_h", "dilation_w",
                                  "groups", "no_bias", "init", "pad_top", "pad_bottom", "pad_left", "pad_right",
                                  "auto_pad")]


class _PoolDesc(ctypes.Structure):
    _fields_ = [(f, _I) for f in ("kernel", "stride", "pad", "kernel_h", "kernel_w", "stride_h", "stride_w",
                                  "pad_h", "pad_w", "pad_top", "pad_bottom", "pad_left", "pad_right", "auto_pad",
                                  "ceil_mode", "exclude_pad", "dilation", "dilation_h", "dilation_w")]


class _DenseDesc(ctypes.Structure):
    _fields_ = [("units", _I), ("no_bias", _I), ("init", _I)]


_PP = ctypes.POINTER
_SIGNATURES = {   # name: (result, arguments)
    "dl_net_new": (_P, []), "dl_net_free": (None, [_P]), "dl_net_seed": (None, [_P, ctypes.c_uint64]),
    "dl_net_error": (ctypes.c_char_p, [_P]), "dl_net_layer_count": (_I, [_P]), "dl_net_layer": (_P, [_P, _I]),
    "dl_net_find": (_P, [_P, ctypes.c_char_p]), "dl_net_set_threads": (_I, [_P, _I]), "dl_net_threads": (_I, [_P]),
    "dl_input": (_P, [_P, _I, _I, _I]), "dl_dense_ex": (_P, [_P, _PP(_DenseDesc)]),
    "dl_conv2d_ex": (_P, [_P, _PP(_ConvDesc)]), "dl_maxpool2d_ex": (_P, [_P, _PP(_PoolDesc)]),
    "dl_avgpool2d_ex": (_P, [_P, _PP(_PoolDesc)]), "dl_global_avgpool": (_P, [_P]),
    "dl_batchnorm_ex": (_P, [_P, _F, _F]), "dl_dropout": (_P, [_P, _F]),
    "dl_reshape": (_P, [_P, _I, _PP(_I)]), "dl_flatten": (_P, [_P]), "dl_relu": (_P, [_P]),
    "dl_leaky_relu": (_P, [_P, _F]), "dl_elu": (_P, [_P, _F]), "dl_prelu": (_P, [_P]), "dl_sigmoid": (_P, [_P]),
    "dl_tanh": (_P, [_P]), "dl_softmax": (_P, [_P]), "dl_add_n": (_P, [_PP(_P), _I]),
    "dl_concat": (_P, [_PP(_P), _I]), "dl_mul": (_P, [_P, _P]), "dl_matmul": (_P, [_P, _P]),
    "dl_layer_set_name": (_I, [_P, ctypes.c_char_p]), "dl_layer_name": (ctypes.c_char_p, [_P]),
    "dl_layer_op": (_I, [_P]), "dl_layer_shape": (_I, [_P, _PP(_I)]), "dl_layer_size": (_I, [_P]),
    "dl_op_name": (ctypes.c_char_p, [_I]),
    "dl_net_param_count": (_I, [_P]), "dl_net_param": (_PP(_Param), [_P, _I]),
    "dl_optim_new": (_P, [_P, _PP(_OptimDesc)]), "dl_optim_set_lr": (_I, [_P, _F]), "dl_optim_lr": (_F, [_P]),
    "dl_train_step": (_I, [_P, _P, _P, _P, _P, _I, _PP(_F)]),
    "dl_train_step_mse": (_I, [_P, _P, _P, _P, _P, _I, _PP(_F)]),
    "dl_predict": (_P, [_P, _P, _P, _I]),
    "dl_net_save": (_I, [_P, ctypes.c_char_p]), "dl_net_load": (_P, [ctypes.c_char_p, _PP(_Status)]),
    "dl_net_load_mem": (_P, [ctypes.c_char_p, _S, _PP(_Status)]),
    "dl_net_save_mem": (_I, [_P, _P, _PP(_P), _PP(_S)]),
}


def _load_library():
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.environ.get("DLH_LIBRARY"), os.path.join(here, "..", "build", "libdlh.so"),
                 ctypes.util.find_library("dlh")):
        if path and (os.path.exists(path) or not os.path.dirname(path)):
            lib = ctypes.CDLL(path)
            break
    else:
        raise OSError("libdlh not found: run `make lib` in the dl.h tree, install it, or set DLH_LIBRARY")
    for name, (res, args) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


_lib = _load_library()
_libc_free = ctypes.CDLL(None).free   # dl.h's default DL_FREE, as libdlh is built
_libc_free.argtypes = [_P]


def _floats(a, name):
    """a as a C-contiguous float32 array (no copy when it already is one)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim == 0:
        raise ValueError(f"{name} must have a batch dimension")
    return a


def _view(address, shape, owner):
    """A NumPy view of len(shape) floats at address that keeps owner alive."""
    size = math.prod(shape)
    buf = (ctypes.c_float * size).from_address(address)
    buf._owner = owner
    return np.frombuffer(buf, dtype=np.float32).reshape(shape)


class Layer:
    """A layer of a Net. The constructor methods make a new layer reading this one."""

    def __init__(self, net, ptr):
        self.net, self._ptr = net, ptr

    def _make(self, ptr):
        return self.net._layer(ptr)

    # --- introspection
    @property
    def name(self):
        return _lib.dl_layer_name(self._ptr).decode()

    @name.setter
    def name(self, value):
        self.net._check(_lib.dl_layer_set_name(self._ptr, value.encode()))

    @property
    def op(self):
        return _lib.dl_op_name(_lib.dl_layer_op(self._ptr)).decode()

    @property
    def shape(self):
        """The per-sample output shape."""
        s = (_I * 3)()
        return tuple(s[:_lib.dl_layer_shape(self._ptr, s)])

    @property
    def size(self):
        return _lib.dl_layer_size(self._ptr)

    def __repr__(self):
        return f"<dl.Layer {self.name} {self.op} {self.shape}>"

    # --- constructors (dl.h's, with its defaults: 0 means default)
    def dense(self, units, bias=True, init="default"):
        d = _DenseDesc(units, 0 if bias else 1, INITS[init])
        return self._make(_lib.dl_dense_ex(self._ptr, ctypes.byref(d)))

    def conv2d(self, filters, kernel, stride=1, pad=0, dilation=1, groups=1, bias=True, init="default"):
        """kernel, stride, pad and dilation: an int, or (h, w)."""
        d = _ConvDesc(filters=filters, groups=groups, no_bias=0 if bias else 1, init=INITS[init])
        for f, v in (("kernel", kernel), ("stride", stride), ("pad", pad), ("dilation", dilation)):
            setattr(d, f + "_h", v[0] if isinstance(v, tuple) else v)
            setattr(d, f + "_w", v[1] if isinstance(v, tuple) else v)
        return self._make(_lib.dl_conv2d_ex(self._ptr, ctypes.byref(d)))

    def _pool(self, fn, kernel, stride, pad):
        stride = stride or kernel
        d = _PoolDesc()
        for f, v in (("kernel", kernel), ("stride", stride), ("pad", pad)):
            setattr(d, f + "_h", v[0] if isinstance(v, tuple) else v)
            setattr(d, f + "_w", v[1] if isinstance(v, tuple) else v)
        return self._make(fn(self._ptr, ctypes.byref(d)))

    def maxpool2d(self, kernel, stride=None, pad=0):
        return self._pool(_lib.dl_maxpool2d_ex, kernel, stride, pad)

    def avgpool2d(self, kernel, stride=None, pad=0):
        return self._pool(_lib.dl_avgpool2d_ex, kernel, stride, pad)

    def global_avgpool(self):
        return self._make(_lib.dl_global_avgpool(self._ptr))

    def batchnorm(self, eps=1e-5, momentum=0.1):
        return self._make(_lib.dl_batchnorm_ex(self._ptr, eps, momentum))

    def dropout(self, p):
        return self._make(_lib.dl_dropout(self._ptr, p))

    def reshape(self, *shape):
        s = (_I * len(shape))(*shape)
        return self._make(_lib.dl_reshape(self._ptr, len(shape), s))

    def flatten(self):
        return self._make(_lib.dl_flatten(self._ptr))

    def relu(self):
        return self._make(_lib.dl_relu(self._ptr))

    def leaky_relu(self, slope=0.01):
        return self._make(_lib.dl_leaky_relu(self._ptr, slope))

    def elu(self, alpha=1.0):
        return self._make(_lib.dl_elu(self._ptr, alpha))

    def prelu(self):
        return self._make(_lib.dl_prelu(self._ptr))

    def sigmoid(self):
        return self._make(_lib.dl_sigmoid(self._ptr))

    def tanh(self):
        return self._make(_lib.dl_tanh(self._ptr))

    def softmax(self):
        return self._make(_lib.dl_softmax(self._ptr))


def _layers_of(layers):
    net = layers[0].net
    if any(l.net is not net for l in layers):
        raise ValueError("layers from different nets")
    return net, (_P * len(layers))(*(l._ptr for l in layers))


def add(*layers):
    """Elementwise sum of two or more layers."""
    net, arr = _layers_of(layers)
    return net._layer(_lib.dl_add_n(arr, len(layers)))


def concat(*layers):
    """Along channels (dim 0)."""
    net, arr = _layers_of(layers)
    return net._layer(_lib.dl_concat(arr, len(layers)))


def mul(a, b):
    return a.net._layer(_lib.dl_mul(a._ptr, b._ptr))


def matmul(a, b):
    """Per sample: (.., M, K) x (.., K, P)."""
    return a.net._layer(_lib.dl_matmul(a._ptr, b._ptr))


class Param:
    """One parameter tensor: data and grad (None for statistics) are views."""

    def __init__(self, net, ptr):
        self._net, self._p = net, ptr
        p = ptr.contents
        self.name, self.trainable = p.name.decode(), bool(p.trainable)
        shape = tuple(p.shape[:p.ndim])
        self.data = _view(p.data, shape, net)
        self.grad = _view(p.grad, shape, net) if p.grad else None

    @property
    def frozen(self):
        return bool(self._p.contents.frozen)

    @frozen.setter
    def frozen(self, value):
        self._p.contents.frozen = 1 if value else 0

    def __repr__(self):
        return f"<dl.Param {self.name} {self.data.shape}>"


class Optim:
    """An optimizer, owned by its net (Net.sgd, adam, adamw, rmsprop, optimizer)."""

    def __init__(self, net, ptr):
        self.net, self._ptr = net, ptr

    @property
    def lr(self):
        return _lib.dl_optim_lr(self._ptr)

    @lr.setter
    def lr(self, value):
        if _lib.dl_optim_set_lr(self._ptr, value):
            raise DLError(ERR_ARG, f"dl_optim_set_lr: {value} is not finite and positive")


class Net:
    """A dl.h net. Net() makes an empty one; load() and load_bytes() read one."""

    def __init__(self, seed=None, threads=None, _ptr=None):
        self._ptr = _ptr or _lib.dl_net_new()
        if not self._ptr:
            raise MemoryError("dl_net_new: out of memory")
        self._wrappers = {}
        self._ends_at = (-1,)
        if seed is not None:
            _lib.dl_net_seed(self._ptr, seed)
        if threads is not None:
            self.threads = threads

    def __del__(self):
        if getattr(self, "_ptr", None):
            _lib.dl_net_free(self._ptr)
            self._ptr = None

    # --- errors and wrappers
    def error(self):
        return _lib.dl_net_error(self._ptr).decode()

    def _check(self, rc):
        if rc:
            raise DLError(rc, self.error())

    def _layer(self, ptr):
        if not ptr:
            raise DLError(ERR_ARG, self.error())
        if ptr not in self._wrappers:
            self._wrappers[ptr] = Layer(self, ptr)
        return self._wrappers[ptr]

    @property
    def threads(self):
        return _lib.dl_net_threads(self._ptr)

    @threads.setter
    def threads(self, n):
        self._check(_lib.dl_net_set_threads(self._ptr, n))

    # --- the graph
    def input(self, c, h=0, w=0):
        return self._layer(_lib.dl_input(self._ptr, c, h, w))

    @property
    def layers(self):
        return [self._layer(_lib.dl_net_layer(self._ptr, i)) for i in range(_lib.dl_net_layer_count(self._ptr))]

    def layer(self, name):
        ptr = _lib.dl_net_find(self._ptr, name.encode())
        if not ptr:
            raise KeyError(name)
        return self._layer(ptr)

    def _ends(self):
        """(input layer, last layer): looked up again only when layers were added."""
        count = _lib.dl_net_layer_count(self._ptr)
        if self._ends_at[0] != count:
            layers = self.layers
            ins = [l for l in layers if _lib.dl_layer_op(l._ptr) == OP_INPUT]
            if len(ins) != 1:
                raise DLError(ERR_UNSUPPORTED, f"the net has {len(ins)} input layers; the binding feeds one")
            self._ends_at = (count, ins[0], ins[0].size, layers[-1], layers[-1].shape)
        return self._ends_at

    def _batch(self, x, ends=None):
        """x as float32 (n, ...) holding n samples of the input layer."""
        x = _floats(x, "x")
        _, inp, size = (ends or self._ends())[:3]
        if x.size != x.shape[0] * size:
            raise ValueError(f"x has shape {x.shape}: not n samples of the input's {inp.shape}")
        return x

    # --- parameters
    def param_list(self):
        return [Param(self, _lib.dl_net_param(self._ptr, i)) for i in range(_lib.dl_net_param_count(self._ptr))]

    def params(self):
        """{name: view of its values}, in the net's order (file order)."""
        return {p.name: p.data for p in self.param_list()}

    def param(self, name):
        for p in self.param_list():
            if p.name == name:
                return p
        raise KeyError(name)

    # --- optimizers: zero means dl.h's default, semantics follow PyTorch
    def optimizer(self, kind, lr=0.0, momentum=0.0, nesterov=False, betas=(0.0, 0.0), eps=0.0, alpha=0.0,
                  centered=False, weight_decay=0.0, clip_norm=0.0):
        d = _OptimDesc(kind, lr, momentum, int(nesterov), betas[0], betas[1], eps, alpha, int(centered),
                       weight_decay, clip_norm)
        ptr = _lib.dl_optim_new(self._ptr, ctypes.byref(d))
        if not ptr:
            raise DLError(ERR_ARG, self.error())
        return Optim(self, ptr)

    def sgd(self, lr=0.01, momentum=0.0, **kw):
        return self.optimizer(SGD, lr, momentum, **kw)

    def adam(self, lr=0.001, **kw):
        return self.optimizer(ADAM, lr, **kw)

    def adamw(self, lr=0.001, weight_decay=0.01, **kw):
        return self.optimizer(ADAMW, lr, weight_decay=weight_decay, **kw)

    def rmsprop(self, lr=0.01, **kw):
        return self.optimizer(RMSPROP, lr, **kw)

    # --- training and inference
    def _step(self, fn, opt, out, x, y):
        x = self._batch(x)
        loss = _F()
        self._check(fn(self._ptr, opt._ptr, out._ptr, x.ctypes.data, y.ctypes.data, x.shape[0], ctypes.byref(loss)))
        return loss.value

    def train_step(self, opt, logits, x, labels):
        """One step of softmax cross-entropy on integer labels; returns the batch's mean loss."""
        labels = np.ascontiguousarray(labels, dtype=np.int32)
        if labels.shape != (len(x),):
            raise ValueError(f"labels have shape {labels.shape}, not ({len(x)},)")
        return self._step(_lib.dl_train_step, opt, logits, x, labels)

    def train_step_mse(self, opt, out, x, targets):
        """One step of mean squared error against targets (n samples of out's shape)."""
        targets = _floats(targets, "targets")
        if targets.size != len(x) * out.size:
            raise ValueError(f"targets have shape {targets.shape}, not {len(x)} samples of {out.shape}")
        return self._step(_lib.dl_train_step_mse, opt, out, x, targets)

    def predict(self, x, out=None):
        """out's values (the last layer when None) for x in eval mode, as a new (n, *shape) array."""
        ends = self._ends()
        x = self._batch(x, ends)
        last, shape = ends[3:]
        if out is not None and out is not last:
            last, shape = out, out.shape
        p = _lib.dl_predict(self._ptr, last._ptr, x.ctypes.data, x.shape[0])
        if not p:
            raise DLError(ERR_ARG, self.error())
        return _view(p, (x.shape[0],) + shape, self).copy()

    # --- files
    def save(self, path):
        self._check(_lib.dl_net_save(self._ptr, os.fsencode(path)))

    def to_bytes(self):
        data, size = _P(), _S()
        self._check(_lib.dl_net_save_mem(self._ptr, None, ctypes.byref(data), ctypes.byref(size)))
        try:
            return ctypes.string_at(data, size.value)
        finally:
            _libc_free(data)


def _loaded(ptr, st):
    if not ptr:
        raise DLError(st.code, st.msg.decode())
    return Net(_ptr=ptr)


def load(path):
    """A net from a file written by dl_net_save (any dl.h program) or Net.save."""
    st = _Status()
    return _loaded(_lib.dl_net_load(os.fsencode(path), ctypes.byref(st)), st)


def load_bytes(data):
    """A net from the bytes of a model file."""
    data = bytes(data)
    st = _Status()
    return _loaded(_lib.dl_net_load_mem(data, len(data), ctypes.byref(st)), st)
