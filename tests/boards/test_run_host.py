"""`nnhdl run` against a stand-in board on a pseudo-terminal: the host side of the UART protocol
(framing, byte order, decoding, comparison with the reference)."""

import os
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from nnhdl.boards.harness import payload_bytes
from nnhdl.boards.host import encode_inputs
from nnhdl.cli import main
from nnhdl.convert import convert, load_design
from nnhdl.reference import evaluate, to_real
from nnhdl.sim.packing import pack, unpack

from ..conftest import make_mlp


def fake_board(master, design, n_vectors, corrupt=None):
    """Answer each input vector as the UART harness does (computed with the reference model)."""
    graph = design.graph
    n_in = payload_bytes(graph.input.fmt.width * graph.input.size)
    n_out = payload_bytes(graph.output.fmt.width * graph.output.size)
    for k in range(n_vectors):
        data = b""
        while len(data) < n_in:
            data += os.read(master, n_in - len(data))
        row = unpack([int.from_bytes(data, "little")], graph.input.fmt.width, graph.input.size, graph.input.fmt.signed)
        y = np.asarray(evaluate(graph, row.reshape((1,) + tuple(graph.input.shape)), raw=True)).reshape(1, -1)
        if corrupt == k:
            y = y + 1
        os.write(master, pack(y, graph.output.fmt.width)[0].to_bytes(n_out, "little"))


@pytest.mark.parametrize("corrupt", [None, 3])
def test_run_over_serial(tmp_path, corrupt):
    pytest.importorskip("serial")
    graph = make_mlp(np.random.default_rng(8), (5, 4, 3), ["relu"], {"precision": "fixed<9,4,RND,SAT>"})
    out = tmp_path / "out"
    convert(graph, out)
    design = load_design(out, build=False)
    x = np.random.default_rng(1).normal(size=(8, 5))
    np.save(tmp_path / "x.npy", x)
    master, slave = os.openpty()
    import tty
    tty.setraw(slave)
    board = threading.Thread(target=fake_board, args=(master, design, len(x), corrupt), daemon=True)
    board.start()
    result = CliRunner().invoke(main, ["run", str(out), "--board", "ulx3s-85f", "--port", os.ttyname(slave),
                                       "--inputs", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")])
    board.join(timeout=10)
    if corrupt is None:
        assert result.exit_code == 0, result.output
        assert "all equal the reference" in result.output
        np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), to_real(design.graph, evaluate(design.graph, x)))
    else:
        assert result.exit_code == 1 and "1 differ from the reference" in result.output


def test_encode_inputs_byte_order():
    from nnhdl.fixed import FixedFormat
    chunks = encode_inputs(np.array([[1, -1, 2]]), FixedFormat(6, 3))
    word = 1 | (0b111111 << 6) | (2 << 12)
    assert chunks == [word.to_bytes(3, "little")]
