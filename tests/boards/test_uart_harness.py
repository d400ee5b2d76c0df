"""The UART harness end to end in simulation: host bytes -> serial line -> UART receiver -> network
-> UART transmitter -> serial line -> host bytes, equal to the reference."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from nnhdl.boards.harness import UARTHarness
from nnhdl.boards.host import decode_outputs, encode_inputs
from nnhdl.layers import Network
from nnhdl.reference import evaluate
from nnhdl.verify import random_inputs

from ..conftest import make_mlp

CLK, BAUD = 1_000_000, 125_000  # 8 clock cycles per bit keeps the simulation short


def _cnn_graph(rng):
    from nnhdl.config import PrecisionConfig
    from nnhdl.passes import lower

    from ..rtl.test_cnn_layers import ImageNet
    g = ImageNet(rng, (4, 3, 2)).conv("c", 2, (2, 2), padding="same", activation="relu").dense("d", 2).graph()
    return lower(g, PrecisionConfig.from_dict({"precision": "fixed<9,4,RND,SAT>"}))


@pytest.mark.parametrize("kind", ["mlp", "cnn-stream"])
def test_uart_harness_end_to_end(rng, kind):
    if kind == "mlp":
        graph = make_mlp(rng, (5, 6, 3), ["relu"], {"precision": "fixed<11,4,RND,SAT>"}, softmax=True)
        net = Network(graph)
    else:  # one pixel per transfer: the host sends the image's pixels back to back
        graph = _cnn_graph(rng)
        net = Network(graph, io="stream")
    harness = UARTHarness(net, CLK, BAUD)
    x = random_inputs(graph, 6 if kind == "mlp" else 3, seed=4)
    to_send = b"".join(encode_inputs(x.reshape(-1, net.in_words), graph.input.fmt))
    n_out = len(harness.network.o.payload.as_value()) // 8 + (len(harness.network.o.payload.as_value()) % 8 > 0)
    bit = harness.divisor
    received = bytearray()

    async def host_tx(ctx):  # the host's serial line into the board, one vector at a time
        ctx.set(harness.rx, 1)
        await ctx.tick().repeat(20)
        per_vector = len(to_send) // len(x)
        for k in range(len(x)):
            for byte in to_send[k * per_vector:(k + 1) * per_vector]:
                for level in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                    ctx.set(harness.rx, level)
                    await ctx.tick().repeat(bit)
            while len(received) < (k + 1) * n_out:  # wait for the answer (one inference in flight)
                await ctx.tick()

    async def host_rx(ctx):  # decode the board's serial line
        while len(received) < len(x) * n_out:
            await ctx.tick().until(harness.tx == 0)
            await ctx.tick().repeat(bit + bit // 2)
            byte = 0
            for i in range(8):
                byte |= ctx.get(harness.tx) << i
                await ctx.tick().repeat(bit)
            assert ctx.get(harness.tx) == 1, "missing stop bit"
            received.append(byte)

    sim = Simulator(harness)
    sim.add_clock(1 / CLK)
    sim.add_testbench(host_tx)
    sim.add_testbench(host_rx)
    sim.run()
    chunks = [bytes(received[k * n_out:(k + 1) * n_out]) for k in range(len(x))]
    got = decode_outputs(chunks, graph.output.fmt, graph.output.size)
    np.testing.assert_array_equal(got, evaluate(graph, x.reshape((-1,) + graph.input.shape), raw=True))
