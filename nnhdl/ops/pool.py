"""Max and average pooling (:class:`nnhdl.ir.Pool`), windowed or global."""

from ..hardware import Stage, pad_stage
from ..ir import Pool, spatial
from ..precision import real_range
from .registry import OpKind, register

__all__ = ["PoolKind"]


@register
class PoolKind(OpKind):
    """A whole image per transfer (:class:`~nnhdl.layers.Pool`); on a pixel stream line buffers
    (:class:`~nnhdl.layers.PoolStream`, behind a padding stage filled with the input format's
    minimum for max pooling, zeros for average pooling) or, for a global pooling, running
    per-channel results (:class:`~nnhdl.layers.GlobalPoolStream`, one word per image)."""
    op_type = Pool

    def quantize(self, op, q):
        src, calib = q.src[0], q.calibration

        def value_range():
            return (src.min_value, src.max_value) if calib is None else real_range(calib, src.frac_bits)
        return op.replace(fmt=q.resolve.fmt(op.origin, op.result_key, value_range, q.where))

    def lower(self, op, layout, ctx):
        if layout.image is None:
            return [Stage(op.name, op, layout.fmt, in_size=layout.size)], layout.after(op)
        if op.is_global:
            return [Stage(op.name, op, layout.fmt, image=layout.image)], layout.after(op, image=None)
        stages = []
        if any(op.padding):
            value = layout.fmt.min_int if op.kind == "max" else 0
            stages.append(pad_stage(f"{op.name}_pad", op.in_shape, op.padding, layout.fmt, value))
        stages.append(Stage(op.name, op, layout.fmt, image=layout.image))
        return stages, layout.after(op, image=spatial(op.shape))

    def component(self, stage, options):
        from ..layers import pixels, pool, window
        op, kw = stage.op, dict(levels_per_stage=options.pipelining)
        if stage.image is None:
            return pool.Pool(op, stage.in_fmt, **kw)
        if op.is_global:
            return pixels.GlobalPoolStream(op, stage.in_fmt, **kw)
        return window.PoolStream(op, stage.in_fmt, memory_bits=options.memory_bits, **kw)

    def report(self, op):
        return {"kernel": list(op.pool), "strides": list(op.strides), "padding": list(op.padding)}

    def config_entry(self, op, ctx):
        return f"{op.kind} pooling {'x'.join(map(str, op.pool))}", [ctx.line("result")]
