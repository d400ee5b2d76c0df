"""What the Keras frontend (:mod:`nnhdl.frontend.keras`) and the HGQ2 frontend
(:mod:`nnhdl.frontend.hgq`) share: :class:`FrontendError`, the quiet TensorFlow import, and
:class:`_Builder`, which turns Keras layers into :mod:`nnhdl.ir` ops (the layer table and the
semantics are documented in :mod:`nnhdl.frontend.keras`; :class:`nnhdl.frontend.hgq.HgqBuilder`
extends it with HGQ2's quantized layers).

Both frontends import this module and it imports neither, so the frontend package's import
graph has no cycle (``keras`` -> ``hgq`` -> ``common``). TensorFlow and Keras are imported only
inside functions.
"""

import contextlib
import dataclasses
import inspect
import math
import os
import re
import sys

import numpy as np

from ..ir import (Activation, BatchNorm, Conv, Dense, Dropout, Flatten, Input, Pad, Pool, Reshape, Softmax, spatial,
                  window_count)

__all__ = ["FrontendError", "NOOP_LAYERS", "SUPPORTED_LAYERS", "SUPPORTED_ACTIVATIONS", "INPUT_NAME"]

#: Layers that are the identity at inference; each becomes a Dropout op (removed by a pass).
NOOP_LAYERS = ("Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise", "SpatialDropout1D")

SUPPORTED_LAYERS = ("InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU", "BatchNormalization",
                    "Dropout", "Flatten", "Softmax", "Reshape", "Conv1D", "Conv2D", "DepthwiseConv2D",
                    "SeparableConv2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
                    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
                    "GlobalAveragePooling2D", "ZeroPadding1D", "ZeroPadding2D")

#: Activation functions accepted by name (Dense ``activation=`` and the Activation layer).
SUPPORTED_ACTIVATIONS = ("linear", "relu", "leaky_relu", "softmax")

_AUTO_INPUT_NAME = re.compile(r"input(_layer)?(_\d+)?")
INPUT_NAME = "input"

class FrontendError(ValueError):
    """The model cannot be read or uses something the frontend does not support. The message
    names the file (when loading a file), the layer and its Keras class, and what to change."""


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence what TensorFlow's C++ runtime writes straight to file descriptor 2 while it starts
    (absl and oneDNN notices); Python exceptions are unaffected."""
    if "NNHDL_TF_VERBOSE" in os.environ:
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured by a test runner)
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(null)


def _import_keras():
    # Keep TensorFlow's C++ start-up chatter out of the tool's output unless the user asked for it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _quiet_native_stderr():
            import keras
            import tensorflow  # noqa: F401  (its runtime starts here: keep that quiet too)
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise FrontendError(f"the Keras frontend needs TensorFlow and Keras 3 "
                            f"(pip install 'nnhdl[keras]'): {e}") from None
    return keras

class _Builder:
    """Collects ops for one model; knows the file name for error messages."""

    def __init__(self, keras, source, layer_names=()):
        self.keras = keras
        self.source = source  # the path, or "" for an in-memory model
        self.ops = []
        self.used = set()
        self.reserved = set(layer_names)  # Keras layer names: generated op names avoid them

    # -- helpers ------------------------------------------------------------------------------
    def error(self, layer, message):
        prefix = f"{self.source}: " if self.source else ""
        return FrontendError(f"{prefix}layer {layer.name!r} ({type(layer).__name__}) {message}")

    def unique(self, name, generated=False):
        """``name`` itself for a Keras layer's op; a free variant of it for a generated name."""
        taken = self.used | self.reserved if generated else self.used
        candidate, n = name, 1
        while candidate in taken:
            candidate = f"{name}_{n}"
            n += 1
        self.used.add(candidate)
        return candidate

    @property
    def prev(self):
        return self.ops[-1]

    def add(self, cls, name, shape, origin, generated=False, **fields):
        op = cls(name=self.unique(name, generated), inputs=(self.prev.name,) if self.ops else (), shape=tuple(shape),
                 origin=origin, **fields)
        self.ops.append(op)
        return op

    def array(self, variable):
        value = variable.numpy() if hasattr(variable, "numpy") else self.keras.ops.convert_to_numpy(variable)
        return np.array(value, dtype=np.float64)

    def activation_name(self, fn):
        """The Keras built-in activation ``fn`` is, by name (``None`` for anything else)."""
        name = getattr(fn, "__name__", None)
        if not isinstance(name, str):
            return None
        try:
            builtin = self.keras.activations.get(name)
        except Exception:
            return None
        return name if builtin is fn else None

    def leaky_default(self):
        return _leaky_relu_default(self.keras)

    # -- layers -------------------------------------------------------------------------------
    def input(self, name, shape, layer_for_errors=None):
        dims = tuple(shape)
        if len(dims) < 1 or any(d is None for d in dims):
            where = f"{self.source}: " if self.source else ""
            what = (f"layer {layer_for_errors.name!r} (InputLayer)" if layer_for_errors is not None
                    else "the model input")
            raise FrontendError(f"{where}{what} has shape {_shape_text(dims)}; every dimension except the "
                                f"batch must be fixed. Give a full shape, e.g. keras.Input(shape=(16,)).")
        if _AUTO_INPUT_NAME.fullmatch(name) and INPUT_NAME not in self.reserved:
            name = INPUT_NAME
        return self.add(Input, name, tuple(int(d) for d in dims), name)

    def layer(self, layer):
        cls = type(layer).__name__
        handler = getattr(self, f"_layer_{cls}", None)
        if handler is None and cls in NOOP_LAYERS:
            handler = self._noop
        if handler is None:
            raise self.error(layer, f"is not supported; supported layers: {', '.join(SUPPORTED_LAYERS)} "
                                    f"(and {', '.join(NOOP_LAYERS[1:])}, which do nothing at inference)")
        first = len(self.ops)
        handler(layer)
        self._check_finite(layer, self.ops[first:])

    def _check_finite(self, layer, ops):
        """Refuse NaN or infinite constants (weights, biases, statistics, slopes) of ``layer``."""
        for op in ops:
            for f in dataclasses.fields(op):
                value = getattr(op, f.name)
                if isinstance(value, float):
                    value = np.array([value])
                if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
                    continue
                bad = int(np.count_nonzero(~np.isfinite(value)))
                if bad:
                    raise self.error(layer, f"has {bad} NaN or infinite value(s) in its {f.name} "
                                            f"({value.size} values); the model is damaged or training diverged: "
                                            f"retrain it or fix its weights")

    def _layer_Dense(self, layer):
        shape = self.prev.shape
        if len(shape) != 1:
            raise self.error(layer, f"reads a tensor of shape {_shape_text(shape)}; only 1-D inputs are "
                                    f"supported. Add a Flatten layer before it.")
        kernel = self.array(layer.kernel)
        n_in, n_out = kernel.shape
        bias = self.array(layer.bias) if layer.bias is not None else np.zeros(n_out, np.float64)
        act = self.activation_name(layer.activation)
        name = layer.name
        if act == "softmax":
            dense = self.add(Dense, name, (n_out,), name, weight=kernel, bias=bias, activation="linear",
                             result_key="logits")
            self.add(Softmax, f"{dense.name}_softmax", (n_out,), name, generated=True)
            return
        function, alpha = self._elementwise(layer, act)
        self.add(Dense, name, (n_out,), name, weight=kernel, bias=bias, activation=function, alpha=alpha)

    def _elementwise(self, layer, act):
        if act == "linear" or act == "relu":
            return act, 0.0
        if act == "leaky_relu":
            return act, self.leaky_default()
        shown = act or getattr(layer.activation, "__name__", repr(layer.activation))
        raise self.error(layer, f"has activation {shown!r}, which is not supported; supported "
                                f"activations: {', '.join(SUPPORTED_ACTIVATIONS)}")

    def _layer_Activation(self, layer):
        act = self.activation_name(layer.activation)
        if act == "softmax":
            self.add(Softmax, layer.name, self.prev.shape, layer.name)
            return
        if act == "relu6":
            from ..ops.clip import Clip
            self.add(Clip, layer.name, self.prev.shape, layer.name, lo=0.0, hi=6.0)
            return
        function, alpha = self._elementwise(layer, act)
        self.add(Activation, layer.name, self.prev.shape, layer.name, function=function, alpha=alpha)

    def _layer_ReLU(self, layer):
        max_value = getattr(layer, "max_value", None)
        threshold = float(getattr(layer, "threshold", 0.0) or 0.0)
        slope = float(getattr(layer, "negative_slope", 0.0) or 0.0)
        if max_value is not None and threshold == 0.0 and slope == 0.0:  # ReLU6 and the like: a clip
            from ..ops.clip import Clip
            self.add(Clip, layer.name, self.prev.shape, layer.name, lo=0.0, hi=float(max_value))
            return
        if max_value is not None:
            raise self.error(layer, f"sets max_value={float(max_value):g} with a negative slope or threshold, which "
                                    f"is not supported; only ReLU(), ReLU(max_value=m) and ReLU(negative_slope=a) are")
        if threshold != 0.0:
            raise self.error(layer, f"sets threshold={threshold:g}, which is not supported; "
                                    f"only ReLU() / ReLU(negative_slope=a) are")
        if slope != 0.0:
            self.add(Activation, layer.name, self.prev.shape, layer.name, function="leaky_relu", alpha=slope)
        else:
            self.add(Activation, layer.name, self.prev.shape, layer.name, function="relu")

    def _layer_LeakyReLU(self, layer):
        slope = getattr(layer, "negative_slope", None)
        if slope is None:
            slope = getattr(layer, "alpha")
        self.add(Activation, layer.name, self.prev.shape, layer.name, function="leaky_relu", alpha=float(slope))

    def _last_axis(self, layer, axis):
        rank = len(self.prev.shape) + 1  # with the batch dimension
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                return False
            axis = axis[0]
        return int(axis) in (-1, rank - 1)

    def _layer_Softmax(self, layer):
        if not self._last_axis(layer, layer.axis):
            raise self.error(layer, f"uses axis={layer.axis!r}; only the last axis (axis=-1) is supported")
        self.add(Softmax, layer.name, self.prev.shape, layer.name)

    def _layer_BatchNormalization(self, layer):
        if not self._last_axis(layer, layer.axis):
            raise self.error(layer, f"normalizes axis={layer.axis!r}; only the last axis (axis=-1) is supported")
        n = self.prev.shape[-1]
        gamma = self.array(layer.gamma) if getattr(layer, "gamma", None) is not None else np.ones(n)
        beta = self.array(layer.beta) if getattr(layer, "beta", None) is not None else np.zeros(n)
        variance, epsilon = self.array(layer.moving_variance), float(layer.epsilon)
        negative = np.flatnonzero(variance < 0)
        if negative.size:
            raise self.error(layer, f"has a negative moving_variance in {negative.size} channel(s) (channel "
                                    f"{int(negative[0])}: {variance[negative[0]]:g}); a variance cannot be negative: "
                                    f"the saved statistics are damaged, retrain or fix them")
        if np.any(variance + epsilon <= 0):
            raise self.error(layer, f"divides by zero: moving_variance + epsilon is 0 in channel "
                                    f"{int(np.flatnonzero(variance + epsilon <= 0)[0])}; give it epsilon > 0")
        self.add(BatchNorm, layer.name, self.prev.shape, layer.name, gamma=gamma, beta=beta,
                 mean=self.array(layer.moving_mean), variance=variance, epsilon=epsilon)

    # -- images ---------------------------------------------------------------------------------
    def _image_checks(self, layer, rank):
        """The input view ``(H, W, C)`` of a ``rank``-D (1 or 2) image layer, after checking the
        arguments nnhdl does not support."""
        fmt = getattr(layer, "data_format", "channels_last")
        if fmt not in (None, "channels_last"):
            raise self.error(layer, f"uses data_format={fmt!r}; only 'channels_last' is supported. "
                                    f"Retrain or rebuild the model with channels_last.")
        dil = tuple(int(d) for d in np.atleast_1d(getattr(layer, "dilation_rate", 1)))
        if any(int(d) != 1 for d in dil):
            raise self.error(layer, f"uses dilation_rate={dil if len(dil) > 1 else dil[0]}; only 1 is supported")
        groups = int(getattr(layer, "groups", 1) or 1)
        if groups != 1:
            raise self.error(layer, f"uses groups={groups}; only groups=1 is supported")
        shape = self.prev.shape
        if len(shape) != rank + 1:
            raise self.error(layer, f"reads a tensor of shape {_shape_text(shape)}; a {rank}-D layer needs "
                                    f"{'(length, channels)' if rank == 1 else '(height, width, channels)'}")
        return spatial(shape)

    def _geometry(self, layer, rank, in_shape, kernel, strides, padding):
        """(kernel, strides, padding (t, b, l, r)) in 2-D form, and the output spatial size."""
        kernel = tuple(int(k) for k in np.atleast_1d(kernel))
        strides = tuple(int(s) for s in np.atleast_1d(strides if strides is not None else kernel))
        if rank == 1:
            kernel, strides = (1,) + kernel, (1,) + strides
        h, w, _ = in_shape
        padding = str(padding).lower()
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            pads = []
            for n, k, s in ((h, kernel[0], strides[0]), (w, kernel[1], strides[1])):
                total = max((-(-n // s) - 1) * s + k - n, 0)
                pads += [total // 2, total - total // 2]
            pads = tuple(pads)
        elif padding == "causal" and rank == 1:
            pads = (0, 0, kernel[1] - 1, 0)
        else:
            raise self.error(layer, f"uses padding={padding!r}; supported: 'valid', 'same'"
                                    + (", 'causal'" if rank == 1 else ""))
        oh = window_count(h, kernel[0], strides[0], pads[0], pads[1])
        ow = window_count(w, kernel[1], strides[1], pads[2], pads[3])
        if oh < 1 or ow < 1:
            raise self.error(layer, f"has a {'x'.join(map(str, kernel[2 - rank:]))} window larger than its "
                                    f"input {_shape_text(self.prev.shape)}")
        return kernel, strides, pads, (oh, ow)

    def _out_shape(self, rank, oh, ow, c):
        return (ow, c) if rank == 1 else (oh, ow, c)

    def _conv(self, layer, rank):
        in_shape = self._image_checks(layer, rank)
        kernel = self.array(layer.kernel)
        ksize, strides, pads, (oh, ow) = self._geometry(layer, rank, in_shape, layer.kernel_size, layer.strides,
                                                        layer.padding)
        cout = kernel.shape[-1]
        bias = self.array(layer.bias) if getattr(layer, "bias", None) is not None else np.zeros(cout)
        function, alpha = self._elementwise(layer, self.activation_name(layer.activation))
        self.add(Conv, layer.name, self._out_shape(rank, oh, ow, cout), layer.name,
                 weight=kernel.reshape(-1, cout), bias=bias, activation=function, alpha=alpha,
                 in_shape=in_shape, kernel=ksize, strides=strides, padding=pads)

    def _layer_Conv1D(self, layer):
        self._conv(layer, 1)

    def _layer_Conv2D(self, layer):
        self._conv(layer, 2)

    def _depthwise(self, layer, name, kernel, bias, function, alpha, generated=False, origin=None):
        in_shape = self._image_checks(layer, 2)
        ksize, strides, pads, (oh, ow) = self._geometry(layer, 2, in_shape, layer.kernel_size, layer.strides,
                                                        layer.padding)
        kh, kw, cin, mult = kernel.shape
        weight = np.zeros((kh, kw, cin, cin * mult))
        for c in range(cin):
            weight[:, :, c, c * mult:(c + 1) * mult] = kernel[:, :, c, :]
        return self.add(Conv, name, (oh, ow, cin * mult), origin or name, generated=generated,
                        weight=weight.reshape(-1, cin * mult), bias=bias, activation=function, alpha=alpha,
                        in_shape=in_shape, kernel=ksize, strides=strides, padding=pads, depthwise=True)

    def _layer_DepthwiseConv2D(self, layer):
        kernel = self.array(getattr(layer, "depthwise_kernel", None) if getattr(layer, "kernel", None) is None
                            else layer.kernel)
        n = kernel.shape[2] * kernel.shape[3]
        bias = self.array(layer.bias) if getattr(layer, "bias", None) is not None else np.zeros(n)
        function, alpha = self._elementwise(layer, self.activation_name(layer.activation))
        self._depthwise(layer, layer.name, kernel, bias, function, alpha)

    def _layer_SeparableConv2D(self, layer):
        dw = self.array(layer.depthwise_kernel)
        pw = self.array(layer.pointwise_kernel)
        function, alpha = self._elementwise(layer, self.activation_name(layer.activation))
        cout = pw.shape[-1]
        bias = self.array(layer.bias) if getattr(layer, "bias", None) is not None else np.zeros(cout)
        name = f"{layer.name}_depthwise"
        first = self._depthwise(layer, name, dw, np.zeros(dw.shape[2] * dw.shape[3]), "linear", 0.0, generated=True)
        first = self.ops[-1] = first.replace(origin=first.name)
        oh, ow, c = first.shape
        self.add(Conv, layer.name, (oh, ow, cout), layer.name, weight=pw.reshape(-1, cout), bias=bias,
                 activation=function, alpha=alpha, in_shape=(oh, ow, c), kernel=(1, 1), strides=(1, 1),
                 padding=(0, 0, 0, 0))

    def _pool(self, layer, rank, kind):
        in_shape = self._image_checks(layer, rank)
        ksize, strides, pads, (oh, ow) = self._geometry(layer, rank, in_shape, layer.pool_size, layer.strides,
                                                        layer.padding)
        self.add(Pool, layer.name, self._out_shape(rank, oh, ow, in_shape[2]), layer.name, kind=kind,
                 in_shape=in_shape, pool=ksize, strides=strides, padding=pads)

    def _layer_MaxPooling1D(self, layer):
        self._pool(layer, 1, "max")

    def _layer_MaxPooling2D(self, layer):
        self._pool(layer, 2, "max")

    def _layer_AveragePooling1D(self, layer):
        self._pool(layer, 1, "avg")

    def _layer_AveragePooling2D(self, layer):
        self._pool(layer, 2, "avg")

    def _global(self, layer, rank, kind):
        in_shape = self._image_checks(layer, rank)
        if getattr(layer, "keepdims", False):
            raise self.error(layer, "uses keepdims=True; only keepdims=False is supported")
        h, w, c = in_shape
        self.add(Pool, layer.name, (c,), layer.name, kind=kind, in_shape=in_shape, pool=(h, w), strides=(h, w),
                 padding=(0, 0, 0, 0))

    def _layer_GlobalMaxPooling1D(self, layer):
        self._global(layer, 1, "max")

    def _layer_GlobalMaxPooling2D(self, layer):
        self._global(layer, 2, "max")

    def _layer_GlobalAveragePooling1D(self, layer):
        self._global(layer, 1, "avg")

    def _layer_GlobalAveragePooling2D(self, layer):
        self._global(layer, 2, "avg")

    def _zero_padding(self, layer, rank):
        in_shape = self._image_checks(layer, rank)
        p = layer.padding
        if rank == 1:
            (l, r) = (p, p) if isinstance(p, int) else tuple(p)
            pads = (0, 0, int(l), int(r))
        else:
            (t, b), (l, r) = [(v, v) if isinstance(v, int) else tuple(v) for v in p]
            pads = (int(t), int(b), int(l), int(r))
        h, w, c = in_shape
        oh, ow = h + pads[0] + pads[1], w + pads[2] + pads[3]
        self.add(Pad, layer.name, self._out_shape(rank, oh, ow, c), layer.name, in_shape=in_shape, padding=pads)

    def _layer_ZeroPadding1D(self, layer):
        self._zero_padding(layer, 1)

    def _layer_ZeroPadding2D(self, layer):
        self._zero_padding(layer, 2)

    def _layer_Reshape(self, layer):
        target = [int(d) for d in layer.target_shape]
        size = math.prod(self.prev.shape)
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            target[target.index(-1)] = size // known
        if math.prod(target) != size:
            raise self.error(layer, f"reshapes {size} values to {_shape_text(target)}")
        self.add(Reshape, layer.name, tuple(target), layer.name)

    def _noop(self, layer):
        self.add(Dropout, layer.name, self.prev.shape, layer.name)

    def _layer_Flatten(self, layer):
        self.add(Flatten, layer.name, (math.prod(self.prev.shape),), layer.name)


def _shape_text(dims):
    return "(" + ", ".join("None" if d is None else str(d) for d in dims) + (",)" if len(dims) == 1 else ")")


def _leaky_relu_default(keras):
    """Keras' default negative slope of ``keras.activations.leaky_relu`` (0.2 in Keras 3)."""
    try:
        param = inspect.signature(keras.activations.leaky_relu).parameters["negative_slope"]
        if isinstance(param.default, (int, float)):
            return float(param.default)
    except (KeyError, TypeError, ValueError):  # pragma: no cover - other Keras versions
        pass
    return 0.2  # pragma: no cover
