"""Packing arrays of raw fixed-point integers into stream payload words and back."""

import numpy as np

__all__ = ["pack", "unpack"]


def pack(raw_rows, width):
    """Each row of raw integers -> one Python int, element 0 in the low bits (two's complement)."""
    mask = (1 << width) - 1
    out = []
    for row in np.asarray(raw_rows).reshape(len(raw_rows), -1):
        word = 0
        for k, v in enumerate(row.tolist()):
            word |= (int(v) & mask) << (k * width)
        out.append(word)
    return out


def unpack(words, width, n, signed):
    """Inverse of :func:`pack`: ``len(words) x n`` int64 array."""
    mask = (1 << width) - 1
    sign = 1 << (width - 1)
    out = np.empty((len(words), n), dtype=np.int64 if width <= 62 else object)
    for r, word in enumerate(words):
        for k in range(n):
            v = (word >> (k * width)) & mask
            if signed and v & sign:
                v -= 1 << width
            out[r, k] = v
    return out
