"""Convolution with constant weights, whole image in one word (``io = parallel``)."""

import math

from ..arith import dense_plan
from ..ir import window_count
from .activation import activation_nodes
from .base import PipelinedLayer
from .dense import check_multiplier, dense_sums

__all__ = ["Conv", "conv_window_nodes", "window_taps"]


def conv_window_nodes(dp, op, plan, taps, in_fmt, multiplier):
    """The output pixel (``op.n_out`` nodes) of Conv ``op`` for one window: ``taps`` lists the
    window's inputs in ``op.weight`` row order (kernel row, kernel column, channel), ``None``
    for padding."""
    sums = dense_sums(dp, op, plan, taps, in_fmt, multiplier)
    return activation_nodes(dp, op.activation, sums, op.accum_fmt.frac_bits, op.fmt, op.alpha, op.alpha_fmt,
                            multiplier)


class Conv(PipelinedLayer):
    """A 2-D (or 1-D) convolution of a whole image per transfer, II = 1.

    ``i`` carries the image flattened row-major (height, width, channels), ``o`` the output
    image likewise. Every output pixel is a :class:`~nnhdl.layers.Dense` over its window with
    the same arithmetic (:class:`nnhdl.ir.Conv`); padding taps and zero weights cost nothing.
    Members and latency: see :class:`PipelinedLayer`.
    """

    def __init__(self, op, in_fmt, *, multiplier="cse", levels_per_stage=2):
        check_multiplier(multiplier)
        self.op = op
        self.multiplier = multiplier
        self.plan = dense_plan(op, in_fmt)
        super().__init__(in_fmt, math.prod(op.in_shape), op.fmt, op.size, levels_per_stage=levels_per_stage,
                         name=op.name)

    def build(self, dp, xs):
        out = []
        for taps in window_taps(self.op.in_shape, self.op.kernel, self.op.strides, self.op.padding, xs):
            out += conv_window_nodes(dp, self.op, self.plan, taps, self.in_fmt, self.multiplier)
        return out


def window_taps(in_shape, kernel, strides, padding, xs):
    """For each window position (row-major), the window's inputs from the flat row-major image
    ``xs`` in (kernel row, kernel column, channel) order; ``None`` where the window is on padding."""
    h, w, c = in_shape
    (kh, kw), (sh, sw), (pt, pb, pl, pr) = kernel, strides, padding
    for r in range(window_count(h, kh, sh, pt, pb)):
        for q in range(window_count(w, kw, sw, pl, pr)):
            taps = []
            for y in range(r * sh - pt, r * sh - pt + kh):
                for x in range(q * sw - pl, q * sw - pl + kw):
                    inside = 0 <= y < h and 0 <= x < w
                    taps += [xs[(y * w + x) * c + ch] if inside else None for ch in range(c)]
            yield taps
