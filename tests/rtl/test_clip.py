"""The Clip op (``nnhdl/ops/clip.py``, added as one module plus its Keras mapping): the reference
against an exact definition with fractions, the RTL against the reference with gaps and stalls
(whole tensors and pixel streams), and Keras ReLU(max_value) / ReLU6 end to end."""

import math
from fractions import Fraction

import numpy as np
import pytest

from nnhdl.config import PrecisionConfig
from nnhdl.fixed import FixedFormat, Overflow, Rounding
from nnhdl.ir import Graph, Input
from nnhdl.layers import Network
from nnhdl.ops.clip import Clip
from nnhdl.passes import lower
from nnhdl.reference import evaluate
from nnhdl.sim.amaranth_sim import run_stream

from .test_layers import random_raw

CASES = [  # input format, (lo, hi), result format
    ("fixed<8,4>", (0.0, 6.0), "ufixed<6,3,RND,SAT>"),
    ("fixed<10,3>", (-1.3, 0.7), "fixed<6,1,RND_CONV,WRAP>"),
    ("ufixed<7,2>", (0.25, 1.0), "ufixed<5,1>"),
    ("fixed<9,5>", (-math.inf, 2.5), "fixed<9,5>"),
    ("fixed<6,2>", (-100.0, 100.0), "fixed<4,2,TRN_ZERO,SAT_SYM>"),  # bounds outside the input: a cast only
]


def clip_graph(in_fmt, lo, hi, result, shape=(5,)):
    graph = Graph((Input("x", (), tuple(shape), origin="x"), Clip("c", ("x",), tuple(shape), origin="c", lo=lo, hi=hi)),
                  ("c",))
    config = PrecisionConfig.from_dict({"layer": {"x": {"result": in_fmt}, "c": {"result": result}}})
    return lower(graph, config)


def exact_clip(raw, in_fmt, lo, hi, out):
    """Clamp the real value to [lo, hi] snapped inwards onto the input grid, then round and overflow
    into ``out`` (independent of nnhdl's fixed-point code: Fractions and the format's definition)."""
    v = Fraction(int(raw), 1 << in_fmt.frac_bits)
    grid = Fraction(1, 1 << in_fmt.frac_bits)
    if lo != -math.inf:
        v = max(v, math.ceil(Fraction(lo) / grid) * grid)
    if hi != math.inf:
        v = min(v, math.floor(Fraction(hi) / grid) * grid)
    scaled = v * (1 << out.frac_bits)
    floor = math.floor(scaled)
    frac = scaled - floor
    r = out.rounding
    if r is Rounding.TRN:
        q = floor
    elif r is Rounding.TRN_ZERO:
        q = floor if scaled >= 0 else math.ceil(scaled)
    elif frac != Fraction(1, 2):
        q = round(scaled)
    else:  # ties
        q = {Rounding.RND: floor + 1, Rounding.RND_ZERO: floor + (scaled < 0), Rounding.RND_MIN_INF: floor,
             Rounding.RND_INF: floor + (scaled > 0), Rounding.RND_CONV: floor + (floor % 2)}[r]
    lo_i, hi_i = out.min_int, out.max_int
    if out.overflow is Overflow.SAT_SYM and out.signed:
        lo_i = -hi_i
    if lo_i <= q <= hi_i:
        return q
    if out.overflow is Overflow.WRAP:
        span = 1 << out.width
        return (q - out.min_int) % span + out.min_int
    if out.overflow is Overflow.SAT_ZERO:
        return 0
    return hi_i if q > hi_i else lo_i


@pytest.mark.parametrize("in_fmt, bounds, result", CASES)
def test_reference_is_the_exact_clip(in_fmt, bounds, result):
    g = clip_graph(in_fmt, *bounds, result)
    fmt = FixedFormat.parse(in_fmt)
    x = np.arange(fmt.min_int, fmt.max_int + 1).reshape(-1, 1).repeat(5, axis=1)
    got = np.asarray(evaluate(g, x, raw=True))[:, 0]
    want = [exact_clip(v, fmt, *bounds, FixedFormat.parse(result)) for v in x[:, 0]]
    assert got.tolist() == want


@pytest.mark.parametrize("in_fmt, bounds, result", CASES)
def test_rtl_equals_reference_with_gaps_and_stalls(in_fmt, bounds, result, rng):
    g = clip_graph(in_fmt, *bounds, result)
    net = Network(g)
    fmt = FixedFormat.parse(in_fmt)
    x = random_raw(rng, fmt, 300, 5)
    run = run_stream(net, x, in_fmt=net.in_fmt, out_fmt=net.out_fmt, n_out=5, gap=0.3, stall=0.3,
                     seed=int(rng.integers(1 << 30)))
    assert np.array_equal(run.outputs, np.asarray(evaluate(g, x, raw=True)))
    free = run_stream(net, x[:20], in_fmt=net.in_fmt, out_fmt=net.out_fmt, n_out=5)
    assert set((free.out_cycles - free.in_cycles).tolist()) == {net.latency}


def test_clip_on_a_pixel_stream(rng):
    """Element-wise, so it works on one pixel's channels per transfer."""
    g = clip_graph("fixed<8,4>", 0.0, 6.0, "ufixed<6,3>", shape=(3, 4, 2))
    net = Network(g, io="stream")
    assert (net.in_beats, net.in_words) == (12, 2)
    x = random_raw(rng, FixedFormat.parse("fixed<8,4>"), 10, 24)
    run = run_stream(net, x.reshape(-1, 2), in_fmt=net.in_fmt, out_fmt=net.out_fmt, n_out=2, gap=0.2, stall=0.2,
                     beats_in=12, beats_out=12)
    expected = np.asarray(evaluate(g, x.reshape(10, 3, 4, 2), raw=True)).reshape(-1, 2)
    assert np.array_equal(run.outputs, expected)


def test_empty_range_is_refused():
    from nnhdl.passes import PassError
    with pytest.raises(PassError, match=r"layer 'c': the clip range \[0.1, 0.2\] holds no value of the input format"):
        clip_graph("fixed<4,3>", 0.1, 0.2, "fixed<8,4>")


@pytest.mark.keras
def test_keras_relu6_converts_and_verifies(tmp_path):
    """ReLU(max_value=6) and Activation('relu6') come in as Clips; the design saves, reloads and
    verifies, and its report and configuration template show the clip."""
    from nnhdl.config_template import config_template
    from nnhdl.convert import convert, load_design, load_model
    from nnhdl.verify import random_inputs, verify_design

    keras = pytest.importorskip("keras")
    L = keras.layers
    model = keras.Sequential([keras.Input((6,)), L.Dense(8, name="fc1"), L.ReLU(max_value=6.0, name="r6"),
                              L.Dense(4, name="fc2"), L.Activation("relu6", name="a6")])
    graph = load_model(model)
    assert [type(op).__name__ for op in graph.ops] == ["Input", "Dense", "Clip", "Dense", "Clip"]
    assert "[layer.r6]   # clip to [0, 6]" in config_template(graph)
    convert(graph, tmp_path / "o", config=PrecisionConfig.from_dict({"precision": "fixed<12,5>"}))
    design = load_design(tmp_path / "o")
    assert [e["kind"] for e in design.report["layers"]][-1] == "Clip"
    result = verify_design(design, random_inputs(design.graph, 200), gap=0.2, stall=0.2)
    assert result.passed, result.mismatches
