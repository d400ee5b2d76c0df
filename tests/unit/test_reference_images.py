"""The reference model's image ops against independent, direct definitions."""

import itertools
from fractions import Fraction

import numpy as np
import pytest

from nnhdl.fixed import FixedFormat, Overflow, Rounding
from nnhdl.ir import Conv, Graph, Input, Pool
from nnhdl.reference import average, divide_sticky, evaluate


def _round(q: Fraction, rounding):
    """Round an exact rational to an integer with an ap_fixed rounding mode."""
    f = q.numerator // q.denominator
    rest = q - f
    half = Fraction(1, 2)
    up = {
        Rounding.TRN: False,
        Rounding.TRN_ZERO: q < 0 and rest != 0,
        Rounding.RND: rest >= half,
        Rounding.RND_ZERO: rest > half or (rest == half and q < 0),
        Rounding.RND_MIN_INF: rest > half,
        Rounding.RND_INF: rest > half or (rest == half and q > 0),
        Rounding.RND_CONV: rest > half or (rest == half and f % 2 == 1),
    }[rounding]
    return f + int(up)


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("count", [3, 5, 6, 9, 25])
@pytest.mark.parametrize("in_frac, out_frac", [(4, 4), (6, 2), (2, 6), (3, 0)])
def test_average_is_the_exact_quotient_rounded(rounding, count, in_frac, out_frac):
    fmt = FixedFormat(40, 40 - out_frac, True, rounding, Overflow.WRAP)
    totals = np.arange(-4 * count * 16, 4 * count * 16 + 1)
    got = average(totals, count, in_frac, fmt)
    want = [_round(Fraction(int(t), count) * Fraction(2) ** (out_frac - in_frac), rounding) for t in totals]
    assert got.tolist() == want


def test_divide_sticky():
    v = np.arange(-50, 51)
    for d in (1, 3, 7, 12):
        want = [2 * (int(x) // d) + (int(x) % d != 0) for x in v]
        assert divide_sticky(v, d).tolist() == want


def test_conv_and_pool_by_loops(rng):
    """Conv (strided, asymmetric padding) and pooling equal plain loops over the definition."""
    fmt = FixedFormat(8, 4)
    wide = FixedFormat(30, 20)
    h, w, c, co, (kh, kw), (sh, sw), pads = 5, 6, 2, 3, (3, 2), (2, 1), (1, 1, 0, 1)
    weight = rng.integers(-100, 100, size=(kh * kw * c, co))
    bias = rng.integers(-100, 100, size=co)
    oh, ow = (h + 2 - kh) // sh + 1, (w + 1 - kw) // sw + 1
    conv = Conv("c", ("in",), (oh, ow, co), fmt=wide, weight=weight, bias=bias, weight_fmt=fmt, bias_fmt=fmt,
                accum_fmt=FixedFormat(30, 22), accum_exact=True, in_shape=(h, w, c), kernel=(kh, kw), strides=(sh, sw),
                padding=pads)
    g = Graph((Input("in", (), (h, w, c), fmt=fmt), conv), ("c",))
    x = rng.integers(-128, 128, size=(3, h, w, c))
    y = evaluate(g, x, raw=True)
    for n, r, q, o in itertools.product(range(3), range(oh), range(ow), range(co)):
        total = bias[o] << 4  # bias (4 fraction bits) aligned with the products (8)
        for i, j, ch in itertools.product(range(kh), range(kw), range(c)):
            yy, xx = r * sh - 1 + i, q * sw + j
            if 0 <= yy < h and 0 <= xx < w:
                total += int(x[n, yy, xx, ch]) * int(weight[(i * kw + j) * c + ch, o])
        assert y[n, r, q, o] == total * 4  # 8 fraction bits -> the result's 10, exactly
    pool = Pool("p", ("in",), (3, 3, c), fmt=FixedFormat(12, 4, True, Rounding.RND), kind="avg", in_shape=(h, w, c),
                pool=(3, 3), strides=(2, 2), padding=(1, 1, 1, 1))
    g = Graph((Input("in", (), (h, w, c), fmt=fmt), pool), ("p",))
    y = evaluate(g, x, raw=True)
    for n, r, q, ch in itertools.product(range(3), range(3), range(3), range(c)):
        vals = [int(x[n, yy, xx, ch]) for yy in range(2 * r - 1, 2 * r + 2) for xx in range(2 * q - 1, 2 * q + 2)
                if 0 <= yy < h and 0 <= xx < w]
        want = _round(Fraction(sum(vals), len(vals)) * 2 ** (8 - 4), Rounding.RND)
        assert y[n, r, q, ch] == want
