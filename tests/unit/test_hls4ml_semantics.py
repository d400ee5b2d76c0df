"""nnhdl's reference model against hls4ml's ap_fixed semantics, derived from the definitions.

The expectations here come from a small, deliberately slow emulator written from the meaning
of Xilinx ``ap_fixed`` assignment (exact rational arithmetic with :class:`fractions.Fraction`)
and from the order of operations in hls4ml's HLS templates (Vivado backend, ``io_parallel``):

* Dense, Latency strategy (``nnet_dense_latency.h``): every product cast to ``accum_t``, the
  bias cast to ``accum_t``, then ``acc += mult`` for inputs 0, 1, ... (each addition cast to
  ``accum_t``), then the accumulator cast to ``result_t``;
* ReLU (``nnet_activation.h``): ``res = x > 0 ? x : 0`` cast to the result type;
* Softmax ``stable`` (hls4ml 1.3.0): max, ``x_max - x`` cast to ``inp_norm_t`` (default: the
  input type without its sign bit, wrapping), exp table of ``exp(-v)`` addressed by its top bits,
  the exp values cast to ``accum_t`` and summed in reduce-tree order, the sum cast to
  ``inv_inp_t`` addressing the inverse table, product cast to the result type. The tables use
  the C library's float ``expf`` (through ctypes where available) as the C++ ``std::exp(float)``.

No code of nnhdl is used to compute an expectation; nnhdl is only asked for its op (built by
the ordinary passes or constructed directly) and for its outputs.
"""

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from nnhdl.ir import Dense, Softmax
from nnhdl.reference import dense_accumulate, evaluate_op
from nnhdl.softmax import softmax_plan_of, softmax_tables

from ..conftest import make_mlp

# ----------------------------------------------------------------------------------------------
# ap_fixed emulator (independent of nnhdl.fixed)
# ----------------------------------------------------------------------------------------------

ROUNDING_MODES = ("AP_TRN", "AP_TRN_ZERO", "AP_RND", "AP_RND_ZERO", "AP_RND_MIN_INF", "AP_RND_INF",
                  "AP_RND_CONV")
OVERFLOW_MODES = ("AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM")
HALF = Fraction(1, 2)


@dataclass(frozen=True)
class ApType:
    """``ap_[u]fixed<W, I, Q, O>``."""
    W: int
    I: int
    signed: bool = True
    Q: str = "AP_TRN"
    O: str = "AP_WRAP"

    @property
    def F(self):
        return self.W - self.I

    @property
    def lsb(self):
        return Fraction(2) ** (-self.F)

    @property
    def lo_int(self):
        return -(1 << (self.W - 1)) if self.signed else 0

    @property
    def hi_int(self):
        return (1 << (self.W - 1)) - 1 if self.signed else (1 << self.W) - 1

    def __str__(self):
        return f"ap_{'' if self.signed else 'u'}fixed<{self.W},{self.I},{self.Q},{self.O}>"


_AP_RE = re.compile(r"^ap_(u?)fixed<(-?\d+),(-?\d+)(?:,(AP_\w+))?(?:,(AP_\w+))?>$")


def ap(text):
    """Parse ``ap_fixed<W,I[,Q[,O]]>`` / ``ap_ufixed<...>`` (defaults AP_TRN, AP_WRAP)."""
    m = _AP_RE.match(text.replace(" ", ""))
    assert m, text
    q, o = m[4] or "AP_TRN", m[5] or "AP_WRAP"
    assert q in ROUNDING_MODES and o in OVERFLOW_MODES, text
    return ApType(int(m[2]), int(m[3]), m[1] != "u", q, o)


def round_to_int(q: Fraction, mode: str) -> int:
    """Round a rational (in LSB units) to an integer with an ap_fixed quantization mode."""
    fl = math.floor(q)
    frac = q - fl
    if frac == 0:
        return fl
    up = fl + 1
    positive = q > 0
    if mode == "AP_TRN":
        return fl
    if mode == "AP_TRN_ZERO":
        return fl if positive else up
    if frac < HALF:
        return fl
    if frac > HALF:
        return up
    # an exact tie
    if mode == "AP_RND":
        return up
    if mode == "AP_RND_ZERO":
        return fl if positive else up
    if mode == "AP_RND_MIN_INF":
        return fl
    if mode == "AP_RND_INF":
        return up if positive else fl
    if mode == "AP_RND_CONV":
        return fl if fl % 2 == 0 else up
    raise AssertionError(mode)


def ap_cast_int(value: Fraction, t: ApType) -> int:
    """The stored integer of ``t`` after ``t x = value;`` (quantization first, then overflow)."""
    n = round_to_int(Fraction(value) / t.lsb, t.Q)
    lo, hi = t.lo_int, t.hi_int
    if t.O == "AP_WRAP":
        n %= 1 << t.W
        if t.signed and n >= 1 << (t.W - 1):
            n -= 1 << t.W
        return n
    if t.O == "AP_SAT":
        return min(max(n, lo), hi)
    if t.O == "AP_SAT_ZERO":
        return n if lo <= n <= hi else 0
    if t.O == "AP_SAT_SYM":
        if not t.signed:
            return min(max(n, lo), hi)
        # symmetric: -max .. max; the code -2**(W-1) is never produced, even for an in-range value
        return min(max(n, -hi), hi)
    raise AssertionError(t.O)


def ap_cast(value: Fraction, t: ApType) -> Fraction:
    return ap_cast_int(value, t) * t.lsb


def from_raw(raw, t: ApType) -> Fraction:
    return int(raw) * t.lsb


def to_raw(value: Fraction, t: ApType) -> int:
    n = value / t.lsb
    assert n.denominator == 1, (value, t)
    return int(n)


def in_range(value: Fraction, t: ApType) -> bool:
    n = value / t.lsb
    return n.denominator == 1 and t.lo_int <= n <= t.hi_int


def word_top_bits(raw: int, t: ApType, n_bits: int) -> int:
    """The top ``n_bits`` bits of the W-bit two's complement word holding ``raw``."""
    return (raw % (1 << t.W)) >> (t.W - n_bits)


def value_with_top_bits(k: int, t: ApType, n_bits: int) -> Fraction:
    """The value of the W-bit word of ``t`` whose top bits are ``k`` and other bits zero."""
    word = k << (t.W - n_bits)
    if t.signed and word >= 1 << (t.W - 1):
        word -= 1 << t.W
    return word * t.lsb


# ----------------------------------------------------------------------------------------------
# hls4ml layers written from their templates
# ----------------------------------------------------------------------------------------------

def hls4ml_dense_latency(x, w, b, data_t, weight_t, bias_t, accum_t, result_t, stats=None):
    """One sample of ``nnet::dense_latency``: returns ``(acc, res)`` (lists of values).

    ``x``, ``w`` (n_in x n_out), ``b`` are values already of types data_t, weight_t, bias_t.
    ``stats`` (a dict) counts rounded products and overflowing running sums."""
    n_in, n_out = len(w), len(b)
    assert all(in_range(v, data_t) for v in x)
    mult = [[None] * n_out for _ in range(n_in)]
    for i in range(n_in):
        for j in range(n_out):
            full = x[i] * w[i][j]  # decltype(a * w): full precision
            mult[i][j] = ap_cast(full, accum_t)
            if stats is not None and mult[i][j] != full:
                stats["product_changed"] = stats.get("product_changed", 0) + 1
            if stats is not None and (full / accum_t.lsb).denominator != 1:
                stats["product_rounded"] = stats.get("product_rounded", 0) + 1
    acc = [ap_cast(b[j], accum_t) for j in range(n_out)]
    for i in range(n_in):
        for j in range(n_out):
            s = acc[j] + mult[i][j]
            if stats is not None and not in_range(s, accum_t):
                stats["sum_overflow"] = stats.get("sum_overflow", 0) + 1
            acc[j] = ap_cast(s, accum_t)
    res = [ap_cast(a, result_t) for a in acc]
    return acc, res


def hls4ml_relu(x, result_t):
    return [ap_cast(v if v > 0 else Fraction(0), result_t) for v in x]


def ceillog2(x):
    return 1 if x <= 2 else 1 + ceillog2((x + 1) // 2)


def hls4ml_reduce(values, op):
    n = len(values)
    if n == 1:
        return values[0]
    if n == 2:
        return op(values[0], values[1])
    left = 1
    while left * 2 < n:
        left *= 2
    return op(hls4ml_reduce(values[:left], op), hls4ml_reduce(values[left:], op))


def float32_to_fraction(f):
    """The exact value of a float32 as assigned to an ap_fixed. +inf has the largest exponent
    field; ap_fixed's float constructor reads it as a huge power of two (2**128 for the float32
    encoding, 2**1024 once widened to double): either way a value far beyond any format used
    here, whose low bits are all zero, so SAT clamps it to the max and WRAP yields 0."""
    f = np.float32(f)
    if np.isinf(f):
        return Fraction(2) ** 128 * (1 if f > 0 else -1)
    assert np.isfinite(f)
    return Fraction(float(f))


def exact_float32(v: Fraction):
    f = np.float32(float(v))
    assert Fraction(float(f)) == v, v  # at most N significant bits: exact in float32
    return f


def _libm_expf():
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("m")
    if not name:
        return None
    fn = ctypes.CDLL(name).expf
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return lambda x: np.float32(fn(float(x)))


#: ``std::exp(float)`` as hls4ml's compiled C++ calls it: the C library's expf where ctypes finds
#: it, else float64 exp rounded to float32.
EXPF = _libm_expf() or (lambda x: np.float32(math.exp(float(x))) if float(x) < 89 else np.float32(np.inf))


@functools.lru_cache(maxsize=None)
def hls4ml_table_sizes(table_size, data_t: ApType, inv_t: ApType, norm_given: bool):
    """``(exp_table_size, inv_table_size)``: ``fix_softmax_table_size`` clips ``table_size`` to
    ``2**min(input width, inv_table_t width)``; the softmax config template then clips the exp
    table to ``2**(W-1)`` for a signed input when it derives ``inp_norm_t`` itself."""
    size = min(table_size, 2 ** min(data_t.W, inv_t.W))
    exp_size = min(size, 2 ** (data_t.W - 1)) if data_t.signed and not norm_given else size
    return exp_size, size


def default_inp_norm(data_t: ApType) -> ApType:
    """The config template's ``ap_ufixed<W - signed, I - signed>`` (AP_TRN, AP_WRAP)."""
    s = int(data_t.signed)
    return ApType(data_t.W - s, data_t.I - s, False)


@functools.lru_cache(maxsize=None)
def hls4ml_softmax_tables(norm_t: ApType, exp_t: ApType, inv_inp_t: ApType, inv_t: ApType, exp_size: int,
                          inv_size: int):
    """``init_exp_table<inp_norm_t>(table, negative=true)`` and ``init_invert_table<inv_inp_t>`` (values)."""
    exp_table, inv_table = [], []
    with np.errstate(over="ignore", divide="ignore"):
        for k in range(exp_size):
            x = exact_float32(value_with_top_bits(k, norm_t, ceillog2(exp_size)))
            exp_table.append(ap_cast(float32_to_fraction(EXPF(-x)), exp_t))
        for k in range(inv_size):
            y = exact_float32(value_with_top_bits(k, inv_inp_t, ceillog2(inv_size)))
            inv_table.append(ap_cast(float32_to_fraction(np.float32(1.0) / y), inv_t))
    return tuple(exp_table), tuple(inv_table)


def hls4ml_softmax_stable(x, data_t, result_t, exp_t, inv_t, table_size, accum_t, inv_inp_t, norm_t=None,
                          stats=None):
    """One sample of hls4ml 1.3's ``nnet::softmax_stable`` (values in, values out); ``norm_t``
    None: the default ``inp_norm_t``."""
    exp_size, inv_size = hls4ml_table_sizes(table_size, data_t, inv_t, norm_t is not None)
    norm_t = norm_t or default_inp_norm(data_t)
    exp_table, inv_table = hls4ml_softmax_tables(norm_t, exp_t, inv_inp_t, inv_t, exp_size, inv_size)
    x_max = max(x)
    exp_res = []
    for xi in x:
        d = ap_cast(x_max - xi, norm_t)
        if stats is not None and d != x_max - xi:
            stats["diff_changed"] = stats.get("diff_changed", 0) + 1
        k = word_top_bits(to_raw(d, norm_t), norm_t, ceillog2(exp_size))
        exp_res.append(ap_cast(exp_table[k], accum_t))
    exp_sum = ap_cast(hls4ml_reduce(exp_res, lambda a, b: ap_cast(a + b, accum_t)), inv_inp_t)
    inv = inv_table[word_top_bits(to_raw(exp_sum, inv_inp_t), inv_inp_t, ceillog2(inv_size))]
    return [ap_cast(e * inv, result_t) for e in exp_res]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def assert_fmt(fmt, t: ApType):
    """An nnhdl FixedFormat is the ap type we asked for."""
    got = (fmt.width, fmt.int_bits, fmt.signed, "AP_" + fmt.rounding.value, "AP_" + fmt.overflow.value)
    assert got == (t.W, t.I, t.signed, t.Q, t.O), (str(fmt), str(t))


def random_raw(rng, t: ApType, batch, n):
    """Uniform raw codes over the whole type, plus rows of extremes and mixed extremes."""
    x = rng.integers(t.lo_int, t.hi_int + 1, size=(batch, n), dtype=np.int64)
    x[0, :], x[1, :] = t.lo_int, t.hi_int
    x[2, :] = np.where(np.arange(n) % 2 == 0, t.hi_int, t.lo_int)
    x[3, :] = np.where(np.arange(n) % 2 == 0, t.lo_int, t.hi_int)
    x[4, :] = 0
    extremes = rng.random((batch, n)) < 0.25
    x[5:] = np.where(extremes[5:], np.where(rng.random((batch - 5, n)) < 0.5, t.lo_int, t.hi_int), x[5:])
    return x


def dense_config(in_t, w_t, b_t, acc_t, res_t):
    fc1 = {"weight": str(w_t), "bias": str(b_t), "result": str(res_t)}
    if acc_t is not None:
        fc1["accum"] = str(acc_t)
    return {"precision": "fixed<16,6>", "layer": {"in": {"result": str(in_t)}, "fc1": fc1}}


def emulate_dense(op, xr, in_t, w_t, b_t, acc_t, res_t, activation="linear", stats=None):
    """Raw accumulators and raw results of the emulator for raw inputs ``xr``."""
    w = [[from_raw(v, w_t) for v in row] for row in op.weight]
    b = [from_raw(v, b_t) for v in op.bias]
    accs, ress = [], []
    for row in xr:
        x = [from_raw(v, in_t) for v in row]
        if activation == "linear":
            acc, res = hls4ml_dense_latency(x, w, b, in_t, w_t, b_t, acc_t, res_t, stats)
        else:
            # hls4ml Dense whose result_t is its accum_t, then a ReLU layer into res_t
            acc, acc_out = hls4ml_dense_latency(x, w, b, in_t, w_t, b_t, acc_t, acc_t, stats)
            assert acc_out == acc
            res = hls4ml_relu(acc, res_t)
        accs.append([to_raw(v, acc_t) for v in acc])
        ress.append([to_raw(v, res_t) for v in res])
    return np.array(accs, dtype=object), np.array(ress, dtype=object)


def assert_raw_equal(got, expected, x, what):
    got = np.asarray(got).astype(object)
    bad = np.argwhere(got != expected)
    if len(bad):
        s, j = bad[0]
        raise AssertionError(
            f"{what}: {len(bad)} of {expected.size} values differ; first at sample {s}, output {j}: "
            f"x_raw={list(map(int, x[s]))} expected {expected[s, j]} got {got[s, j]}")


# ----------------------------------------------------------------------------------------------
# the emulator itself (spot checks of the definitions)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, t, expected", [
    # ties at 2.5 / -2.5 LSB in ap_fixed<8,8>
    ("5/2", "ap_fixed<8,8,AP_RND>", 3), ("-5/2", "ap_fixed<8,8,AP_RND>", -2),
    ("5/2", "ap_fixed<8,8,AP_RND_ZERO>", 2), ("-5/2", "ap_fixed<8,8,AP_RND_ZERO>", -2),
    ("5/2", "ap_fixed<8,8,AP_RND_MIN_INF>", 2), ("-5/2", "ap_fixed<8,8,AP_RND_MIN_INF>", -3),
    ("5/2", "ap_fixed<8,8,AP_RND_INF>", 3), ("-5/2", "ap_fixed<8,8,AP_RND_INF>", -3),
    ("5/2", "ap_fixed<8,8,AP_RND_CONV>", 2), ("7/2", "ap_fixed<8,8,AP_RND_CONV>", 4),
    ("-5/2", "ap_fixed<8,8,AP_RND_CONV>", -2), ("-7/2", "ap_fixed<8,8,AP_RND_CONV>", -4),
    ("-13/5", "ap_fixed<8,8,AP_TRN>", -3), ("-13/5", "ap_fixed<8,8,AP_TRN_ZERO>", -2),
    ("13/5", "ap_fixed<8,8,AP_TRN_ZERO>", 2),
    # overflow after rounding: 127.5 rounds to 128, then overflows
    ("255/2", "ap_fixed<8,8,AP_RND,AP_WRAP>", -128), ("255/2", "ap_fixed<8,8,AP_RND,AP_SAT>", 127),
    ("255/2", "ap_fixed<8,8,AP_RND,AP_SAT_ZERO>", 0), ("255/2", "ap_fixed<8,8,AP_TRN,AP_SAT_ZERO>", 127),
    ("-200", "ap_fixed<8,8,AP_TRN,AP_SAT_SYM>", -127), ("-128", "ap_fixed<8,8,AP_TRN,AP_SAT_SYM>", -127),
    ("-128", "ap_fixed<8,8,AP_TRN,AP_SAT>", -128), ("-1", "ap_ufixed<8,8,AP_TRN,AP_WRAP>", 255),
    ("-1", "ap_ufixed<8,8,AP_TRN,AP_SAT_SYM>", 0), ("300", "ap_ufixed<8,8,AP_TRN,AP_SAT>", 255),
])
def test_emulator_definitions(value, t, expected):
    assert ap_cast_int(Fraction(value), ap(t)) == expected


def test_emulator_reduce_and_ceillog2():
    assert [ceillog2(n) for n in (1, 2, 3, 4, 5, 64, 1000, 1024, 1025)] == [1, 1, 2, 2, 3, 6, 10, 10, 11]
    order = hls4ml_reduce([f"x{i}" for i in range(7)], lambda a, b: f"({a}+{b})")
    assert order == "(((x0+x1)+(x2+x3))+((x4+x5)+x6))"


# ----------------------------------------------------------------------------------------------
# Dense
# ----------------------------------------------------------------------------------------------

# shape, input, weight, bias, accum, result, weight_scale. Every case is built so that products
# round into accum_t and running sums overflow it (asserted below).
DENSE_CASES = {
    "wrap_trn": ((4, 3), "ap_fixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                 "ap_fixed<10,3,AP_TRN,AP_WRAP>", "ap_fixed<8,3,AP_RND,AP_SAT>", 2.0),
    "sat_rnd": ((8, 5), "ap_fixed<8,3>", "ap_fixed<8,2>", "ap_fixed<12,3>",
                "ap_fixed<10,3,AP_RND,AP_SAT>", "ap_fixed<6,2,AP_RND_CONV,AP_WRAP>", 2.0),
    "satzero_rndzero": ((16, 4), "ap_fixed<8,3>", "ap_fixed<6,1>", "ap_fixed<8,2>",
                        "ap_fixed<9,2,AP_RND_ZERO,AP_SAT_ZERO>", "ap_fixed<8,2,AP_TRN_ZERO,AP_SAT_SYM>", 1.5),
    "satsym_rndinf": ((7, 6), "ap_fixed<10,4>", "ap_fixed<8,2>", "ap_fixed<8,3>",
                      "ap_fixed<10,2,AP_RND_INF,AP_SAT_SYM>", "ap_fixed<7,2,AP_RND_MIN_INF,AP_SAT>", 2.0),
    "satsym_trnzero_tiny": ((5, 3), "ap_fixed<6,2>", "ap_fixed<6,1>", "ap_fixed<6,1>",
                            "ap_fixed<6,1,AP_TRN_ZERO,AP_SAT_SYM>", "ap_fixed<4,1,AP_RND,AP_SAT_SYM>", 2.0),
    "sat_rndmininf": ((12, 2), "ap_fixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                      "ap_fixed<11,4,AP_RND_MIN_INF,AP_SAT>", "ap_ufixed<8,3,AP_RND_INF,AP_SAT>", 2.0),
    "wrap_rndconv": ((3, 8), "ap_fixed<12,5>", "ap_fixed<10,3>", "ap_fixed<10,3>",
                     "ap_fixed<12,4,AP_RND_CONV,AP_WRAP>", "ap_fixed<5,4,AP_RND_MIN_INF,AP_SAT_ZERO>", 3.0),
    "satzero_trn": ((6, 6), "ap_fixed<7,3>", "ap_fixed<7,2>", "ap_fixed<7,2>",
                    "ap_fixed<8,3,AP_TRN,AP_SAT_ZERO>", "ap_fixed<8,3,AP_RND_ZERO,AP_WRAP>", 2.0),
    "uin_sat": ((6, 4), "ap_ufixed<8,2>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                "ap_fixed<9,2,AP_RND,AP_SAT>", "ap_ufixed<8,3,AP_RND,AP_SAT>", 2.0),
    "uin_wrap": ((10, 3), "ap_ufixed<6,0>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                 "ap_fixed<8,1,AP_RND_CONV,AP_WRAP>", "ap_fixed<8,1,AP_TRN,AP_WRAP>", 2.0),
    "uin_uacc_sat": ((8, 4), "ap_ufixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                     "ap_ufixed<9,1,AP_RND,AP_SAT>", "ap_ufixed<8,2,AP_RND,AP_SAT>", 3.0),
    "negint_weights_satsym": ((9, 3), "ap_fixed<8,3>", "ap_fixed<6,-1>", "ap_fixed<8,0>",
                              "ap_fixed<9,1,AP_RND,AP_SAT_SYM>", "ap_fixed<8,1,AP_RND_ZERO,AP_SAT>", 0.5),
    "wide_beyond_int64": ((4, 3), "ap_fixed<40,10>", "ap_fixed<36,6>", "ap_fixed<30,6>",
                          "ap_fixed<70,12,AP_RND_CONV,AP_SAT>", "ap_fixed<24,10,AP_RND,AP_SAT>", 20.0),
}


def _build_dense(rng, case, activation="linear", batch=None):
    shape, *types, scale = case
    in_t, w_t, b_t, acc_t, res_t = (None if t is None else ap(t) for t in types)
    graph = make_mlp(rng, shape, [activation], dense_config(in_t, w_t, b_t, acc_t, res_t), weight_scale=scale)
    op, in_fmt = graph.op("fc1"), graph.op("in").fmt
    assert isinstance(op, Dense) and op.activation == activation
    assert_fmt(in_fmt, in_t)
    assert_fmt(op.weight_fmt, w_t)
    assert_fmt(op.bias_fmt, b_t)
    assert_fmt(op.fmt, res_t)
    if acc_t is not None:
        assert_fmt(op.accum_fmt, acc_t)
    n_in = shape[0]
    batch = batch or max(24, min(120, 1600 // (n_in * shape[1])))
    x = random_raw(rng, in_t, batch, n_in)
    # rows matching the signs of one output's weights: that output's largest / smallest sums
    for j in range(min(shape[1], (batch - 5) // 2)):
        positive = op.weight[:, j] > 0
        x[5 + 2 * j] = np.where(positive, in_t.hi_int, in_t.lo_int)
        x[6 + 2 * j] = np.where(positive, in_t.lo_int, in_t.hi_int)
    return op, in_fmt, x, (in_t, w_t, b_t, acc_t, res_t)


@pytest.mark.parametrize("case", list(DENSE_CASES), ids=list(DENSE_CASES))
def test_dense_accum_cast_linear(rng, case):
    """Linear Dense with a narrow accum_t: bit-identical accumulators and results."""
    op, in_fmt, x, types = _build_dense(rng, DENSE_CASES[case])
    stats = {}
    acc_exp, res_exp = emulate_dense(op, x, *types, stats=stats)
    assert stats.get("product_rounded", 0) > 0, "the case must round products"
    assert stats.get("sum_overflow", 0) > 0, "the case must overflow running sums"
    assert_raw_equal(dense_accumulate(op, x, in_fmt), acc_exp, x, f"{case}: accumulator")
    assert_raw_equal(evaluate_op(op, [x], [in_fmt]), res_exp, x, f"{case}: result")


@pytest.mark.parametrize("case", ["wrap_trn", "sat_rnd", "satsym_rndinf", "uin_sat", "satzero_rndzero"])
def test_dense_accum_cast_relu(rng, case):
    """nnhdl's fused ReLU is cast_result(relu(acc)): an hls4ml Dense whose result_t is accum_t,
    followed by an hls4ml ReLU into the result type."""
    op, in_fmt, x, types = _build_dense(rng, DENSE_CASES[case], activation="relu")
    _, res_exp = emulate_dense(op, x, *types, activation="relu")
    assert_raw_equal(evaluate_op(op, [x], [in_fmt]), res_exp, x, f"{case}: relu result")


# Products fit accum_t exactly (enough fractional and integer bits for every single product), but
# running sums overflow: hls4ml still applies accum_t's overflow mode after *each* addition.
EXACT_PRODUCT_CASES = {
    "exactprod_wrap": ((8, 4), "ap_fixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                       "ap_fixed<16,5,AP_TRN,AP_WRAP>", "ap_fixed<16,5,AP_TRN,AP_WRAP>", 3.0),
    "exactprod_sat": ((8, 4), "ap_fixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                      "ap_fixed<16,5,AP_TRN,AP_SAT>", "ap_fixed<16,5,AP_TRN,AP_WRAP>", 3.0),
    "exactprod_satzero": ((8, 4), "ap_fixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                          "ap_fixed<16,5,AP_RND,AP_SAT_ZERO>", "ap_fixed<16,5,AP_TRN,AP_WRAP>", 3.0),
    "exactprod_satsym": ((8, 4), "ap_fixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                         "ap_fixed<16,5,AP_RND_CONV,AP_SAT_SYM>", "ap_fixed<16,5,AP_TRN,AP_WRAP>", 3.0),
}


@pytest.mark.parametrize("case", list(EXACT_PRODUCT_CASES), ids=list(EXACT_PRODUCT_CASES))
def test_dense_exact_products_overflowing_sum(rng, case):
    op, in_fmt, x, types = _build_dense(rng, EXACT_PRODUCT_CASES[case])
    stats = {}
    acc_exp, res_exp = emulate_dense(op, x, *types, stats=stats)
    assert stats.get("product_changed", 0) == 0, "products must fit accum_t exactly"
    assert stats.get("sum_overflow", 0) > 0, "the case must overflow running sums"
    assert_raw_equal(dense_accumulate(op, x, in_fmt), acc_exp, x, f"{case}: accumulator")
    assert_raw_equal(evaluate_op(op, [x], [in_fmt]), res_exp, x, f"{case}: result")


@pytest.mark.parametrize("acc_s, expected", [
    ("ap_fixed<8,8,AP_TRN,AP_SAT>", [78, 98]),        # 49, 98, 147 -> 127, 127 - 49 = 78
    ("ap_fixed<8,8,AP_TRN,AP_SAT_ZERO>", [-49, 98]),  # 49, 98, 147 -> 0, 0 - 49 = -49
    ("ap_fixed<8,8,AP_TRN,AP_SAT_SYM>", [78, 98]),
    ("ap_fixed<8,8,AP_TRN,AP_WRAP>", [98, 98]),       # wrapping is order independent
])
def test_dense_saturating_running_sum_minimal(acc_s, expected):
    """Smallest hand-made case: ap_fixed<4,4> inputs (7, 7, 7, 7) and (7, 7, 0, 0), weights
    (7, 7, 7, -7), bias 0; every product (49) fits accum_t ap_fixed<8,8> exactly, the third
    running sum (147) overflows it and the fourth product brings the exact total back in range."""
    in_t, w_t, b_t, res_t = ap("ap_fixed<4,4>"), ap("ap_fixed<4,4>"), ap("ap_fixed<4,4>"), ap("ap_fixed<16,16>")
    acc_t = ap(acc_s)
    cfg = make_mlp(np.random.default_rng(0), (4, 1), ["linear"], dense_config(in_t, w_t, b_t, acc_t, res_t))
    op = cfg.op("fc1").replace(weight=np.array([[7], [7], [7], [-7]], dtype=np.int64),
                               bias=np.array([0], dtype=np.int64))
    in_fmt = cfg.op("in").fmt
    x = np.array([[7, 7, 7, 7], [7, 7, 0, 0]], dtype=np.int64)
    acc_exp, res_exp = emulate_dense(op, x, in_t, w_t, b_t, acc_t, res_t)
    assert list(res_exp[:, 0]) == expected
    assert_raw_equal(dense_accumulate(op, x, in_fmt), acc_exp, x, f"{acc_s}: accumulator")
    assert_raw_equal(evaluate_op(op, [x], [in_fmt]), res_exp, x, f"{acc_s}: result")


def test_dense_satsym_partial_sum_at_most_negative_code():
    """AP_SAT_SYM accumulator whose interval bound is exactly -2**(W-1) (so nothing can
    overflow): hls4ml still turns a running sum equal to -2**(W-1) into -max at that step.

    ap_ufixed<4,4> inputs, ap_fixed<8,8> weights (-8, 1) and bias (-8), accum
    ap_fixed<8,8,AP_TRN,AP_SAT_SYM>: bias + x0 * -8 reaches -128 for x0 = 15."""
    in_t, w_t, b_t = ap("ap_ufixed<4,4>"), ap("ap_fixed<8,8>"), ap("ap_fixed<8,8>")
    acc_t, res_t = ap("ap_fixed<8,8,AP_TRN,AP_SAT_SYM>"), ap("ap_fixed<16,16>")
    cfg = make_mlp(np.random.default_rng(0), (2, 1), ["linear"], dense_config(in_t, w_t, b_t, acc_t, res_t))
    base = cfg.op("fc1")
    op = base.replace(weight=np.array([[-8], [1]], dtype=np.int64), bias=np.array([-8], dtype=np.int64))
    in_fmt = cfg.op("in").fmt
    x = np.array([[15, 0], [15, 3], [15, 15], [14, 0], [0, 0], [7, 9]], dtype=np.int64)
    acc_exp, res_exp = emulate_dense(op, x, in_t, w_t, b_t, acc_t, res_t)
    assert list(res_exp[:3, 0]) == [-127, -124, -112]  # -128 -> -127 at the second addition
    assert_raw_equal(dense_accumulate(op, x, in_fmt), acc_exp, x, "SAT_SYM edge: accumulator")
    assert_raw_equal(evaluate_op(op, [x], [in_fmt]), res_exp, x, "SAT_SYM edge: result")


# Default configuration (no accum): the accumulator is exact, so the result is the exact
# x @ w + b cast once to result_t.
EXACT_CASES = {
    "default_16_6": ((4, 3), "ap_fixed<16,6>", "ap_fixed<16,6>", "ap_fixed<16,6>", "ap_fixed<16,6>", 1.0),
    "wide_16x8": ((16, 8), "ap_fixed<10,4>", "ap_fixed<8,1>", "ap_fixed<12,3>",
                  "ap_fixed<8,3,AP_RND_CONV,AP_SAT>", 2.0),
    "wrap_result_32x5": ((32, 5), "ap_fixed<8,3>", "ap_fixed<8,2>", "ap_fixed<8,2>",
                         "ap_fixed<6,2,AP_RND,AP_WRAP>", 2.0),
    "unsigned_in": ((12, 4), "ap_ufixed<8,1>", "ap_fixed<9,2>", "ap_fixed<6,3>",
                    "ap_fixed<7,3,AP_RND_INF,AP_SAT_SYM>", 2.0),
    "unsigned_out_satzero": ((6, 6), "ap_fixed<7,2>", "ap_fixed<7,0>", "ap_fixed<5,1>",
                             "ap_ufixed<5,1,AP_RND_ZERO,AP_SAT_ZERO>", 1.0),
}


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("case", list(EXACT_CASES), ids=list(EXACT_CASES))
def test_dense_default_exact(rng, case, activation):
    shape, in_s, w_s, b_s, res_s, scale = EXACT_CASES[case]
    in_t, w_t, b_t, res_t = ap(in_s), ap(w_s), ap(b_s), ap(res_s)
    graph = make_mlp(rng, shape, [activation], dense_config(in_t, w_t, b_t, None, res_t), weight_scale=scale)
    op, in_fmt = graph.op("fc1"), graph.op("in").fmt
    assert op.accum_exact
    assert_fmt(op.fmt, res_t)
    assert_fmt(op.weight_fmt, w_t)
    w = [[from_raw(v, w_t) for v in row] for row in op.weight]
    b = [from_raw(v, b_t) for v in op.bias]
    x = random_raw(rng, in_t, 64, shape[0])
    exact_acc, expected = [], []
    for row in x:
        xv = [from_raw(v, in_t) for v in row]
        s = [b[j] + sum(xv[i] * w[i][j] for i in range(shape[0])) for j in range(shape[1])]
        exact_acc.append(s)
        if activation == "relu":
            s = [v if v > 0 else Fraction(0) for v in s]
        expected.append([to_raw(ap_cast(v, res_t), res_t) for v in s])
    expected = np.array(expected, dtype=object)
    acc_fmt = op.accum_fmt
    acc_got = dense_accumulate(op, x, in_fmt)
    acc_vals = np.array([[int(v) * Fraction(2) ** (-acc_fmt.frac_bits) for v in row] for row in acc_got], dtype=object)
    assert (acc_vals == np.array(exact_acc, dtype=object)).all(), "the default accumulator must be exact"
    assert_raw_equal(evaluate_op(op, [x], [in_fmt]), expected, x, f"{case}/{activation}")


# ----------------------------------------------------------------------------------------------
# Softmax (stable, table based)
# ----------------------------------------------------------------------------------------------

DEFAULT_TABLE = "ap_fixed<18,8,AP_RND,AP_SAT>"

# n, input, result, exp_table_t, inv_table_t, table_size, {accum_t, inv_inp_t, inp_norm_t} (default
# DEFAULT_TABLE, DEFAULT_TABLE, derived from the input)
SOFTMAX_CASES = {
    "n4_default": (4, "ap_fixed<16,6>", "ap_ufixed<16,0,AP_RND,AP_SAT>", DEFAULT_TABLE, DEFAULT_TABLE, 1024, {}),
    "n5_jet_tagger": (5, "ap_fixed<16,6>", "ap_fixed<16,6>", DEFAULT_TABLE, DEFAULT_TABLE, 1024, {}),
    "n8_narrow_in_clipped": (8, "ap_fixed<8,3>", "ap_ufixed<8,0,AP_RND_CONV,AP_SAT>", DEFAULT_TABLE,
                             DEFAULT_TABLE, 1024, {}),
    "n4_small_tables": (4, "ap_fixed<10,4,AP_RND,AP_SAT>", "ap_fixed<10,1,AP_TRN,AP_SAT_SYM>",
                        "ap_fixed<12,4,AP_RND,AP_SAT>", "ap_fixed<12,6,AP_RND,AP_SAT>", 256, {}),
    "n5_unsigned_wrap_in": (5, "ap_ufixed<8,3>", "ap_ufixed<10,1,AP_RND,AP_SAT>", DEFAULT_TABLE, DEFAULT_TABLE, 64,
                            {}),
    "n3_unsigned_sat_in": (3, "ap_ufixed<8,3,AP_RND,AP_SAT>", "ap_fixed<12,2,AP_RND_INF,AP_SAT>", DEFAULT_TABLE,
                           DEFAULT_TABLE, 128, {}),
    "n10_clipped_2048": (10, "ap_fixed<6,3>", "ap_fixed<9,1,AP_RND,AP_SAT>", DEFAULT_TABLE, DEFAULT_TABLE, 2048, {}),
    "n13_wrapping_tables": (13, "ap_fixed<18,8>", "ap_fixed<12,2,AP_RND_ZERO,AP_WRAP>", "ap_fixed<10,3,AP_TRN,AP_WRAP>",
                            "ap_fixed<10,5,AP_RND_INF,AP_WRAP>", 512,
                            {"accum": "ap_fixed<10,3,AP_TRN,AP_WRAP>", "inv_inp": "ap_fixed<10,3,AP_TRN,AP_WRAP>"}),
    "n2_table2": (2, "ap_fixed<16,6>", "ap_ufixed<16,0,AP_RND,AP_SAT>", DEFAULT_TABLE, DEFAULT_TABLE, 2, {}),
    "n1": (1, "ap_fixed<8,3>", "ap_ufixed<16,0,AP_RND,AP_SAT>", DEFAULT_TABLE, DEFAULT_TABLE, 1024, {}),
    "n8_wide_logits_coarse": (8, "ap_fixed<24,14>", "ap_ufixed<12,0,AP_RND,AP_SAT>", DEFAULT_TABLE, DEFAULT_TABLE,
                              1024, {}),
    "n4_exp_overflow_wrap": (4, "ap_fixed<12,9>", "ap_fixed<16,2,AP_RND,AP_SAT>", "ap_fixed<18,8,AP_RND,AP_WRAP>",
                             "ap_fixed<18,8,AP_RND_CONV,AP_SAT_ZERO>", 256, {}),
    "n6_unsigned_exp": (6, "ap_fixed<16,6>", "ap_ufixed<16,0,AP_RND,AP_SAT>", "ap_ufixed<16,6,AP_RND,AP_SAT>",
                        "ap_ufixed<16,8,AP_RND,AP_SAT_SYM>", 1024, {"inv_inp": "ap_ufixed<12,4,AP_RND,AP_SAT>"}),
    "n7_narrow_accum_sat": (7, "ap_fixed<12,5>", "ap_ufixed<12,0,AP_RND,AP_SAT>", DEFAULT_TABLE, DEFAULT_TABLE, 512,
                            {"accum": "ap_fixed<8,2,AP_RND_CONV,AP_SAT>", "inv_inp": "ap_ufixed<9,3,AP_RND,AP_SAT>"}),
    "n5_inp_norm_sat_rnd": (5, "ap_fixed<16,6>", "ap_ufixed<16,0,AP_RND,AP_SAT>", DEFAULT_TABLE, DEFAULT_TABLE, 1024,
                            {"inp_norm": "ap_ufixed<12,4,AP_RND,AP_SAT>"}),
    "n6_inp_norm_signed": (6, "ap_fixed<10,4>", "ap_ufixed<10,0,AP_RND,AP_SAT>", DEFAULT_TABLE, DEFAULT_TABLE, 256,
                           {"inp_norm": "ap_fixed<10,4,AP_TRN,AP_WRAP>"}),
    "n4_wide_beyond_int64": (4, "ap_fixed<40,12>", "ap_ufixed<40,0,AP_RND,AP_SAT>", "ap_fixed<70,8,AP_RND,AP_SAT>",
                             "ap_fixed<66,8,AP_RND,AP_SAT>", 1024,
                             {"accum": "ap_fixed<72,10,AP_RND,AP_SAT>", "inv_inp": "ap_fixed<68,8,AP_RND,AP_SAT>"}),
}


def _nnhdl_fmt(t: ApType):
    from nnhdl.fixed import FixedFormat
    return None if t is None else FixedFormat.parse(str(t))


def _softmax_case(case):
    """``(n, table_size, types)``: types maps data, result, exp, inv, accum, inv_inp, norm to ApType
    (norm None: the default)."""
    n, in_t, res_t, exp_t, inv_t, table_size, extra = SOFTMAX_CASES[case]
    types = {"data": ap(in_t), "result": ap(res_t), "exp": ap(exp_t), "inv": ap(inv_t),
             "accum": ap(extra.get("accum", DEFAULT_TABLE)), "inv_inp": ap(extra.get("inv_inp", DEFAULT_TABLE)),
             "norm": ap(extra["inp_norm"]) if "inp_norm" in extra else None}
    return n, table_size, types


def _softmax_op(n, table_size, t):
    op = Softmax("sm", ("in",), (n,), fmt=_nnhdl_fmt(t["result"]), exp_fmt=_nnhdl_fmt(t["exp"]),
                 inv_fmt=_nnhdl_fmt(t["inv"]), table_size=table_size, accum_fmt=_nnhdl_fmt(t["accum"]),
                 inv_input_fmt=_nnhdl_fmt(t["inv_inp"]), norm_fmt=_nnhdl_fmt(t["norm"]))
    for fmt, key in ((op.fmt, "result"), (op.exp_fmt, "exp"), (op.inv_fmt, "inv"), (op.accum_fmt, "accum"),
                     (op.inv_input_fmt, "inv_inp")):
        assert_fmt(fmt, t[key])
    return op


def softmax_inputs(rng, t: ApType, batch, n):
    x = random_raw(rng, t, batch, n)
    k = batch // 5
    x[6:6 + k] = x[6:6 + k] // 16 + (0 if t.signed else t.hi_int // 2)  # close logits: fine end of the table
    tie_rows = slice(6 + k, 6 + 2 * k)  # ties: duplicated maxima and equal values
    x[tie_rows] = np.maximum(np.minimum(x[tie_rows], x[tie_rows].max(axis=1, keepdims=True)
                                        - rng.integers(0, 2, size=(k, n))), t.lo_int)
    x[tie_rows, 0] = x[tie_rows].max(axis=1)
    x[6 + 2 * k:6 + 2 * k + 4] = rng.integers(t.lo_int, t.hi_int + 1)  # all equal
    return x


@pytest.mark.parametrize("case", list(SOFTMAX_CASES), ids=list(SOFTMAX_CASES))
def test_softmax_stable(rng, case):
    n, table_size, t = _softmax_case(case)
    op = _softmax_op(n, table_size, t)
    in_t, in_fmt = t["data"], _nnhdl_fmt(t["data"])
    x = softmax_inputs(rng, in_t, 150, n)
    stats = {}
    expected = np.array([[to_raw(v, t["result"]) for v in
                          hls4ml_softmax_stable([from_raw(r, in_t) for r in row], in_t, t["result"], t["exp"],
                                                t["inv"], table_size, t["accum"], t["inv_inp"], t["norm"], stats)]
                         for row in x], dtype=object)
    if n > 1 and in_t.signed:
        assert stats.get("diff_changed", 0) > 0, "the case must wrap (or saturate) some differences"
    assert_raw_equal(evaluate_op(op, [x], [in_fmt]), expected, x, f"softmax {case}")


@pytest.mark.parametrize("case", list(SOFTMAX_CASES), ids=list(SOFTMAX_CASES))
def test_softmax_tables_every_entry(case):
    """Every entry of both tables (random inputs reach only some of them)."""
    n, table_size, t = _softmax_case(case)
    exp_size, inv_size = hls4ml_table_sizes(table_size, t["data"], t["inv"], t["norm"] is not None)
    norm_t = t["norm"] or default_inp_norm(t["data"])
    exp_exp, inv_exp = hls4ml_softmax_tables(norm_t, t["exp"], t["inv_inp"], t["inv"], exp_size, inv_size)
    exp_got, inv_got = softmax_tables(softmax_plan_of(_softmax_op(n, table_size, t), _nnhdl_fmt(t["data"])))
    assert (len(exp_got), len(inv_got)) == (exp_size, inv_size)
    for k in range(exp_size):
        assert int(exp_got[k]) == to_raw(exp_exp[k], t["exp"]), ("exp", k)
    for k in range(inv_size):
        assert int(inv_got[k]) == to_raw(inv_exp[k], t["inv"]), ("inv", k)


def _softmax_graph(rng, layer_keys, n_in=5, n_out=4):
    from nnhdl.passes import lower
    from nnhdl.config import PrecisionConfig
    from nnhdl.ir import Graph, Input
    w = rng.normal(size=(n_in, n_out))
    graph = Graph((Input("in", (), (n_in,), origin="in"),
                   Dense("out", ("in",), (n_out,), origin="out", weight=w, bias=np.zeros(n_out), result_key="logits"),
                   Softmax("out_softmax", ("out",), (n_out,), origin="out")), ("out_softmax",))
    return lower(graph, PrecisionConfig.from_dict({"precision": "fixed<16,6>", "layer": {"out": layer_keys}}))


def test_softmax_config_keys_reach_the_op(rng):
    g = _softmax_graph(rng, {"exp_accum": "fixed<14,5,RND,SAT>", "inv_input": "ufixed<12,4,RND,SAT>",
                             "inp_norm": "ufixed<14,5,RND,SAT>", "table_size": 512})
    op = g.op("out_softmax")
    assert (str(op.accum_fmt), str(op.inv_input_fmt), str(op.norm_fmt), op.table_size) == \
        ("fixed<14,5,RND,SAT>", "ufixed<12,4,RND,SAT>", "ufixed<14,5,RND,SAT>", 512)
    default = _softmax_graph(rng, {"inp_norm": "auto"}).op("out_softmax")
    assert default.norm_fmt is None  # hls4ml's default, derived from the input
    assert str(default.accum_fmt) == str(default.inv_input_fmt) == "fixed<18,8,RND,SAT>"


def test_softmax_wide_tables_evaluate(rng):
    """Tables and sums wider than 64 bits are evaluated exactly (Python integers)."""
    g = _softmax_graph(rng, {"exp_table": "fixed<70,8,RND,SAT>", "inv_table": "fixed<66,8,RND,SAT>",
                             "exp_accum": "fixed<72,10,RND,SAT>", "inv_input": "fixed<68,8,RND,SAT>",
                             "result": "ufixed<66,0,RND,SAT>"})
    from nnhdl.reference import evaluate
    y = evaluate(g, rng.normal(size=(20, 5)))
    assert y.dtype == object and y.shape == (20, 4)
    assert all(0 <= int(v) < 2 ** 66 for v in y.flat)


def test_softmax_coarse_table_warns(rng):
    with pytest.warns(UserWarning, match=r"layer 'out'.*exp table.*32 apart"):
        _softmax_graph(rng, {"logits": "fixed<36,16>"})


def test_softmax_unindexable_table_refused(rng):
    from nnhdl.passes import PassError
    with pytest.raises(PassError, match=r"layer 'out' \(softmax\): .*1024 entries need 10 index bits but "
                                         r"inp_norm ufixed<8,3> has only 8: set table_size = 256 or less"):
        _softmax_graph(rng, {"inp_norm": "ufixed<8,3>"})
    with pytest.raises(PassError,
                       match=r"layer 'out' \(softmax\): .*inv_input ufixed<8,3> has only 8: set table_size = 256"):
        _softmax_graph(rng, {"inv_input": "ufixed<8,3>"})
