"""Per-element formats: the :class:`~nnhdl.ir.Requantize` op's exact definition.

Quantization-aware training (HGQ2) gives every activation element its own fixed-point format.
A :class:`~nnhdl.ir.Requantize` op casts element ``k`` of its input to ``formats[k]`` with
:func:`nnhdl.fixed.requantize` (that format's rounding, then its overflow mode) and stores the
result in the op's union format ``fmt`` (:func:`union_format`), which holds every element's
values exactly: the cast into ``fmt`` is a left shift by ``fmt.frac_bits - formats[k].frac_bits``,
nothing rounds or overflows there. A ``None`` format is a zero-bit element: always 0.

The op kind (quantization, reference evaluation, hardware) is :mod:`nnhdl.ops.requantize`.
"""

import numpy as np

from .fixed import FixedFormat, requantize as requantize_values

__all__ = ["union_format", "element_range", "requantize_elements", "pixel_formats"]


def element_range(fmt, frac_bits):
    """``(lo, hi)``: the raw range a cast into ``fmt`` can produce, scaled to ``frac_bits``
    (``>= fmt.frac_bits``) fractional bits; ``(0, 0)`` for a zero-bit element (``None``)."""
    if fmt is None:
        return 0, 0
    shift = frac_bits - fmt.frac_bits
    return fmt.result_min_int << shift, fmt.max_int << shift


def union_format(formats):
    """The narrowest format (TRN, WRAP) holding every value of every format in ``formats``
    exactly: the finest LSB and the widest range (``None`` entries are zero-bit elements)."""
    real = [f for f in formats if f is not None]
    frac = max((f.frac_bits for f in real), default=0)
    ranges = [element_range(f, frac) for f in formats]
    lo = min((r[0] for r in ranges), default=0)
    hi = max((r[1] for r in ranges), default=0)
    return FixedFormat.containing(lo, hi, frac)


def requantize_elements(x, in_frac, formats, out: FixedFormat):
    """Raw values ``x`` (batch first, ``in_frac`` fractional bits), element ``k`` of each sample
    cast to ``formats[k]`` and scaled to ``out.frac_bits``; zero-bit elements are 0."""
    x = np.asarray(x)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    if flat.shape[1] != len(formats):
        raise ValueError(f"{flat.shape[1]} elements but {len(formats)} formats")
    wide = flat.dtype == object or out.width > 62
    result = np.zeros(flat.shape, dtype=object if wide else np.int64)
    groups = {}
    for k, f in enumerate(formats):
        groups.setdefault(f, []).append(k)
    for f, cols in groups.items():
        if f is None:
            continue
        q = requantize_values(flat[:, cols], in_frac, f)
        shift = out.frac_bits - f.frac_bits
        result[:, cols] = (q.astype(object) if wide else q.astype(np.int64)) << shift
    return result.reshape(x.shape)


def pixel_formats(op, pixels):
    """The per-channel formats of a Requantize whose formats repeat identically over ``pixels``
    pixels (so it can work on one pixel per transfer), or ``None`` when they differ."""
    formats = tuple(op.formats)
    channels = len(formats) // pixels
    first = formats[:channels]
    if first * pixels != formats:
        return None
    return first
