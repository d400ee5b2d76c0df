"""A whole network as one stream component."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..ir import Activation as ActivationOp, Dense as DenseOp, Dropout, Flatten, Graph, Softmax as SoftmaxOp
from .activation import Activation
from .base import stream_signature
from .dense import Dense
from .softmax import Argmax, Softmax

__all__ = ["Network", "NetworkError"]


class NetworkError(ValueError):
    """The graph cannot be turned into hardware."""


class Network(wiring.Component):
    """The layers of a quantized, sequential graph chained stream to stream.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(input word, input size)))`` — one whole input
        tensor per transfer (flattened row-major, element 0 in the low bits).
    o : ``Out(stream.Signature(ArrayLayout(output word, output size)))``

    Attributes
    ----------
    latency : int
        Cycles from an accepted input to its output (the sum of the layers' latencies).
    layers : list of (op name, component)

    II = 1. When ``o.ready`` is low the whole pipeline holds; nothing is lost or duplicated.
    """

    def __init__(self, graph: Graph, *, multiplier="csd", levels_per_stage=2):
        if not graph.is_quantized:
            raise NetworkError("the graph is not quantized; run nnhdl.passes.lower() first")
        if not graph.is_chain():
            raise NetworkError("only sequential networks (a chain of layers) can be built for now")
        self.graph = graph
        self.options = {"multiplier": multiplier, "levels_per_stage": levels_per_stage}
        inp = graph.input
        fmt, size = inp.fmt, inp.size
        self.layers = []
        for op in graph.ops[1:]:
            if isinstance(op, (Flatten, Dropout)):
                continue
            if isinstance(op, DenseOp):
                layer = Dense(op, fmt, multiplier=multiplier, levels_per_stage=levels_per_stage)
            elif isinstance(op, ActivationOp):
                layer = Activation(op, fmt, multiplier=multiplier, levels_per_stage=levels_per_stage)
            elif isinstance(op, SoftmaxOp) and op.implementation == "argmax":
                layer = Argmax(op, fmt, size, levels_per_stage=levels_per_stage)
            elif isinstance(op, SoftmaxOp):
                layer = Softmax(op, fmt, levels_per_stage=levels_per_stage)
            else:
                raise NetworkError(f"no hardware for {type(op).__name__} op {op.name!r}")
            self.layers.append((op.name, layer))
            fmt, size = op.fmt, op.size
        if not self.layers:
            raise NetworkError("the network has no layers to build")
        self.in_fmt, self.in_size = inp.fmt, inp.size
        self.out_fmt, self.out_size = fmt, size
        super().__init__({"i": In(stream_signature(self.in_fmt, self.in_size)),
                          "o": Out(stream_signature(self.out_fmt, self.out_size))})

    @property
    def latency(self):
        return sum(layer.latency for _, layer in self.layers)

    def elaborate(self, platform):
        m = Module()
        for name, layer in self.layers:
            m.submodules[name] = layer
        connect(m, flipped(self.i), self.layers[0][1].i)
        for (_, a), (_, b) in zip(self.layers, self.layers[1:]):
            connect(m, a.o, b.i)
        connect(m, self.layers[-1][1].o, flipped(self.o))
        return m
