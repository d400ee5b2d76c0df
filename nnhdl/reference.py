"""The bit-exact reference model: numpy integer evaluation of a quantized graph.

This is the specification the RTL must match. Values are raw integers of each op's output
format (``op.fmt``); :func:`evaluate` returns the outputs, :func:`trace` every op's output.
Arithmetic is exact: int64 where interval bounds prove it cannot overflow, float64 BLAS only
where every partial sum stays below 2**53 (then it is exact too), Python integers otherwise.
Every array of raw values of a format at most ``INT64_SAFE_BITS`` wide is int64; wider formats
are numpy object arrays of Python integers, so formats of any width work end to end.
"""

import functools

import numpy as np

from .arith import dense_plan
from .fixed import INT64_SAFE_BITS, FixedFormat, apply_overflow, quantize, requantize, to_float
from .ir import Activation, Conv, Dense, Dropout, Flatten, Graph, Input, Pad, Pool, Reshape, Softmax
from .softmax import softmax_plan_of, softmax_stable

__all__ = ["evaluate", "trace", "evaluate_op", "windows", "conv_patches", "divide_sticky", "softmax_table", "ReferenceError",
           "quantize_inputs", "to_real"]


class ReferenceError(ValueError):
    """Inputs do not fit the graph."""


def quantize_inputs(graph: Graph, x):
    """Float inputs shaped ``(batch, *input_shape)`` (or one sample) to raw integers."""
    op = graph.input
    x = np.asarray(x, dtype=np.float64)
    if x.shape == tuple(op.shape):
        x = x[None]
    if x.shape[1:] != tuple(op.shape):
        raise ReferenceError(f"inputs must have shape (N, {', '.join(map(str, op.shape))}) for input "
                             f"{op.name!r}, not {x.shape}")
    return quantize(x, op.fmt)


def to_real(graph: Graph, raw, name=None):
    """Real values (float64, each the nearest double) of raw integers of the output op (or op
    ``name``); raw values of any width, int64 or Python integers."""
    op = graph.output if name is None else graph.op(name)
    return to_float(raw, op.fmt.frac_bits)


def raw_array(x, fmt: FixedFormat, what="raw inputs"):
    """Raw integers ``x`` checked to lie in ``fmt``'s range: int64 for formats up to
    ``INT64_SAFE_BITS`` bits, Python integers (object array) for wider ones."""
    x = np.asarray(x)
    if x.dtype.kind not in "iub" and not (x.dtype == object and all(_is_int(v) for v in x.flat)):
        raise ReferenceError(f"{what} must be integers (raw values of {fmt}), not {x.dtype}")
    if x.size:
        lo, hi = (min(x.flat), max(x.flat)) if x.dtype == object else (int(x.min()), int(x.max()))
        if lo < fmt.min_int or hi > fmt.max_int:
            raise ReferenceError(f"{what} must lie in {fmt.min_int}..{fmt.max_int} (raw values of {fmt}); "
                                 f"got {int(lo)}..{int(hi)}")
    if fmt.width <= INT64_SAFE_BITS:
        return x.astype(np.int64)
    return np.array([int(v) for v in x.flat], dtype=object).reshape(x.shape)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def trace(graph: Graph, x, raw=False):
    """Every op's output (raw integers) for inputs ``x`` (floats, or raw ints with ``raw=True``)."""
    if not graph.is_quantized:
        raise ReferenceError("the graph is not quantized; run nnhdl.passes.lower() first")
    if raw:
        x = np.asarray(x)
        if x.shape[1:] != tuple(graph.input.shape):
            raise ReferenceError(f"raw inputs must have shape (N, {', '.join(map(str, graph.input.shape))}), not {x.shape}")
        values = {graph.input.name: raw_array(x, graph.input.fmt)}
    else:
        values = {graph.input.name: quantize_inputs(graph, x)}
    for op in graph.ops:
        if isinstance(op, Input):
            continue
        srcs = [graph.op(n) for n in op.inputs]
        values[op.name] = evaluate_op(op, [values[n] for n in op.inputs], [s.fmt for s in srcs])
    return values


def evaluate(graph: Graph, x, raw=False):
    """The network outputs (raw integers in the output op's format)."""
    return trace(graph, x, raw)[graph.outputs[0]]


@functools.singledispatch
def evaluate_op(op, inputs, formats):
    """The raw output of ``op`` for raw ``inputs`` (batch first) in ``formats``. The original ops
    are evaluated here; an op kind of its own module (:mod:`nnhdl.ops`) registers its evaluation
    on this function, and is loaded on first use."""
    if not _ops_loaded():
        return evaluate_op(op, inputs, formats)
    raise NotImplementedError(f"no reference model for {type(op).__name__} op {op.name!r}")


def _ops_loaded():
    """Load the op kinds (which register their evaluations); False if that was needed."""
    from .ops import registry
    was = registry.is_loaded()
    registry.load_all()
    return was


@evaluate_op.register
def _(op: Dropout, inputs, formats):
    return inputs[0]


@evaluate_op.register
def _(op: Flatten, inputs, formats):
    x = inputs[0]
    return x.reshape(x.shape[0], -1)


def _bits(*bounds):
    return max(abs(int(b)) for b in bounds).bit_length() + 1


def _matmul_exact(x, w, bound_bits):
    """x @ w exactly for integer arrays; ``bound_bits`` bounds every partial sum's magnitude.

    The bound holds for every single term, so it bounds ``|x_i|`` wherever row ``i`` of ``w``
    has a non-zero weight; inputs that only meet zero weights (they may be wider than int64)
    are left out."""
    if bound_bits <= INT64_SAFE_BITS and (x.dtype == object or w.dtype == object):
        used = np.array([any(v != 0 for v in row) for row in w], dtype=bool).reshape(len(w))
        x, w = x[:, used], w[used]
    if bound_bits <= 52:
        return (x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)  # exact: integers < 2**53
    if bound_bits <= INT64_SAFE_BITS:
        return x.astype(np.int64) @ w.astype(np.int64)
    return x.astype(object) @ w.astype(object)


def dense_accumulate(op: Dense, x, src: FixedFormat):
    """The accumulator values (raw, in ``op.accum_fmt``) of a Dense for inputs ``x``."""
    plan = dense_plan(op, src)
    acc = op.accum_fmt
    w = op.weight
    fp = src.frac_bits + op.weight_fmt.frac_bits
    bias = plan.bias
    if not plan.cast_products and not plan.ordered:
        lo = sum(plan.term_lo.flat, 0) if plan.term_lo.size else 0
        hi = sum(plan.term_hi.flat, 0) if plan.term_hi.size else 0
        bits = _bits(lo, hi, *(bias if len(bias) else [0])) + 1
        s = _matmul_exact(x, w, bits - plan.shift)
        if bits > INT64_SAFE_BITS:
            s = s.astype(object)
        total = (s << plan.shift) + (bias.astype(np.int64) if bits <= INT64_SAFE_BITS else bias)
        return apply_overflow(total, acc) if plan.can_overflow else total
    # products, each cast to accum_t (hls4ml) or exact and aligned to the accumulator
    prod_bits = _bits(x.min(initial=0), x.max(initial=0)) + _bits(w.min(initial=0), w.max(initial=0))
    if prod_bits + plan.shift > INT64_SAFE_BITS:
        p = x.astype(object)[:, :, None] * w.astype(object)[None]
    else:
        p = x.astype(np.int64)[:, :, None] * w.astype(np.int64)[None]
    terms = requantize(p, fp, acc) if plan.cast_products else p << plan.shift  # (batch, n_in, n_out)
    if not plan.ordered:
        total_bits = _bits(sum(plan.term_lo.flat, 0), sum(plan.term_hi.flat, 0),
                           *(bias if len(bias) else [0])) + 1
        if terms.dtype != object and total_bits > INT64_SAFE_BITS:
            terms = terms.astype(object)
        total = terms.sum(axis=1) + bias.astype(terms.dtype if terms.dtype == object else np.int64)
        return apply_overflow(total, acc)
    # saturating accumulation in hls4ml's order: bias, then products i = 0, 1, ...
    total = np.broadcast_to(apply_overflow(bias, acc), (x.shape[0], len(bias))).copy()
    for i in range(terms.shape[1]):
        total = apply_overflow(total + terms[:, i, :], acc)
    return total


def activate(function, pre, pre_frac, result: FixedFormat, alpha=None, alpha_fmt=None):
    """``cast_result(act(pre))`` for an element-wise activation of raw values with ``pre_frac``
    fractional bits. Leaky ReLU multiplies negative values by ``alpha`` (raw, ``alpha_fmt``)
    exactly before the cast."""
    pre = np.asarray(pre)
    if function == "linear":
        return requantize(pre, pre_frac, result)
    if function == "relu":
        return requantize(np.maximum(pre, 0), pre_frac, result)
    if function == "leaky_relu":
        alpha = int(alpha)
        pos = requantize(pre, pre_frac, result)
        if pre.dtype != object and _bits(pre.min(initial=0), pre.max(initial=0)) + alpha.bit_length() > INT64_SAFE_BITS:
            pre = pre.astype(object)  # the product could overflow int64
        neg = requantize(pre * alpha, pre_frac + alpha_fmt.frac_bits, result)
        out = np.where(pre > 0, pos, neg)
        return out.astype(np.int64) if result.width <= INT64_SAFE_BITS else out.astype(object)
    raise NotImplementedError(f"activation {function!r}")


@evaluate_op.register
def _(op: Dense, inputs, formats):
    x, src = inputs[0], formats[0]
    if x.ndim != 2:
        raise ReferenceError(f"Dense {op.name!r} needs a flat input, got shape {x.shape[1:]}")
    pre = dense_accumulate(op, x, src)
    return activate(op.activation, pre, op.accum_fmt.frac_bits, op.fmt, op.alpha, op.alpha_fmt)


# -- images ---------------------------------------------------------------------------------------

def windows(x, in_shape, kernel, strides, padding, pad_value=0):
    """All ``kernel`` windows of images ``x`` (batch first, any shape whose :func:`spatial`
    view is ``in_shape``) after padding (top, bottom, left, right) with ``pad_value``:
    an array ``(batch, out_h, out_w, kh * kw, channels)``, taps in row-major kernel order."""
    h, w, c = in_shape
    (kh, kw), (sh, sw), (pt, pb, pl, pr) = kernel, strides, padding
    x = pad_images(np.asarray(x).reshape(x.shape[0], h, w, c), padding, pad_value)
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    taps = [x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]
    return np.stack(taps, axis=3)


def pad_images(x, padding, value=0):
    """Images ``(batch, h, w, c)`` with (top, bottom, left, right) pixels of ``value`` around them.
    Object arrays get Python integers (``np.pad`` would store numpy scalars, whose arithmetic
    with Python integers is int64 and can overflow)."""
    pt, pb, pl, pr = padding
    if not any(padding):
        return x
    n, h, w, c = x.shape
    out = np.full((n, h + pt + pb, w + pl + pr, c), int(value), dtype=x.dtype)
    out[:, pt:pt + h, pl:pl + w, :] = x
    return out


def conv_patches(op: Conv, x):
    """The Dense inputs of a Conv: one row per output pixel, ``(batch * out_h * out_w, n_in)``."""
    p = windows(x, op.in_shape, op.kernel, op.strides, op.padding)
    return p.reshape(-1, p.shape[3] * p.shape[4])


@evaluate_op.register
def _(op: Conv, inputs, formats):
    x, src = inputs[0], formats[0]
    pre = dense_accumulate(op, conv_patches(op, x), src)
    out = activate(op.activation, pre, op.accum_fmt.frac_bits, op.fmt, op.alpha, op.alpha_fmt)
    return out.reshape((x.shape[0],) + tuple(op.shape))


def divide_sticky(v, d):
    """``2 * floor(v / d) + (1 if d does not divide v else 0)`` for integers ``v`` and a positive
    integer ``d``: with two more fraction bits than ``v / d`` it rounds exactly like ``v / d`` in
    every rounding mode (it lies in the same half-open quarter and is exact when ``v / d`` is
    a multiple of a half)."""
    v = np.asarray(v)
    return 2 * (v // d) + (v % d != 0)


def average(total, count, in_frac, fmt: FixedFormat):
    """``cast_fmt(total / count)`` exactly for raw sums ``total`` with ``in_frac`` fraction bits."""
    if count & (count - 1) == 0:
        return requantize(total, in_frac + count.bit_length() - 1, fmt)
    t = fmt.frac_bits - in_frac + 1  # the quotient needs one fraction bit below fmt's LSB
    total = np.asarray(total)
    den = count << max(-t, 0)
    if total.dtype != object and total.size and (_bits(total.min(), total.max()) + max(t, 0) > INT64_SAFE_BITS
                                                 or den.bit_length() > INT64_SAFE_BITS):
        total = total.astype(object)  # the scaled sum or the divisor would not fit int64
    num = total * (1 << t) if t > 0 else total
    return requantize(divide_sticky(num, den), fmt.frac_bits + 2, fmt)


def pool_counts(op: Pool):
    """Real (not padding) pixels in each window: ``(out_h, out_w)`` ints."""
    ones = np.ones((1, *op.in_shape[:2], 1), dtype=np.int64)
    return windows(ones, op.in_shape[:2] + (1,), op.pool, op.strides, op.padding).sum(axis=3)[0, :, :, 0]


@evaluate_op.register
def _(op: Pool, inputs, formats):
    x, src = inputs[0], formats[0]
    n = x.shape[0]
    if op.kind == "max":
        # every window holds a real pixel (>= src.min_int), so padding with min_int changes no max
        p = windows(x, op.in_shape, op.pool, op.strides, op.padding, pad_value=src.min_int)
        out = requantize(p.max(axis=3), src.frac_bits, op.fmt)
    else:
        p = windows(x, op.in_shape, op.pool, op.strides, op.padding)
        if p.dtype != object and _bits(src.min_int, src.max_int) + p.shape[3].bit_length() + 4 > INT64_SAFE_BITS:
            p = p.astype(object)
        total = p.sum(axis=3)
        counts = pool_counts(op)
        out = np.empty(total.shape, dtype=np.int64 if op.fmt.width <= INT64_SAFE_BITS else object)
        for c in np.unique(counts):
            sel = counts == c
            out[:, sel, :] = average(total[:, sel, :], int(c), src.frac_bits, op.fmt)
    return out.reshape((n,) + tuple(op.shape))


@evaluate_op.register
def _(op: Pad, inputs, formats):
    x = inputs[0]
    h, w, c = op.in_shape
    y = pad_images(x.reshape(x.shape[0], h, w, c), op.padding)
    return y.reshape((x.shape[0],) + tuple(op.shape))


@evaluate_op.register
def _(op: Reshape, inputs, formats):
    x = inputs[0]
    return x.reshape((x.shape[0],) + tuple(op.shape))


@evaluate_op.register
def _(op: Activation, inputs, formats):
    return activate(op.function, inputs[0], formats[0].frac_bits, op.fmt, op.alpha, op.alpha_fmt)


# -- softmax (the arithmetic lives in nnhdl.softmax, shared with the RTL) ---------------------

def softmax_table(x, in_fmt: FixedFormat, op: Softmax):
    """hls4ml 1.3's table-based ``stable`` softmax of raw inputs (see :mod:`nnhdl.softmax`)."""
    return softmax_stable(x, softmax_plan_of(op, in_fmt))


@evaluate_op.register
def _(op: Softmax, inputs, formats):
    x = inputs[0]
    if op.implementation == "argmax":
        return np.argmax(x, axis=-1).astype(np.int64)[..., None]
    return softmax_table(x, formats[0], op)


