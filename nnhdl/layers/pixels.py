"""Pixel-stream plumbing (``io = stream``): padding, global pooling, and gathering a whole
image into one word for the dense layers that follow."""

from functools import cached_property

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .base import LayerFigures, RegisteredFront, stream_signature, word_shape
from .pipeline import Datapath, shape_for
from .pool import average_node
from .timing import CollectModel, PadModel, Pipe

__all__ = ["PadStream", "Collect", "GlobalPoolStream"]


class PadStream(LayerFigures, wiring.Component):
    """Emits the padded image: ``padding`` (top, bottom, left, right) pixels of value ``value``
    (raw, every channel) around each ``in_shape`` image of the input stream.

    The output is registered (latency 1). While it emits a padding pixel, ``i.ready`` is low, so
    an image takes ``(h + top + bottom) * (w + left + right)`` cycles at full rate. Attributes:
    ``latency`` (1), ``register_bits``.
    """

    adders = multipliers = rom_bits = memory_bits = 0

    def __init__(self, in_shape, padding, fmt, value=0, name="pad"):
        self.in_shape, self.padding, self.fmt, self.value = tuple(in_shape), tuple(padding), fmt, int(value)
        h, w, c = self.in_shape
        pt, pb, pl, pr = self.padding
        self.out_shape = (h + pt + pb, w + pl + pr, c)
        self.latency = 1
        super().__init__({"i": In(stream_signature(fmt, c)), "o": Out(stream_signature(fmt, c))})

    def handshake(self):
        return PadModel(self.in_shape, self.padding)

    @property
    def register_bits(self):
        hp, wp, c = self.out_shape
        return c * self.fmt.width + 1 + (hp - 1).bit_length() + (wp - 1).bit_length()

    def elaborate(self, platform):
        m = Module()
        h, w, c = self.in_shape
        hp, wp, _ = self.out_shape
        pt, pb, pl, pr = self.padding
        row = Signal(range(max(hp, 2)))
        col = Signal(range(max(wp, 2)))
        inside = Signal()
        m.d.comb += inside.eq((row >= pt) & (row < pt + h) & (col >= pl) & (col < pl + w))
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en & inside)]
        pad = Const(self.value, word_shape(self.fmt))
        advance = Signal()
        m.d.comb += advance.eq(en & (~inside | self.i.valid))
        with m.If(en):
            m.d.sync += self.o.valid.eq(advance)
            with m.If(inside):
                m.d.sync += self.o.payload.eq(self.i.payload)
            with m.Else():
                m.d.sync += [self.o.payload[k].eq(pad) for k in range(c)]
        with m.If(advance):
            with m.If(col == wp - 1):
                m.d.sync += [col.eq(0), row.eq(Mux(row == hp - 1, 0, row + 1))]
            with m.Else():
                m.d.sync += col.eq(col + 1)
        return m


class Collect(LayerFigures, wiring.Component):
    """Gathers ``pixels`` pixels of ``channels`` words into one word (row-major), for the dense
    layers after a Flatten. The output is valid the cycle after the last pixel arrives and holds
    until taken; meanwhile ``i.ready`` is low. Attributes: ``latency`` (1), ``register_bits``."""

    adders = multipliers = rom_bits = memory_bits = 0

    def __init__(self, fmt, pixels, channels, name="collect"):
        self.fmt, self.pixels, self.channels = fmt, pixels, channels
        self.latency = 1
        super().__init__({"i": In(stream_signature(fmt, channels)), "o": Out(stream_signature(fmt, pixels * channels))})

    @property
    def register_bits(self):
        return self.pixels * self.channels * self.fmt.width + 1 + (self.pixels - 1).bit_length()

    def handshake(self):
        return CollectModel(self.pixels)

    def elaborate(self, platform):
        m = Module()
        n, c, width = self.pixels, self.channels, self.fmt.width
        count = Signal(range(max(n, 2)))
        buf = Signal(n * c * width)
        accept = Signal()
        m.d.comb += [self.i.ready.eq(~self.o.valid | self.o.ready), accept.eq(self.i.valid & self.i.ready),
                     self.o.payload.eq(buf)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(accept):
            # the newest pixel enters at the top, so after n pixels pixel 0 is in the low bits
            m.d.sync += buf.eq(buf >> (c * width) | (self.i.payload.as_value() << ((n - 1) * c * width)))
            m.d.sync += count.eq(Mux(count == n - 1, 0, count + 1))
            with m.If(count == n - 1):
                m.d.sync += self.o.valid.eq(1)
        return m


class GlobalPoolStream(RegisteredFront, LayerFigures, wiring.Component):
    """Global max or average pooling (:class:`nnhdl.ir.Pool` whose window is the whole image) of
    a pixel stream: per channel a running max or exact sum over the image's pixels, then (for the
    average) the exact division and the cast to ``op.fmt`` in a pipelined datapath. One output
    word of ``channels`` values per image.

    ``latency``: cycles from accepting an image's last pixel to its output being valid.
    """

    def __init__(self, op, in_fmt, *, levels_per_stage=2):
        self.op, self.in_fmt = op, in_fmt
        h, w, c = op.in_shape
        self.pixels = h * w
        super().__init__({"i": In(stream_signature(in_fmt, c)), "o": Out(stream_signature(op.fmt, c))})
        if op.kind == "max":
            lo, hi = in_fmt.min_int, in_fmt.max_int
        else:
            lo, hi = in_fmt.min_int * self.pixels, in_fmt.max_int * self.pixels
        self._acc = [Signal(shape_for(lo, hi), name=f"{op.name}_acc{k}", reset_less=True) for k in range(c)]
        self._res = [Signal(shape_for(lo, hi), name=f"{op.name}_res{k}", reset_less=True) for k in range(c)]
        self._bounds, self._levels = (lo, hi), levels_per_stage

    @cached_property
    def _built(self):
        """The output datapath (exact division and cast), built on first need."""
        op, in_fmt, (lo, hi) = self.op, self.in_fmt, self._bounds
        dp = Datapath(self._levels, name=op.name)
        outs = []
        for res in self._res:
            node = dp.input(res, lo, hi)
            if op.kind == "max":
                outs.append(dp.requantize(node, in_fmt.frac_bits, op.fmt))
            else:
                outs.append(average_node(dp, node, self.pixels, in_fmt.frac_bits, op.fmt))
        registers, stages = dp.outputs(outs, op.fmt)
        return dp, registers, stages

    def handshake(self):
        """A pipeline started by each image's last pixel."""
        n = self.pixels
        return Pipe(self.latency, n, lambda pos: pos == n - 1)

    @property
    def register_bits(self):
        return (self._dp.register_bits + self.latency + sum(len(s) for s in self._acc + self._res)
                + (self.pixels - 1).bit_length())

    adders = property(lambda self: self._dp.adders + len(self._acc))
    multipliers = property(lambda self: self._dp.multipliers)
    rom_bits = property(lambda self: self._dp.rom_bits)
    memory_bits = 0

    def elaborate(self, platform):
        m = Module()
        n = self.pixels
        en, accept = Signal(), Signal()
        valid = Signal(self.latency)
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en), accept.eq(self.i.valid & en),
                     self.o.valid.eq(valid[-1])]
        count = Signal(range(max(n, 2)))
        first, last = count == 0, count == n - 1
        with m.If(accept):
            m.d.sync += count.eq(Mux(last, 0, count + 1))
            for k, (acc, res) in enumerate(zip(self._acc, self._res)):
                x = self.i.payload[k]
                if self.op.kind == "max":
                    combined = Mux(first | (x > acc), x, acc)
                else:
                    combined = Mux(first, x, acc + x)
                m.d.sync += acc.eq(combined)
                with m.If(last):
                    m.d.sync += res.eq(combined)
        with m.If(en):
            m.d.sync += valid.eq(valid << 1 | (accept & last))
            m.d.sync += self._dp.statements()
        self._dp.elaborate_memories(m, en)
        for k, reg in enumerate(self._built[1]):
            m.d.comb += self.o.payload[k].eq(reg)
        return m
