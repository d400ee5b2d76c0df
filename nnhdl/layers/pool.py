"""Pooling arithmetic (max, exact average) and the parallel pooling layer."""

import math

from dataclasses import replace

from .base import PipelinedLayer
from .conv import window_taps

__all__ = ["Pool", "pool_node", "average_node", "maximum_node"]


def maximum_node(dp, values):
    """The largest of ``values`` by a balanced tree of comparators."""
    return dp.reduce(values, dp.maximum)


def average_node(dp, total, count, in_frac, fmt):
    """``cast_fmt(total / count)`` exactly; mirrors :func:`nnhdl.reference.average`."""
    if count & (count - 1) == 0:
        return dp.requantize(total, in_frac + count.bit_length() - 1, fmt)
    t = fmt.frac_bits - in_frac + 1
    num = dp.materialize(total)
    if t > 0:
        num = replace(num, shift=num.shift + t)
    return dp.requantize(dp.divide_sticky(num, count << max(-t, 0)), fmt.frac_bits + 2, fmt)


def pool_node(dp, op, values, in_fmt, counts):
    """One pooled output of ``values`` (the window's real pixels, nodes in ``in_fmt``).
    ``counts``: the possible real-pixel counts of this window with, when there are several, a
    node selecting among them (``(count,)`` or ``(counts, class_node)``)."""
    if op.kind == "max":
        return dp.requantize(maximum_node(dp, values), in_fmt.frac_bits, op.fmt)
    total = dp.sum(list(values))
    if len(counts) == 1:
        return average_node(dp, total, int(counts[0]), in_fmt.frac_bits, op.fmt)
    options, cls = counts
    result = average_node(dp, total, int(options[0]), in_fmt.frac_bits, op.fmt)
    for k in range(1, len(options)):
        other = average_node(dp, total, int(options[k]), in_fmt.frac_bits, op.fmt)
        result = dp.select(dp.greater_equal(cls, dp.const(k)), other, result)
    return result


class Pool(PipelinedLayer):
    """Max or average pooling of a whole image in one word (``io = parallel``), II = 1.

    Every window's real pixels (``op.padding`` excluded) are reduced by a comparator tree
    (max) or an adder tree followed by an exact constant division (average), then cast to
    ``op.fmt``; arithmetic of :class:`nnhdl.ir.Pool`. Members and latency: see
    :class:`PipelinedLayer`.
    """

    def __init__(self, op, in_fmt, *, levels_per_stage=2):
        self.op = op
        super().__init__(in_fmt, math.prod(op.in_shape), op.fmt, op.size, levels_per_stage=levels_per_stage,
                         name=op.name)

    def build(self, dp, xs):
        op, c = self.op, self.op.in_shape[2]
        out = []
        for taps in window_taps(op.in_shape, op.pool, op.strides, op.padding, xs):
            for ch in range(c):
                values = [x for x in taps[ch::c] if x is not None]  # the window's real pixels
                out.append(pool_node(dp, op, values, self.in_fmt, (len(values),)))
        return out
