"""Found by the fuzz suite: a pixel-stream network whose input is one transfer per inference but
whose padding stage makes its II 2 queues inferences at full rate; the reported latency is from
idle, and verify must measure it so (it measured the queued latency, 7, against the reported 6)."""

from nnhdl.config import PrecisionConfig
from nnhdl.convert import Design, build_network
from nnhdl.ir import Graph, Input, Pad, Pool, Reshape
from nnhdl.passes import lower
from nnhdl.verify import random_inputs, verify_design


def test_latency_from_idle_when_a_single_transfer_network_has_ii_above_one():
    ops = (Input("in", (), (1,), origin="in"), Reshape("r_in", ("in",), (1, 1, 1), origin="r_in"),
           Pad("pad0", ("r_in",), (1, 1, 1), origin="pad0", in_shape=(1, 1, 1), padding=(0, 0, 0, 0)),
           Pad("pad", ("pad0",), (1, 2, 1), origin="pad", in_shape=(1, 1, 1), padding=(0, 0, 0, 1)),
           Pool("p1", ("pad",), (1, 2, 1), origin="p1", kind="max", in_shape=(1, 2, 1), pool=(1, 1)),
           Pool("p2", ("p1",), (1, 1, 1), origin="p2", kind="max", in_shape=(1, 2, 1), pool=(1, 1), strides=(1, 2)))
    graph = lower(Graph(ops, ("p2",), name="cnn"), PrecisionConfig.from_dict({"precision": "ufixed<1,0>"}))
    net = build_network(graph, "csd", 1, "stream", 1)
    assert (net.in_beats, net.out_beats, net.interval) == (1, 1, 2)
    result = verify_design(Design(graph, net), random_inputs(graph, 3, 0), gap=0.0, stall=0.0)
    assert result.passed and result.latencies == {net.latency}, (result.latencies, net.latency)


def test_a_stream_network_whose_output_ignores_its_input_is_refused():
    """Found by the fuzz suite: a left padding pixel is the only one a stride-2 window sees, so the
    output (emitted as soon as the padding is) came before its input; the timing model gave -98."""
    import pytest

    from nnhdl.export import to_verilog
    from nnhdl.layers import NetworkError
    ops = (Input("in", (), (1,), origin="in"), Reshape("r_in", ("in",), (1, 1, 1), origin="r_in"),
           Pad("pad", ("r_in",), (1, 2, 1), origin="pad", in_shape=(1, 1, 1), padding=(0, 0, 1, 0)),
           Pool("p", ("pad",), (1, 1, 1), origin="p", kind="max", in_shape=(1, 2, 1), pool=(1, 1), strides=(1, 2)))
    graph = lower(Graph(ops, ("p",), name="cnn"), PrecisionConfig.from_dict({"precision": "ufixed<1,0>"}))
    net = build_network(graph, "csd", 1, "stream", 1)  # construction is cheap; the timing is checked on use
    with pytest.raises(NetworkError, match="does not depend on its input"):
        net.latency
    with pytest.raises(NetworkError, match="does not depend on its input"):
        to_verilog(net, "cnn")
    build_network(graph, "csd", 1, "parallel", 1).latency  # whole tensors: nothing comes early
