"""HGQ2 frontend: quantization-aware Keras 3 models (packages ``hgq2`` and ``quantizers``) to a
*quantized* :class:`nnhdl.ir.Graph` whose formats all come from the model (no precision config).

Used by :func:`nnhdl.frontend.keras.load` (which imports this module; this module imports only
:mod:`nnhdl.frontend.common`, never :mod:`nnhdl.frontend.keras`) when a model contains HGQ2 layers. TensorFlow, Keras
and HGQ2 are imported only inside functions.

Semantics reproduced (hgq2 0.2.0, quantizers 1.2.2):

- A fixed-point quantizer (``hgq/quantizer/internal/fixed_point_quantizer.py``, KIF and KBI
  parametrisations) has per-element ``k`` (keep negative, 0/1), ``i`` (integer bits without
  the sign) and ``f`` (fractional bits), rounded to integers (``round_conv`` of the stored
  variables; KBI: ``f = b - i``). At inference it rounds ``x * 2**f`` with its round mode
  (``quantizers/fixed_point/_fixed_point_ops.py``: TRN floor, RND floor(x + 1/2), RND_CONV
  ties to even, TRN_ZERO, RND_ZERO, RND_INF, RND_MIN_INF; stochastic ``S_`` modes round
  deterministically at inference) and applies its overflow mode: WRAP to ``k + i + f`` bits,
  SAT clips to ``[-k * 2**i, 2**i - 2**-f]``, SAT_SYM to ``[-k * (2**i - 2**-f), 2**i - 2**-f]``
  (clipping before rounding, as HGQ2 does, equals clipping after: the bounds are on the grid);
  an element with ``k + i + f <= 0`` bits is 0. That is exactly nnhdl's
  ``fixed<k+i+f, k+i, mode, overflow>`` (``ufixed`` when ``k = 0``): :func:`element_format`.
- Layers (``hgq/layers``): ``QDense``, ``QBatchNormDense`` (batch norm fused into the
  quantized kernel and bias), ``QConv1D``/``QConv2D`` quantize their input with their input
  quantizer ``iq`` (per element, heterogeneous), multiply by the quantized kernel, add the
  quantized bias in float32, apply the Keras activation (relu and linear are exact), and
  quantize the output with ``oq`` when enabled. ``QBatchNormalization`` (last axis) quantizes
  its input with ``iq`` and computes ``x * kq(scale) + bq(offset)`` per channel in float32 (a
  diagonal Dense, or a depthwise 1x1 convolution for images). ``QMaxPooling1D/2D`` and
  ``QGlobalMaxPooling1D/2D`` (``hgq/layers/pooling.py``) quantize their input with ``iq`` and
  take Keras' max (exact: it selects one of the quantized values; the output keeps the union
  format of its input). A standalone ``Quantizer`` layer quantizes.
  Every quantizer becomes a :class:`~nnhdl.ir.Requantize` op; the quantized weights and
  biases, exact multiples of their own LSBs, become integers in one union format per layer
  (0-bit weights are zeros and cost no hardware); the Dense/Conv accumulator and output are
  exact.

HGQ2's forward pass is float32: it is exact (and equals nnhdl bit for bit) while accumulators
need at most 24 significant bits; wider layers get a warning. Network inputs are quantized to
the first quantizer's grid with one extra fraction bit, truncating: exact for the RND and TRN
modes for any float32 input, and for every mode for inputs on the grid.
"""

import json
import warnings
import zipfile

import numpy as np

from ..arith import exact_accumulator
from ..fixed import FixedFormat, Overflow, Rounding
from ..ir import Conv, Dense, Dropout, Flatten, Input, Pad, Reshape, Requantize, spatial
from ..per_element import union_format
from .common import FrontendError, _Builder, _quiet_native_stderr

__all__ = ["is_hgq_model", "HgqBuilder", "weight_bit_histogram", "element_format", "exact_integers", "check_not_qkeras",
           "HGQ_LAYERS", "PLAIN_LAYERS", "QKERAS_NAMES", "HgqWarning", "check_file_not_qkeras", "import_hgq"]

#: HGQ2 layers nnhdl converts exactly.
HGQ_LAYERS = ("QDense", "QBatchNormDense", "QConv1D", "QConv2D", "QBatchNormalization", "QMaxPooling1D",
              "QMaxPooling2D", "QGlobalMaxPooling1D", "QGlobalMaxPooling2D", "Quantizer")
#: Plain Keras layers allowed between them (no arithmetic, or exact on fixed-point values).
PLAIN_LAYERS = ("InputLayer", "Flatten", "Reshape", "Dropout", "ReLU", "Activation", "MaxPooling1D",
                "MaxPooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D")
#: Class names that mark a QKeras model (Keras 2 only).
QKERAS_NAMES = ("QDense", "QConv1D", "QConv2D", "QActivation", "QBatchNormalization", "QDepthwiseConv2D",
                "QSeparableConv2D", "QConv2DBatchnorm", "QDenseBatchnorm", "QAveragePooling2D", "quantized_bits",
                "quantized_relu", "quantized_po2", "quantized_relu_po2", "binary", "ternary", "bernoulli",
                "stochastic_binary", "stochastic_ternary", "quantized_tanh", "quantized_sigmoid")
_ROUNDINGS = {m.value for m in Rounding}
_OVERFLOWS = {"WRAP": Overflow.WRAP, "SAT": Overflow.SAT, "SAT_SYM": Overflow.SAT_SYM}
#: float32 has a 24-bit significand: HGQ2's forward pass is exact below this many bits.
FLOAT32_EXACT_BITS = 24


class HgqWarning(UserWarning):
    """HGQ2's own float32 forward pass may not be exact for this model (nnhdl's is)."""


def is_hgq_model(model):
    """Whether a Keras model contains HGQ2 layers."""
    return any(type(layer).__module__.startswith("hgq.") for layer in model.layers)


def element_format(k, i, f, rounding, overflow):
    """The nnhdl format of one HGQ2 fixed-point element ``(k, i, f)``; ``None`` for 0 bits."""
    k, i, f = int(k), int(i), int(f)
    if k + i + f <= 0:
        return None
    return FixedFormat(k + i + f, k + i, bool(k), rounding, overflow)


def exact_integers(values):
    """``(raw, frac)``: integers ``raw`` with ``values == raw * 2**-frac`` exactly, ``frac`` the
    smallest such (floats are dyadic rationals, so one always exists)."""
    v = np.asarray(values, dtype=np.float64)
    nz = v[v != 0]
    if nz.size == 0:
        return np.zeros(v.shape, np.int64), 0
    _, exps = np.frexp(nz)  # nz = m * 2**e, m in [0.5, 1) with at most 53 bits
    frac = -int(exps.max())
    while not np.all(np.floor(np.ldexp(nz, frac)) == np.ldexp(nz, frac)):
        frac += 1
    return np.ldexp(v, frac).astype(np.int64) if frac < 1100 else None, frac


def check_not_qkeras(config, source):
    """Refuse a model whose config names QKeras classes (Keras 2 only), before Keras reads it."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            name, module = node.get("class_name"), str(node.get("module") or "")
            registered = str(node.get("registered_name") or "")
            if name in QKERAS_NAMES and not module.startswith("hgq") and not registered.startswith("hgq"):
                found.append(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and node.split("(", 1)[0] in QKERAS_NAMES and "(" in node:
            found.append(node.split("(", 1)[0])  # QKeras quantizers serialized as "quantized_bits(8,0)"

    walk(config)
    if found:
        names = ", ".join(sorted(set(found)))
        raise FrontendError(f"{source}: a QKeras model ({names}); QKeras needs Keras 2 and cannot be read with "
                            f"Keras 3: re-train with HGQ2 (pip install hgq2) or export the float model plus a "
                            f"precision config (nnhdl config MODEL)")


def check_file_not_qkeras(path):
    """:func:`check_not_qkeras` on a ``.keras`` file's ``config.json`` (other files: nothing).
    Returns whether the config names HGQ2 layers (then :func:`import_hgq` before Keras reads it)."""
    if not str(path).lower().endswith(".keras"):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read("config.json").decode("utf-8", "replace")
        config = json.loads(text)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False  # Keras reports it
    check_not_qkeras(config, str(path))
    return '"hgq' in text


def import_hgq(path):
    """Import HGQ2 (it registers its layers with Keras), quietly; a clear error without it."""
    try:
        with _quiet_native_stderr():
            import hgq  # noqa: F401
    except ImportError:
        raise FrontendError(f"{path}: an HGQ2 model; reading it needs HGQ2: pip install 'nnhdl[hgq]' "
                            f"(or pip install hgq2)") from None


class HgqBuilder(_Builder):
    """A :class:`~nnhdl.frontend.common._Builder` for HGQ2 models: every op gets its exact format."""

    # -- formats ------------------------------------------------------------------------------
    def add(self, cls, name, shape, origin, generated=False, **fields):
        if cls in (Flatten, Reshape, Dropout, Pad) and "fmt" not in fields and self.ops:
            fields["fmt"] = self.prev.fmt
        return super().add(cls, name, shape, origin, generated, **fields)

    def source_fmt(self, layer):
        fmt = self.prev.fmt
        if fmt is None:
            raise self.error(layer, "reads the network input before any HGQ2 quantizer: nnhdl takes the input "
                                    "format from the first layer's input quantizer; enable it (enable_iq=True) "
                                    "or put a hgq Quantizer layer first")
        return fmt

    def quantizer_formats(self, layer, quantizer, shape):
        """Per-element formats (row-major over ``shape``) of an HGQ2 ``Quantizer``."""
        inner = getattr(quantizer, "quantizer", None)
        kind = type(inner).__name__
        if kind not in ("FixedPointQuantizerKIF", "FixedPointQuantizerKBI"):
            raise self.error(layer, f"uses a {kind} quantizer ({quantizer.name}); only fixed-point quantizers "
                                    f"(q_type 'kif' or 'kbi') are supported: re-train with QuantizerConfig('kif')")
        if quantizer.scaler is not None or quantizer.affine is not None:
            raise self.error(layer, f"quantizer {quantizer.name} has a scaler or affine transform; not supported: "
                                    f"re-train without them")
        rounding = inner.round_mode[2:] if inner.round_mode.startswith("S_") else inner.round_mode
        overflow = inner.overflow_mode
        if rounding not in _ROUNDINGS or overflow not in _OVERFLOWS:
            raise self.error(layer, f"quantizer {quantizer.name} uses round mode {inner.round_mode} and overflow "
                                    f"mode {overflow}; supported: {', '.join(sorted(_ROUNDINGS))} with "
                                    f"{', '.join(_OVERFLOWS)} (re-train with one of them)")
        full = (1,) + tuple(shape)
        k, i, f = (np.broadcast_to(np.asarray(self.keras.ops.convert_to_numpy(v), np.float64), full)[0].ravel()
                   for v in inner.kif)
        return tuple(element_format(a, b, c, Rounding(rounding), _OVERFLOWS[overflow]) for a, b, c in zip(k, i, f))

    def add_quantizer(self, layer, quantizer, name):
        formats = self.quantizer_formats(layer, quantizer, self.prev.shape)
        fmt = union_format(formats)
        if self.prev.fmt is None:
            self._set_input_format(layer, formats)
        self.add(Requantize, name, self.prev.shape, layer.name, generated=True, fmt=fmt, formats=formats)

    def _set_input_format(self, layer, formats):
        """The input format from the first quantizer: its grid with one more fraction bit (TRN), and
        its overflow family (see the module docstring)."""
        u = union_format(formats)
        real = [f for f in formats if f is not None]
        overflow = Overflow.WRAP if not real or real[0].overflow is Overflow.WRAP else Overflow.SAT
        fmt = FixedFormat(u.width + 1, u.int_bits, u.signed, Rounding.TRN, overflow)
        for n, op in enumerate(self.ops):
            if op.fmt is not None or not isinstance(op, (Input, Flatten, Reshape, Dropout)):
                raise self.error(layer, "is not the first layer to compute: the layers before it need an input "
                                        "format; give the first HGQ2 layer an input quantizer")
            self.ops[n] = op.replace(fmt=fmt)

    # -- layers -------------------------------------------------------------------------------
    def layer(self, layer):
        cls = type(layer).__name__
        hgq = type(layer).__module__.startswith("hgq.")
        if hgq and cls not in HGQ_LAYERS:
            raise self.error(layer, f"is an HGQ2 layer nnhdl does not convert yet; supported HGQ2 layers: "
                                    f"{', '.join(HGQ_LAYERS)}: rebuild the model with those (and plain "
                                    f"{', '.join(PLAIN_LAYERS[1:])} between them) and retrain it")
        if not hgq and cls not in PLAIN_LAYERS and not cls.endswith("Dropout"):
            raise self.error(layer, f"is a float Keras layer inside an HGQ2 model: HGQ2 computes it in float32, "
                                    f"not in fixed point; use its HGQ2 version (supported: {', '.join(HGQ_LAYERS)}) "
                                    f"or one of {', '.join(PLAIN_LAYERS)}")
        if hgq and getattr(layer, "enable_iq", False) and cls != "Quantizer":
            self.add_quantizer(layer, layer.iq, f"{layer.name}_iq")
        super().layer(layer)
        if hgq and getattr(layer, "enable_oq", False):
            self.add_quantizer(layer, layer.oq, f"{layer.name}_oq")

    def _layer_Quantizer(self, layer):
        self.add_quantizer(layer, layer, layer.name)

    def _quantized(self, layer, kernel=None, bias=None):
        """The float Dense/Conv op just added, with the layer's quantized kernel and bias (or the
        given ``kernel``, in the op's 2-D ``weight`` layout, and ``bias``) as exact integers and
        exact accumulator and output formats."""
        dense = next(op for op in reversed(self.ops) if isinstance(op, Dense))
        if self.prev is not dense:  # a softmax op was added after it
            raise self.error(layer, "has activation 'softmax', which HGQ2 computes in float32; train it with a "
                                    "linear output (logits) and take the argmax")
        if dense.activation not in ("linear", "relu"):
            raise self.error(layer, f"has activation {dense.activation!r}; in an HGQ2 model only relu and linear "
                                    f"are exact (HGQ2 computes others in float)")
        src = self.source_fmt_of(layer, dense)
        if kernel is None:
            conv = isinstance(dense, Conv)
            kernel = self.array(layer.qkernel)
            kernel = kernel.reshape(-1, kernel.shape[-1]) if conv else kernel
            if conv and dense.depthwise:  # pragma: no cover - no HGQ2 depthwise layer is accepted
                raise self.error(layer, "depthwise convolutions are not supported")
            bias = self.array(layer.qbias) if getattr(layer, "bias", None) is not None else np.zeros(kernel.shape[-1])
        w, wfmt = self._constant(layer, kernel, "kernel")
        b, bfmt = self._constant(layer, bias, "bias")
        accum = exact_accumulator(src, w, wfmt, b, bfmt)
        if accum.width - int(accum.signed) > FLOAT32_EXACT_BITS:
            warnings.warn(f"layer {layer.name!r}: its exact accumulator {accum} is wider than float32's 24-bit "
                          f"significand; HGQ2's own float32 forward pass may round where nnhdl does not",
                          HgqWarning, stacklevel=2)
        out = accum if dense.activation == "linear" else FixedFormat.containing(0, accum.max_int, accum.frac_bits)
        self.ops[-1] = dense.replace(weight=w, bias=b, weight_fmt=wfmt, bias_fmt=bfmt, accum_fmt=accum,
                                     accum_exact=True, alpha=0, fmt=out)

    def source_fmt_of(self, layer, op):
        src = self.op_by_name(op.inputs[0]).fmt
        if src is None:
            self.ops.pop()
            return self.source_fmt(layer)
        return src

    def op_by_name(self, name):
        return next(o for o in self.ops if o.name == name)

    def _constant(self, layer, values, what):
        raw, frac = exact_integers(values)
        if raw is None:
            raise self.error(layer, f"has a quantized {what} too fine for nnhdl")
        fmt = FixedFormat.containing(int(raw.min(initial=0)), int(raw.max(initial=0)), frac)
        if fmt.width > 62:
            raise self.error(layer, f"has a quantized {what} needing {fmt.width} bits (format {fmt}); nnhdl "
                                    f"stores constants in at most 62 bits")
        return raw, fmt

    def _layer_QDense(self, layer):
        self._layer_Dense(layer)
        self._quantized(layer)

    _layer_QBatchNormDense = _layer_QDense

    def _layer_QConv1D(self, layer):
        self._conv(layer, 1)
        self._quantized(layer)

    def _layer_QConv2D(self, layer):
        self._conv(layer, 2)
        self._quantized(layer)

    def _layer_QBatchNormalization(self, layer):
        """``iq(x) * kq(scale) + bq(offset)`` per channel (last axis): the quantized scales on the
        diagonal of a Dense (flat input) or of a depthwise 1x1 convolution (image or signal), as
        :func:`nnhdl.passes.scale_shift` does for a float BatchNormalization."""
        if not self._last_axis(layer, layer.axis):
            raise self.error(layer, f"normalizes axis={layer.axis!r}; only the last axis (axis=-1) is supported")
        scale, offset = (self.array(v).ravel() for v in layer.qscaler_and_qoffset)
        shape = self.prev.shape
        weight = np.diag(scale)
        if len(shape) == 1:
            self.add(Dense, layer.name, shape, layer.name, weight=weight, bias=offset)
        else:
            self.add(Conv, layer.name, shape, layer.name, weight=weight, bias=offset, in_shape=spatial(shape),
                     kernel=(1, 1), strides=(1, 1), padding=(0, 0, 0, 0), depthwise=True)
        self._quantized(layer, weight, offset)

    def _layer_QMaxPooling1D(self, layer):
        self._pool(layer, 1, "max")

    def _layer_QMaxPooling2D(self, layer):
        self._pool(layer, 2, "max")

    def _layer_QGlobalMaxPooling1D(self, layer):
        self._global(layer, 1, "max")

    def _layer_QGlobalMaxPooling2D(self, layer):
        self._global(layer, 2, "max")

    def _exact_elementwise(self, layer):
        op = self.prev
        if op.function not in ("linear", "relu"):
            raise self.error(layer, f"computes {op.function!r}; in an HGQ2 model only relu and linear are exact")
        self.ops[-1] = op.replace(fmt=self.source_fmt_of(layer, op))

    def _layer_Activation(self, layer):
        if self.activation_name(layer.activation) == "softmax":
            raise self.error(layer, "is a float softmax; HGQ2 computes it in float32: remove it (take the argmax "
                                    "of the logits) or use hgq's QSoftmax (not supported yet)")
        super()._layer_Activation(layer)
        self._exact_elementwise(layer)

    def _layer_ReLU(self, layer):
        super()._layer_ReLU(layer)
        self._exact_elementwise(layer)

    def _pool(self, layer, rank, kind):
        super()._pool(layer, rank, kind)
        self.ops[-1] = self.prev.replace(fmt=self.source_fmt_of(layer, self.prev))

    def _global(self, layer, rank, kind):
        super()._global(layer, rank, kind)
        self.ops[-1] = self.prev.replace(fmt=self.source_fmt_of(layer, self.prev))

    def _zero_padding(self, layer, rank):
        super()._zero_padding(layer, rank)
        self.ops[-1] = self.prev.replace(fmt=self.source_fmt_of(layer, self.prev))


def weight_bit_histogram(model):
    """``{bits: count}`` of an HGQ2 model's kernel bit widths (sign excluded; 0 = pruned away)."""
    import numpy as np
    bits = np.concatenate([np.asarray(layer.kq.quantizer.b).ravel() for layer in model.layers
                           if getattr(layer, "kq", None) is not None]).astype(int)
    return {int(b): int(np.count_nonzero(bits == b)) for b in np.unique(bits)}
