"""Zero padding of a whole image in one word (``io = parallel``)."""

import math

from .base import PipelinedLayer

__all__ = ["Pad"]


class Pad(PipelinedLayer):
    """The input image with ``op.padding`` rows and columns of zeros around it, registered once
    (latency 1; the zeros are constants). Members: see :class:`PipelinedLayer`."""

    def __init__(self, op, in_fmt, *, levels_per_stage=2):
        self.op = op
        super().__init__(in_fmt, math.prod(op.in_shape), op.fmt, op.size, levels_per_stage=levels_per_stage,
                         name=op.name)

    def build(self, dp, xs):
        h, w, c = self.op.in_shape
        pt, pb, pl, pr = self.op.padding
        zero = dp.const(0)
        out = []
        for y in range(-pt, h + pb):
            for x in range(-pl, w + pr):
                inside = 0 <= y < h and 0 <= x < w
                out += [xs[(y * w + x) * c + ch] if inside else zero for ch in range(c)]
        return out
