"""A whole network as one stream component."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..ir import (Activation as ActivationOp, Conv as ConvOp, Dense as DenseOp, Dropout, Flatten, Graph, Pad as PadOp,
                  Pool as PoolOp, Reshape, Softmax as SoftmaxOp, spatial)
from .activation import Activation
from .base import stream_signature
from .conv import Conv
from .dense import MULTIPLIERS, Dense
from .folded import FoldedDense
from .pad import Pad
from .pipeline import DelayModel
from .pixels import Collect, GlobalPoolStream, PadStream
from .pool import Pool
from .requantize import Requantize, stream_requantize
from .softmax import Argmax, Softmax
from .window import LINE_BUFFER_MEMORY_BITS, ConvStream, PoolStream

__all__ = ["Network", "NetworkError", "IO_STYLES"]

#: How data enters and leaves the network.
IO_STYLES = ("parallel", "stream")


class NetworkError(ValueError):
    """The graph cannot be turned into hardware."""


class Network(wiring.Component):
    """The layers of a quantized, sequential graph chained stream to stream.

    ``io="parallel"``: every tensor travels as one word (the whole tensor flattened row-major,
    element 0 in the low bits); one inference per cycle. ``io="stream"``: images travel one
    pixel (all its channels) per transfer, row-major; convolutions and pooling keep line
    buffers, and a Flatten (or a Reshape that changes the channel count) gathers the pixels into
    one word for the layers after it, which then work on whole tensors. A network input of rank
    1 is one word in both styles (a Reshape right after it sets the stream's image shape).

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(input word, in_words)))`` — ``in_beats`` transfers
        per inference
    o : ``Out(stream.Signature(ArrayLayout(output word, out_words)))`` — ``out_beats`` per
        inference

    Attributes
    ----------
    latency : int
        ``io="parallel"``: cycles from an accepted input to its output (the sum of the layers'
        latencies). ``io="stream"``: see :mod:`nnhdl.layers.timing` (cycles from an
        inference's first input transfer to its last output transfer at full rate).
    layers : list of (op name, component)

    ``reuse`` (default for every Dense) and ``layer_reuse`` (``{Keras layer or op name: R}``)
    are reuse factors: a Dense with R > 1 is a :class:`~nnhdl.layers.FoldedDense` (about
    ``n_in * n_out / R`` multipliers, one input every R cycles at most); R = 1 is the fully
    parallel :class:`~nnhdl.layers.Dense`. The network's interval is its slowest layer's. With
    one transfer per inference and a folded layer, the network input accepts at most one
    transfer every :attr:`input_gate` cycles (the slowest layer's interval): then no inference
    waits inside the pipeline for a slower layer, and the latency is the same at full rate as
    from idle.
    Convolutions are not folded yet: a ``layer_reuse`` entry > 1 for one is an error, the
    default ``reuse`` leaves them parallel.

    When ``o.ready`` is low the whole pipeline holds; nothing is lost or duplicated.
    """

    def __init__(self, graph: Graph, *, multiplier="cse", levels_per_stage=2, io="parallel",
                 memory_bits=LINE_BUFFER_MEMORY_BITS, reuse=1, layer_reuse=None):
        if not graph.is_quantized:
            raise NetworkError("the graph is not quantized; run nnhdl.passes.lower() first")
        if not graph.is_chain():
            raise NetworkError("only sequential networks (a chain of layers) can be built for now")
        if io not in IO_STYLES:
            raise NetworkError(f"io must be one of {', '.join(IO_STYLES)}, not {io!r}")
        if multiplier not in MULTIPLIERS:
            raise NetworkError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not {multiplier!r}")
        self.graph = graph
        self.io = io
        layer_reuse = dict(layer_reuse or {})
        for where, r in [("reuse", reuse)] + [(f"reuse of layer {name!r}", r) for name, r in layer_reuse.items()]:
            if isinstance(r, bool) or not isinstance(r, int) or r < 1:
                raise NetworkError(f"{where} must be a positive integer (1 = fully parallel), not {r!r}")
        self.options = {"multiplier": multiplier, "levels_per_stage": levels_per_stage, "io": io,
                        "memory_bits": memory_bits, "reuse": reuse, "layer_reuse": layer_reuse}
        if isinstance(levels_per_stage, DelayModel):  # registers placed by estimated delay
            self.options.update(levels_per_stage=None, family=levels_per_stage.family,
                                clock_mhz=levels_per_stage.clock_mhz)
        self._reuse, self._layer_reuse, self._reuse_used = reuse, layer_reuse, set()
        kw = {"levels_per_stage": levels_per_stage}
        inp = graph.input
        fmt = inp.fmt
        # the data layout between layers: an image streamed by pixels, or one flat word
        image = spatial(inp.shape) if io == "stream" and len(inp.shape) > 1 else None
        self.in_image = image
        self.layers = []

        def add(name, layer):
            self.layers.append((name, layer))

        for op in graph.ops[1:]:
            if isinstance(op, Dropout):
                continue
            if isinstance(op, (Flatten, Reshape)):
                if image is None and not self.layers and isinstance(op, Reshape) and io == "stream" \
                        and len(op.shape) > 1:
                    image = self.in_image = spatial(op.shape)  # same data, now streamed by pixels
                elif image is not None and len(op.shape) > 1 and op.shape[-1] == image[2]:
                    image = spatial(op.shape)  # same pixels, other rows
                elif image is not None:  # gather the image; the layers after it take whole tensors
                    add(op.name, Collect(fmt, image[0] * image[1], image[2], name=op.name))
                    image = None
                continue
            if image is not None:
                layer = self._stream_layer(op, fmt, image, multiplier, memory_bits, kw, add)
                image = None if isinstance(op, PoolOp) and op.is_global else spatial(op.shape)
            else:
                layer = self._parallel_layer(op, fmt, multiplier, kw)
            add(op.name, layer)
            fmt = op.fmt
        if not self.layers:
            raise NetworkError("the network has no layers to build")
        unused = [name for name in layer_reuse if name not in self._reuse_used]
        if unused:
            raise NetworkError(f"reuse is set for layer {unused[0]!r}, which is not a Dense layer of this network; "
                               "the reuse factor applies to Dense layers: remove it there")
        out = graph.output
        self.in_fmt, self.out_fmt = inp.fmt, out.fmt
        first_in = self.in_image
        self.in_words = first_in[2] if first_in else inp.size
        self.in_beats = first_in[0] * first_in[1] if first_in else 1
        self.out_words = image[2] if image else out.size
        self.out_beats = image[0] * image[1] if image else 1
        self.in_size, self.out_size = self.in_words, self.out_words  # words per transfer
        super().__init__({"i": In(stream_signature(self.in_fmt, self.in_words)),
                          "o": Out(stream_signature(self.out_fmt, self.out_words))})
        # with one transfer per inference, space the inputs by the slowest layer's interval
        slowest = max(getattr(layer, "interval", 1) for _, layer in self.layers)
        self.input_gate = slowest if self.in_beats == 1 else 1
        from .timing import stream_timing
        self.timing = stream_timing(self)
        if self.timing.latency < 1:  # the last output of an inference came before its first input
            raise NetworkError(
                "the output of this network does not depend on its input: in the pixel stream, every window of a "
                "layer after zero padding covers only padding pixels (e.g. strides that skip every real pixel), so "
                "outputs come before the inputs they belong to; change that layer's padding or strides, or convert "
                "with --io parallel")

    def reuse_of(self, op):
        """The reuse factor of a Dense-like ``op``: its ``layer_reuse`` entry (by op name, then
        Keras layer name), else the default ``reuse`` for a Dense, 1 for a convolution."""
        for key in (op.name, op.origin):
            if key and key in self._layer_reuse:
                r = self._layer_reuse[key]
                self._reuse_used.add(key)
                if r > 1 and isinstance(op, ConvOp):
                    raise NetworkError(f"layer {op.origin or op.name!r}: convolutions cannot be folded yet (reuse "
                                       f"{r}); remove its reuse setting (reuse applies to Dense layers)")
                return r
        return 1 if isinstance(op, ConvOp) else self._reuse

    def _parallel_layer(self, op, fmt, multiplier, kw):
        if isinstance(op, ConvOp):
            self.reuse_of(op)  # an explicit R > 1 is an error
            return Conv(op, fmt, multiplier=multiplier, **kw)
        if isinstance(op, DenseOp):
            r = self.reuse_of(op)
            if r > 1:
                return FoldedDense(op, fmt, r, multiplier=multiplier, **kw)
            return Dense(op, fmt, multiplier=multiplier, **kw)
        if isinstance(op, PoolOp):
            return Pool(op, fmt, **kw)
        if isinstance(op, PadOp):
            return Pad(op, fmt, **kw)
        if isinstance(op, ActivationOp):
            return Activation(op, fmt, multiplier=multiplier, **kw)
        if type(op).__name__ == "Requantize":
            return Requantize(op, fmt, **kw)
        if isinstance(op, SoftmaxOp) and op.implementation == "argmax":
            return Argmax(op, fmt, self.graph.op(op.inputs[0]).size, **kw)
        if isinstance(op, SoftmaxOp):
            return Softmax(op, fmt, **kw)
        raise NetworkError(f"no hardware for {type(op).__name__} op {op.name!r}")

    def _stream_layer(self, op, fmt, image, multiplier, memory_bits, kw, add):
        where = f"{type(op).__name__} {op.origin or op.name!r}"
        if isinstance(op, ConvOp):
            self.reuse_of(op)  # an explicit R > 1 is an error
            if any(op.padding):
                pad = PadStream(op.in_shape, op.padding, fmt, 0, name=f"{op.name}_pad")
                add(f"{op.name}_pad", pad)
                op = op.replace(in_shape=pad.out_shape, padding=(0, 0, 0, 0))
            return ConvStream(op, fmt, multiplier=multiplier, memory_bits=memory_bits, **kw)
        if isinstance(op, PoolOp):
            if op.is_global:
                return GlobalPoolStream(op, fmt, **kw)
            if any(op.padding):
                value = fmt.min_int if op.kind == "max" else 0
                add(f"{op.name}_pad", PadStream(op.in_shape, op.padding, fmt, value, name=f"{op.name}_pad"))
            return PoolStream(op, fmt, memory_bits=memory_bits, **kw)
        if isinstance(op, PadOp):
            return PadStream(op.in_shape, op.padding, fmt, 0, name=op.name)
        if isinstance(op, ActivationOp):
            return Activation(op, fmt, multiplier=multiplier, size=image[2], **kw)
        if type(op).__name__ == "Requantize":
            return stream_requantize(op, fmt, image, **kw)
        raise NetworkError(f"{where} reads an image streamed by pixels; add a Flatten before it, or build the "
                           f"network with io='parallel'")

    @property
    def latency(self):
        return self.timing.latency

    @property
    def interval(self):
        """Cycles per inference at full rate (the initiation interval of a whole inference)."""
        return self.timing.interval

    def elaborate(self, platform):
        m = Module()
        for name, layer in self.layers:
            m.submodules[name] = layer
        first = self.layers[0][1].i
        if self.input_gate > 1:  # one accepted input every input_gate cycles at most
            wait = Signal(range(self.input_gate))
            m.d.comb += [first.valid.eq(self.i.valid & (wait == 0)), first.payload.eq(self.i.payload),
                         self.i.ready.eq(first.ready & (wait == 0))]
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += wait.eq(self.input_gate - 1)
            with m.Elif(wait != 0):
                m.d.sync += wait.eq(wait - 1)
        else:
            connect(m, flipped(self.i), first)
        for (_, a), (_, b) in zip(self.layers, self.layers[1:]):
            connect(m, a.o, b.i)
        connect(m, self.layers[-1][1].o, flipped(self.o))
        return m
