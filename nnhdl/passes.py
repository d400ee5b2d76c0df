"""Pure graph passes: each takes a Graph and returns a new one.

:func:`lower` runs them in order: :func:`drop_dropout`, :func:`fold_batchnorm`,
:func:`fuse_activation`, :func:`quantize` (which also infers exact accumulators by interval
arithmetic and resolves ``auto`` formats).
"""

import math

import numpy as np

from .arith import dense_plan, exact_accumulator
from .config import AUTO, PrecisionConfig
from .fixed import FixedFormat, quantize as quantize_values
from .ir import Activation, BatchNorm, Conv, Dense, Dropout, Flatten, Graph, Input, IRError, Pad, Pool, Reshape, Softmax
from .reference import conv_patches, dense_accumulate, evaluate_op
from .softmax import softmax_plan_of, warn_if_coarse

__all__ = ["drop_dropout", "fold_batchnorm", "fuse_activation", "quantize", "lower", "PassError"]


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


def fold_batchnorm(graph: Graph) -> Graph:
    """Fold each BatchNormalization into the Dense before it:
    ``w' = w * g``, ``b' = (b - mean) * g + beta`` with ``g = gamma / sqrt(var + eps)``."""
    for bn in graph.ops:
        if not isinstance(bn, BatchNorm):
            continue
        prev = graph.op(bn.inputs[0])
        if not isinstance(prev, Dense) or prev.activation != "linear" or len(graph.consumers(prev.name)) != 1:
            raise PassError(
                f"BatchNormalization layer {bn.origin or bn.name!r} can only be folded into a Dense or convolution layer "
                f"with a linear activation that feeds only it; it follows {type(prev).__name__} "
                f"{prev.origin or prev.name!r}. Move the activation after the BatchNormalization.")
        g = np.asarray(bn.gamma, np.float64) / np.sqrt(np.asarray(bn.variance, np.float64) + bn.epsilon)
        # the folded layer's output is the BatchNormalization's: its config entry sets the result
        folded = prev.replace(weight=np.asarray(prev.weight, np.float64) * g[None, :],
                              bias=(np.asarray(prev.bias, np.float64) - bn.mean) * g + bn.beta,
                              result_origin=bn.origin, result_key=bn.result_key)
        return fold_batchnorm(_without(_swap(graph, prev, folded), bn, prev.name))
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
    """Smallest integer-bit count such that a ``width``-bit format holds [lo, hi]."""
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
            cal = None if calibration is None else (float(np.min(calibration)), float(np.max(calibration)))
            fmt = res.fmt(op.origin, op.result_key, cal, where)
            new = op.replace(fmt=fmt)
            if calibration is not None:
                calib[op.name] = quantize_values(np.asarray(calibration, np.float64), fmt)
        elif isinstance(op, (Flatten, Dropout, Reshape, Pad)):
            new = op.replace(fmt=srcs[0])
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
    w = quantize_values(op.weight, wfmt)
    b = quantize_values(op.bias, bfmt)
    accum = res.fmt(layer, "accum", None, where) if res.config.get(layer, "accum")[0] != AUTO else None
    exact = accum is None
    if exact:
        accum = exact_accumulator(src, w, wfmt, b, bfmt)
    alpha_fmt = alpha = None
    if op.activation == "leaky_relu":
        alpha_fmt = res.fmt(op.result_origin or layer, "alpha", (float(op.alpha), float(op.alpha)), where)
        alpha = int(quantize_values(np.array([op.alpha]), alpha_fmt)[0])
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
        alpha = int(quantize_values(np.array([op.alpha]), alpha_fmt)[0])
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
    g = fold_batchnorm(g)
    g = fuse_activation(g, config)
    return quantize(g, config, calibration)
