"""Sliding windows over a pixel stream (``io = stream``): line buffers, then a datapath per window.

A :class:`WindowLayer` takes one pixel (all its channels) per transfer, row-major over an
image of ``in_shape`` (height, width, channels), keeps the last ``kh - 1`` rows in a line
buffer and the last ``kw`` columns of ``kh`` pixels in window registers, and for every pixel
that completes a window (a valid, strided window position; padding is done by a
:class:`~nnhdl.layers.pixels.PadStream` in front) starts the window's datapath, which
computes every product of the window with constant weights in parallel. Images follow each
other with no gap.
"""

from functools import cached_property

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..arith import dense_plan
from .base import LayerFigures, RegisteredFront, stream_signature, word_shape
from .conv import conv_window_nodes
from .dense import check_multiplier
from .pipeline import Datapath
from .pool import pool_node
from .timing import Pipe, window_starts

__all__ = ["WindowLayer", "ConvStream", "PoolStream", "LINE_BUFFER_MEMORY_BITS"]

from ..options import LINE_BUFFER_MEMORY_BITS  # noqa: E402  (line buffers this large are block RAM)


class WindowLayer(RegisteredFront, LayerFigures, wiring.Component):
    """Base of the windowed stream layers.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(word of in_fmt, channels)))`` — one input pixel
    o : ``Out(stream.Signature(ArrayLayout(word of out_fmt, n_out)))`` — one output pixel,
        window positions in row-major order

    Attributes
    ----------
    latency : int
        Cycles from accepting the pixel that completes a window to its output being valid:
        one for the window registers plus the datapath's stages.
    line_buffer_bits : int
        ``(kh - 1) * width * channels * input width``.
    line_buffer_kind : "registers" | "memory" | "none"
    register_bits, adders, multipliers, rom_bits : int

    Handshake: ``i.ready`` is the pipeline enable ``~o.valid | o.ready``: a stalled output holds
    the window, the line buffer and the datapath; no pixel is lost or repeated.
    Subclasses implement ``build(dp, window, cls)``: ``window[r][c][ch]`` are nodes (top-left
    first), ``cls`` a node numbering the window's position class (see ``classes``) or None.
    """

    def __init__(self, in_shape, kernel, strides, in_fmt, out_fmt, n_out, *, classes=None, levels_per_stage=2,
                 name="window", memory_bits=LINE_BUFFER_MEMORY_BITS):
        self.in_shape, self.kernel, self.strides = tuple(in_shape), tuple(kernel), tuple(strides)
        self.in_fmt, self.out_fmt = in_fmt, out_fmt
        h, w, c = self.in_shape
        kh, kw = self.kernel
        super().__init__({"i": In(stream_signature(in_fmt, c)), "o": Out(stream_signature(out_fmt, n_out))})
        self.line_buffer_bits = (kh - 1) * w * c * in_fmt.width
        if kh == 1:
            self.line_buffer_kind = "none"
        elif self.line_buffer_bits >= memory_bits and w >= 2:
            self.line_buffer_kind = "memory"
        else:
            self.line_buffer_kind = "registers"
        self._window = [[[Signal(word_shape(in_fmt), name=f"{name}_w{r}_{q}_{ch}", reset_less=True)
                          for ch in range(c)] for q in range(kw)] for r in range(kh)]
        self._classes = classes  # (row class per input row, column class per input column, n column classes)
        self._cls = None
        if classes is not None:
            n = (max(classes[0]) + 1) * classes[2]
            self._cls = Signal(range(max(n, 2)), name=f"{name}_cls", reset_less=True)
        self._levels, self._name = levels_per_stage, name

    @cached_property
    def _built(self):
        """The window datapath, built on first need: ``(datapath, output registers, stages)``."""
        in_fmt = self.in_fmt
        dp = Datapath(self._levels, name=self._name)
        nodes = [[[dp.input(s, in_fmt.min_int, in_fmt.max_int) for s in col] for col in row] for row in self._window]
        cls = None if self._cls is None else dp.input(self._cls, 0, (max(self._classes[0]) + 1) * self._classes[2] - 1)
        outputs = self.build(dp, nodes, cls)
        registers, stages = dp.outputs(outputs, self.out_fmt)
        return dp, registers, stages

    def build(self, dp, window, cls):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def register_bits(self):
        h, w, c = self.in_shape
        kh, kw = self.kernel
        lb = self.line_buffer_bits if self.line_buffer_kind == "registers" else 0
        counters = (h - 1).bit_length() + (w - 1).bit_length()
        return self._dp.register_bits + self.latency + kh * kw * c * self.in_fmt.width + lb + counters

    @property
    def memory_bits(self):
        return self.line_buffer_bits if self.line_buffer_kind == "memory" else 0

    adders = property(lambda self: self._dp.adders)
    multipliers = property(lambda self: self._dp.multipliers)
    rom_bits = property(lambda self: self._dp.rom_bits)

    def figures(self):
        entry = super().figures()
        if self.line_buffer_kind != "none":
            entry.update(line_buffer_bits=self.line_buffer_bits, line_buffer=self.line_buffer_kind)
        return entry

    def handshake(self):
        """A pipeline started by the pixels that complete a window."""
        h, w, _ = self.in_shape
        rows = window_starts(h, self.kernel[0], self.strides[0])
        cols = window_starts(w, self.kernel[1], self.strides[1])
        return Pipe(self.latency, h * w, lambda pos: bool(rows[pos // w] and cols[pos % w]))

    def elaborate(self, platform):
        m = Module()
        h, w, c = self.in_shape
        kh, kw = self.kernel
        sh, sw = self.strides
        width = self.in_fmt.width
        en, accept = Signal(), Signal()
        valid = Signal(self.latency)
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en),
            accept.eq(self.i.valid & en),
            self.o.valid.eq(valid[-1]),
        ]
        row = Signal(range(max(h, 2)))
        col = Signal(range(max(w, 2)))
        last_col = col == w - 1
        next_col = Mux(last_col, 0, col + 1)
        pixel = self.i.payload.as_value()

        # the column of kh pixels entering the window: kh - 1 from the line buffer, then the new one
        above = []  # rows r - kh + 1 .. r - 1 at this column, packed pixels
        if self.line_buffer_kind == "registers":
            chain_in = pixel
            taps = []
            for k in range(kh - 1):
                regs = [Signal(c * width, name=f"lb{k}_{x}", reset_less=True) for x in range(w)]
                with m.If(accept):
                    m.d.sync += regs[0].eq(chain_in)
                    m.d.sync += [regs[x].eq(regs[x - 1]) for x in range(1, w)]
                taps.append(regs[-1])  # the pixel one row above what enters this buffer
                chain_in = regs[-1]
            above = list(reversed(taps))
        elif self.line_buffer_kind == "memory":
            mem = Memory(shape=(kh - 1) * c * width, depth=w, init=[])
            m.submodules.line_buffer = mem
            rd = mem.read_port(domain="sync")
            wr = mem.write_port()
            # The read address leads by one cycle: while pixel (r, x) waits, the port reads column
            # x; when it is accepted, column x + 1 (never the column being written).
            m.d.comb += [rd.addr.eq(Mux(accept, next_col, col)), rd.en.eq(1)]
            stored = [rd.data[k * c * width:(k + 1) * c * width] for k in range(kh - 1)]  # oldest row first
            above = stored
            m.d.comb += [wr.addr.eq(col), wr.en.eq(accept), wr.data.eq(Cat(*stored[1:], pixel))]
        column = above + [pixel]

        row_ok = window_starts(h, kh, sh)
        col_ok = window_starts(w, kw, sw)
        completes = Signal()
        m.d.comb += completes.eq(Const(int("".join(map(str, reversed(row_ok))), 2), h).bit_select(row, 1)
                                 & Const(int("".join(map(str, reversed(col_ok))), 2), w).bit_select(col, 1))
        with m.If(accept):
            for r in range(kh):
                for q in range(kw):
                    src = column[r] if q == kw - 1 else None
                    for ch in range(c):
                        value = (src[ch * width:(ch + 1) * width] if src is not None
                                 else self._window[r][q + 1][ch])
                        m.d.sync += self._window[r][q][ch].eq(value)
            m.d.sync += [col.eq(next_col)]
            with m.If(last_col):
                m.d.sync += row.eq(Mux(row == h - 1, 0, row + 1))
            if self._cls is not None:
                rows, cols, ncols = self._classes
                m.d.sync += self._cls.eq(Array(Const(v * ncols, self._cls.shape()) for v in rows)[row]
                                         + Array(Const(v, self._cls.shape()) for v in cols)[col])
        with m.If(en):
            m.d.sync += valid.eq(valid << 1 | (accept & completes))
            m.d.sync += self._dp.statements()
        self._dp.elaborate_memories(m, en)
        for k, reg in enumerate(self._built[1]):
            m.d.comb += self.o.payload[k].eq(reg)
        return m


class ConvStream(WindowLayer):
    """Convolution ``op`` (:class:`nnhdl.ir.Conv` without padding: a
    :class:`~nnhdl.layers.pixels.PadStream` pads in front) on a pixel stream: one output pixel
    (``op.n_out`` channels) per window, all products in parallel. Members: see
    :class:`WindowLayer`."""

    def __init__(self, op, in_fmt, *, multiplier="cse", levels_per_stage=2, memory_bits=LINE_BUFFER_MEMORY_BITS):
        check_multiplier(multiplier)
        if any(op.padding):
            raise ValueError(f"ConvStream {op.name!r} needs an unpadded Conv; pad with a PadStream in front")
        self.op, self.multiplier = op, multiplier
        self.plan = dense_plan(op, in_fmt)
        super().__init__(op.in_shape, op.kernel, op.strides, in_fmt, op.fmt, op.n_out,
                         levels_per_stage=levels_per_stage, name=op.name, memory_bits=memory_bits)

    def build(self, dp, window, cls):
        taps = [x for row in window for col in row for x in col]
        return conv_window_nodes(dp, self.op, self.plan, taps, self.in_fmt, self.multiplier)


class PoolStream(WindowLayer):
    """Pooling ``op`` (:class:`nnhdl.ir.Pool`) on a pixel stream of the image padded by
    ``op.padding`` (a :class:`~nnhdl.layers.pixels.PadStream` in front pads with the input
    format's minimum for max pooling, with zeros for average pooling, and the average divides
    by the window's count of real pixels, selected by the window's position)."""

    def __init__(self, op, in_fmt, *, levels_per_stage=2, memory_bits=LINE_BUFFER_MEMORY_BITS):
        self.op = op
        h, w, c = op.in_shape
        pt, pb, pl, pr = op.padding
        classes = None
        if op.kind == "avg" and any(op.padding):
            classes = self._count_classes(op)
        super().__init__((h + pt + pb, w + pl + pr, c), op.pool, op.strides, in_fmt, op.fmt, c, classes=classes,
                         levels_per_stage=levels_per_stage, name=op.name, memory_bits=memory_bits)

    def _count_classes(self, op):
        """Real-pixel counts per window row and column, as classes of padded input rows/columns."""
        h, w, _ = op.in_shape
        (kh, kw), (sh, sw), (pt, pb, pl, pr) = op.pool, op.strides, op.padding

        def axis(size, k, s, lo, hi):
            n = (size + lo + hi - k) // s + 1
            counts = [sum(1 for y in range(o * s - lo, o * s - lo + k) if 0 <= y < size) for o in range(n)]
            values = sorted(set(counts))
            per_input = [0] * (size + lo + hi)  # class of the window completed at each padded index
            for o, cnt in enumerate(counts):
                per_input[o * s + k - 1] = values.index(cnt)
            return per_input, values

        rows, self._row_counts = axis(h, kh, sh, pt, pb)
        cols, self._col_counts = axis(w, kw, sw, pl, pr)
        return rows, cols, len(self._col_counts)

    def build(self, dp, window, cls):
        op = self.op
        c = self.in_shape[2]
        if cls is None:
            counts = (op.pool[0] * op.pool[1],)
        else:
            counts = ([a * b for a in self._row_counts for b in self._col_counts], cls)
        return [pool_node(dp, op, [x[ch] for row in window for x in row], self.in_fmt, counts) for ch in range(c)]
