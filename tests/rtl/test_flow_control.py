"""Credit flow control (nnhdl.layers.Network): the layers run on while the consumer waits, the
output queue takes exactly the inferences the credits let in, and nothing is lost, duplicated or
reordered; the options that choose it."""

import json

import numpy as np
import pytest
from amaranth.sim import Simulator

from nnhdl.layers import Network
from nnhdl.layers.timing import stream_timing
from nnhdl.options import BuildOptions, FlowControl, OptionsError
from nnhdl.reference import trace
from nnhdl.sim.packing import pack, unpack

from ..conftest import make_mlp


def _graph(rng):
    return make_mlp(rng, (5, 7, 3), ["relu"], {"precision": "fixed<8,3,RND,SAT>"})


def _hold_then_release(net, x, hold):
    """Offer ``x`` at full rate with ``o.ready`` low for ``hold`` cycles, then high. Returns the
    inputs accepted during the hold, the cycles the last layer's output was valid during it, and
    the outputs in the order they came (raw ints)."""
    last = net.layers[-1][1].o
    words = pack(x, net.in_fmt.width)
    seen = {"in": 0, "last_valid": 0, "out": []}

    async def bench(ctx):
        k, cycle = 0, 0
        while len(seen["out"]) < len(x):
            ctx.set(net.i.valid, k < len(x))
            if k < len(x):
                ctx.set(net.i.payload.as_value(), words[k])
            ctx.set(net.o.ready, cycle >= hold)
            _, _, iv, ir, ov, orr, lv, data = await ctx.tick().sample(
                net.i.valid, net.i.ready, net.o.valid, net.o.ready, last.valid, net.o.payload.as_value())
            if iv and ir:
                k += 1
                seen["in"] += cycle < hold
            if cycle < hold:
                seen["last_valid"] += lv
            if ov and orr:
                seen["out"].append(data)
            cycle += 1
            assert cycle < hold + 50 * len(x) + 1000, "no progress"

    sim = Simulator(net)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    outputs = unpack(np.array(seen["out"], dtype=object), net.out_fmt.width, net.out_size, net.out_fmt.signed)
    return seen["in"], seen["last_valid"], outputs


@pytest.mark.parametrize("layer_reuse", [None, {"fc1": 3}])
def test_credit_layers_run_on_while_the_consumer_waits(rng, layer_reuse):
    """While ``o.ready`` is low, exactly ``queue_depth`` inferences enter, every one of them
    leaves the last layer (into the queue: no layer waited), and afterwards every output comes
    out exact and in order. With stall flow control the layers wait instead: a fully parallel
    pipeline fills its ``latency`` register stages and no more."""
    graph = _graph(rng)
    net = Network(graph, flow_control="credit", layer_reuse=layer_reuse)
    assert net.flow is FlowControl.CREDIT and net.queue_depth == -(-net.latency // net.interval) + 1
    fmt = graph.input.fmt
    x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(net.queue_depth + 6, graph.input.size))
    hold = 3 * (net.latency + net.queue_depth * net.interval) + 10
    entered, left_last, outputs = _hold_then_release(net, x, hold)
    assert entered == net.queue_depth and left_last == net.queue_depth
    np.testing.assert_array_equal(outputs, trace(graph, x, raw=True)[graph.outputs[0]].reshape(len(x), -1))

    stalled = Network(graph, flow_control="stall", layer_reuse=layer_reuse)
    x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(stalled.latency + 6, graph.input.size))
    entered, left_last, outputs = _hold_then_release(stalled, x, hold)
    if layer_reuse is None:
        assert entered == stalled.latency and left_last == hold - stalled.latency  # its output waited
    np.testing.assert_array_equal(outputs, trace(graph, x, raw=True)[graph.outputs[0]].reshape(len(x), -1))


def test_credit_timing_is_the_layers_timing_and_the_credits_bound_it(rng):
    """With the queue's depth the credits never hold an always-ready network up (same latency
    and interval as stall flow control); with one credit, each inference waits for the previous
    one to leave."""
    graph = _graph(rng)
    credit, stall = Network(graph, flow_control="credit"), Network(graph, flow_control="stall")
    assert (credit.latency, credit.interval) == (stall.latency, stall.interval) == (credit.latency, 1)
    assert stream_timing(credit, credits=1).interval == credit.latency + 1
    assert stream_timing(credit, credits=credit.queue_depth - 1).interval == 1  # the depth has one spare
    assert stall.queue_depth == 0 and stall.queue_bits == 0
    assert credit.queue_bits == credit.queue_depth * credit.out_fmt.width * credit.out_size


def test_flow_control_default_and_choices():
    assert BuildOptions().flow_control is BuildOptions(family="ecp5").flow_control is FlowControl.STALL
    assert BuildOptions(flow_control="credit").flow_control is FlowControl.CREDIT
    with pytest.raises(OptionsError, match="credit flow control needs io = parallel"):
        BuildOptions(io="stream", flow_control="credit")
    with pytest.raises(OptionsError, match="flow_control must be one of credit, stall"):
        BuildOptions(flow_control="fifo")


def test_options_file_records_the_flow_and_old_files_read_as_stall():
    options = BuildOptions(flow_control="credit")
    assert BuildOptions.from_dict(json.loads(json.dumps(options.to_dict()))).flow_control is FlowControl.CREDIT
    old = options.to_dict()
    del old["flow_control"]  # written before flow control was a choice: every layer stalled then
    assert BuildOptions.from_dict(old).flow_control is FlowControl.STALL


def test_report_names_the_flow_and_counts_the_queue(rng, tmp_path):
    """``report.json`` records the flow control and the queue, the estimates include the queue,
    and the converted folder rebuilds (``load_design``) with the same flow."""
    from nnhdl.convert import convert, load_design
    from nnhdl.estimate import estimate_queue

    graph = _graph(rng)
    credit = convert(graph, tmp_path / "credit", family="ecp5", flow_control="credit", rtlil=False, verilog=False)
    stall = convert(graph, tmp_path / "stall", family="ecp5", rtlil=False, verilog=False)
    queue = credit.report["output_queue"]
    assert credit.report["flow_control"] == "credit" and stall.report["flow_control"] == "stall"
    assert queue == {"depth": credit.network.queue_depth, "bits": credit.network.queue_bits}
    assert stall.report["output_queue"] is None
    for family, figures in credit.report["estimates"].items():
        extra = estimate_queue(queue, family)
        assert extra["LUT"] > 0 and extra["FF"] > queue["bits"] // queue["depth"] - 1
        assert figures["LUT"] - stall.report["estimates"][family]["LUT"] == extra["LUT"]
        assert figures["FF"] - stall.report["estimates"][family]["FF"] == extra["FF"]
    assert load_design(tmp_path / "credit").network.flow is FlowControl.CREDIT
    assert load_design(tmp_path / "stall").network.flow is FlowControl.STALL


def test_credit_verilog_on_icarus(rng, tmp_path):
    """The exported Verilog of a credit network (its queue a memory in Verilog) equals the
    reference on Icarus under heavy stalls, at the report's latency and interval."""
    pytest.importorskip("cocotb")
    from nnhdl.convert import convert
    from nnhdl.verify import random_inputs, verify_design

    graph = _graph(rng)
    design = convert(graph, tmp_path / "out", family="xc7", flow_control="credit", rtlil=False)
    assert design.network.flow is FlowControl.CREDIT
    result = verify_design(design, random_inputs(graph, 40, 5), simulator="icarus", seed=5, gap=0.2, stall=0.7)
    assert result.simulator == "icarus" and not result.mismatches, result.mismatches[:2]
    assert result.latencies == {design.network.latency} and result.intervals == {design.network.interval}
