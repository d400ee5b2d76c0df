"""Folded convolutions: a reuse factor for :class:`nnhdl.ir.Conv`, in both I/O styles.

A convolution is a Dense applied to every window (:class:`nnhdl.ir.Conv`), so its folded forms
reuse :class:`~nnhdl.layers.folded.FoldedDense`, bit for bit the same arithmetic:

- :class:`FoldedConv` (``io = parallel``, the whole image per transfer): one FoldedDense over
  *every* output pixel, each output reading its own window of the held image. The reuse factor
  counts per inference, as for a Dense: about ``windows * n_in * n_out / R`` multipliers, one
  image every ``R`` cycles at most. Windows computing the same filter at the same step share a
  weight-ROM column.
- :class:`FoldedConvStream` (``io = stream``, one pixel per transfer): the line buffers and
  window registers of :class:`~nnhdl.layers.window.ConvStream`, and behind them one FoldedDense
  over the window: the reuse factor counts per window, as hls4ml's ``io_stream`` does (about
  ``n_in * n_out / R`` multipliers; a window's ``n_out`` channels take ``R`` cycles at most,
  ``R`` output channels sharing a multiplier when ``R > n_in``). Pixels that complete no window
  pass at full rate; while the products of one window are computed the next pixels keep
  entering the line buffer, until the next window completes.
"""

import dataclasses
import math
from functools import cached_property

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ..ir import Dense as DenseOp
from ..options import LINE_BUFFER_MEMORY_BITS
from .base import LayerFigures, stream_signature
from .conv import window_taps
from .folded import FoldedDense
from .pipeline import Datapath
from .timing import Series
from .window import WindowLayer

__all__ = ["FoldedConv", "FoldedConvStream", "WindowTaps", "conv_as_dense", "largest_reuse"]


def conv_as_dense(op):
    """The Dense computing every output pixel of Conv ``op``: weight ``(n_in, windows * n_out)``
    (the filter matrix once per window, outputs in row-major pixel order), bias likewise; formats,
    activation and names as ``op``'s."""
    windows = math.prod(op.out_spatial[:2])
    fields = {f.name: getattr(op, f.name) for f in dataclasses.fields(DenseOp)}
    fields.update(shape=(windows * op.n_out,), weight=np.tile(op.weight, (1, windows)),
                  bias=np.tile(op.bias, windows))
    return DenseOp(**fields)


def largest_reuse(op, streamed):
    """The largest reuse factor that still changes the hardware of Dense or Conv ``op``: every
    product on one multiplier (per window for a streamed convolution)."""
    per_window = op.n_in * op.n_out
    if streamed or not hasattr(op, "out_spatial"):
        return per_window
    return per_window * math.prod(op.out_spatial[:2])


class FoldedConv(FoldedDense):
    """Convolution ``op`` on a whole image per transfer, folded by reuse factor ``reuse``
    (``io = parallel``): :class:`~nnhdl.layers.folded.FoldedDense` of :func:`conv_as_dense`,
    whose output ``(pixel, channel)`` multiplies the pixel's window of the held input image
    (padding taps are the constant 0). Ports as :class:`~nnhdl.layers.Conv`; timing, handshake
    and the hardware per lane as FoldedDense (``interval`` cycles per image). ``conv`` is the
    convolution op, ``op`` the Dense it is computed as."""

    def __init__(self, op, in_fmt, reuse, *, multiplier="csd", levels_per_stage=2):
        self.conv = op
        size = math.prod(op.in_shape)
        windows = window_taps(op.in_shape, op.kernel, op.strides, op.padding, list(range(size)))
        taps = [tuple(window) for window in windows for _ in range(op.n_out)]
        super().__init__(conv_as_dense(op), in_fmt, reuse, multiplier=multiplier, levels_per_stage=levels_per_stage,
                         taps=taps, n_vec=size)


class WindowTaps(WindowLayer):
    """The window itself, no arithmetic: one output transfer per window position, its
    ``kh * kw * channels`` words in (kernel row, kernel column, channel) order read straight from
    the window registers. Latency 1; line buffers, handshake and members as
    :class:`~nnhdl.layers.window.WindowLayer`."""

    def __init__(self, in_shape, kernel, strides, fmt, *, name="window", memory_bits=LINE_BUFFER_MEMORY_BITS):
        kh, kw = kernel
        super().__init__(in_shape, kernel, strides, fmt, fmt, kh * kw * in_shape[2], name=name,
                         memory_bits=memory_bits)

    @cached_property
    def _built(self):
        taps = [x for row in self._window for col in row for x in col]
        return Datapath(1, name=self._name), taps, 0


class FoldedConvStream(LayerFigures, wiring.Component):
    """Convolution ``op`` (unpadded: a :class:`~nnhdl.layers.pixels.PadStream` pads in front) on a
    pixel stream, folded by reuse factor ``reuse`` per window: a :class:`WindowTaps` (``front``)
    feeding a :class:`~nnhdl.layers.folded.FoldedDense` of ``op`` (``engine``).

    Members: ``i`` one input pixel per transfer, ``o`` one output pixel (``op.n_out`` channels)
    per window, row-major, as :class:`~nnhdl.layers.window.ConvStream`.

    Timing: :attr:`latency` = ``1 + engine.latency`` cycles from accepting the pixel that
    completes a window to its output; :attr:`interval` = the engine's: at least that many cycles
    between two windows' outputs. The front's ready waits for the engine only when a window is
    complete; a stalled output holds both parts: nothing is lost or duplicated."""

    def __init__(self, op, in_fmt, reuse, *, multiplier="csd", levels_per_stage=2,
                 memory_bits=LINE_BUFFER_MEMORY_BITS):
        if any(op.padding):
            raise ValueError(f"FoldedConvStream {op.name!r} needs an unpadded Conv; pad with a PadStream in front")
        self.op, self.in_fmt, self.out_fmt, self.reuse = op, in_fmt, op.fmt, reuse
        self.front = WindowTaps(op.in_shape, op.kernel, op.strides, in_fmt, name=f"{op.name}_window",
                                memory_bits=memory_bits)
        self.engine = FoldedDense(op, in_fmt, reuse, multiplier=multiplier, levels_per_stage=levels_per_stage)
        self.schedule = self.engine.schedule
        super().__init__({"i": In(stream_signature(in_fmt, op.in_shape[2])),
                          "o": Out(stream_signature(op.fmt, op.n_out))})

    @property
    def latency(self):
        return self.front.latency + self.engine.latency

    @property
    def interval(self):
        """Cycles between two windows' products at full rate (at most the reuse factor)."""
        return self.engine.interval

    adders = property(lambda self: self.engine.adders)
    multipliers = property(lambda self: self.engine.multipliers)
    multiplier_widths = property(lambda self: self.engine.multiplier_widths)
    rom_bits = property(lambda self: self.engine.rom_bits)
    memory_bits = property(lambda self: self.front.memory_bits)
    register_bits = property(lambda self: self.front.register_bits + self.engine.register_bits)

    @property
    def logic_bits(self):
        front, engine = self.front.logic_bits, self.engine.logic_bits
        return {k: front.get(k, 0) + engine.get(k, 0) for k in set(front) | set(engine)}

    def figures(self):
        entry = dict(LayerFigures.figures(self))
        engine = self.engine.figures()
        entry.update(reuse=engine["reuse"], folding=engine["folding"], dsp_register_bits=engine["dsp_register_bits"])
        front = self.front.figures()
        entry.update({k: front[k] for k in ("line_buffer_bits", "line_buffer") if k in front})
        return entry

    def handshake(self):
        return Series(self.front.handshake(), self.engine.handshake())

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self.front
        m.submodules.products = self.engine
        connect(m, flipped(self.i), self.front.i)
        connect(m, self.front.o, self.engine.i)
        connect(m, self.engine.o, flipped(self.o))
        return m
