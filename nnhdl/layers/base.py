"""The stream wrapper shared by all pipelined layers."""

from functools import cached_property

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .pipeline import Datapath
from .timing import Pipe

__all__ = ["PipelinedLayer", "LayerFigures", "RegisteredFront", "word_shape", "stream_signature"]


def word_shape(fmt):
    """The Amaranth shape of one word of a fixed-point format."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def count_shapes(widths):
    """``{"AxB": count}`` of multiplier operand widths ``[(a, b), ...]`` (the wider first)."""
    out = {}
    for a, b in widths:
        key = f"{max(a, b)}x{min(a, b)}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def stream_signature(fmt, n):
    """``stream.Signature`` carrying ``n`` words of ``fmt`` (element 0 in the low bits)."""
    return stream.Signature(data.ArrayLayout(word_shape(fmt), n))


class LayerFigures:
    """What every layer component reports (``report.json``'s per-layer hardware figures):
    ``latency``, ``interval`` (cycles between accepted inputs at full rate, 1 unless folded),
    ``adders``, ``multipliers`` (and ``multiplier_shapes``: how many of each operand width ``"AxB"``,
    from which :mod:`nnhdl.estimate` counts DSP blocks), ``register_bits``, ``rom_bits``,
    ``memory_bits``; subclasses add
    their own through :meth:`figures`. :meth:`handshake` gives the layer's model for
    :mod:`nnhdl.layers.timing`."""

    interval = 1
    memory_bits = 0
    multiplier_widths = ()  # (a, b) per hardware multiplier

    @property
    def logic_bits(self):
        """Bits of adders, comparators and multiplexers (``{"add": n, "compare": n, "mux": n}``),
        from which :mod:`nnhdl.estimate` estimates LUTs; layers with a datapath count its logic
        (:class:`_DatapathLogic`), the others have none."""
        return {"add": 0, "compare": 0, "mux": 0}

    def figures(self):
        return {"latency_cycles": self.latency, "interval_cycles": self.interval, "adders": self.adders,
                "multipliers": self.multipliers, "multiplier_shapes": count_shapes(self.multiplier_widths),
                "register_bits": self.register_bits, "rom_bits": self.rom_bits,
                "memory_bits": self.memory_bits, "logic_bits": self.logic_bits}

    def handshake(self):
        return Pipe(self.latency)


class _DatapathLogic:
    """The logic bits of a layer's datapath ``_dp``."""

    @property
    def logic_bits(self):
        return dict(self._dp.logic_bits)

    @property
    def multiplier_widths(self):
        return tuple(self._dp.multiplier_widths)


class RegisteredFront(_DatapathLogic):
    """A layer whose datapath reads registers the layer fills itself (a window, running results):
    its latency is one cycle more than the datapath's stages. Subclasses define the cached
    ``_built`` = ``(datapath, output registers, stages)``."""

    @property
    def _dp(self):
        return self._built[0]

    @property
    def latency(self):
        return self._built[2] + 1


class PipelinedLayer(_DatapathLogic, LayerFigures, wiring.Component):
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
    or duplicated, and bubbles are squeezed out. Constructing the layer is cheap: the datapath is
    built by the subclass's ``build(dp, inputs)`` (which returns the output nodes) the first time
    it is needed — by ``latency``, a resource count or ``elaborate`` — and kept.
    """

    def __init__(self, in_fmt, n_in, out_fmt, n_out, *, levels_per_stage=2, name="layer"):
        self.in_fmt, self.out_fmt = in_fmt, out_fmt
        self._shape, self._levels, self._name = (n_in, n_out), levels_per_stage, name
        super().__init__({"i": In(stream_signature(in_fmt, n_in)), "o": Out(stream_signature(out_fmt, n_out))})

    @cached_property
    def _built(self):
        n_in, n_out = self._shape
        dp = Datapath(self._levels, name=self._name, share=True)
        inputs = [dp.input(self.i.payload[k], self.in_fmt.min_int, self.in_fmt.max_int) for k in range(n_in)]
        outputs = self.build(dp, inputs)
        if len(outputs) != n_out:
            raise AssertionError(f"{type(self).__name__} built {len(outputs)} outputs, expected {n_out}")
        registers, latency = dp.outputs(outputs, self.out_fmt)
        return dp, registers, latency

    def build(self, dp, inputs):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def latency(self):
        return self._built[2]

    @property
    def _dp(self):
        return self._built[0]

    @property
    def register_bits(self):
        return self._built[0].register_bits + self.latency  # datapath + valid bits

    @property
    def adders(self):
        return self._built[0].adders

    @property
    def rom_bits(self):
        return self._built[0].rom_bits

    @property
    def multipliers(self):
        return self._built[0].multipliers

    def elaborate(self, platform):
        dp, registers, latency = self._built
        m = Module()
        en = Signal()
        valid = Signal(latency)
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en),
            self.o.valid.eq(valid[-1]),
        ]
        with m.If(en):
            m.d.sync += valid.eq(valid << 1 | self.i.valid)
            m.d.sync += dp.statements()
        dp.elaborate_memories(m, en)
        for k, reg in enumerate(registers):
            m.d.comb += self.o.payload[k].eq(reg)
        return m
