"""FixedFormat, quantize and requantize against brute-force definitions written from the
meaning of each ap_fixed mode (exact rational arithmetic, no shared code)."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from nnhdl.fixed import FixedFormat, FormatError, Overflow, Rounding, quantize, requantize


def brute_round(q: Fraction, mode: Rounding) -> int:
    """Round the rational q (in units of the target LSB) to an integer."""
    lo = math.floor(q)
    hi = lo + 1
    if q == lo:
        return lo
    if mode is Rounding.TRN:
        return lo
    if mode is Rounding.TRN_ZERO:
        return lo if q > 0 else hi
    d_lo, d_hi = q - lo, hi - q
    if d_lo < d_hi:
        return lo
    if d_hi < d_lo:
        return hi
    # exact tie
    return {
        Rounding.RND: hi,                              # towards +inf
        Rounding.RND_ZERO: lo if q > 0 else hi,        # towards zero
        Rounding.RND_MIN_INF: lo,                      # towards -inf
        Rounding.RND_INF: hi if q > 0 else lo,         # away from zero
        Rounding.RND_CONV: lo if lo % 2 == 0 else hi,  # to even
    }[mode]


def brute_overflow(n: int, fmt: FixedFormat) -> int:
    lo = -(2 ** (fmt.width - 1)) if fmt.signed else 0
    hi = 2 ** (fmt.width - 1) - 1 if fmt.signed else 2 ** fmt.width - 1
    if fmt.overflow is Overflow.SAT_SYM and fmt.signed:
        lo = -hi  # ap_fixed's symmetric saturation never yields -2**(W-1)
    if lo <= n <= hi:
        return n
    if fmt.overflow is Overflow.WRAP:
        m = n % (2 ** fmt.width)
        return m - 2 ** fmt.width if m > hi else m
    if fmt.overflow is Overflow.SAT:
        return hi if n > hi else lo
    if fmt.overflow is Overflow.SAT_ZERO:
        return 0
    if fmt.overflow is Overflow.SAT_SYM:
        return hi if n > hi else (-hi if fmt.signed else lo)
    raise AssertionError


def brute_convert(value: Fraction, fmt: FixedFormat) -> int:
    return brute_overflow(brute_round(value * Fraction(2) ** fmt.frac_bits, fmt.rounding), fmt)


SMALL_FORMATS = [FixedFormat(w, i, s, r, o)
                 for (w, i, s) in [(1, 1, True), (3, 1, True), (4, 2, True), (4, 0, False), (3, 5, True),
                                   (5, -1, True), (3, 2, False)]
                 for r in Rounding for o in Overflow]


@pytest.mark.parametrize("to", SMALL_FORMATS, ids=str)
@pytest.mark.parametrize("src_frac", [0, 2, 4])
def test_requantize_exhaustive(to, src_frac):
    raw = np.arange(-70, 71)
    got = requantize(raw, src_frac, to)
    want = [brute_convert(Fraction(int(v), 2 ** src_frac), to) for v in raw]
    assert got.tolist() == want


@pytest.mark.parametrize("to", SMALL_FORMATS, ids=str)
def test_quantize_floats_exhaustive(to):
    # every multiple of 1/32 in [-9, 9], plus values that are not on any grid
    values = [k / 32 for k in range(-9 * 32, 9 * 32 + 1)] + [0.1, -0.1, 1 / 3, -2 / 3, 1e-300, -1e-300]
    got = quantize(np.array(values), to)
    want = [brute_convert(Fraction(v), to) for v in values]
    assert got.tolist() == want


def test_wide_values_are_exact():
    to = FixedFormat(90, 80, True, Rounding.RND_CONV, Overflow.SAT)
    raw = np.array([2 ** 100 + 2 ** 19, -(2 ** 100) - 3 * 2 ** 19, 2 ** 120], dtype=object)
    got = requantize(raw, 30, to)
    want = [brute_convert(Fraction(int(v), 2 ** 30), to) for v in raw]
    assert [int(v) for v in got] == want


@pytest.mark.parametrize("text, fmt", [
    ("fixed<16,6>", FixedFormat(16, 6)),
    ("ufixed<8,0>", FixedFormat(8, 0, False)),
    ("fixed<16,6,RND,SAT>", FixedFormat(16, 6, True, Rounding.RND, Overflow.SAT)),
    ("ap_fixed<16,6,AP_RND,AP_SAT>", FixedFormat(16, 6, True, Rounding.RND, Overflow.SAT)),
    ("ap_ufixed<10, 3, AP_RND_CONV, AP_SAT_SYM>", FixedFormat(10, 3, False, Rounding.RND_CONV, Overflow.SAT_SYM)),
    ("ap_fixed<8,3,AP_TRN_ZERO>", FixedFormat(8, 3, True, Rounding.TRN_ZERO)),
    ("ap_int<8>", FixedFormat(8, 8)),
    ("ap_uint<4>", FixedFormat(4, 4, False)),
    ("fixed<6,-2>", FixedFormat(6, -2)),
    ("ap_fixed<16,6,AP_RND,AP_SAT,0>", FixedFormat(16, 6, True, Rounding.RND, Overflow.SAT)),
])
def test_parse(text, fmt):
    assert FixedFormat.parse(text) == fmt
    assert FixedFormat.parse(str(fmt)) == fmt
    assert FixedFormat.parse(fmt.to_ap()) == fmt


@pytest.mark.parametrize("text, match", [
    ("fixed<16>", "needs width and integer bits"),
    ("fixed<0,0>", "width must be at least 1"),
    ("fixed<16,6,RND,SATURATE>", "unknown overflow mode 'SATURATE'"),
    ("fixed<16,6,ROUND>", "unknown rounding mode 'ROUND'"),
    ("float32", "cannot parse fixed-point format 'float32'"),
    ("ap_fixed<16,6,AP_RND,AP_SAT,2>", "saturation bits"),
])
def test_parse_errors(text, match):
    with pytest.raises(FormatError, match=match):
        FixedFormat.parse(text)


def test_ranges():
    f = FixedFormat.parse("fixed<16,6>")
    assert (f.frac_bits, f.min_int, f.max_int) == (10, -32768, 32767)
    assert f.min_value == -32.0 and f.max_value == 32 - 2 ** -10
    u = FixedFormat.parse("ufixed<8,0>")
    assert (u.min_value, u.max_value) == (0.0, 255 / 256)


def test_quantize_rejects_nan():
    with pytest.raises(ValueError, match="non-finite"):
        quantize([1.0, float("nan")], FixedFormat(8, 3))


@pytest.mark.parametrize("lo, hi", list(itertools.product([-9, -8, -1, 0, 1], [0, 1, 7, 8, 255])))
def test_containing(lo, hi):
    if lo > hi:
        return
    f = FixedFormat.containing(lo, hi, 3)
    assert f.min_int <= lo and hi <= f.max_int
    narrower = FixedFormat(f.width - 1, 0, f.signed) if f.width > 1 else None
    if narrower is not None:
        assert not (narrower.min_int <= lo and hi <= narrower.max_int)
