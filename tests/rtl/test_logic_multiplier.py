"""Products of two variables built from adders (``Datapath.multiply(..., logic=True)``, used by the
table softmax when a board is short of DSP blocks): exhaustive against Python's integers, and the
softmax built that way against the reference."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from nnhdl.fixed import FixedFormat
from nnhdl.ir import Softmax as SoftmaxOp
from nnhdl.layers import Softmax
from nnhdl.layers.pipeline import Datapath
from nnhdl.reference import evaluate_op

from .test_layers import random_raw, run_layer


@pytest.mark.parametrize("wa, sa, wb, sb", [(4, True, 4, True), (5, False, 3, True), (3, True, 6, False),
                                            (4, False, 4, False), (1, False, 5, True)])
def test_logic_product_is_exact(wa, sa, wb, sb):
    """Every pair of values of two small formats, signed and unsigned, through the registered
    partial-product array."""
    a, b = Signal(signed(wa) if sa else unsigned(wa)), Signal(signed(wb) if sb else unsigned(wb))
    ra = range(-(1 << (wa - 1)), 1 << (wa - 1)) if sa else range(1 << wa)
    rb = range(-(1 << (wb - 1)), 1 << (wb - 1)) if sb else range(1 << wb)
    dp = Datapath(levels_per_stage=2)
    product = dp.multiply(dp.input(a, ra[0], ra[-1]), dp.input(b, rb[0], rb[-1]), logic=True)
    (out,), latency = dp.outputs([product])
    assert dp.multipliers == 0
    m = Module()
    m.d.sync += dp.statements()
    pairs = [(x, y) for x in ra for y in rb]
    got = []

    async def bench(ctx):
        for k in range(len(pairs) + latency):
            if k < len(pairs):
                ctx.set(a, pairs[k][0])
                ctx.set(b, pairs[k][1])
            await ctx.tick()
            if k + 1 >= latency:
                got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got[:len(pairs)] == [x * y for x, y in pairs]


@pytest.mark.parametrize("n, src", [(5, "fixed<16,6>"), (3, "fixed<8,3>")])
def test_softmax_with_logic_multipliers(rng, n, src):
    src = FixedFormat.parse(src)
    op = SoftmaxOp("sm", ("in",), (n,), fmt=FixedFormat.parse("ufixed<16,1,RND,SAT>"),
                   exp_fmt=FixedFormat.parse("fixed<18,8,RND,SAT>"), inv_fmt=FixedFormat.parse("fixed<18,8,RND,SAT>"),
                   table_size=1024)
    layer = Softmax(op, src, logic_multipliers=True)
    assert layer.multipliers == 0 and Softmax(op, src).multipliers == n
    x = random_raw(rng, src, 150, n)
    x[2:40] = x[2:40] // 16
    np.testing.assert_array_equal(run_layer(layer, op, x, src, rng), evaluate_op(op, [x], [src]))
