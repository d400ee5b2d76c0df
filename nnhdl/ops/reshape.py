"""Ops that only move data: Flatten, Reshape, Dropout (identity at inference), zero padding."""

from ..hardware import Stage, collect_stage
from ..ir import Dropout, Flatten, Pad, Reshape, spatial
from ..options import IOStyle
from .registry import OpKind, register

__all__ = ["FlattenKind", "ReshapeKind", "DropoutKind", "PadKind"]


class _DataOnly(OpKind):
    passthrough = True

    def config_entry(self, op, ctx):
        return f"{type(op).__name__}: no arithmetic; nothing to set", []


@register
class FlattenKind(_DataOnly):
    """No hardware on a flat word. On a pixel stream: the same pixels under another shape when the
    channel count stays (a Reshape), else a ``"collect"`` stage gathers the image into one word
    for the layers after it. A Reshape first in a stream network sets the image shape the input
    is streamed in."""
    op_type = Flatten

    def lower(self, op, layout, ctx):
        image = layout.image
        if (image is None and ctx.at_start and isinstance(op, Reshape) and ctx.options.io is IOStyle.STREAM
                and len(op.shape) > 1):
            ctx.in_image = spatial(op.shape)  # the input streamed by pixels of this shape
            return [], layout.after(op, image=ctx.in_image)
        if image is not None and len(op.shape) > 1 and op.shape[-1] == image[2]:
            return [], layout.after(op, image=spatial(op.shape))
        if image is not None:
            return [collect_stage(op.name, layout.fmt, image)], layout.after(op, image=None)
        return [], layout.after(op)


@register
class ReshapeKind(FlattenKind):
    op_type = Reshape


@register
class DropoutKind(_DataOnly):
    """Identity (normally removed by :func:`nnhdl.passes.drop_dropout`)."""
    op_type = Dropout

    def lower(self, op, layout, ctx):
        return [], layout.after(op)


@register
class PadKind(_DataOnly):
    """Zero padding: wiring on a flat word (:class:`~nnhdl.layers.Pad`), a padding stage on a
    pixel stream (:class:`~nnhdl.layers.PadStream`)."""
    op_type = Pad

    def lower(self, op, layout, ctx):
        image = None if layout.image is None else spatial(op.shape)
        return [Stage(op.name, op, layout.fmt, image=layout.image, in_size=layout.size)], layout.after(op, image=image)

    def component(self, stage, options):
        if stage.image is not None:
            from ..layers.pixels import PadStream
            return PadStream(stage.op.in_shape, stage.op.padding, stage.in_fmt, 0, name=stage.op.name)
        from ..layers.pad import Pad as PadLayer
        return PadLayer(stage.op, stage.in_fmt, levels_per_stage=options.pipelining)
