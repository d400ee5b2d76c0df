"""Interval arithmetic shared by the passes, the reference model and the RTL generators.

Everything here works on raw integers and formats; nothing imports Amaranth.
"""

from dataclasses import dataclass

import numpy as np

from .fixed import FixedFormat, Overflow, requantize

__all__ = ["DensePlan", "dense_plan", "product_bounds", "exact_accumulator"]


def product_bounds(src, weight):
    """Per (i, j) bounds ``(lo, hi)`` of ``x_i * w[i, j]`` for ``x_i`` in format ``src``
    (raw integers, fractional bits ``src.frac + weight frac``), as Python-int object arrays."""
    w = np.asarray(weight).astype(object)
    a, b = w * src.min_int, w * src.max_int
    lo = np.where(a < b, a, b)
    hi = np.where(a < b, b, a)
    return lo, hi


def exact_accumulator(src, weight, weight_fmt, bias, bias_fmt):
    """The narrowest format that holds the bias and every running sum of ``bias + products`` exactly
    (products contain zero, so every partial sum lies inside the total's interval)."""
    fp = src.frac_bits + weight_fmt.frac_bits
    fa = max(fp, bias_fmt.frac_bits)
    lo, hi = product_bounds(src, weight)
    shift = fa - fp
    sum_lo = np.array([int(v) << shift for v in lo.sum(axis=0)], dtype=object)
    sum_hi = np.array([int(v) << shift for v in hi.sum(axis=0)], dtype=object)
    b = np.array([int(v) << (fa - bias_fmt.frac_bits) for v in np.asarray(bias).ravel()], dtype=object)
    lows = np.minimum(b + sum_lo, b) if len(b) else sum_lo
    highs = np.maximum(b + sum_hi, b) if len(b) else sum_hi
    return FixedFormat.containing(min(min(lows), 0), max(max(highs), 0), fa)


@dataclass(frozen=True)
class DensePlan:
    """How a Dense's arithmetic must be carried out to follow its formats exactly.

    ``cast_products``: some product must be rounded or overflowed into the accumulator;
    ``shift``: left shift of exact products into the accumulator when not cast;
    ``bias``: the bias cast to the accumulator (raw ints); ``ordered``: the running sum can
    overflow with a non-wrapping mode, so it must be summed in hls4ml's order with the overflow
    applied after each addition; otherwise any order gives the same result (wrapped at the end).
    """
    cast_products: bool
    shift: int
    bias: np.ndarray
    can_overflow: bool
    ordered: bool
    term_lo: np.ndarray  # bounds of each (cast) product in accumulator units, (n_in, n_out)
    term_hi: np.ndarray


def dense_plan(op, src):
    acc = op.accum_fmt
    fp = src.frac_bits + op.weight_fmt.frac_bits
    lo, hi = product_bounds(src, op.weight)
    shift = acc.frac_bits - fp
    if shift >= 0:
        slo = np.vectorize(lambda v: int(v) << shift, otypes=[object])(lo) if lo.size else lo
        shi = np.vectorize(lambda v: int(v) << shift, otypes=[object])(hi) if hi.size else hi
        fits = lo.size == 0 or (min(slo.flat) >= acc.result_min_int and max(shi.flat) <= acc.max_int)
    else:
        fits = False
    cast_products = not fits
    if cast_products:
        # bounds after the cast: rounding is monotone, so cast the extremes; if a cast can wrap,
        # the whole accumulator range is possible
        clo = requantize(lo, fp, acc.with_modes(overflow=Overflow.SAT)).astype(object)
        chi = requantize(hi, fp, acc.with_modes(overflow=Overflow.SAT)).astype(object)
        if acc.overflow is Overflow.WRAP:
            wraps = (requantize(lo, fp, acc) != clo) | (requantize(hi, fp, acc) != chi)
            clo = np.where(wraps, acc.min_int, clo)
            chi = np.where(wraps, acc.max_int, chi)
        term_lo, term_hi = clo, chi
    else:
        term_lo, term_hi = slo, shi
    bias = requantize(op.bias, op.bias_fmt.frac_bits, acc).astype(object)
    total_lo = bias + (term_lo.sum(axis=0) if term_lo.size else 0)
    total_hi = bias + (term_hi.sum(axis=0) if term_hi.size else 0)
    can_overflow = bool(np.any(total_lo < acc.result_min_int) or np.any(total_hi > acc.max_int))
    ordered = can_overflow and acc.overflow is not Overflow.WRAP
    return DensePlan(cast_products, max(shift, 0), bias, can_overflow, ordered, term_lo, term_hi)
