"""The element-wise activation op (:class:`nnhdl.ir.Activation`: linear, ReLU, leaky ReLU) when it
is not fused into the layer before it."""

import numpy as np

from ..hardware import Stage
from ..ir import Activation
from ..precision import activation_range, quantize_constant, real_range
from .registry import OpKind, register

__all__ = ["ActivationKind"]


@register
class ActivationKind(OpKind):
    """One :class:`~nnhdl.layers.Activation` stage; on a pixel stream it works on one pixel's
    channels per transfer."""
    op_type = Activation

    def quantize(self, op, q):
        res, src, calib, where = q.resolve, q.src[0], q.calibration, q.where
        alpha_fmt = alpha = None
        if op.function == "leaky_relu":
            alpha_fmt = res.fmt(op.origin, "alpha", (float(op.alpha), float(op.alpha)), where)
            alpha = int(quantize_constant(np.array([op.alpha]), alpha_fmt, op.origin, "alpha", where)[0])
        alpha_real = 0.0 if alpha is None else alpha * alpha_fmt.lsb

        def value_range():
            lo, hi = (src.min_value, src.max_value) if calib is None else real_range(calib, src.frac_bits)
            return activation_range(op.function, lo, hi, alpha_real)

        fmt = res.fmt(op.origin, op.result_key, value_range, where)
        return op.replace(fmt=fmt, alpha=0 if alpha is None else alpha, alpha_fmt=alpha_fmt)

    def lower(self, op, layout, ctx):
        return [Stage(op.name, op, layout.fmt, image=layout.image, in_size=layout.size)], layout.after(op)

    def component(self, stage, options):
        from ..layers.activation import Activation as ActivationLayer
        size = stage.image[2] if stage.image is not None else stage.op.size
        return ActivationLayer(stage.op, stage.in_fmt, multiplier=options.multiplier.value,
                               levels_per_stage=options.pipelining, size=size)

    def report(self, op):
        return {"activation": op.function}

    def config_entry(self, op, ctx):
        body = [ctx.line("result")]
        if op.function == "leaky_relu":
            body.append(ctx.line("alpha", pad="alpha "))
        return f"activation {op.function}", body
