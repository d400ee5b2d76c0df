"""Each layer kind over grids of shapes x formats x modes: RTL (Amaranth simulator, random gaps
and stalls) equals the reference model bit for bit, with the latency the layer reports."""


import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned

from nnhdl.fixed import FixedFormat, Overflow, Rounding, requantize
from nnhdl.ir import Activation as ActivationOp, Softmax as SoftmaxOp
from nnhdl.layers import Activation, Argmax, Dense, Network, Softmax
from nnhdl.layers.pipeline import Datapath, DelayModel, csd_digits
from nnhdl.reference import evaluate_op, trace
from nnhdl.sim.amaranth_sim import run_stream

from ..conftest import make_mlp, sample_pipeline


def random_raw(rng, fmt, n, size):
    """Uniform raw values over the whole format, with the extremes always present."""
    x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(n, size))
    x[0, :], x[1, :] = fmt.min_int, fmt.max_int
    return x


def run_layer(layer, op, x, in_fmt, rng, n_out=None, gap=0.3, stall=0.3):
    n_out = op.size if n_out is None else n_out
    stalled = run_stream(layer, x, in_fmt=in_fmt, out_fmt=op.fmt, n_out=n_out, gap=gap, stall=stall,
                         seed=int(rng.integers(1 << 30)))
    free = run_stream(layer, x[:20], in_fmt=in_fmt, out_fmt=op.fmt, n_out=n_out)
    assert set((free.out_cycles - free.in_cycles).tolist()) == {layer.latency}
    assert np.array_equal(free.outputs, stalled.outputs[:20])
    return stalled.outputs


@pytest.mark.parametrize("value", list(range(-40, 41)) + [2 ** 20 + 3, -(2 ** 15) + 1, 0x5555, -0x5555])
def test_csd_digits(value):
    digits = csd_digits(value)
    assert sum(d << s for s, d in digits) == value
    shifts = sorted(s for s, _ in digits)
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))


@pytest.mark.parametrize("src_signed, src_frac", [(True, 3), (False, 2), (True, 0)])
def test_requantize_hardware_exhaustive(src_signed, src_frac):
    """Datapath.requantize == fixed.requantize for every value of a 7-bit source and every
    rounding x overflow mode into several targets (one simulation, all targets in parallel)."""
    width = 7
    src = FixedFormat(width, width - src_frac, src_signed)
    targets = [FixedFormat(w, i, s, r, o) for (w, i, s) in [(4, 3, True), (3, 3, False), (5, 4, True), (9, 7, True)]
               for r in Rounding for o in Overflow]
    dp = Datapath(levels_per_stage=2)
    x = Signal(signed(width) if src_signed else unsigned(width))
    node = dp.input(x, src.min_int, src.max_int)
    outs, latency = dp.outputs([dp.requantize(node, src_frac, t) for t in targets])
    m = Module()
    m.d.sync += dp.statements()
    values = list(range(src.min_int, src.max_int + 1))
    got = sample_pipeline(m, x, outs, values, latency)
    got = np.array(got)
    for t_index, t in enumerate(targets):
        want = requantize(np.array(values), src_frac, t)
        assert got[:, t_index].tolist() == want.tolist(), f"target {t}"


DENSE_CASES = [
    # (sizes, input format, precision config, multiplier, levels)
    ((5, 3), "fixed<8,3>", {}, "csd", 2),
    ((1, 1), "fixed<6,2>", {}, "csd", 1),
    ((12, 7), "ufixed<6,2>", {"precision": "fixed<10,4>"}, "csd", 3),
    ((9, 4), "fixed<16,6>", {"precision": "fixed<16,6>"}, "dsp", 2),
    ((8, 5), "fixed<8,3>", {"precision": "fixed<8,3,RND,SAT>"}, "csd", 2),
    ((8, 5), "fixed<8,3>", {"precision": "fixed<8,3,RND_CONV,SAT_SYM>",
                            "layer": {"fc1": {"accum": "fixed<10,4,RND,SAT>"}}}, "csd", 2),
    ((10, 3), "fixed<8,2>", {"precision": "fixed<8,3>",
                             "layer": {"fc1": {"accum": "fixed<9,3>"}}}, "csd", 2),  # wrapping accumulator
    ((6, 4), "fixed<8,3>", {"precision": "fixed<8,3,TRN_ZERO,SAT_ZERO>",
                            "layer": {"fc1": {"accum": "fixed<7,3,RND_INF,SAT_SYM>"}}}, "dsp", 1),
    # exact products, saturating running sum (hls4ml order), plain and symmetric
    ((8, 5), "fixed<6,3>", {"precision": "fixed<6,3>",
                            "layer": {"fc1": {"weight": "fixed<6,1>", "accum": "fixed<12,4,TRN,SAT>"}}}, "csd", 2),
    ((8, 5), "fixed<6,3>", {"precision": "fixed<6,3,RND,SAT_SYM>",
                            "layer": {"fc1": {"weight": "fixed<6,1>", "accum": "fixed<12,4,TRN,SAT_SYM>"}}}, "dsp", 2),
    ((7, 6), "ufixed<8,4>", {"precision": "fixed<12,5,RND_MIN_INF,WRAP>",
                             "layer": {"fc1": {"weight": "fixed<5,1>", "bias": "fixed<20,8>",
                                               "result": "ufixed<6,3,RND_ZERO,SAT>"}}}, "csd", 2),
]


# the same cases with the shared-subexpression graph (where products are cast or summed in
# hls4ml's order it falls back to csd, which these cases check too)
DENSE_CASES += [(sizes, in_fmt, config, "cse", levels) for sizes, in_fmt, config, m, levels in DENSE_CASES
                if m == "csd"]
# registers placed by estimated delay (slow and fast clocks; a very fast one registers every operation)
DENSE_CASES += [((12, 7), "ufixed<6,2>", {"precision": "fixed<10,4>"}, "cse", DelayModel("ecp5", 150)),
                ((8, 5), "fixed<8,3>", {"precision": "fixed<8,3,RND,SAT>"}, "csd", DelayModel("xc7", 400)),
                ((9, 4), "fixed<16,6>", {"precision": "fixed<16,6>"}, "dsp", DelayModel("ice40", 1000))]


@pytest.mark.parametrize("activation", ["linear", "relu", "leaky_relu"])
@pytest.mark.parametrize("sizes, in_fmt, config, multiplier, levels", DENSE_CASES)
def test_dense(rng, sizes, in_fmt, config, multiplier, levels, activation):
    config = {**config, "layer": {**config.get("layer", {}), "in": {"result": in_fmt}}}
    graph = make_mlp(rng, sizes, [activation], config, weight_scale=2.0)
    op, src = graph.op("fc1"), graph.op("in").fmt
    layer = Dense(op, src, multiplier=multiplier, levels_per_stage=levels)
    x = random_raw(rng, src, 300, sizes[0])
    got = run_layer(layer, op, x, src, rng)
    np.testing.assert_array_equal(got, evaluate_op(op, [x], [src]))


@pytest.mark.parametrize("function", ["linear", "relu", "leaky_relu"])
@pytest.mark.parametrize("src, dst", [("fixed<9,4>", "fixed<6,2,RND,SAT>"), ("fixed<9,4>", "ufixed<5,3>"),
                                      ("ufixed<7,3>", "fixed<8,3,RND_CONV,SAT_SYM>"), ("fixed<6,6>", "fixed<12,8>")])
def test_activation(rng, function, src, dst):
    src, dst = FixedFormat.parse(src), FixedFormat.parse(dst)
    op = ActivationOp("act", ("in",), (6,), fmt=dst, function=function, alpha=0)
    if function == "leaky_relu":
        alpha_fmt = FixedFormat.parse("fixed<8,1,RND>")
        op = op.replace(alpha=int(np.round(0.3 * 2 ** 7)), alpha_fmt=alpha_fmt)
    layer = Activation(op, src)
    x = random_raw(rng, src, 200, 6)
    np.testing.assert_array_equal(run_layer(layer, op, x, src, rng), evaluate_op(op, [x], [src]))


@pytest.mark.parametrize("n, src, out, exp_fmt, table_size, extra", [
    (5, "fixed<16,6>", "fixed<16,6>", "fixed<18,8,RND,SAT>", 1024, {}),
    (3, "fixed<8,3>", "ufixed<8,0,RND,SAT>", "fixed<18,8,RND,SAT>", 1024, {}),  # exp table clipped to 128
    (10, "fixed<12,5>", "fixed<10,2,RND,SAT>", "fixed<12,4,RND,SAT>", 128, {}),
    (2, "ufixed<8,4>", "fixed<16,6>", "fixed<18,8,RND,SAT>", 64, {}),
    (4, "fixed<12,4,RND,SAT>", "ufixed<12,0,RND,SAT>", "fixed<18,8,RND,SAT>", 4096, {}),
    (7, "fixed<10,3>", "ufixed<10,0,RND,SAT>", "fixed<14,4,RND,SAT>", 256,
     {"accum_fmt": "fixed<9,3,RND_CONV,SAT>", "inv_input_fmt": "ufixed<8,3,RND,SAT>",
      "norm_fmt": "ufixed<8,3,RND,SAT>"}),
    (6, "fixed<10,4>", "ufixed<10,0,RND,SAT>", "fixed<18,8,RND,SAT>", 256, {"norm_fmt": "fixed<10,4>"}),  # wraps
    (1, "fixed<8,3>", "ufixed<12,0,RND,SAT>", "fixed<18,8,RND,SAT>", 1024, {}),
    (3, "fixed<40,12>", "ufixed<40,0,RND,SAT>", "fixed<70,8,RND,SAT>", 512,
     {"accum_fmt": "fixed<72,10,RND,SAT>", "inv_input_fmt": "fixed<68,8,RND,SAT>"}),  # beyond int64
])
def test_softmax_table(rng, n, src, out, exp_fmt, table_size, extra):
    src = FixedFormat.parse(src)
    op = SoftmaxOp("sm", ("in",), (n,), fmt=FixedFormat.parse(out), exp_fmt=FixedFormat.parse(exp_fmt),
                   inv_fmt=FixedFormat.parse("fixed<18,8,RND,SAT>"), table_size=table_size,
                   **{k: FixedFormat.parse(v) for k, v in extra.items()})
    layer = Softmax(op, src)
    x = random_raw(rng, src, 200, n)
    x[2:50] = x[2:50] // 16  # close logits exercise the table's fine end
    np.testing.assert_array_equal(run_layer(layer, op, x, src, rng), evaluate_op(op, [x], [src]))


@pytest.mark.parametrize("n, src", [(1, "fixed<6,3>"), (5, "fixed<16,6>"), (7, "ufixed<4,2>")])
def test_argmax(rng, n, src):
    src = FixedFormat.parse(src)
    bits = max(1, (n - 1).bit_length())
    op = SoftmaxOp("am", ("in",), (1,), fmt=FixedFormat(bits, bits, False), implementation="argmax")
    layer = Argmax(op, src, n)
    x = random_raw(rng, src, 200, n)
    got = run_layer(layer, op, x, src, rng, n_out=1)
    np.testing.assert_array_equal(got, evaluate_op(op, [x], [src]))
    np.testing.assert_array_equal(got[:, 0], np.argmax(x, axis=1))  # ties: the first index


@pytest.mark.parametrize("softmax", ["table", "argmax"])
def test_network_chain(rng, softmax):
    graph = make_mlp(rng, (6, 10, 8, 4), ["relu", "leaky_relu"],
                     {"precision": "fixed<10,4,RND,SAT>", "softmax": softmax}, softmax=True)
    net = Network(graph)
    assert net.latency == sum(layer.latency for _, layer in net.layers)
    x = random_raw(rng, graph.input.fmt, 300, 6)
    ref = trace(graph, x, raw=True)[graph.outputs[0]]
    got = run_layer(net, graph.output, x, graph.input.fmt, rng, n_out=net.out_size)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("softmax", ["table", "argmax"])
@pytest.mark.parametrize("activation", ["linear", "relu", "leaky_relu"])
def test_all_zero_weights(rng, activation, softmax):
    """A layer whose weights are all zero outputs constants (folded at build time), and the layers
    after it compute on those constants."""
    graph = make_mlp(rng, (3, 4, 5, 3), [activation, activation],
                     {"precision": "fixed<10,4,RND,SAT>", "softmax": softmax}, softmax=True, zero_fraction=1.0)
    net = Network(graph)
    x = random_raw(rng, graph.input.fmt, 40, 3)
    got = run_layer(net, graph.output, x, graph.input.fmt, rng, n_out=net.out_size)
    np.testing.assert_array_equal(got, trace(graph, x, raw=True)[graph.outputs[0]])
