"""The host side of the UART harness: bytes for input vectors, outputs from bytes, and a serial
port session (``nnhdl run``)."""

import numpy as np

from ..sim.packing import pack, unpack
from .harness import payload_bytes

__all__ = ["encode_inputs", "decode_outputs", "run_on_port"]


def encode_inputs(raw_rows, in_fmt):
    """One ``bytes`` per input vector: the payload word, least significant byte first."""
    rows = np.asarray(raw_rows).reshape(len(raw_rows), -1)
    n = payload_bytes(in_fmt.width * rows.shape[1])
    return [word.to_bytes(n, "little") for word in pack(rows, in_fmt.width)]


def decode_outputs(chunks, out_fmt, out_size):
    """Raw output rows from the board's answers (one ``bytes`` per vector)."""
    words = [int.from_bytes(chunk, "little") for chunk in chunks]
    return unpack(words, out_fmt.width, out_size, out_fmt.signed)


def run_on_port(port, design, raw_rows, baud=115200, timeout=2.0, progress=None):
    """Send every input vector to a board running the UART harness and read the answers."""
    try:
        import serial
    except ImportError:
        raise RuntimeError("talking to a board needs pyserial: pip install pyserial") from None
    from ..verify import _transfers

    graph = design.graph
    bi, wi, bo, wo = _transfers(design)  # a pixel-stream design takes several transfers per inference
    n_out = payload_bytes(graph.output.fmt.width * wo)
    rows = np.asarray(raw_rows).reshape(len(raw_rows) * bi, wi)
    chunks = encode_inputs(rows, graph.input.fmt)
    answers = []
    with serial.Serial(port, baud, timeout=timeout) as link:
        link.reset_input_buffer()
        for k in range(len(raw_rows)):
            link.write(b"".join(chunks[k * bi:(k + 1) * bi]))
            answer = link.read(n_out * bo)
            if len(answer) != n_out * bo:
                raise RuntimeError(f"no answer from the board on {port} for vector {k} (got {len(answer)} of "
                                   f"{n_out * bo} bytes within {timeout} s): is the UART harness bitstream loaded, "
                                   f"at {baud} baud?")
            answers += [answer[j * n_out:(j + 1) * n_out] for j in range(bo)]
            if progress is not None:
                progress(k + 1)
    return decode_outputs(answers, graph.output.fmt, wo).reshape(len(raw_rows), bo * wo)
