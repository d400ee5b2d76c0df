"""Dense and convolution ops (:class:`nnhdl.ir.Dense`, :class:`nnhdl.ir.Conv`): constant
matrix-vector products with a bias, an accumulator and a fused activation."""

import math

import numpy as np

from ..arith import dense_plan, exact_accumulator
from ..config import AUTO
from ..hardware import HardwareError, Stage, pad_stage, refuse_pixels
from ..ir import Activation, Conv, Dense, spatial
from ..precision import activation_range, const_range, quantize_constant, real_range
from ..reference import conv_patches, dense_accumulate
from .registry import OpKind, register

__all__ = ["DenseKind", "ConvKind", "quantize_dense"]


def quantize_dense(op, q):
    """Weight, bias, accumulator (exact unless configured), alpha and result formats of a Dense
    or convolution; ``auto`` results sized from the calibration values or the exact interval."""
    res, where, src, calib = q.resolve, q.where, q.src[0], q.calibration
    layer = op.origin
    wfmt = res.fmt(layer, "weight", const_range(op.weight), where)
    bfmt = res.fmt(layer, "bias", const_range(op.bias), where)
    w = quantize_constant(op.weight, wfmt, layer, "weight", where)
    b = quantize_constant(op.bias, bfmt, layer, "bias", where)
    accum = res.fmt(layer, "accum", None, where) if res.config.get(layer, "accum")[0] != AUTO else None
    exact = accum is None
    if exact:
        accum = exact_accumulator(src, w, wfmt, b, bfmt)
    alpha_fmt = alpha = None
    if op.activation == "leaky_relu":
        alpha_layer = op.result_origin or layer
        alpha_fmt = res.fmt(alpha_layer, "alpha", (float(op.alpha), float(op.alpha)), where)
        alpha = int(quantize_constant(np.array([op.alpha]), alpha_fmt, alpha_layer, "alpha", where)[0])
    new = op.replace(weight=w, bias=b, weight_fmt=wfmt, bias_fmt=bfmt, accum_fmt=accum, accum_exact=exact,
                     alpha=0 if alpha is None else alpha, alpha_fmt=alpha_fmt)
    alpha_real = 0.0 if alpha is None else alpha * alpha_fmt.lsb

    def value_range():
        if calib is not None:
            pre = dense_accumulate(new, conv_patches(new, calib) if isinstance(new, Conv) else calib, src)
            lo, hi = real_range(pre, accum.frac_bits)
        else:
            plan = dense_plan(new, src)
            lo = math.ldexp(float(min((plan.bias + plan.term_lo.sum(axis=0)).flat)), -accum.frac_bits)
            hi = math.ldexp(float(max((plan.bias + plan.term_hi.sum(axis=0)).flat)), -accum.frac_bits)
        return activation_range(op.activation, lo, hi, alpha_real)

    fmt = res.fmt(op.result_origin or layer, op.result_key, value_range, where)
    return new.replace(fmt=fmt)


def _report(op):
    w = np.asarray(op.weight)
    entry = {"activation": op.activation, "weight": str(op.weight_fmt), "bias": str(op.bias_fmt),
             "accum": str(op.accum_fmt), "accum_exact": bool(op.accum_exact), "weights": int(w.size),
             "nonzero_weights": int(np.count_nonzero(w))}
    if op.activation == "leaky_relu":
        entry["alpha"] = str(op.alpha_fmt)
    return entry


def _config_lines(op, ctx, reuse):
    """The weight/bias/accum/alpha/reuse/result lines of a Dense-like layer (``reuse``: what the
    commented-out reuse line says)."""
    origin = op.origin
    body = [ctx.line("weight"), ctx.line("bias", pad="bias  "), ctx.accum_line()]
    if op.activation == "leaky_relu":
        body.append(ctx.line("alpha", pad="alpha "))
    if reuse:
        r = ctx.config.layers.get(origin, {}).get("reuse")
        body.append(f"reuse  = {r}" if r is not None else "# reuse = 1   # " + reuse)
    folded = ctx.folded
    consumers = folded.consumers(op.name)
    folded_op = next((o for o in folded.ops if o.name == op.name), op)
    bn_origin = folded_op.result_origin if folded_op.result_origin not in ("", origin) else None
    feeds_activation = op.activation == "linear" and len(consumers) == 1 and isinstance(consumers[0], Activation)
    if op.result_key == "logits":
        body.append(f"{ctx.line('logits')}   # the Dense output that feeds the softmax")
    elif bn_origin:
        body.append(f"# result: this layer is folded with '{bn_origin}'; set the result there")
    else:
        body += ctx.result_lines(origin, feeds_activation and consumers[0].origin)
    return body


@register
class DenseKind(OpKind):
    """A Dense layer: fully parallel (:class:`~nnhdl.layers.Dense`) or, with a reuse factor
    R > 1, folded onto about ``n_in * n_out / R`` multipliers (:class:`~nnhdl.layers.FoldedDense`)."""
    op_type = Dense

    def quantize(self, op, q):
        return quantize_dense(op, q)

    def lower(self, op, layout, ctx):
        if layout.image is not None:
            refuse_pixels(op)
        r = ctx.layer_reuse(op)
        reuse = ctx.options.reuse if r is None else r
        return [Stage(op.name, op, layout.fmt, in_size=layout.size, params={"reuse": reuse})], layout.after(op)

    def component(self, stage, options):
        from ..layers.dense import Dense as DenseLayer
        from ..layers.folded import FoldedDense
        kw = dict(multiplier=options.multiplier.value, levels_per_stage=options.pipelining)
        if stage.params["reuse"] > 1:
            return FoldedDense(stage.op, stage.in_fmt, stage.params["reuse"], **kw)
        return DenseLayer(stage.op, stage.in_fmt, **kw)

    def report(self, op):
        return _report(op)

    def config_entry(self, op, ctx):
        desc = f"Dense {op.weight.shape[0]} -> {op.weight.shape[1]}, activation {op.activation}"
        if op.result_key == "logits":
            desc += " (softmax)"
        return desc, _config_lines(op, ctx, "reuse factor R: > 1 folds the layer onto ~n_in*n_out/R multipliers, "
                                                 "one input every R cycles")


@register
class ConvKind(OpKind):
    """A convolution: a whole image per transfer (:class:`~nnhdl.layers.Conv`) or, on a pixel
    stream, line buffers and one window per pixel (:class:`~nnhdl.layers.ConvStream`) behind a
    padding stage when the convolution pads; with a reuse factor R > 1 folded
    (:class:`~nnhdl.layers.FoldedConv`: R per image; :class:`~nnhdl.layers.FoldedConvStream`: R
    per window)."""
    op_type = Conv

    def quantize(self, op, q):
        return quantize_dense(op, q)

    def lower(self, op, layout, ctx):
        r = ctx.layer_reuse(op)
        reuse = ctx.options.reuse if r is None else r
        if layout.image is None:
            return [Stage(op.name, op, layout.fmt, in_size=layout.size, params={"reuse": reuse})], layout.after(op)
        stages = []
        if any(op.padding):
            pad = pad_stage(f"{op.name}_pad", op.in_shape, op.padding, layout.fmt, 0)
            stages.append(pad)
            h, w, c = op.in_shape
            pt, pb, pl, pr = op.padding
            op = op.replace(in_shape=(h + pt + pb, w + pl + pr, c), padding=(0, 0, 0, 0))
        stages.append(Stage(op.name, op, layout.fmt, image=tuple(op.in_shape), params={"reuse": reuse}))
        return stages, layout.after(op, image=spatial(op.shape))

    def component(self, stage, options):
        kw = dict(multiplier=options.multiplier.value, levels_per_stage=options.pipelining)
        reuse = stage.params.get("reuse", 1)
        if stage.image is not None:
            if reuse > 1:
                from ..layers.folded_conv import FoldedConvStream
                return FoldedConvStream(stage.op, stage.in_fmt, reuse, memory_bits=options.memory_bits, **kw)
            from ..layers.window import ConvStream
            return ConvStream(stage.op, stage.in_fmt, memory_bits=options.memory_bits, **kw)
        if reuse > 1:
            from ..layers.folded_conv import FoldedConv
            return FoldedConv(stage.op, stage.in_fmt, reuse, **kw)
        from ..layers.conv import Conv as ConvLayer
        return ConvLayer(stage.op, stage.in_fmt, **kw)

    def report(self, op):
        return dict(_report(op), kernel=list(op.kernel), strides=list(op.strides), padding=list(op.padding))

    def config_entry(self, op, ctx):
        kind = "DepthwiseConv" if op.depthwise else "Conv"
        desc = (f"{kind} {'x'.join(map(str, op.kernel))} kernel, {op.in_shape[2]} -> {op.n_out} channels, strides "
                f"{'x'.join(map(str, op.strides))}, activation {op.activation}")
        if op.result_key == "logits":
            desc += " (softmax)"
        return desc, _config_lines(op, ctx, "reuse factor R: > 1 folds the layer: ~windows*n_in*n_out/R "
                                                 "multipliers (io parallel), ~n_in*n_out/R per window (io stream)")
