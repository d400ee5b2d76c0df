"""A whole network as one stream component."""

from functools import cached_property, partial

import numpy as np

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out, connect, flipped

from ..gcpause import paused_gc
from ..hardware import HardwareError, build_component, lower_hardware
from ..ir import Graph
from ..options import BuildOptions, FlowControl, IOStyle
from ..parallel import run_jobs
from .base import stream_signature
from .dense import computed_graphs, remember_graphs
from .folded import link_folded
from .pipeline import DelayModel
from .timing import stream_timing

__all__ = ["Network", "NetworkError", "IO_STYLES"]

#: How data enters and leaves the network.
IO_STYLES = tuple(style.value for style in IOStyle)

#: The graph cannot be turned into hardware (names the layer and what to change).
NetworkError = HardwareError


class Network(wiring.Component):
    """The stages of a quantized, sequential graph chained stream to stream.

    ``options`` (:class:`~nnhdl.options.BuildOptions`, or the same as keywords: ``multiplier``,
    ``levels_per_stage`` (an int, or a :class:`~nnhdl.layers.pipeline.DelayModel`), ``io``,
    ``memory_bits``, ``reuse``, ``layer_reuse``, ``flow_control``) say how. The stages come from
    :func:`nnhdl.hardware.lower_hardware` (:attr:`hardware`); the Network instantiates each
    stage's component and connects them. Constructing it is cheap; the layers' logic is built
    when first needed (the latency, the report, elaboration).

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
    layers : list of (stage name, component)

    ``reuse`` (default for every Dense and convolution) and ``layer_reuse`` (``{Keras layer or op
    name: R}``) are reuse factors: a Dense with R > 1 is a :class:`~nnhdl.layers.FoldedDense`
    (about ``n_in * n_out / R`` multipliers, one input every R cycles at most), a convolution a
    :class:`~nnhdl.layers.FoldedConv` (``io="parallel"``, R per image) or
    :class:`~nnhdl.layers.FoldedConvStream` (``io="stream"``, R per window); R = 1 is the fully
    parallel layer. The network's interval is its slowest layer's. With one transfer per
    inference and a folded layer, the network input accepts at most one transfer every
    :attr:`input_gate` cycles (the slowest layer's interval): then no inference waits inside the
    pipeline for a slower layer, and the latency is the same at full rate as from idle.

    Flow control (``options.flow_control``, :class:`~nnhdl.options.FlowControl`); either way nothing is
    lost or duplicated when ``o.ready`` is low:

    ``credit`` (``io="parallel"`` only)
        The layers never wait for ``o.ready``. A result the consumer does not take at once joins a
        queue of :attr:`queue_depth` results (``lib.fifo.SyncFIFOBuffered``: block or distributed
        RAM, or registers when small), and one it does take while the queue is empty goes straight
        out (no added latency). An input is accepted only while fewer than :attr:`queue_depth`
        inferences are inside (a comparison of a counter register), so the queue never overflows.
        ``o.ready`` reaches only the queue and that count: the registers of a fully
        parallel pipeline have no enable at all, and a folded layer's handshakes reach back only to
        the layers before it. With ``o.ready`` always high the queue stays empty and the timing
        is the same as ``stall``'s.
    ``stall`` (the default)
        When ``o.ready`` is low every layer whose output waits holds its registers (``o.ready`` is
        a combinational chain through all layers' enables); no queue.
    """

    def __init__(self, graph: Graph, options: BuildOptions = None, **kwargs):
        levels = kwargs.get("levels_per_stage")
        if isinstance(levels, DelayModel):  # registers placed by estimated delay
            kwargs.update(levels_per_stage=None, family=levels.family, clock_mhz=levels.clock_mhz)
        try:
            self.options = BuildOptions.of(options, **kwargs)
        except ValueError as e:
            raise NetworkError(str(e)) from None
        self.graph = graph
        self.hardware = hw = lower_hardware(graph, self.options)
        self.io = str(self.options.io)
        self.layers = [(stage.name, build_component(stage, self.options)) for stage in hw.stages]
        # consecutive folded layers pass their vectors through block RAM (same handshakes and timing)
        link_folded([layer for _, layer in self.layers])
        self.in_fmt, self.out_fmt = hw.in_fmt, hw.out_fmt
        self.in_image = hw.in_image
        self.in_words, self.in_beats = hw.in_words, hw.in_beats
        self.out_words, self.out_beats = hw.out_words, hw.out_beats
        self.in_size, self.out_size = self.in_words, self.out_words  # words per transfer
        super().__init__({"i": In(stream_signature(self.in_fmt, self.in_words)),
                          "o": Out(stream_signature(self.out_fmt, self.out_words))})
        # with one transfer per inference, space the inputs by the slowest layer's interval
        slowest = max(layer.interval for _, layer in self.layers)
        self.input_gate = slowest if self.in_beats == 1 else 1
        self.flow = self.options.flow_control  # (credit only with io="parallel": one transfer each way)

    @property
    def queue_depth(self):
        """Results the output queue holds with ``credit`` flow control (0 with ``stall``): one more
        than the inferences that can be inside the layers at full rate, so that a consumer that is
        always ready never holds up the input."""
        if self.flow is not FlowControl.CREDIT:
            return 0
        return -(-self._layer_timing.latency // self.input_gate) + 1

    @property
    def queue_bits(self):
        """Bits of storage in the output queue."""
        return self.queue_depth * len(self.o.payload.as_value())

    @paused_gc()
    def build(self, jobs=None):
        """Build every layer's logic now (it is otherwise built when first needed) and return the
        latency. The layers' searches for shared subexpressions (``cse``), the long part, run on
        up to ``jobs`` processes (default: the cores; see :mod:`nnhdl.parallel`): each layer is
        built in one of them and the graphs found elsewhere are handed to this process, which then
        builds the remaining layers without searching again. The result is the same as building
        them one after the other."""
        layers = [layer for _, layer in self.layers]
        results = run_jobs([partial(_build_layer, layer) for layer in layers], [_search_cost(layer) for layer in layers],
                           jobs)
        for graphs in results:
            remember_graphs(graphs)
        return self.latency

    @cached_property
    def timing(self):
        """The :class:`~nnhdl.layers.timing.StreamTiming` (computed on first use), the output
        queue's credits included."""
        if self.flow is not FlowControl.CREDIT:
            return self._layer_timing
        return stream_timing(self, credits=self.queue_depth)

    @cached_property
    def _layer_timing(self):
        """The timing of the layers alone, their output always taken."""
        timing = stream_timing(self)
        if timing.latency < 1:  # the last output of an inference came before its first input
            raise NetworkError(
                "the output of this network does not depend on its input: in the pixel stream, every window of a "
                "layer after zero padding covers only padding pixels (e.g. strides that skip every real pixel), so "
                "outputs come before the inputs they belong to; change that layer's padding or strides, or convert "
                "with --io parallel")
        return timing

    @property
    def latency(self):
        return self.timing.latency

    @property
    def interval(self):
        """Cycles per inference at full rate (the initiation interval of a whole inference)."""
        return self.timing.interval

    def elaborate(self, platform):
        self.timing  # noqa: B018  (a network whose timing is impossible is refused here too)
        m = Module()
        for name, layer in self.layers:
            m.submodules[name] = layer
        first, last = self.layers[0][1].i, self.layers[-1][1].o
        for (_, a), (_, b) in zip(self.layers, self.layers[1:]):
            connect(m, a.o, b.i)
        allow = []  # what lets an input enter now: the interval, the credits
        if self.input_gate > 1:  # one accepted input every input_gate cycles at most
            wait = Signal(range(self.input_gate))
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += wait.eq(self.input_gate - 1)
            with m.Elif(wait != 0):
                m.d.sync += wait.eq(wait - 1)
            allow.append(wait == 0)
        if self.flow is FlowControl.CREDIT:
            allow.append(self._elaborate_queue(m, last))
        else:
            connect(m, last, flipped(self.o))
        if allow:
            admit = Signal()
            m.d.comb += [admit.eq(Cat(*allow).all()),
                         first.valid.eq(self.i.valid & admit), first.payload.eq(self.i.payload),
                         self.i.ready.eq(first.ready & admit)]
        else:
            connect(m, flipped(self.i), first)
        return m

    def _elaborate_queue(self, m, last):
        """The output queue and the credit count of ``credit`` flow control (see the class);
        returns the signal that says an input may enter."""
        depth = self.queue_depth
        # (SyncFIFOBuffered refuses a write while its memory holds depth - 1 results and its output
        # register is empty; one more place makes every result the credits allow fit)
        m.submodules.queue = queue = SyncFIFOBuffered(width=len(last.payload.as_value()), depth=depth + 1)
        inside = Signal(range(depth + 1))  # inferences accepted and not yet taken by the consumer
        entered, left = self.i.valid & self.i.ready, self.o.valid & self.o.ready
        with m.If(entered & ~left):
            m.d.sync += inside.eq(inside + 1)
        with m.Elif(left & ~entered):
            m.d.sync += inside.eq(inside - 1)
        room = Signal()
        m.d.comb += room.eq(inside != depth)
        # the queue is empty (a register: it selects every output bit): a result the consumer
        # takes now goes straight out
        through = Signal(init=1)
        held = Signal(range(depth + 1))  # results in the queue
        wrote, read = queue.w_en, queue.r_rdy & queue.r_en
        after = Signal.like(held)
        m.d.comb += after.eq(held + wrote - read)
        m.d.sync += [held.eq(after), through.eq(after == 0)]
        m.d.comb += [
            last.ready.eq(1),
            queue.w_data.eq(last.payload.as_value()),
            queue.w_en.eq(last.valid & ~(through & self.o.ready)),
            queue.r_en.eq(self.o.ready & ~through),
            self.o.valid.eq(Mux(through, last.valid, queue.r_rdy)),
            self.o.payload.eq(Mux(through, last.payload.as_value(), queue.r_data)),
        ]
        return room


def _build_layer(layer):
    """Build ``layer``'s logic; the ``cse`` graphs it computed."""
    with computed_graphs() as graphs:
        layer.latency  # noqa: B018  (builds it)
    return graphs


def _search_cost(layer):
    """How long a layer's ``cse`` search takes, roughly (its non-zero weights times their bits)."""
    op = getattr(layer, "op", None)
    weight = getattr(op, "weight", None)
    if weight is None or getattr(layer, "multiplier", None) != "cse":
        return 1
    weight_fmt = getattr(op, "weight_fmt", None)
    return 1 + int(np.count_nonzero(np.asarray(weight))) * (weight_fmt.width if weight_fmt else 8)
