"""Stream payloads and transfers, with no simulator: packing arrays of raw fixed-point integers
into payload words and back, and grouping transfer cycles into inferences. Used by the Amaranth
simulator path, the cocotb testbench and the standalone testbench folder (numpy only)."""

import numpy as np

__all__ = ["pack", "unpack", "inference_timing"]


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


def inference_timing(in_cycles, out_cycles, beats_in=1, beats_out=1):
    """Per complete inference: (cycle of its first input transfer, cycle of its last output
    transfer), given the cycles of every input and output transfer in order and the number of
    transfers per inference on each side."""
    # an inference's last inputs may be accepted after its last output (pixels no window uses)
    n = min(-(-len(in_cycles) // beats_in), len(out_cycles) // beats_out)
    return [(in_cycles[k * beats_in], out_cycles[(k + 1) * beats_out - 1]) for k in range(n)]
