"""The export's cell-level combinational-cycle check (:mod:`nnhdl.fast_netlist`): it proves
acyclic netlists acyclic, never lets a real cycle through (Amaranth's own check then raises), and
changes nothing in the RTLIL."""

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.hdl._nir import CombinationalCycle

from nnhdl.fast_netlist import cells_acyclic, fast_netlist
from nnhdl.layers import Network

from ..conftest import make_mlp



def _loop():
    """``a = b + 1; b = a ^ x``: a real combinational cycle."""
    m = Module()
    x, a, b = Signal(4), Signal(4), Signal(4)
    m.d.comb += [a.eq(b + 1), b.eq(a ^ x)]
    return m, [x, a]


def _false_alarm():
    """Bit 1 of ``s`` is driven from bit 0 of ``s``: one cell feeds itself, but no bit does."""
    m = Module()
    x, s, y = Signal(), Signal(2), Signal(2)
    m.d.comb += [s[0].eq(x), s[1].eq(s[0]), y.eq(s)]
    return m, [x, y]


def test_a_real_cycle_is_still_refused():
    m, ports = _loop()
    with fast_netlist(), pytest.raises(CombinationalCycle, match="Combinational cycle"):
        rtlil.convert(m, ports=ports)


def test_a_cell_level_false_alarm_falls_back_to_the_exact_check():
    from amaranth.hdl import _nir
    seen = []
    original = _nir.Netlist.check_comb_cycles

    def spy(netlist):
        seen.append(cells_acyclic(netlist))
        original(netlist)

    m, ports = _false_alarm()
    _nir.Netlist.check_comb_cycles = spy
    try:
        rtlil.convert(m, ports=ports)  # Amaranth's check passes it
    finally:
        _nir.Netlist.check_comb_cycles = original
    assert seen == [False]  # the cell graph has a loop the bits do not
    m, ports = _false_alarm()
    with fast_netlist():
        text = rtlil.convert(m, ports=ports)  # and so does the fast path, through the fallback
    assert "module" in text


def test_a_pipelined_network_is_proven_acyclic_and_its_rtlil_is_unchanged():
    from amaranth.hdl import _nir
    network = Network(make_mlp(np.random.default_rng(3), [6, 5, 3], ["relu", "linear"]), levels_per_stage=1)
    verdicts = []
    original = _nir.Netlist.check_comb_cycles
    resolve_value, value_new = _nir.Netlist.__dict__["resolve_value"], _nir.Value.__dict__["__new__"]
    from_cell = _nir.Net.__dict__["from_cell"]

    def spy(netlist):
        verdicts.append(cells_acyclic(netlist))
        original(netlist)

    _nir.Netlist.check_comb_cycles = spy
    try:
        plain = rtlil.convert(network, name="mlp", emit_src=False)
    finally:
        _nir.Netlist.check_comb_cycles = original
    assert verdicts == [True]
    with fast_netlist():
        assert rtlil.convert(network, name="mlp", emit_src=False) == plain
    assert _nir.Netlist.check_comb_cycles is original  # the context restores Amaranth's own code
    assert _nir.Netlist.__dict__["resolve_value"] is resolve_value
    assert _nir.Value.__dict__["__new__"] is value_new and _nir.Net.__dict__["from_cell"] is from_cell
