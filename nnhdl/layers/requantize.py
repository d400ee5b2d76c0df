"""Per-element casts: the hardware of the :class:`~nnhdl.ir.Requantize` op."""

from ..per_element import union_format
from .base import PipelinedLayer

__all__ = ["Requantize"]


class Requantize(PipelinedLayer):
    """Element ``k`` cast to ``formats[k]`` (rounding, overflow; ``None``: constant 0), then
    shifted left into the union format ``op.fmt`` (exact). Mirrors
    :func:`nnhdl.per_element.requantize_elements`; ``formats`` defaults to ``op.formats`` (a
    pixel stream passes one pixel's channel formats). Members and latency: see
    :class:`PipelinedLayer`."""

    def __init__(self, op, in_fmt, *, formats=None, levels_per_stage=2):
        self.op = op
        self.formats = tuple(op.formats if formats is None else formats)
        if union_format(self.formats).frac_bits > op.fmt.frac_bits:
            raise ValueError(f"Requantize {op.name!r}: its format {op.fmt} is coarser than its elements' formats")
        n = len(self.formats)
        super().__init__(in_fmt, n, op.fmt, n, levels_per_stage=levels_per_stage, name=op.name)

    def build(self, dp, xs):
        out = self.op.fmt
        nodes = []
        for x, fmt in zip(xs, self.formats):
            if fmt is None:
                nodes.append(dp.const(0))
                continue
            q = dp.requantize(x, self.in_fmt.frac_bits, fmt)
            nodes.append(dp.requantize(q, fmt.frac_bits, out))  # a left shift: out holds fmt exactly
        return nodes
