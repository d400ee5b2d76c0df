"""Softmax: hls4ml 1.3's table-based ``stable`` softmax, or the index of the largest logit."""

from ..softmax import reduce_tree, softmax_plan_of, softmax_tables
from .base import PipelinedLayer

__all__ = ["Softmax", "Argmax"]


class Softmax(PipelinedLayer):
    """Table-based softmax, bit-exact with :func:`nnhdl.softmax.softmax_stable` (hls4ml 1.3's
    ``softmax_stable``): a comparator tree finds the maximum; each ``x_max - x_i``, cast to
    ``inp_norm``, addresses the exp ROM by its top bits; the exp values, cast to the softmax
    accumulator, are summed in hls4ml's tree order (each addition cast); the sum, cast to
    ``inv_input``, addresses the inverse ROM by its top bits; each exp value is multiplied by the
    inverse (one hardware multiplier per output; with ``logic_multipliers`` an array of partial
    products in logic instead, for targets short of DSP blocks) and cast to ``op.fmt``. ROMs are read
    synchronously (one register), so they map to block RAM where the target has it.
    ``table_size`` / ``exp_table_size``: the entries of the inverse / exp ROM.
    Members and latency: see :class:`PipelinedLayer`."""

    def __init__(self, op, in_fmt, *, levels_per_stage=2, logic_multipliers=False):
        self.op = op
        self.logic_multipliers = logic_multipliers
        self.plan = softmax_plan_of(op, in_fmt)
        self.table_size = self.plan.inv_size
        self.exp_table_size = self.plan.exp_size
        super().__init__(in_fmt, op.shape[-1], op.fmt, op.shape[-1], levels_per_stage=levels_per_stage, name=op.name)

    def figures(self):
        return dict(super().figures(), table_size=self.table_size)

    def build(self, dp, xs):
        plan = self.plan
        exp_table, inv_table = softmax_tables(plan)

        def top_bits(node, fmt, n):
            return dp.bits(dp.word(node, fmt.width), fmt.width - n, fmt.width)

        x_max = reduce_tree(xs, dp.maximum)
        exps = []
        for x in xs:
            d = dp.requantize(dp.add(x_max, dp.negate(x)), plan.in_fmt.frac_bits, plan.norm_fmt)
            e = dp.lookup(top_bits(d, plan.norm_fmt, plan.exp_bits), exp_table, memory="exp")
            exps.append(dp.requantize(e, plan.exp_fmt.frac_bits, plan.accum_fmt))
        total = reduce_tree(exps, lambda a, b: dp.overflow(dp.add(a, b), plan.accum_fmt))
        total = dp.requantize(total, plan.accum_fmt.frac_bits, plan.inv_input_fmt)
        inv = dp.lookup(top_bits(total, plan.inv_input_fmt, plan.inv_bits), inv_table, memory="inv")
        frac = plan.accum_fmt.frac_bits + plan.inv_fmt.frac_bits
        return [dp.requantize(dp.multiply(e, inv, logic=self.logic_multipliers), frac, plan.out_fmt) for e in exps]


class Argmax(PipelinedLayer):
    """The index of the largest of ``n_in`` inputs (the lowest index on ties), as one unsigned
    word of ``op.fmt``: a registered tree of comparators carrying (value, index) pairs.
    Members and latency: see :class:`PipelinedLayer`."""

    def __init__(self, op, in_fmt, n_in, *, levels_per_stage=2):
        self.op = op
        super().__init__(in_fmt, n_in, op.fmt, 1, levels_per_stage=levels_per_stage, name=op.name)

    def build(self, dp, xs):
        pairs = [(x, dp.const(k)) for k, x in enumerate(xs)]
        while len(pairs) > 1:
            nxt = []
            for k in range(0, len(pairs) - 1, 2):
                (va, ia), (vb, ib) = pairs[k], pairs[k + 1]
                ge = dp.greater_equal(va, vb)
                nxt.append((dp.select(ge, va, vb), dp.select(ge, ia, ib)))
            if len(pairs) % 2:
                nxt.append(pairs[-1])
            pairs = nxt
        return [pairs[0][1]]
