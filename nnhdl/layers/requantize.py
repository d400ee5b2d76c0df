"""Per-element casts: the hardware of the :class:`~nnhdl.ir.Requantize` op."""

from ..per_element import union_format
from .base import PipelinedLayer

__all__ = ["Requantize", "pixel_formats", "stream_requantize"]


def pixel_formats(op, pixels):
    """The per-channel formats of a Requantize whose formats repeat identically over ``pixels``
    pixels (so it can work on one pixel per transfer), or ``None`` when they differ."""
    formats = tuple(op.formats)
    channels = len(formats) // pixels
    first = formats[:channels]
    if first * pixels != formats:
        return None
    return first


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


def stream_requantize(op, fmt, image, **kw):
    """The Requantize layer of a pixel stream (``image`` = (height, width, channels)): one pixel's
    channel formats, which must be the same for every pixel."""
    formats = pixel_formats(op, image[0] * image[1])
    if formats is None:
        from .network import NetworkError
        raise NetworkError(f"Requantize {op.origin or op.name!r} gives every pixel its own formats (HGQ2 "
                           f"heterogeneous over the image), which a pixel stream cannot carry: build with "
                           f"io='parallel', or train with per-channel activation bits (QuantizerConfig(..., "
                           f"heterogeneous_axis=(-1,)))")
    return Requantize(op, fmt, formats=formats, **kw)
