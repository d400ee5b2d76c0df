"""An independent exact evaluator of quantized graphs, for testing the reference model.

Written from the *meaning* of each op (the docstrings of :mod:`nnhdl.ir` and of
:mod:`nnhdl.fixed`), not from :mod:`nnhdl.reference`: every value is an exact rational
(:class:`fractions.Fraction`), every cast rounds the exact value by the target format's rounding
mode and then applies its overflow mode, one element at a time, in plain Python. It is slow
and obviously correct; keep the graphs small. Only :class:`~nnhdl.fixed.FixedFormat`'s fields
are reused; the table softmax (being re-specified elsewhere) is delegated to the reference.
"""

from fractions import Fraction
from itertools import product
from math import floor

import numpy as np

from nnhdl.ir import Activation, Conv, Dense, Dropout, Flatten, Input, Pad, Pool, Reshape, Softmax, spatial

__all__ = ["cast", "round_to_int", "overflow", "real", "evaluate_exact", "trace_exact", "quantize_exact"]


# -- numbers ------------------------------------------------------------------------------------

def round_to_int(v: Fraction, mode: str) -> int:
    """The integer the rounding mode ``mode`` (fixed.py's table) makes of the exact value ``v``."""
    lo = floor(v)
    frac = v - lo  # in [0, 1)
    if frac == 0:
        return lo
    hi = lo + 1
    half = Fraction(1, 2)
    if mode == "TRN":
        return lo
    if mode == "TRN_ZERO":
        return lo if v > 0 else hi
    if frac < half:
        return lo
    if frac > half:
        return hi
    # exactly between lo and hi
    return {"RND": hi, "RND_ZERO": lo if v > 0 else hi, "RND_MIN_INF": lo, "RND_INF": hi if v > 0 else lo,
            "RND_CONV": lo if lo % 2 == 0 else hi}[mode]


def overflow(raw: int, fmt) -> int:
    """``raw`` brought into ``fmt``'s range by its overflow mode (fixed.py's table)."""
    w = fmt.width
    lo, hi = (-2 ** (w - 1), 2 ** (w - 1) - 1) if fmt.signed else (0, 2 ** w - 1)
    mode = fmt.overflow.value
    if mode == "WRAP":
        r = raw % 2 ** w
        return r - 2 ** w if r > hi else r
    if mode == "SAT_SYM" and fmt.signed:
        lo = -hi
        return min(max(raw, lo), hi)
    if mode in ("SAT", "SAT_SYM"):
        return min(max(raw, lo), hi)
    if mode == "SAT_ZERO":
        return raw if lo <= raw <= hi else 0
    raise AssertionError(mode)


def cast(v: Fraction, fmt) -> int:
    """The raw integer of ``fmt`` that the exact value ``v`` becomes: round, then overflow."""
    return overflow(round_to_int(Fraction(v) * Fraction(2) ** (fmt.width - fmt.int_bits), fmt.rounding.value), fmt)


def real(raw: int, fmt) -> Fraction:
    """The exact value of a raw integer of ``fmt``."""
    return Fraction(int(raw)) / Fraction(2) ** (fmt.width - fmt.int_bits)


def quantize_exact(x, fmt):
    """Floats -> raw integers of ``fmt`` (each float's exact binary value, cast)."""
    x = np.asarray(x, dtype=np.float64)
    return np.array([cast(Fraction(float(v)), fmt) for v in x.flat], dtype=object).reshape(x.shape)


# -- ops: one sample at a time, values are exact Fractions in nested numpy object arrays ---------

def _dense_one(op, xs, src):
    """Dense on one flat input vector (raw ints of ``src``): raw ints of ``op.fmt``."""
    acc_fmt = op.accum_fmt
    out = []
    for j in range(op.weight.shape[1]):
        acc = cast(real(op.bias[j], op.bias_fmt), acc_fmt)
        for i in range(op.weight.shape[0]):
            p = cast(real(xs[i], src) * real(op.weight[i, j], op.weight_fmt), acc_fmt)
            acc = cast(real(acc, acc_fmt) + real(p, acc_fmt), acc_fmt)
        out.append(_activate(op.activation, real(acc, acc_fmt), op.fmt, op.alpha, op.alpha_fmt))
    return out


def _activate(function, v: Fraction, fmt, alpha, alpha_fmt):
    if function == "linear":
        return cast(v, fmt)
    if function == "relu":
        return cast(max(v, Fraction(0)), fmt)
    if function == "leaky_relu":
        return cast(v if v > 0 else v * real(alpha, alpha_fmt), fmt)
    raise NotImplementedError(function)


def _image(flat, shape):
    h, w, c = spatial(shape)
    return [[[flat[(y * w + x) * c + ch] for ch in range(c)] for x in range(w)] for y in range(h)]


def _window_positions(in_shape, kernel, strides, padding):
    """For each output pixel (row-major): the list of input pixel (y, x) of its taps in kernel row-
    major order, None for a padding position."""
    h, w, _ = in_shape
    (kh, kw), (sh, sw), (pt, pb, pl, pr) = kernel, strides, padding
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    out = []
    for oy, ox in product(range(oh), range(ow)):
        taps = []
        for ky, kx in product(range(kh), range(kw)):
            y, x = oy * sh + ky - pt, ox * sw + kx - pl
            taps.append((y, x) if 0 <= y < h and 0 <= x < w else None)
        out.append(taps)
    return out


def _conv_one(op, flat, src):
    img = _image(flat, op.in_shape)
    c = op.in_shape[2]
    out = []
    for taps in _window_positions(op.in_shape, op.kernel, op.strides, op.padding):
        vec = []
        for t in taps:
            vec += [0] * c if t is None else img[t[0]][t[1]]  # padding: zero inputs
        out += _dense_one(op, vec, src)
    return out


def _pool_one(op, flat, src):
    img = _image(flat, op.in_shape)
    c = op.in_shape[2]
    out = []
    for taps in _window_positions(op.in_shape, op.pool, op.strides, op.padding):
        real_taps = [t for t in taps if t is not None]  # padding is not part of any window
        for ch in range(c):
            vals = [real(img[y][x][ch], src) for y, x in real_taps]
            v = max(vals) if op.kind == "max" else sum(vals, Fraction(0)) / len(vals)
            out.append(cast(v, op.fmt))
    return out


def _pad_one(op, flat, src):
    h, w, c = op.in_shape
    pt, pb, pl, pr = op.padding
    img = _image(flat, op.in_shape)
    out = []
    for y in range(-pt, h + pb):
        for x in range(-pl, w + pr):
            out += img[y][x] if 0 <= y < h and 0 <= x < w else [0] * c
    return out


def _argmax_one(flat, src):
    best = 0
    for i, v in enumerate(flat):
        if v > flat[best]:  # the first one on ties
            best = i
    return [best]


def _op_one(op, flat, src):
    """Raw ints (flat, row-major) of op's output for one sample's flat raw input."""
    if isinstance(op, Conv):
        return _conv_one(op, flat, src)
    if isinstance(op, Dense):
        return _dense_one(op, flat, src)
    if isinstance(op, Pool):
        return _pool_one(op, flat, src)
    if isinstance(op, Pad):
        return _pad_one(op, flat, src)
    if isinstance(op, (Reshape, Flatten, Dropout)):
        return list(flat)
    if isinstance(op, Activation):
        return [_activate(op.function, real(v, src), op.fmt, op.alpha, op.alpha_fmt) for v in flat]
    if isinstance(op, Softmax) and op.implementation == "argmax":
        return _argmax_one(flat, src)
    raise NotImplementedError(type(op).__name__)


def trace_exact(graph, x, raw=False):
    """Every op's output (raw ints, object arrays ``(batch, *shape)``) for inputs ``x`` (floats,
    or raw ints with ``raw=True``)."""
    inp = graph.input
    x = np.asarray(x, dtype=object if raw else np.float64)
    batch = x.shape[0]
    raw_in = x if raw else quantize_exact(x, inp.fmt)
    values = {inp.name: np.array([int(v) for v in raw_in.flat], dtype=object).reshape((batch,) + tuple(inp.shape))}
    for op in graph.ops:
        if isinstance(op, Input):
            continue
        src_op = graph.op(op.inputs[0])
        xin = values[src_op.name]
        if isinstance(op, Softmax) and op.implementation != "argmax":
            from nnhdl.reference import evaluate_op  # the table softmax is specified by the reference
            y = evaluate_op(op, [xin.reshape(batch, -1)], [src_op.fmt])
            values[op.name] = np.array([int(v) for v in np.asarray(y).flat], dtype=object).reshape(
                (batch,) + tuple(op.shape))
            continue
        rows = [_op_one(op, list(xin[b].flat), src_op.fmt) for b in range(batch)]
        values[op.name] = np.array([int(v) for r in rows for v in r], dtype=object).reshape((batch,) + tuple(op.shape))
    return values


def evaluate_exact(graph, x, raw=False):
    """The network output (raw ints) for inputs ``x``."""
    return trace_exact(graph, x, raw)[graph.outputs[0]]
