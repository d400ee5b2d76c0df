"""Logic built once (``Datapath(share=True)``): a value that several expressions read is driven onto
one combinational signal, so the netlist holds each adder once. Exhaustive against Python's
integers, the same figures with and without sharing, and a Dense layer's RTLIL holds exactly its
adders (no copies, no shifter cells for constant shifts)."""

import re

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal, signed

from nnhdl.fixed import FixedFormat, Overflow, Rounding
from nnhdl.layers import Network
from nnhdl.layers.pipeline import Datapath

from ..conftest import make_mlp, sample_pipeline

WIDTH = 6  # the input: every signed 6-bit value


def _saturate(v, lo, hi):
    return min(max(v, lo), hi)


def _expected(x):
    """The outputs of :func:`_build` for input ``x``, from Python's integers only."""
    y = 5 * x + 3 * x - 7          # shared by everything below
    rnd = _saturate((y + 2) >> 2, -8, 7)  # y / 4 rounded half up (RND), saturated to 4 bits (SAT)
    trn = ((y >> 1) + 16) % 32 - 16       # y / 2 truncated, wrapped to 5 bits
    return [y, rnd, trn, max(y, -3 * x), y if y > 0 else 0, 3 * y if y < 0 else y, y * y,
            2 * (y // 3) + (y % 3 != 0)]


def _build(dp, x):
    """Output nodes reading one node ``y`` many times, most of them in ``y``'s own stage."""
    y = dp.add(dp.multiply_const(x, 5), dp.add(dp.multiply_const(x, 3), dp.const(-7)))
    return [y,
            dp.requantize(y, 2, FixedFormat(4, 4, True, Rounding.RND, Overflow.SAT)),
            dp.requantize(y, 1, FixedFormat(5, 5, True, Rounding.TRN, Overflow.WRAP)),
            dp.maximum(y, dp.multiply_const(x, -3)),
            dp.relu(y),
            dp.select(dp.is_negative(y), dp.multiply_const(y, 3), y),
            dp.multiply(y, y, logic=True),
            dp.divide_sticky(y, 3)]


def _simulate(share, levels):
    x = Signal(signed(WIDTH))
    dp = Datapath(levels_per_stage=levels, share=share)
    outs, latency = dp.outputs(_build(dp, dp.input(x, -(1 << (WIDTH - 1)), (1 << (WIDTH - 1)) - 1)))
    m = Module()
    m.d.sync += dp.statements()
    m.d.comb += dp.combinational()
    values = list(range(-(1 << (WIDTH - 1)), 1 << (WIDTH - 1)))
    got = sample_pipeline(m, x, outs, values, latency)
    return dp, latency, values, got


@pytest.mark.parametrize("levels", [1, 2, 1 << 20])  # 1 << 20: everything in one stage, all of it shared
def test_shared_datapath_is_exact(levels):
    dp, latency, values, got = _simulate(True, levels)
    assert got == [_expected(x) for x in values]
    assert dp.wires  # y is read several times in its stage: it has a signal of its own
    plain, plain_latency, _, plain_got = _simulate(False, levels)
    assert plain_got == got
    # sharing changes the netlist, not the hardware figures
    assert (latency, dp.register_bits, dp.adders, dp.multipliers, dp.logic_bits) == \
        (plain_latency, plain.register_bits, plain.adders, plain.multipliers, plain.logic_bits)


def test_without_share_values_are_self_contained():
    """A datapath used only to build expressions (``share=False``) adds no signals of its own."""
    dp = Datapath(levels_per_stage=1 << 20)
    _build(dp, dp.input(Signal(signed(WIDTH)), -32, 31))
    assert dp.wires == [] and dp.combinational() == []


@pytest.mark.parametrize("multiplier", ["cse", "csd"])
def test_dense_rtlil_holds_each_adder_once(rng, multiplier):
    """The RTLIL of a Dense layer (shared subexpressions, RND/SAT casts, leaky ReLU) has exactly one
    adder or subtractor cell per adder of the layer, and no left-shifter cells (left shifts by
    constants are wiring; right shifts stay ``>>``, see ``Datapath.requantize``)."""
    graph = make_mlp(rng, (12, 10), ["leaky_relu"], {"precision": "fixed<10,4,RND,SAT>"})
    net = Network(graph, multiplier=multiplier)
    (_, layer), = net.layers
    cells = re.findall(r"^\s*cell \$(\w+) ", rtlil.convert(layer, name="dense", emit_src=False), re.M)
    assert cells.count("add") + cells.count("sub") == layer.adders > 0
    assert cells.count("shl") <= 1  # the valid bits' shift, not the datapath's
    assert cells.count("mul") == layer.multipliers == 0
