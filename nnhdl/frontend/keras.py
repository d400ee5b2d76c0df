"""Keras frontend: a trained Keras 3 model (``.keras`` / ``.h5`` file or ``keras.Model``) to a
float :class:`nnhdl.ir.Graph`.

TensorFlow/Keras are imported only inside the functions here, so ``import nnhdl`` and
``import nnhdl.frontend.keras`` stay fast and work without them installed.

The model must be a single chain of layers (a ``Sequential`` model, or a functional model whose
layers each read the previous one). Supported layers and what they become:

================================  ===========================================================
Keras layer                       IR op(s)
================================  ===========================================================
``InputLayer``                    :class:`~nnhdl.ir.Input`
``Dense``                         :class:`~nnhdl.ir.Dense` (activation linear, relu,
                                  leaky_relu fused; ``softmax`` becomes a linear Dense with
                                  ``result_key="logits"`` followed by a Softmax op named
                                  ``<layer>_softmax`` whose origin is the Dense layer)
``Activation``                    :class:`~nnhdl.ir.Activation` or :class:`~nnhdl.ir.Softmax`
``ReLU``, ``LeakyReLU``           :class:`~nnhdl.ir.Activation`
``Softmax``                       :class:`~nnhdl.ir.Softmax` (last axis only)
``BatchNormalization``            :class:`~nnhdl.ir.BatchNorm` (last axis only; folded into the
                                  layer before or after it, or made a per-channel scale and
                                  shift by :func:`nnhdl.passes.fold_batchnorm`)
``Dropout`` and the other layers  :class:`~nnhdl.ir.Dropout` (identity at inference)
that are the identity at
inference (:data:`NOOP_LAYERS`)
``Flatten``                       :class:`~nnhdl.ir.Flatten`
``Reshape``                       :class:`~nnhdl.ir.Reshape`
``Conv1D``, ``Conv2D``            :class:`~nnhdl.ir.Conv` (padding ``valid``, ``same``, and
                                  ``causal`` for Conv1D; any strides; activation fused)
``DepthwiseConv2D``               :class:`~nnhdl.ir.Conv` with a block-diagonal weight
``SeparableConv2D``               a depthwise :class:`~nnhdl.ir.Conv` named
                                  ``<layer>_depthwise`` (its own config entry), then the 1x1
                                  pointwise :class:`~nnhdl.ir.Conv` named ``<layer>``
``MaxPooling1D/2D``,              :class:`~nnhdl.ir.Pool` (``same`` padding is excluded from
``AveragePooling1D/2D``           the windows, as in Keras)
``GlobalMaxPooling1D/2D``,        :class:`~nnhdl.ir.Pool` over the whole image (not
``GlobalAveragePooling1D/2D``     ``keepdims``)
``ZeroPadding1D/2D``              :class:`~nnhdl.ir.Pad`
================================  ===========================================================

Weights, biases, slopes and BatchNormalization statistics must be finite, and moving variances
non-negative: anything else stops with an error naming the layer.

Convolutions and pooling need ``data_format="channels_last"`` and a dilation rate of 1 (and
``groups=1``); anything else stops with an error naming the layer and the argument.

Every op's ``origin`` is the Keras layer name, which is also the name used in
``[layer.NAME]`` tables of the precision configuration.

The input op is named after the Keras ``InputLayer``, except that names Keras generates by
itself (``input``, ``input_<n>``, ``input_layer``, ``input_layer_<n>``; the number depends on
how many models the Python session built before) all become ``"input"`` (unless another layer
is called ``input``: then the Keras name is kept). A ``Sequential``
model built without an explicit ``keras.Input`` therefore has an input op ``"input"``, and its
input format is configured with ``[layer.input]``.

The ``leaky_relu`` activation given by name (``activation="leaky_relu"``) has Keras' default
negative slope of :func:`keras.activations.leaky_relu` (0.2 in Keras 3, read from its
signature); the ``LeakyReLU`` layer's own default is 0.3 and is read from the layer.
"""

import contextlib
import dataclasses
import inspect
import math
import os
import sys
import re
from pathlib import Path

import numpy as np

from ..ir import (Activation, BatchNorm, Conv, Dense, Dropout, Flatten, Graph, Input, Pad, Pool, Reshape, Softmax,
                  spatial, window_count)

__all__ = ["load", "keras_predict", "FrontendError", "SUPPORTED_LAYERS", "NOOP_LAYERS",
           "SUPPORTED_ACTIVATIONS", "SUFFIXES"]

#: File name suffixes :func:`load` reads.
SUFFIXES = (".keras", ".h5", ".hdf5")

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


def _brief(error, limit=300):
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return f"{type(error).__name__}: {text}"


def _read_model(path):
    """``keras.models.load_model`` with clear errors for a missing / wrong / unreadable file."""
    path = Path(path)
    if not path.exists():
        raise FrontendError(f"{path}: no such file")
    if path.suffix.lower() not in SUFFIXES:
        raise FrontendError(f"{path}: expected a Keras model file ending in .keras or .h5 "
                            f"(save it with model.save('model.keras')), not {path.suffix or 'no suffix'!r}")
    if not path.is_file():
        raise FrontendError(f"{path}: is a directory, not a .keras or .h5 file")
    _check_container(path)
    from .hgq import check_file_not_qkeras, import_hgq
    hgq_model = check_file_not_qkeras(path)
    keras = _import_keras()
    if hgq_model:
        import_hgq(path)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many kinds (OSError, ValueError, BadZipFile, TypeError...)
        detail = _brief(e)
        if "File not found" in detail:  # Keras' words for any .keras it cannot open; the file exists
            detail = "not a readable .keras zip archive"
        raise FrontendError(f"{path}: could not be read as a Keras model ({detail}); it is damaged or was saved "
                            "by another program: save the model again with model.save(...)") from e


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _check_container(path):
    """Refuse a file that cannot be a Keras model before Keras sees it (Keras reports a corrupt
    ``.keras`` as "File not found"): a ``.keras`` file is a zip archive holding ``config.json``,
    an ``.h5`` file starts with the HDF5 signature (at offset 0, 512, 1024, ...)."""
    import zipfile
    again = "it is damaged or not a Keras model; save the model again with model.save(...)"
    try:
        if path.suffix.lower() == ".keras":
            if not zipfile.is_zipfile(path):
                raise FrontendError(f"{path}: not a .keras file (a .keras file is a zip archive; this one is not): "
                                    f"{again}")
            try:
                with zipfile.ZipFile(path) as archive:
                    names = archive.namelist()
            except (zipfile.BadZipFile, EOFError) as e:
                raise FrontendError(f"{path}: a damaged zip archive ({e}): {again}") from None
            if "config.json" not in names:
                raise FrontendError(f"{path}: a zip archive without the config.json of a .keras model: {again}")
        else:
            size = path.stat().st_size
            with open(path, "rb") as f:
                offsets = [0] + [512 << k for k in range(20) if (512 << k) + 8 <= size]
                found = False
                for offset in offsets:
                    f.seek(offset)
                    if f.read(8) == _HDF5_SIGNATURE:
                        found = True
                        break
            if not found:
                raise FrontendError(f"{path}: not an HDF5 file (no HDF5 signature): {again}")
    except OSError as e:
        raise FrontendError(f"{path}: cannot be read ({e.strerror or e}); check its permissions") from None


_VERILOG_KEYWORDS = frozenset("""
    always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
    default defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule
    endprimitive endspecify endtable endtask event for force forever fork function generate genvar
    highz0 highz1 if ifnone incdir include initial inout input instance integer join large liblist
    library localparam macromodule medium module nand negedge nmos nor noshowcancelled not notif0
    notif1 or output parameter pmos posedge primitive pull0 pull1 pulldown pullup pulsestyle_onevent
    pulsestyle_ondetect rcmos real realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1
    scalared showcancelled signed small specify specparam strong0 strong1 supply0 supply1 table task
    time tran tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand
    weak0 weak1 while wire wor xnor xor logic bit byte int shortint longint
""".split())


def _sanitize(name):
    """A Verilog identifier ``[A-Za-z_][A-Za-z0-9_]*`` (not a keyword) from a model name:
    runs of other characters become ``_``, a leading digit gets ``n_`` in front."""
    name = str(name)
    ident = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    if not ident:
        return "network"
    if name.startswith("_"):
        ident = "_" + ident
    if ident[0].isdigit():
        ident = "n_" + ident
    if ident in _VERILOG_KEYWORDS:
        ident += "_net"
    return ident


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


def _chain_error(builder, detail):
    prefix = f"{builder.source}: " if builder.source else ""
    return FrontendError(f"{prefix}{detail}; only sequential chains of layers (each layer reading the "
                         f"previous one, one input and one output) are supported for now")


def _walk(keras, model, builder):
    """Add the model's input and layers to ``builder``, checking the model is one chain."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as e:
        prefix = f"{builder.source}: " if builder.source else ""
        raise FrontendError(f"{prefix}model {model.name!r} has no defined input ({_brief(e)}); build it with "
                            f"a keras.Input(shape=...) first layer or model.build((None, n))") from None
    if len(inputs) != 1 or len(outputs) != 1:
        raise _chain_error(builder, f"model {model.name!r} has {len(inputs)} inputs and {len(outputs)} outputs")
    in_shape = tuple(inputs[0].shape)[1:]

    if isinstance(model, keras.Sequential):
        # Sequential.layers omits the InputLayer; the model config names it (Keras always
        # creates one when the model is built).
        first = model.get_config()["layers"][0]
        in_name = first["config"].get("name", INPUT_NAME) if first.get("class_name") == "InputLayer" else INPUT_NAME
        builder.input(in_name, in_shape)
        for layer in model.layers:
            builder.layer(layer)
        return

    layers = list(model.layers)
    if not layers or type(layers[0]).__name__ != "InputLayer":
        raise _chain_error(builder, f"model {model.name!r} does not start with its InputLayer")
    builder.input(layers[0].name, in_shape, layers[0])
    for prev, layer in zip(layers, layers[1:]):
        try:
            reads_prev = layer.input is prev.output
        except (AttributeError, ValueError):
            reads_prev = False
        if not reads_prev:
            raise _chain_error(builder, f"layer {layer.name!r} ({type(layer).__name__}) does not read only "
                                        f"the layer before it, {prev.name!r}")
        builder.layer(layer)
    if outputs[0] is not layers[-1].output:
        raise _chain_error(builder, f"the output of model {model.name!r} is not the output of its last layer "
                                    f"{layers[-1].name!r} (a layer used twice, or unused layers)")


def _model_and_source(model):
    """``(keras.Model, source)``: the path's checks run before TensorFlow is imported."""
    if isinstance(model, (str, os.PathLike)):
        return _read_model(model), str(model)
    keras = _import_keras()
    if isinstance(model, keras.Model):
        return model, ""
    raise FrontendError(f"expected a path to a .keras or .h5 file or a keras.Model, not {type(model).__name__}")


def load(model) -> Graph:
    """A float :class:`~nnhdl.ir.Graph` from a Keras model.

    ``model``: a path (``str`` or :class:`~pathlib.Path`) to a ``.keras`` or ``.h5`` file, or a
    ``keras.Model``. Raises :class:`FrontendError` for a missing or unreadable file, a model that
    is not a single chain, and unsupported layers, activations or arguments.
    """
    kmodel, source = _model_and_source(model)
    keras = _import_keras()
    from .hgq import HgqBuilder, is_hgq_model
    builder = (HgqBuilder if is_hgq_model(kmodel) else _Builder)(keras, source, [layer.name for layer in kmodel.layers])
    _walk(keras, kmodel, builder)
    ops = tuple(builder.ops)
    return Graph(ops=ops, outputs=(ops[-1].name,), name=_sanitize(kmodel.name),
                 meta={"source": source or "<keras.Model>", "framework": f"keras {keras.__version__}"})


def keras_predict(model_or_path, x) -> np.ndarray:
    """The float outputs Keras computes for inputs ``x`` (shape ``(N, *input_shape)``), for
    comparing with the fixed-point reference."""
    model, _ = _model_and_source(model_or_path)
    x = np.asarray(x, dtype=np.float32)
    return np.asarray(model.predict(x, verbose=0, batch_size=max(1, min(len(x), 4096))))
