"""The export converts a network one layer at a time, over several processes
(:mod:`nnhdl.export`, :mod:`nnhdl.parallel`): the text does not depend on the number of processes,
the top instantiates one module per layer, and a network whose layers are linked is exported
whole. (That the exported Verilog computes the reference, bit for bit, is what the cocotb tests
check, on every network they export.)"""

import os
import re

import numpy as np
import pytest

from nnhdl.export import to_rtlil, to_rtlil_and_verilog
from nnhdl.layers import Network
from nnhdl.parallel import default_jobs, run_jobs

from ..conftest import make_mlp


def _pid(k):
    return k, os.getpid()


def test_run_jobs_returns_results_in_order_from_several_processes():
    results = run_jobs([lambda k=k: _pid(k) for k in range(5)], costs=[5, 1, 1, 1, 1], jobs=2)
    assert [k for k, _ in results] == list(range(5))
    pids = {pid for _, pid in results}
    assert os.getpid() in pids and len(pids) == 2
    # the longest job alone in one process, the four short ones in the other
    assert results[0][1] not in {pid for _, pid in results[1:]}


def test_nnhdl_jobs_one_never_forks(monkeypatch):
    monkeypatch.setenv("NNHDL_JOBS", "1")
    assert default_jobs() == 1
    assert {pid for _, pid in run_jobs([lambda k=k: _pid(k) for k in range(4)])} == {os.getpid()}
    monkeypatch.setenv("NNHDL_JOBS", "two")
    with pytest.raises(ValueError, match="NNHDL_JOBS must be a whole number"):
        default_jobs()


def test_a_failing_job_raises_in_the_caller():
    """A job that raises in a child is run again by the caller, where its error surfaces."""
    def fail():
        if os.getpid() != parent:
            raise RuntimeError("in the child")
        raise KeyError("in the caller")

    parent = os.getpid()
    with pytest.raises(KeyError, match="in the caller"):
        run_jobs([lambda: 1, fail], costs=[10, 1], jobs=2)  # the cheap job goes to the child


@pytest.fixture(scope="module")
def network():
    return Network(make_mlp(np.random.default_rng(5), [5, 6, 4, 3], ["relu", "leaky_relu", "linear"]),
                   levels_per_stage=1)


def test_the_text_does_not_depend_on_the_processes(network):
    assert to_rtlil(network, "net", jobs=1) == to_rtlil(network, "net", jobs=2)


def test_the_text_does_not_depend_on_building_first():
    """Building the layers beforehand (the report, a simulation) or during the export: the same
    groups, the same text."""
    graph = make_mlp(np.random.default_rng(6), [4, 7, 3], ["relu", "linear"])
    built = Network(graph)
    built.build(jobs=1)
    assert to_rtlil_and_verilog(built, "net") == to_rtlil_and_verilog(Network(graph), "net")


def test_one_module_per_layer_under_one_top(network):
    rtlil, verilog = to_rtlil_and_verilog(network, "net")
    assert rtlil.count("attribute \\top 1\n") == 1
    assert re.findall(r"^attribute \\top 1\nmodule \\(\S+)$", rtlil, re.M) == ["net"]
    layers = [name for name, _ in network.layers]
    assert sorted(re.findall(r"^module \\(\S+)$", rtlil, re.M)) == sorted(["net"] + [f"net.{n}" for n in layers])
    # the top instantiates each layer's module once, and holds no arithmetic of its own
    top = verilog[verilog.index("module net("):]
    top = top[:top.index("endmodule")]
    for name in layers:
        assert len(re.findall(rf"\\net\.{name}\s+{name}\s*\(", top)) == 1
    assert not re.search(r"[^=!<>]\s[+\-]\s", top)


def test_linked_layers_are_exported_whole():
    """Consecutive folded layers that share a memory cannot be separated: one conversion of the
    whole network (the text Amaranth writes for it), every layer a submodule of it."""
    from amaranth.back import rtlil

    graph = make_mlp(np.random.default_rng(2), (4, 16, 12), ["relu"], {"precision": "fixed<8,3>"})
    net = Network(graph, layer_reuse={"fc1": 40, "fc2": 16 * 12})
    assert not net.separable
    assert to_rtlil(net, "linked") == rtlil.convert(net, name="linked", emit_src=False)
    with pytest.raises(Exception, match="linked"):
        net.shell({})
