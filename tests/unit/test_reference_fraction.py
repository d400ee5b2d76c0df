"""The reference model equals an independent exact (Fraction) evaluation, op by op, bit for bit.

Random formats 1-100 bits wide (most of them up to 64), signed and unsigned, negative and
oversized integer bits, every rounding and overflow mode, exact and set accumulators, zero and
extreme weights (0, +-max, +-2**k) and inputs at the format's extremes. Hypothesis runs a fast
profile by default; ``NNHDL_FUZZ=long`` runs many more examples.
"""

import os
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnhdl.arith import exact_accumulator
from nnhdl.config import PrecisionConfig
from nnhdl.fixed import FixedFormat, Overflow, Rounding, quantize
from nnhdl.ir import Activation, Conv, Dense, Flatten, Graph, Input, Pad, Pool, Reshape, Softmax
from nnhdl.passes import lower
from nnhdl.reference import ReferenceError, evaluate, quantize_inputs, to_real, trace

from ..fraction_model import cast, quantize_exact, real, trace_exact

LONG = os.environ.get("NNHDL_FUZZ") == "long"
EXAMPLES = 2000 if LONG else 60
CHECKS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- strategies ---------------------------------------------------------------------------------

@st.composite
def formats(draw, wmin=1, wmax=100, signed=None):
    wide = draw(st.integers(0, 9)) == 0
    width = draw(st.integers(max(wmin, 40), wmax) if wide and wmax > 64 else st.integers(wmin, min(wmax, 64)))
    far = draw(st.integers(0, 14)) == 0  # now and then a scaling far from the width
    int_bits = draw(st.integers(-90, width + 90) if far else st.integers(-4, width + 4))
    sign = draw(st.booleans()) if signed is None else signed
    return FixedFormat(width, int_bits, sign, draw(st.sampled_from(list(Rounding))),
                       draw(st.sampled_from(list(Overflow))))


def raw_values(draw, fmt, n):
    """``n`` raw ints of ``fmt``: extremes, zero, +-powers of two and uniform draws."""
    special = [fmt.min_int, fmt.max_int, 0, 1, -1] + [s * (1 << k) for s in (1, -1) for k in (max(fmt.width - 2, 0), fmt.width // 2)]
    special = [v for v in special if fmt.min_int <= v <= fmt.max_int]
    choice = st.one_of(st.sampled_from(special), st.integers(fmt.min_int, fmt.max_int))
    return [draw(choice) for _ in range(n)]


def as_array(values, fmt, shape):
    return np.array(values, dtype=np.int64 if fmt.width <= 62 else object).reshape(shape)


@st.composite
def dense_ops(draw, n_in, n_out, src, conv=None):
    wfmt, bfmt, out = draw(formats()), draw(formats()), draw(formats())
    w = as_array(raw_values(draw, wfmt, n_in * n_out), wfmt, (n_in, n_out))
    b = as_array(raw_values(draw, bfmt, n_out), bfmt, (n_out,))
    exact = draw(st.booleans())
    accum = exact_accumulator(src, w, wfmt, b, bfmt) if exact else draw(formats())
    act = draw(st.sampled_from(["linear", "relu", "leaky_relu"]))
    afmt = draw(formats(wmax=70)) if act == "leaky_relu" else None
    alpha = draw(st.sampled_from(raw_values(draw, afmt, 4))) if afmt else 0
    common = dict(fmt=out, weight=w, bias=b, activation=act, alpha=alpha, weight_fmt=wfmt, bias_fmt=bfmt,
                  accum_fmt=accum, alpha_fmt=afmt, accum_exact=exact)
    if conv is None:
        return Dense("op", ("in",), (n_out,), **common)
    in_shape, kernel, strides, padding, shape = conv
    return Conv("op", ("in",), shape, in_shape=in_shape, kernel=kernel, strides=strides, padding=padding, **common)


def check_graph(graph, x):
    """Reference trace == Fraction trace for every op, raw ints compared exactly."""
    got = trace(graph, x, raw=True)
    want = trace_exact(graph, x, raw=True)
    for op in graph.ops:
        g = np.asarray(got[op.name])
        assert g.shape == want[op.name].shape, op.name
        assert [int(v) for v in g.flat] == [int(v) for v in want[op.name].flat], (op.name, op)
        assert g.dtype == (np.int64 if op.fmt.width <= 62 else object), (op.name, g.dtype)
        if g.dtype == object:  # Python ints only: numpy scalars inside would compute in int64
            assert all(type(v) is int for v in g.flat), op.name


def input_op(fmt, shape):
    return Input("in", (), tuple(shape), fmt=fmt)


# -- ops ----------------------------------------------------------------------------------------

@CHECKS
@given(st.data())
def test_dense(data):
    n_in, n_out, batch = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    src = data.draw(formats())
    op = data.draw(dense_ops(n_in, n_out, src))
    x = as_array(raw_values(data.draw, src, batch * n_in), src, (batch, n_in))
    check_graph(Graph((input_op(src, (n_in,)), op), ("op",)), x)


@CHECKS
@given(st.data())
def test_conv(data):
    h, w, c = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 2))
    kh, kw = data.draw(st.integers(1, h + 1)), data.draw(st.integers(1, w + 1))
    sh, sw = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    pads = [data.draw(st.integers(0, k - 1)) for k in (kh, kh, kw, kw)]
    if h + pads[0] + pads[1] < kh:
        pads[1] = kh - h - pads[0]
    if w + pads[2] + pads[3] < kw:
        pads[3] = kw - w - pads[2]
    oh, ow = (h + pads[0] + pads[1] - kh) // sh + 1, (w + pads[2] + pads[3] - kw) // sw + 1
    cout = data.draw(st.integers(1, 2))
    src = data.draw(formats())
    op = data.draw(dense_ops(kh * kw * c, cout, src, ((h, w, c), (kh, kw), (sh, sw), tuple(pads), (oh, ow, cout))))
    x = as_array(raw_values(data.draw, src, 2 * h * w * c), src, (2, h, w, c))
    check_graph(Graph((input_op(src, (h, w, c)), op), ("op",)), x)


@CHECKS
@given(st.data())
def test_pool(data):
    h, w, c = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 2))
    kh, kw = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    pads = [data.draw(st.integers(0, k - 1)) for k in (kh, kh, kw, kw)]
    oh, ow = (h + pads[0] + pads[1] - kh) // sh + 1, (w + pads[2] + pads[3] - kw) // sw + 1
    src, out = data.draw(formats()), data.draw(formats())
    kind = data.draw(st.sampled_from(["max", "avg"]))
    op = Pool("op", ("in",), (oh, ow, c), fmt=out, kind=kind, in_shape=(h, w, c), pool=(kh, kw), strides=(sh, sw),
              padding=tuple(pads))
    x = as_array(raw_values(data.draw, src, 2 * h * w * c), src, (2, h, w, c))
    check_graph(Graph((input_op(src, (h, w, c)), op), ("op",)), x)


@CHECKS
@given(st.data())
def test_global_pool_pad_reshape_flatten(data):
    h, w, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    src, out = data.draw(formats()), data.draw(formats())
    pads = tuple(data.draw(st.integers(0, 2)) for _ in range(4))
    ph, pw = h + pads[0] + pads[1], w + pads[2] + pads[3]
    ops = (input_op(src, (h, w, c)),
           Pad("pad", ("in",), (ph, pw, c), fmt=src, in_shape=(h, w, c), padding=pads),
           Reshape("re", ("pad",), (pw, ph, c), fmt=src),
           Pool("gp", ("re",), (c,), fmt=out, kind=data.draw(st.sampled_from(["max", "avg"])), in_shape=(pw, ph, c),
                pool=(pw, ph), strides=(pw, ph)),
           Flatten("fl", ("gp",), (c,), fmt=out))
    x = as_array(raw_values(data.draw, src, 2 * h * w * c), src, (2, h, w, c))
    check_graph(Graph(ops, ("fl",)), x)


@CHECKS
@given(st.data())
def test_activation_and_argmax(data):
    n = data.draw(st.integers(1, 6))
    src, out = data.draw(formats()), data.draw(formats())
    function = data.draw(st.sampled_from(["linear", "relu", "leaky_relu"]))
    afmt = data.draw(formats()) if function == "leaky_relu" else None
    alpha = data.draw(st.sampled_from(raw_values(data.draw, afmt, 4))) if afmt else 0
    bits = max(n - 1, 1).bit_length()
    ops = (input_op(src, (n,)),
           Activation("act", ("in",), (n,), fmt=out, function=function, alpha=alpha, alpha_fmt=afmt),
           Softmax("am", ("act",), (1,), fmt=FixedFormat(bits, bits, False), implementation="argmax"))
    x = as_array(raw_values(data.draw, src, 3 * n), src, (3, n))
    check_graph(Graph(ops, ("am",)), x)


@CHECKS
@given(st.data())
def test_quantize_and_to_real(data):
    fmt = data.draw(formats())
    xs = data.draw(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=6))
    xs += [fmt.min_value, fmt.max_value, fmt.lsb / 2, -fmt.lsb / 2, 3 * fmt.lsb / 2, -5 * fmt.lsb / 2]
    graph = Graph((input_op(fmt, (len(xs),)),), ("in",))
    raw = quantize_inputs(graph, np.array(xs))
    assert [int(v) for v in raw.flat] == [int(v) for v in quantize_exact(np.array([xs]), fmt).flat]
    assert raw.dtype == (np.int64 if fmt.width <= 62 else object)
    assert [float(v) for v in to_real(graph, raw).flat] == [float(real(v, fmt)) for v in raw.flat]


# -- regressions --------------------------------------------------------------------------------

def one_neuron(fmt, alpha=1.0, activation="leaky_relu", in_fmt=None, constants=None):
    """A one-neuron Dense at ``fmt``; ``constants``: the weight, bias and alpha format (constants are
    at most 62 bits wide)."""
    ops = (Input("in", (), (1,), origin="in"),
           Dense("fc1", ("in",), (1,), origin="fc1", weight=np.ones((1, 1)), bias=np.zeros(1), activation=activation,
                 alpha=alpha))
    layer = {"in": {"result": in_fmt}} if in_fmt else {}
    if constants:
        layer["fc1"] = {"weight": constants, "bias": constants, "alpha": constants}
    return lower(Graph(ops, ("fc1",)), PrecisionConfig.from_dict({"precision": fmt, "layer": layer}))


def test_leaky_relu_wide_format_regression():
    """A leaky ReLU at fixed<32,12> with slope 1 multiplied a 52-bit accumulator by a 2**20 slope in
    int64 (it overflowed: the reference gave +4.0 for an input of -12)."""
    graph = one_neuron("fixed<32,12>")
    y = evaluate(graph, np.array([[-12.0]]))
    assert to_real(graph, y)[0, 0] == -12.0
    assert int(y[0, 0]) == cast(Fraction(-12), graph.output.fmt)
    check_graph(graph, quantize_inputs(graph, np.array([[-12.0], [-2047.5], [2047.0], [-0.001]])))


def test_wide_input_regression():
    """An 80-bit input format: quantize, trace with raw inputs, evaluate and to_real all work
    (raw inputs were cast to int64, which raised OverflowError)."""
    graph = one_neuron("fixed<16,6>", activation="linear", in_fmt="fixed<80,20>")
    x = np.array([[-12.0], [3.5], [2.0 ** -59], [-(2.0 ** 19)]])
    raw = quantize_inputs(graph, x)
    assert raw.dtype == object and int(raw[3, 0]) == -(1 << 79)
    np.testing.assert_array_equal(evaluate(graph, raw, raw=True), evaluate(graph, x))
    check_graph(graph, raw)
    wide_out = one_neuron("fixed<100,30>", activation="leaky_relu", alpha=0.5, in_fmt="fixed<90,20>",
                          constants="fixed<40,20>")
    check_graph(wide_out, quantize_inputs(wide_out, x))
    assert to_real(wide_out, evaluate(wide_out, x))[0, 0] == -6.0


def test_average_by_a_divisor_beyond_int64_regression():
    """An average whose output has far fewer fraction bits than its input divides by
    ``count * 2**k`` with k > 62: that raised OverflowError in int64 floor division."""
    src, out = FixedFormat(8, -70), FixedFormat(8, 8, True, Rounding.RND_CONV, Overflow.SAT)
    op = Pool("op", ("in",), (1, 1, 1), fmt=out, kind="avg", in_shape=(1, 3, 1), pool=(1, 3), strides=(1, 3))
    x = np.array([[src.max_int, src.max_int, 5], [src.min_int, 0, 1]]).reshape(2, 1, 3, 1)
    check_graph(Graph((input_op(src, (1, 3, 1)), op), ("op",)), x)


def test_zero_weights_on_inputs_wider_than_int64_regression():
    """Found by the fuzz suite: a Dense whose weights are all zero has a tiny exact accumulator,
    so the int64 fast path was taken, which converted its 64-bit unsigned inputs to int64
    (OverflowError)."""
    src = FixedFormat(64, 5, False)
    wfmt = FixedFormat(1, 0)
    op = Dense("op", ("in",), (2,), fmt=FixedFormat(1, 0, False), weight=np.zeros((2, 2), dtype=np.int64),
               bias=np.array([-1, 0]), weight_fmt=wfmt, bias_fmt=wfmt,
               accum_fmt=exact_accumulator(src, np.zeros((2, 2), dtype=np.int64), wfmt, np.array([-1, 0]), wfmt))
    x = np.array([[src.max_int, 3], [1 << 63, 0]], dtype=object)
    check_graph(Graph((input_op(src, (2,)), op), ("op",)), x)
    op = op.replace(weight=np.array([[0, 0], [-1, 0]]))
    check_graph(Graph((input_op(src, (2,)), op.replace(accum_fmt=exact_accumulator(src, op.weight, wfmt, op.bias, wfmt))),
                      ("op",)), np.array([[src.max_int, 3], [1 << 63, 0]], dtype=object))


def test_raw_inputs_out_of_range():
    graph = one_neuron("fixed<8,4>", activation="linear")
    with pytest.raises(ReferenceError, match="must lie in -128..127"):
        trace(graph, np.array([[128]]), raw=True)
    with pytest.raises(ReferenceError, match="must be integers"):
        trace(graph, np.array([[1.5]]), raw=True)


def test_sums_of_cast_products_beyond_int64():
    """Products cast to a 62-bit accumulator sum beyond 2**63: the sum is widened, not wrapped in int64."""
    src = FixedFormat(62, 62)
    acc = FixedFormat(62, 62, True, Rounding.TRN, Overflow.WRAP)
    wfmt = FixedFormat(8, 8)
    w = np.full((4, 1), 1, dtype=np.int64)
    op = Dense("op", ("in",), (1,), fmt=acc, weight=w, bias=np.zeros(1, dtype=np.int64), weight_fmt=wfmt,
               bias_fmt=wfmt, accum_fmt=acc, accum_exact=False)
    x = np.full((1, 4), src.max_int, dtype=np.int64)
    check_graph(Graph((input_op(src, (4,)), op), ("op",)), x)


@pytest.mark.parametrize("fmt", ["fixed<8,4>", "fixed<8,10>", "fixed<8,4,RND_ZERO>", "ufixed<64,0,RND_CONV,SAT>", "fixed<70,3,RND,SAT>",
                                 "fixed<100,-20,RND_INF,WRAP>"])
def test_quantize_extreme_scalings(fmt):
    """Scaled values beyond int64 and subnormal floats (whose scaling would lose bits in
    float64) are quantized exactly."""
    fmt = FixedFormat.parse(fmt)
    x = np.array([1e300, -1e300, 5e-324, -5e-324, 1.5, -2.5, 0.0, 1e-310, -1e-310, 2.0 ** 62 + 2.0 ** 10])
    assert [int(v) for v in quantize(x, fmt).flat] == [int(v) for v in quantize_exact(x, fmt).flat]


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_predict_leaky_relu_wide_format_cli(tmp_path):
    """The hostile user's case end to end: ``nnhdl predict`` of a one-neuron leaky ReLU model at
    fixed<32,12> gives Keras's -12 for an input of -12 (it gave +4), and verify passes."""
    keras = pytest.importorskip("keras")
    from click.testing import CliRunner

    from nnhdl.cli import main

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, name="fc"),
                              keras.layers.LeakyReLU(negative_slope=1.0, name="lrelu")])
    model.get_layer("fc").set_weights([np.ones((1, 1)), np.zeros(1)])
    model.save(tmp_path / "one.keras")
    x = np.array([[-12.0], [5.5], [-0.25]])
    np.save(tmp_path / "x.npy", x)
    keras_y = model.predict(x, verbose=0)
    for args in (["predict", tmp_path / "one.keras", "--precision", "fixed<32,12>", "--inputs", tmp_path / "x.npy",
                  "-o", tmp_path / "y.npy"],
                 ["convert", tmp_path / "one.keras", "--precision", "fixed<32,12>", "-o", tmp_path / "rtl"],
                 ["verify", tmp_path / "rtl", "--inputs", tmp_path / "x.npy"]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), keras_y)
    assert np.load(tmp_path / "y.npy")[0, 0] == -12.0
