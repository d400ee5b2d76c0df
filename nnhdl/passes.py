"""Pure graph passes: each takes a Graph and returns a new one.

:func:`lower` runs them in order: :func:`drop_dropout`, :func:`fold_batchnorm`,
:func:`fuse_activation`, :func:`quantize` (which also infers exact accumulators by interval
arithmetic and resolves ``auto`` formats).

Lossy but legal choices are reported as :class:`PrecisionWarning` (Python's ``warnings``; the
command line prints them): constants (weight, bias, alpha) or calibration values outside their
format, which then wrap or saturate, and all-zero calibration data.
"""

import math
import warnings

import numpy as np

from .arith import dense_plan, exact_accumulator
from .config import AUTO, PrecisionConfig
from .fixed import INT64_SAFE_BITS, MAX_WIDTH, FixedFormat, Overflow, quantize as quantize_values
from .ir import (Activation, BatchNorm, Conv, Dense, Dropout, Flatten, Graph, Input, IRError, Pad, Pool, Reshape,
                 Requantize, Softmax, spatial)
from .reference import conv_patches, dense_accumulate, evaluate_op
from .softmax import softmax_plan_of, warn_if_coarse

__all__ = ["drop_dropout", "fold_batchnorm", "fuse_activation", "quantize", "lower", "PassError",
           "PrecisionWarning", "MAX_CONSTANT_BITS", "warn_inputs_outside"]

#: Constants (weight, bias, alpha) are stored as 64-bit integers in ``graph.npz`` and computed
#: in int64 by the reference model: their formats may be at most this wide.
MAX_CONSTANT_BITS = INT64_SAFE_BITS


class PrecisionWarning(UserWarning):
    """A lossy but legal choice: values outside their format (they wrap or saturate), or
    calibration data that says nothing about the value range."""


class PassError(IRError):
    """A graph cannot be transformed (names the layer and what to change)."""


def _without(graph, op, replacement_name):
    """Remove ``op``; its consumers (and outputs) read ``replacement_name`` instead."""
    def rewire(names):
        return tuple(replacement_name if n == op.name else n for n in names)
    ops = tuple(o.replace(inputs=rewire(o.inputs)) for o in graph.ops if o is not op)
    return graph.replace(ops=ops, outputs=rewire(graph.outputs))


def _swap(graph, old, new):
    return graph.replace(ops=tuple(new if o is old else o for o in graph.ops))


def drop_dropout(graph: Graph) -> Graph:
    """Dropout is the identity at inference: remove it."""
    for op in graph.ops:
        if isinstance(op, Dropout):
            return drop_dropout(_without(graph, op, op.inputs[0]))
    return graph


def _bn_affine(bn):
    """``(g, c)``: BatchNormalization is ``y = g * x + c`` per channel (last axis)."""
    var = np.asarray(bn.variance, np.float64) + bn.epsilon
    if np.any(~(var > 0)):
        raise PassError(f"BatchNormalization {bn.origin or bn.name!r}: variance + epsilon must be positive "
                        f"(it is {float(var.min()):g}); fix the layer's statistics")
    g = np.asarray(bn.gamma, np.float64) / np.sqrt(var)
    return g, np.asarray(bn.beta, np.float64) - np.asarray(bn.mean, np.float64) * g


def _has_own_entry(config, bn):
    """Whether the configuration sets anything for the BatchNormalization itself."""
    return config is not None and bool(config.layers.get(bn.origin or bn.name))


def _forward_target(graph, bn, config):
    """The Dense or convolution ``bn`` can be folded into exactly (forward): BatchNorm reads one value per channel, so the next layer must see every
    BatchNorm output as an input row (a Dense, possibly after a Flatten, or a convolution with no
    padding: a padded zero is not normalized, so folding into a padded convolution would turn it
    into ``c``). ``None`` when that is not possible, or when the configuration has an entry for
    the BatchNormalization (it then stays a tensor of its own)."""
    if _has_own_entry(config, bn) or bn.name in graph.outputs:
        return None
    name, flattened = bn.name, False
    while True:
        consumers = graph.consumers(name)
        if len(consumers) != 1 or name in graph.outputs:
            return None
        nxt = consumers[0]
        if isinstance(nxt, Flatten) and not flattened:
            name, flattened = nxt.name, True
            continue
        if isinstance(nxt, Conv):
            return nxt if not flattened and not any(nxt.padding) else None
        return nxt if isinstance(nxt, Dense) else None


def _fold_forward(graph, bn, dense, g, c):
    """``W' = diag(g) W``, ``b' = b + c W`` for the rows of ``dense``; drop ``bn``."""
    w = np.asarray(dense.weight, np.float64)
    channel = np.arange(w.shape[0]) % len(g)  # row order (kh, kw, channel) or a flattened channels-last tensor
    folded = dense.replace(weight=w * g[channel][:, None], bias=np.asarray(dense.bias, np.float64) + c[channel] @ w)
    return _without(_swap(graph, dense, folded), bn, bn.inputs[0])


def scale_shift(bn, g, c):
    """The per-channel ``y = g * x + c`` of ``bn`` as an op the rest of nnhdl already knows: a
    Dense with a diagonal weight for a flat tensor, a depthwise 1x1 convolution for an image or a
    signal (zero weights cost nothing in hardware). It keeps the BatchNormalization's name and
    origin, so its ``[layer.NAME]`` entry sets ``weight`` (the scales), ``bias`` (the shifts),
    ``accum`` and ``result`` as for a Dense."""
    common = dict(name=bn.name, inputs=bn.inputs, shape=tuple(bn.shape), origin=bn.origin,
                  result_key=bn.result_key, result_origin=bn.result_origin, weight=np.diag(g), bias=c)
    if len(bn.shape) == 1:
        return Dense(**common)
    return Conv(**common, in_shape=spatial(bn.shape), kernel=(1, 1), strides=(1, 1), padding=(0, 0, 0, 0),
                depthwise=True)


def fold_batchnorm(graph: Graph, config: PrecisionConfig = None) -> Graph:
    """Remove every BatchNormalization (``y = g * x + c`` per channel, ``g = gamma / sqrt(var +
    eps)``, ``c = beta - mean * g``), exactly in the float graph:

    1. after a linear Dense or convolution that feeds only it: fold backward,
       ``w' = w * g``, ``b' = (b - mean) * g + beta`` (the folded layer's output is the
       BatchNorm's: its config entry sets the result);
    2. else, before a Dense (directly or after a Flatten) or an unpadded convolution: fold
       forward, ``W' = diag(g) W``, ``b' = b + c W`` (unless ``config`` has an entry for the
       BatchNorm, which keeps it a layer of its own);
    3. else: a layer of its own, :func:`scale_shift`.
    """
    for bn in graph.ops:
        if not isinstance(bn, BatchNorm):
            continue
        g, c = _bn_affine(bn)
        prev = graph.op(bn.inputs[0])
        if isinstance(prev, Dense) and prev.activation == "linear" and len(graph.consumers(prev.name)) == 1:
            folded = prev.replace(weight=np.asarray(prev.weight, np.float64) * g[None, :],
                                  bias=(np.asarray(prev.bias, np.float64) - bn.mean) * g + bn.beta,
                                  result_origin=bn.origin, result_key=bn.result_key)
            return fold_batchnorm(_without(_swap(graph, prev, folded), bn, prev.name), config)
        target = _forward_target(graph, bn, config)
        if target is not None:
            return fold_batchnorm(_fold_forward(graph, bn, target, g, c), config)
        return fold_batchnorm(_swap(graph, bn, scale_shift(bn, g, c)), config)
    return graph


def fuse_activation(graph: Graph, config: PrecisionConfig = None) -> Graph:
    """Merge a linear Dense and the element-wise Activation after it into one Dense.

    The fused layer computes the activation on the exact (or ``accum``) value and casts once,
    to the activation layer's ``result``. A Dense whose own ``result`` (or, after folding, its
    BatchNormalization's) is set explicitly in ``config`` is not fused: its output is then a
    real, rounded tensor."""
    config = config or PrecisionConfig()
    for act in graph.ops:
        if not isinstance(act, Activation):
            continue
        prev = graph.op(act.inputs[0])
        if (not isinstance(prev, Dense) or prev.activation != "linear" or len(graph.consumers(prev.name)) != 1
                or config.get(prev.result_origin or prev.origin, prev.result_key)[1]):
            continue
        fused = prev.replace(activation=act.function, alpha=act.alpha, origin=prev.origin,
                             result_origin=act.origin, result_key=act.result_key)
        return fuse_activation(_without(_swap(graph, prev, fused), act, prev.name), config)
    return graph


# -- quantization ------------------------------------------------------------------------------

def _int_bits_for(lo, hi, width, signed):
    """Smallest integer-bit count such that a ``width``-bit format holds [lo, hi]; a zero range
    (nothing to go by) gets one integer bit besides the sign."""
    if lo == 0 and hi == 0:
        return 2 if signed else 1
    m = max(abs(float(lo)), abs(float(hi)), 2.0 ** -60)
    start = int(math.floor(math.log2(m))) - 1
    for i in range(start, start + 4):
        f = FixedFormat(width, i + (1 if signed else 0), signed)
        if f.min_value <= lo and hi <= f.max_value:
            return f.int_bits
    return start + 4 + (1 if signed else 0)


def _auto_format(lo, hi, template: FixedFormat):
    signed = template.signed or lo < 0
    return FixedFormat(template.width, _int_bits_for(lo, hi, template.width, signed), signed,
                       template.rounding, template.overflow)


def _outside(values, fmt: FixedFormat):
    """How many of the real ``values`` lie outside ``fmt``'s range once rounded with its
    rounding mode (so its overflow mode acts on them)."""
    x = np.asarray(values, np.float64)
    if x.size == 0:
        return 0
    if fmt.width + 2 > MAX_WIDTH:  # no wider format to compare in: compare the reals
        return int(np.count_nonzero((x < fmt.min_value) | (x > fmt.max_value)))
    # the same fraction bits, two more integer bits, saturating: exact, and out-of-range stays out
    # (clipped first to the wide format's edge, so that no scaling overflows a float)
    wide = FixedFormat(fmt.width + 2, fmt.int_bits + 2, True, fmt.rounding, Overflow.SAT)
    edge = math.ldexp(1.0, fmt.int_bits + 1)
    raw = quantize_values(np.clip(x, -edge, edge), wide)
    return int(np.count_nonzero((raw < fmt.min_int) | (raw > fmt.max_int)))


_OVERFLOW_EFFECT = {Overflow.WRAP: "wrap around", Overflow.SAT: "saturate", Overflow.SAT_SYM: "saturate",
                    Overflow.SAT_ZERO: "become zero"}


def _range_text(fmt):
    return f"{fmt.min_value:g} to {fmt.max_value:g}"


def _warn_values_outside(values, fmt, what, fix, stacklevel=4, fmt_name=None, source=""):
    """Warn (:class:`PrecisionWarning`) when ``values`` do not fit ``fmt``: how many, of what
    (``what``: "weight values of layer 'fc1'"), what happens to them, and ``fix(better_format)``.
    ``fmt_name`` describes the format (default: the format itself); ``source`` (a file) starts the text."""
    n = _outside(values, fmt)
    if n:
        lo, hi = _const_range(values)
        warnings.warn(PrecisionWarning(
            f"{source + ': ' if source else ''}{n} of {np.size(values)} {what} lie outside {fmt_name or fmt} ({_range_text(fmt)}; they span {lo:g} "
            f"to {hi:g}) "
            f"and {_OVERFLOW_EFFECT[fmt.overflow]}; {fix(_auto_format(lo, hi, fmt))}"), stacklevel=stacklevel)


def _warn_outside(values, fmt, what, layer, key):
    """Warn when constants ``values`` (``what``: "weight values of layer 'fc1'") do not fit ``fmt``."""
    _warn_values_outside(values, fmt, what, lambda better: f"set [layer.{layer}] {key} = \"{better}\" (or \"auto\")")


def _quantize_constant(values, fmt, layer, key, where):
    """``values`` as raw integers of ``fmt``; refuses formats too wide for graph.npz and warns
    when values fall outside the format."""
    if fmt.width > MAX_CONSTANT_BITS:
        raise PassError(f"{where}: the {key} format {fmt} is {fmt.width} bits wide; constants (weight, bias, alpha) "
                        f"have at most {MAX_CONSTANT_BITS} bits. Set [layer.{layer}] {key} = \"fixed<16,6>\" "
                        f"(or another narrower format), or a narrower --precision")
    _warn_outside(values, fmt, f"{key} values of {where}", layer, key)
    return quantize_values(values, fmt)


def warn_inputs_outside(graph: Graph, x, source=""):
    """Warn (:class:`PrecisionWarning`) when float inputs ``x`` of a quantized graph lie outside
    its input format: the reference model and the hardware then see wrapped or saturated values.
    ``source`` (the file) starts the message."""
    op = graph.input
    layer = op.origin or op.name
    _warn_values_outside(x, op.fmt, "input values",
                         lambda better: f"convert with [layer.{layer}] result = \"{better}\" to take them as they are",
                         stacklevel=3, fmt_name=f"the input format {op.fmt} of layer {layer!r}", source=source)


def _check_calibration(calibration, fmt, op):
    """Warn about calibration data that are all zero or outside the input format."""
    if not np.any(calibration):
        warnings.warn(PrecisionWarning(
            "the calibration inputs are all zero: they say nothing about the value ranges; 'auto' formats sized "
            "from them get one integer bit. Give representative inputs"), stacklevel=3)
    layer = op.origin or op.name
    _warn_values_outside(calibration, fmt, "calibration values",
                         lambda better: f"set [layer.{layer}] result = \"{better}\" (or \"auto\")",
                         fmt_name=f"the input format {fmt} of layer {layer!r}")


class _Resolver:
    def __init__(self, config: PrecisionConfig):
        self.config = config

    def fmt(self, layer, key, values=None, where=""):
        """The configured format for ``layer.key``; ``auto`` resolved from ``values``
        (a (lo, hi) pair of reals, or a function returning one)."""
        value, _ = self.config.get(layer, key)
        if value is None or isinstance(value, FixedFormat):
            return value
        if value == AUTO:
            if values is None:
                raise PassError(f"{where or layer}: '{key} = auto' needs a value range; give calibration data "
                                f"or a format like {self.config.default}")
            lo, hi = values() if callable(values) else values
            return _auto_format(lo, hi, self.config.default)
        return value


def _real_range(raw, frac):
    raw = np.asarray(raw)
    if raw.size == 0:
        return 0.0, 0.0
    return math.ldexp(float(raw.min()), -frac), math.ldexp(float(raw.max()), -frac)


def quantize(graph: Graph, config: PrecisionConfig = None, calibration=None) -> Graph:
    """Give every op its formats and turn constants into integers.

    ``calibration``: optional float inputs ``(N, *input_shape)`` used to size ``auto`` results."""
    config = config or PrecisionConfig()
    res = _Resolver(config)
    ops, fmts, calib = [], {}, {}
    for op in graph.ops:
        srcs = [fmts[n] for n in op.inputs]
        where = f"layer {op.origin or op.name!r}"
        if isinstance(op, Input):
            if calibration is not None:
                calibration = np.asarray(calibration, np.float64)
                if calibration.size == 0:
                    raise PassError("the calibration data are empty; give at least one input, shaped "
                                    f"(N, {', '.join(map(str, op.shape))})")
            cal = None if calibration is None else (float(np.min(calibration)), float(np.max(calibration)))
            fmt = res.fmt(op.origin, op.result_key, cal, where)
            new = op.replace(fmt=fmt)
            if calibration is not None:
                _check_calibration(calibration, fmt, op)
                calib[op.name] = quantize_values(calibration, fmt)
        elif isinstance(op, (Flatten, Dropout, Reshape, Pad)):
            new = op.replace(fmt=srcs[0])
        elif isinstance(op, Requantize):  # per-element formats come from the model: nothing to resolve
            new = op
        elif isinstance(op, Pool):
            new = _quantize_pool(op, srcs[0], res, calib.get(op.inputs[0]), where)
        elif isinstance(op, Dense):
            new = _quantize_dense(op, srcs[0], res, calib.get(op.inputs[0]), where)
        elif isinstance(op, Activation):
            new = _quantize_activation(op, srcs[0], res, calib.get(op.inputs[0]), where)
        elif isinstance(op, Softmax):
            new = _quantize_softmax(op, srcs[0], res, config)
        elif isinstance(op, BatchNorm):
            raise PassError(f"BatchNormalization {op.origin or op.name!r} was not folded; run fold_batchnorm first")
        else:
            raise PassError(f"cannot quantize {type(op).__name__} op {op.name!r}")
        ops.append(new)
        fmts[op.name] = new.fmt
        if calibration is not None and not isinstance(new, Input):
            calib[op.name] = evaluate_op(new, [calib[n] for n in op.inputs], srcs)
    return graph.replace(ops=tuple(ops))


def _const_range(values):
    v = np.asarray(values, np.float64)
    return (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)


def _act_range(function, lo, hi, alpha):
    if function == "relu":
        return max(lo, 0.0), max(hi, 0.0)
    if function == "leaky_relu":
        cands = [lo, hi, lo * alpha, hi * alpha, 0.0]
        return min(c for c in cands), max(cands)
    return lo, hi


def _quantize_dense(op: Dense, src: FixedFormat, res: _Resolver, calib, where):
    layer = op.origin
    wfmt = res.fmt(layer, "weight", _const_range(op.weight), where)
    bfmt = res.fmt(layer, "bias", _const_range(op.bias), where)
    w = _quantize_constant(op.weight, wfmt, layer, "weight", where)
    b = _quantize_constant(op.bias, bfmt, layer, "bias", where)
    accum = res.fmt(layer, "accum", None, where) if res.config.get(layer, "accum")[0] != AUTO else None
    exact = accum is None
    if exact:
        accum = exact_accumulator(src, w, wfmt, b, bfmt)
    alpha_fmt = alpha = None
    if op.activation == "leaky_relu":
        alpha_layer = op.result_origin or layer
        alpha_fmt = res.fmt(alpha_layer, "alpha", (float(op.alpha), float(op.alpha)), where)
        alpha = int(_quantize_constant(np.array([op.alpha]), alpha_fmt, alpha_layer, "alpha", where)[0])
    new = op.replace(weight=w, bias=b, weight_fmt=wfmt, bias_fmt=bfmt, accum_fmt=accum, accum_exact=exact,
                     alpha=0 if alpha is None else alpha, alpha_fmt=alpha_fmt)
    alpha_real = 0.0 if alpha is None else alpha * alpha_fmt.lsb

    def value_range():
        if calib is not None:
            pre = dense_accumulate(new, conv_patches(new, calib) if isinstance(new, Conv) else calib, src)
            lo, hi = _real_range(pre, accum.frac_bits)
        else:
            plan = dense_plan(new, src)
            lo = math.ldexp(float(min((plan.bias + plan.term_lo.sum(axis=0)).flat)), -accum.frac_bits)
            hi = math.ldexp(float(max((plan.bias + plan.term_hi.sum(axis=0)).flat)), -accum.frac_bits)
        return _act_range(op.activation, lo, hi, alpha_real)

    fmt = res.fmt(op.result_origin or layer, op.result_key, value_range, where)
    return new.replace(fmt=fmt)


def _quantize_pool(op: Pool, src: FixedFormat, res: _Resolver, calib, where):
    def value_range():
        return (src.min_value, src.max_value) if calib is None else _real_range(calib, src.frac_bits)
    return op.replace(fmt=res.fmt(op.origin, op.result_key, value_range, where))


def _quantize_activation(op: Activation, src: FixedFormat, res: _Resolver, calib, where):
    alpha_fmt = alpha = None
    if op.function == "leaky_relu":
        alpha_fmt = res.fmt(op.origin, "alpha", (float(op.alpha), float(op.alpha)), where)
        alpha = int(_quantize_constant(np.array([op.alpha]), alpha_fmt, op.origin, "alpha", where)[0])
    alpha_real = 0.0 if alpha is None else alpha * alpha_fmt.lsb

    def value_range():
        lo, hi = (src.min_value, src.max_value) if calib is None else _real_range(calib, src.frac_bits)
        return _act_range(op.function, lo, hi, alpha_real)

    fmt = res.fmt(op.origin, op.result_key, value_range, where)
    return op.replace(fmt=fmt, alpha=0 if alpha is None else alpha, alpha_fmt=alpha_fmt)


def _quantize_softmax(op: Softmax, src: FixedFormat, res: _Resolver, config: PrecisionConfig):
    """hls4ml 1.3's table softmax (or argmax) with its formats; refuses table settings hls4ml
    cannot index, warns when the exp table is coarse (see :mod:`nnhdl.softmax`)."""
    n = op.shape[-1]
    if config.softmax == "argmax":
        bits = max(1, (n - 1).bit_length())
        return op.replace(implementation="argmax", fmt=FixedFormat(bits, bits, False), shape=(1,))
    layer = op.origin or op.name
    where = f"layer {layer!r}"
    fmt = res.fmt(op.origin, op.result_key, (0.0, 1.0), where)
    exp_fmt = res.fmt(op.origin, "exp_table", (0.0, 1.0), where)
    inv_fmt = res.fmt(op.origin, "inv_table", (0.0, float(n)), where)
    accum_fmt = res.fmt(op.origin, "exp_accum", (0.0, float(n)), where)
    inv_input_fmt = res.fmt(op.origin, "inv_input", (0.0, float(n)), where)
    norm_fmt = None if config.get(op.origin, "inp_norm")[0] == AUTO else res.fmt(op.origin, "inp_norm")
    table_size, _ = config.get(op.origin, "table_size")
    new = op.replace(implementation="table", fmt=fmt, exp_fmt=exp_fmt, inv_fmt=inv_fmt, table_size=int(table_size),
                     accum_fmt=accum_fmt, inv_input_fmt=inv_input_fmt, norm_fmt=norm_fmt)
    try:
        plan = softmax_plan_of(new, src)
    except ValueError as e:
        raise PassError(f"{where} (softmax): {e}") from None
    warn_if_coarse(plan, layer)
    return new


def lower(graph: Graph, config: PrecisionConfig = None, calibration=None) -> Graph:
    """Float graph -> quantized graph: drop Dropout, fold BatchNorm, fuse activations, quantize."""
    config = config or PrecisionConfig()
    g = drop_dropout(graph)
    g = fold_batchnorm(g, config)
    g = fuse_activation(g, config)
    return quantize(g, config, calibration)
