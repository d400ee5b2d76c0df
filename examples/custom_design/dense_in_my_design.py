"""Using nnhdl layers inside your own Amaranth design (the Python HDL library).

A hardware engineer's top level: a sensor stream of 6 signed 10-bit samples feeds an nnhdl Dense
layer (weights baked into logic) and then an nnhdl Argmax; the design adds its own logic around
them (a counter of classified samples). Run it to see the layers' latencies, simulate a few
samples in Amaranth's simulator and write Verilog:

    python examples/custom_design/dense_in_my_design.py [OUTDIR]

The weights here come from a small float matrix; in practice they come from a trained model:
``graph = nnhdl.convert.compile_model(nnhdl.convert.load_model("model.keras"), config)``.
"""

import sys
from pathlib import Path

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped
from amaranth.sim import Simulator

from nnhdl.config import PrecisionConfig
from nnhdl.export import to_verilog
from nnhdl.ir import Dense as DenseOp, Graph, Input, Softmax as SoftmaxOp
from nnhdl.layers import Argmax, Dense, stream_signature
from nnhdl.passes import lower
from nnhdl.reference import evaluate


def make_graph():
    """A tiny classifier: 6 inputs -> Dense 4 (relu) -> argmax, quantized for 10-bit samples."""
    rng = np.random.default_rng(1)
    ops = (Input("samples", (), (6,), origin="samples"),
           DenseOp("fc", ("samples",), (4,), origin="fc", weight=rng.normal(size=(6, 4)), bias=rng.normal(size=4),
                   activation="relu"),
           SoftmaxOp("cls", ("fc",), (4,), origin="cls"))
    config = PrecisionConfig.from_dict({"precision": "fixed<12,5,RND,SAT>", "softmax": "argmax",
                                        "layer": {"samples": {"result": "fixed<10,3>"}}})
    return lower(Graph(ops, ("cls",), name="classifier"), config)


class MyClassifier(wiring.Component):
    """Stream in: 6 x fixed<10,3>; stream out: the class index. ``count`` counts classifications."""

    def __init__(self, graph):
        fc, cls = graph.op("fc"), graph.op("cls")
        self.dense = Dense(fc, graph.input.fmt)                  # an amaranth.lib.wiring.Component
        self.argmax = Argmax(cls, fc.fmt, fc.size)
        self.latency = self.dense.latency + self.argmax.latency
        super().__init__({"i": In(stream_signature(graph.input.fmt, 6)),
                          "o": Out(stream_signature(cls.fmt, 1)),
                          "count": Out(16)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dense = self.dense
        m.submodules.argmax = self.argmax
        connect(m, flipped(self.i), self.dense.i)
        connect(m, self.dense.o, self.argmax.i)
        connect(m, self.argmax.o, flipped(self.o))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.count.eq(self.count + 1)
        return m


def main(outdir=None):
    graph = make_graph()
    dut = MyClassifier(graph)
    print(f"Dense latency {dut.dense.latency}, Argmax latency {dut.argmax.latency}: {dut.latency} cycles")
    samples = np.random.default_rng(2).integers(-512, 512, size=(8, 6))
    expected = evaluate(graph, samples, raw=True)[:, 0].tolist()
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for row in samples:
            ctx.set(dut.i.payload, [int(v) for v in row])
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        while len(got) < len(samples):
            await ctx.tick()

    async def monitor(ctx):
        async for _, _, valid, index in ctx.tick().sample(dut.o.valid, dut.o.payload[0]):
            if valid:
                got.append(index)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(monitor)
    sim.run()
    print(f"classes: {got} (reference: {expected})")
    assert got == expected
    if outdir:
        path = Path(outdir) / "classifier.v"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_verilog(dut, "classifier"))
        print(f"wrote {path}")
    return got, expected


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
