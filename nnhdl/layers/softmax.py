"""Softmax: hls4ml's table-based ``stable`` softmax, or the index of the largest logit."""

from ..fixed import FixedFormat, Overflow, Rounding
from ..reference import effective_table_size, reduce_tree, softmax_tables, table_index_bits
from .base import PipelinedLayer

__all__ = ["Softmax", "Argmax"]


class Softmax(PipelinedLayer):
    """Table-based softmax, bit-exact with :func:`nnhdl.reference.softmax_table` (hls4ml's
    ``softmax_stable``): a comparator tree finds the maximum; each ``x_i - max`` (saturated)
    addresses the exp ROM by its top bits; the exp values are summed in hls4ml's tree order with
    saturation; the sum's top bits address the inverse ROM; each exp value is multiplied by the
    inverse (one hardware multiplier per output) and cast to ``op.fmt``. ROMs are read
    synchronously (one register), so they map to block RAM where the target has it.
    Members and latency: see :class:`PipelinedLayer`."""

    def __init__(self, op, in_fmt, *, levels_per_stage=2):
        self.op = op
        self.table_size = effective_table_size(op.table_size, in_fmt, op.exp_fmt)
        super().__init__(in_fmt, op.shape[-1], op.fmt, op.shape[-1], levels_per_stage=levels_per_stage, name=op.name)

    def build(self, dp, xs):
        op, in_fmt = self.op, self.in_fmt
        n_bits = table_index_bits(self.table_size)
        exp_table, inv_table = softmax_tables(in_fmt, op.exp_fmt, op.inv_fmt, self.table_size)
        diff_fmt = FixedFormat(in_fmt.width, in_fmt.int_bits, True, Rounding.RND, Overflow.SAT)

        def tree(nodes, combine):
            if len(nodes) == 1:
                return nodes[0]
            if len(nodes) == 2:
                return combine(nodes[0], nodes[1])
            left, _ = reduce_tree(len(nodes))
            return combine(tree(nodes[:left], combine), tree(nodes[left:], combine))

        x_max = tree(xs, dp.maximum)
        exps = []
        for x in xs:
            d = dp.overflow(dp.add(x, dp.negate(x_max)), diff_fmt)
            d = dp.overflow(d, in_fmt)
            index = dp.bits(dp.word(d, in_fmt.width), in_fmt.width - n_bits, in_fmt.width)
            exps.append(dp.lookup(index, exp_table, memory="exp"))
        total = tree(exps, lambda a, b: dp.overflow(dp.add(a, b), op.exp_fmt))
        index = dp.bits(dp.word(total, op.exp_fmt.width), op.exp_fmt.width - n_bits, op.exp_fmt.width)
        inv = dp.lookup(index, inv_table, memory="inv")
        frac = op.exp_fmt.frac_bits + op.inv_fmt.frac_bits
        return [dp.requantize(dp.multiply(e, inv), frac, op.fmt) for e in exps]


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
