"""Clip: ``y = min(max(x, lo), hi)``, cast to the result format (Keras ``ReLU(max_value=m)`` is a
Clip to ``[0, m]``, ReLU6 one to ``[0, 6]``).

This module is the whole op: its IR dataclass, quantization, reference evaluation, hardware
lowering, Amaranth component, report fields and configuration entry (see
:mod:`nnhdl.ops.registry`).

Arithmetic (quantized graph): the bounds are raw integers of the *input* format — ``lo``
rounded up and ``hi`` rounded down onto the input's grid, so a clipped value never leaves
``[lo, hi]`` — and the clamped raw value is cast to ``fmt`` with its rounding, then its overflow
mode (:func:`nnhdl.fixed.requantize`).
"""

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..fixed import requantize
from ..hardware import Stage
from ..ir import Op
from ..layers.base import PipelinedLayer
from ..precision import PassError, real_range
from ..reference import evaluate_op
from .registry import OpKind, register

__all__ = ["Clip", "ClipKind", "ClipLayer"]


@dataclass(frozen=True, eq=False)
class Clip(Op):
    """``min(max(x, lo), hi)`` element-wise, cast to ``fmt``. Float graph: ``lo``/``hi`` are reals
    (``-inf``/``inf``: no bound); quantized graph: raw integers of the input format (``None``: no
    bound), see the module docstring."""
    lo: object = None
    hi: object = None


def _bound(value, frac_bits, up):
    """``value`` (a real) on the grid of ``frac_bits`` fractional bits, rounded up or down."""
    scaled = Fraction(value) * (1 << frac_bits) if frac_bits >= 0 else Fraction(value) / (1 << -frac_bits)
    return math.ceil(scaled) if up else math.floor(scaled)


@evaluate_op.register
def _(op: Clip, inputs, formats):
    x = inputs[0]
    if op.lo is not None:
        x = np.maximum(x, op.lo)
    if op.hi is not None:
        x = np.minimum(x, op.hi)
    return requantize(x, formats[0].frac_bits, op.fmt)


class ClipLayer(PipelinedLayer):
    """``size`` clips in parallel (a comparator and a multiplexer per bound that can act), then
    the cast to ``op.fmt``. Members and latency: see :class:`~nnhdl.layers.PipelinedLayer`."""

    def __init__(self, op, in_fmt, *, size, levels_per_stage=2):
        self.op = op
        super().__init__(in_fmt, size, op.fmt, size, levels_per_stage=levels_per_stage, name=op.name)

    def build(self, dp, xs):
        op, out = self.op, []
        for x in xs:
            if op.lo is not None and op.lo > x.lo:
                x = dp.maximum(x, dp.const(op.lo))
            if op.hi is not None and op.hi < x.hi:
                x = dp.select(dp.greater_equal(x, dp.const(op.hi)), dp.const(op.hi), x)
            out.append(dp.requantize(x, self.in_fmt.frac_bits, op.fmt))
        return out


@register
class ClipKind(OpKind):
    op_type = Clip

    def quantize(self, op, q):
        src, calib = q.src[0], q.calibration
        lo = None if op.lo is None or op.lo == -math.inf else _bound(op.lo, src.frac_bits, up=True)
        hi = None if op.hi is None or op.hi == math.inf else _bound(op.hi, src.frac_bits, up=False)
        lo = None if lo is not None and lo <= src.min_int else lo
        hi = None if hi is not None and hi >= src.max_int else hi
        if lo is not None and hi is not None and lo > hi:
            raise PassError(f"{q.where}: the clip range [{op.lo:g}, {op.hi:g}] holds no value of the input format "
                            f"{src}; give the layer before it more fraction bits")

        def value_range():
            a, b = (src.min_value, src.max_value) if calib is None else real_range(calib, src.frac_bits)
            if lo is not None:
                a, b = max(a, lo * src.lsb), max(b, lo * src.lsb)
            if hi is not None:
                a, b = min(a, hi * src.lsb), min(b, hi * src.lsb)
            return a, b

        return op.replace(lo=lo, hi=hi, fmt=q.resolve.fmt(op.origin, op.result_key, value_range, q.where))

    def lower(self, op, layout, ctx):
        return [Stage(op.name, op, layout.fmt, image=layout.image, in_size=layout.size)], layout.after(op)

    def component(self, stage, options):
        size = stage.image[2] if stage.image is not None else stage.op.size
        return ClipLayer(stage.op, stage.in_fmt, size=size, levels_per_stage=options.pipelining)

    def report(self, op):
        return {"clip_raw": [op.lo, op.hi]}

    def config_entry(self, op, ctx):
        return f"clip to [{op.lo:g}, {op.hi:g}]", [ctx.line("result")]
