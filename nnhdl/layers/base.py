"""The stream wrapper shared by all pipelined layers."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .pipeline import Datapath

__all__ = ["PipelinedLayer", "word_shape", "stream_signature"]


def word_shape(fmt):
    """The Amaranth shape of one word of a fixed-point format."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def stream_signature(fmt, n):
    """``stream.Signature`` carrying ``n`` words of ``fmt`` (element 0 in the low bits)."""
    return stream.Signature(data.ArrayLayout(word_shape(fmt), n))


class PipelinedLayer(wiring.Component):
    """A fixed-latency, II = 1 layer with stream ports.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(word of in_fmt, n_in)))``
    o : ``Out(stream.Signature(ArrayLayout(word of out_fmt, n_out)))``

    Attributes
    ----------
    latency : int
        Cycles from an accepted input to its output being valid (no stalls).
    register_bits, adders, multipliers, rom_bits : int
        Resource counts of the generated datapath.

    Handshake: the pipeline advances when ``o.valid`` is low or ``o.ready`` is high
    (``i.ready`` is that enable). While ``o`` is stalled, every register holds: nothing is lost
    or duplicated, and bubbles are squeezed out. The datapath is built in ``__init__`` (so
    ``latency`` is known before elaboration) by the subclass's ``build(dp, inputs)``, which
    returns the output nodes.
    """

    def __init__(self, in_fmt, n_in, out_fmt, n_out, *, levels_per_stage=2, name="layer"):
        self.in_fmt, self.out_fmt = in_fmt, out_fmt
        super().__init__({"i": In(stream_signature(in_fmt, n_in)), "o": Out(stream_signature(out_fmt, n_out))})
        self._dp = Datapath(levels_per_stage, name=name)
        inputs = [self._dp.input(self.i.payload[k], in_fmt.min_int, in_fmt.max_int) for k in range(n_in)]
        outputs = self.build(self._dp, inputs)
        if len(outputs) != n_out:
            raise AssertionError(f"{type(self).__name__} built {len(outputs)} outputs, expected {n_out}")
        self._outputs, self.latency = self._dp.outputs(outputs, out_fmt)

    def build(self, dp, inputs):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def register_bits(self):
        return self._dp.register_bits + self.latency  # datapath + valid bits

    @property
    def adders(self):
        return self._dp.adders

    @property
    def rom_bits(self):
        return self._dp.rom_bits

    @property
    def multipliers(self):
        return self._dp.multipliers

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        valid = Signal(self.latency)
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en),
            self.o.valid.eq(valid[-1]),
        ]
        with m.If(en):
            m.d.sync += valid.eq(valid << 1 | self.i.valid)
            m.d.sync += self._dp.statements()
        self._dp.elaborate_memories(m, en)
        for k, reg in enumerate(self._outputs):
            m.d.comb += self.o.payload[k].eq(reg)
        return m
