"""Folded convolutions (reuse factor R > 1) in both I/O styles: the RTL equals the reference model
bit for bit with random gaps and stalls for R not dividing the fan-in, R = fan-in, R larger than
the fan-in and R beyond every product, with padding, strides, depthwise weights and narrow
accumulators; the latency and cycles per inference are exactly the timing model's; the weight
ROM and the multipliers follow the schedule."""

import random

import numpy as np
import pytest

from nnhdl.convert import Design
from nnhdl.layers import Conv, ConvStream, FoldedConv, FoldedConvStream, Network, fold_schedule
from nnhdl.layers.folded_conv import conv_as_dense, largest_reuse
from nnhdl.passes import lower
from nnhdl.reference import conv_patches, evaluate_op
from nnhdl.sim.amaranth_sim import run_stream
from nnhdl.verify import verify_design

from .test_cnn_layers import ImageNet, formats

CASES = [  # (input shape, channels out, kernel, strides, padding, activation, depthwise)
    ((4, 5, 2), 3, (3, 3), (1, 1), "valid", "relu", False),
    ((4, 4, 1), 2, (3, 3), (1, 1), "same", "leaky_relu", False),
    ((5, 4, 2), 2, (2, 3), (2, 1), "same", "linear", False),
    ((4, 5, 3), 1, (3, 2), (1, 1), "same", "relu", True),   # depthwise: block-diagonal weights
    ((1, 9, 2), 3, (1, 3), (1, 2), "valid", "relu", False),  # a 1-D convolution
]


def _conv(rng, case):
    shape, cout, kernel, strides, padding, act, depthwise = CASES[case]
    g = ImageNet(rng, shape).conv("c", cout, kernel, strides, padding, act, depthwise=depthwise).graph()
    return lower(g, formats(700 + case, ["c"]))


def _reuses(op, streamed):
    """R = 2, the smallest R not dividing the fan-in, = fan-in, > fan-in, = every product, beyond."""
    k = op.n_in
    odd = next(r for r in range(2, k) if k % r)
    top = largest_reuse(op, streamed)
    return [2, odd, k, k + 2, top, top + 7]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_folded_conv_parallel_matches_reference(rng, case):
    """The whole-image folded convolution on its own, every R: outputs bit for bit with gaps and
    stalls, latency and interval exactly the layer's."""
    q = _conv(rng, case)
    op, src = q.op("c"), q.input.fmt
    x = rng.integers(src.min_int, src.max_int + 1, size=(12,) + tuple(q.input.shape))
    x[0], x[1] = src.min_int, src.max_int
    want = evaluate_op(op, [x], [src]).reshape(len(x), -1)
    flat = x.reshape(len(x), -1)
    for reuse in _reuses(op, streamed=False):
        layer = FoldedConv(op, src, reuse, levels_per_stage=1 + case % 2)
        assert layer.interval == fold_schedule(op.n_in, op.size, reuse).cycles <= reuse
        run = run_stream(layer, flat, in_fmt=src, out_fmt=op.fmt, n_out=op.size, gap=0.3, stall=0.3,
                         seed=int(rng.integers(1 << 30)))
        np.testing.assert_array_equal(run.outputs, want, err_msg=f"R = {reuse}")
        free = run_stream(layer, flat[:4], in_fmt=src, out_fmt=op.fmt, n_out=op.size)
        assert set((free.out_cycles - free.in_cycles).tolist()) == {layer.latency}, reuse
        assert set(np.diff(free.in_cycles).tolist()) == {layer.interval}, reuse


def test_conv_as_dense_is_the_convolution(rng):
    """Every output pixel of the tiled Dense, on the windows, is the convolution's (the reference
    of both, independently)."""
    q = _conv(rng, 1)
    op, src = q.op("c"), q.input.fmt
    x = rng.integers(src.min_int, src.max_int + 1, size=(5,) + tuple(q.input.shape))
    dense = conv_as_dense(op)
    assert dense.n_in == op.n_in and dense.size == op.size
    patches = conv_patches(op, x).reshape(len(x), -1, op.n_in)  # (image, window, taps)
    f = op.n_out
    # output pixel p of the tiled Dense, fed window p, is the convolution's pixel p
    got = [evaluate_op(dense, [patches[:, p]], [src])[:, p * f:(p + 1) * f] for p in range(patches.shape[1])]
    np.testing.assert_array_equal(np.concatenate(got, axis=1), evaluate_op(op, [x], [src]).reshape(len(x), -1))


def test_windows_share_weight_columns(rng):
    """R <= fan-in: each lane computes one (pixel, channel) output; lanes of the same channel read
    the same weights at the same steps, so the ROM holds each channel's columns once, and a
    multiplier whose weights are all zero (a depthwise convolution's other channels) is not built."""
    q = _conv(rng, 0)
    op, src = q.op("c"), q.input.fmt
    for reuse in (2, 3, op.n_in):
        layer = FoldedConv(op, src, reuse)
        sch = layer.schedule
        assert sch.lanes == op.size and sch.outputs_per_lane == 1
        columns, column_of = layer._weight_columns
        assert len(columns) <= op.n_out * sch.inputs_per_step
        assert layer.rom_bits == sch.cycles * len(columns) * layer._w_shape.width
        for lane in range(sch.lanes):  # every window of channel f uses channel f's columns
            assert column_of[lane] == column_of[lane % op.n_out]
    q = _conv(rng, 3)  # depthwise, 3 channels: with 3 inputs per step only one has a weight
    op = q.op("c")
    assert op.depthwise and op.n_in == 18
    layer = FoldedConv(op, q.input.fmt, 6)
    assert layer.schedule.inputs_per_step == 3
    assert layer.multipliers <= layer.schedule.lanes < layer.schedule.multipliers  # one of three per lane


def _network_check(q, net, seed, n):
    fmt = q.input.fmt
    x = np.random.default_rng(seed).integers(fmt.min_int, fmt.max_int + 1, size=(n,) + tuple(q.input.shape))
    result = verify_design(Design(q, net), x, seed=seed, gap=0.3, stall=0.3)
    assert not result.mismatches, result.mismatches[:2]
    assert result.latencies == {net.latency}
    assert result.intervals == {net.interval}, (result.intervals, net.interval)
    return result


@pytest.mark.parametrize("case", range(len(CASES)))
def test_folded_conv_stream_matches_reference(rng, case):
    """The pixel-stream folded convolution (behind its padding stage) in a Network, every R:
    outputs bit for bit with gaps and stalls; latency and cycles per image exactly the timing
    model's; line buffers in registers and in block RAM."""
    q = _conv(rng, case)
    op = q.op("c")
    for k, reuse in enumerate(_reuses(op, streamed=True)):
        net = Network(q, io="stream", layer_reuse={"c": reuse}, memory_bits=1 if k % 2 else 1 << 20,
                      levels_per_stage=1 + k % 2)
        layer = dict(net.layers)["c"]
        assert isinstance(layer, FoldedConvStream) and layer.reuse == reuse
        assert layer.interval == fold_schedule(op.n_in, op.n_out, reuse).cycles <= reuse
        _network_check(q, net, case * 10 + k, n=3)


def test_stream_pixels_keep_flowing_while_a_window_is_computed(rng):
    """A window's products take R cycles, but the pixels that complete no window enter meanwhile:
    with a stride of 2 and R = 2 the folded layer keeps the image rate of the unfolded one."""
    g = ImageNet(rng, (4, 8, 1)).conv("c", 2, (1, 2), (1, 2), "valid", "relu").graph()
    q = lower(g, formats(3, ["c"]))
    plain, folded = Network(q, io="stream"), Network(q, io="stream", reuse=2)
    assert isinstance(dict(folded.layers)["c"], FoldedConvStream)
    assert folded.interval == plain.interval == 32
    _network_check(q, folded, 3, n=3)


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_default_reuse_folds_every_layer(rng, io):
    """``reuse`` folds convolutions and Dense layers alike; a per-layer entry wins; R = 1 keeps a
    layer parallel. Conv -> pool -> Conv -> Flatten -> Dense."""
    g = (ImageNet(rng, (4, 4, 2)).conv("c1", 2, (3, 3), padding="same", activation="relu")
         .pool("p", "max", (2, 2), padding="same").conv("c2", 2, (2, 2), activation="leaky_relu")
         .dense("d", 3).graph())
    q = lower(g, formats(41, ["c1", "p", "c2", "d"]))
    net = Network(q, io=io, reuse=4, layer_reuse={"c2": 1})
    kinds = {name: type(layer) for name, layer in net.layers}
    assert kinds["c1"] is (FoldedConv if io == "parallel" else FoldedConvStream)
    assert kinds["c2"] is (Conv if io == "parallel" else ConvStream)
    assert kinds["d"].__name__ == "FoldedDense"
    _network_check(q, net, 5, n=3 if io == "stream" else 8)


@pytest.mark.parametrize("seed", range(4))
def test_random_folded_cnns(seed):
    """Random small CNNs (random formats, shapes, strides, padding, a random R per convolution)
    in a random I/O style."""
    rs = random.Random(seed)
    rng = np.random.default_rng(seed)
    h, w, c = rs.randint(3, 6), rs.randint(3, 6), rs.randint(1, 3)
    kh, kw = rs.randint(1, min(3, h)), rs.randint(1, min(3, w))
    net_b = ImageNet(rng, (h, w, c)).conv("c1", rs.randint(1, 3), (kh, kw), (rs.randint(1, 2), rs.randint(1, 2)),
                                          rs.choice(["valid", "same"]), rs.choice(["relu", "linear", "leaky_relu"]))
    net_b = net_b.conv("c2", rs.randint(1, 3), (1, 1), activation="relu")
    q = lower(net_b.graph(), formats(900 + seed, ["c1", "c2"]))
    io = rs.choice(["parallel", "stream"])
    layer_reuse = {name: rs.choice([2, 3, 7, 50]) for name in ("c1", "c2")}
    net = Network(q, io=io, layer_reuse=layer_reuse, multiplier=rs.choice(["csd", "cse"]))
    _network_check(q, net, seed, n=3)


def test_folded_stream_conv_verilog_on_icarus(rng, tmp_path):
    """The exported Verilog of a padded, folded stream convolution (window front and products in
    one module tree) equals the reference under Icarus at the report's latency and interval."""
    pytest.importorskip("cocotb")
    from nnhdl.convert import convert

    q = _conv(rng, 1)
    design = convert(q, tmp_path / "out", io="stream", reuse=4, rtlil=False)
    assert isinstance(dict(design.network.layers)["c"], FoldedConvStream)
    fmt = q.input.fmt
    x = np.random.default_rng(2).integers(fmt.min_int, fmt.max_int + 1, size=(3,) + tuple(q.input.shape))
    result = verify_design(design, x, simulator="icarus", seed=2, gap=0.3, stall=0.3)
    assert not result.mismatches, result.mismatches[:2]
    assert result.latencies == {design.network.latency} and result.intervals == {design.network.interval}


def test_folded_conv_links_to_the_folded_dense_after_it(rng):
    """io parallel, Conv -> Flatten -> Dense both folded far enough: the convolution's outputs go
    through the double-buffered block RAM to the Dense (nnhdl.layers.link_folded), still equal to
    the reference with gaps and stalls, at the modelled latency and interval."""
    g = ImageNet(rng, (4, 4, 2)).conv("c", 2, (2, 2), activation="relu").dense("d", 3).graph()
    q = lower(g, formats(77, ["c", "d"]))
    net = Network(q, layer_reuse={"c": q.op("c").n_in * 16, "d": 18 * 3})
    layers = dict(net.layers)
    assert isinstance(layers["c"], FoldedConv) and layers["c"]._sink is not None
    assert layers["c"]._sink is layers["d"]._source and layers["c"].memory_bits > 0
    _network_check(q, net, 1, n=6)
