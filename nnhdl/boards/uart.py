"""A minimal 8N1 UART (receiver and transmitter) as Amaranth components with stream ports."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTReceiver", "UARTTransmitter", "divisor_for"]


def divisor_for(clk_freq, baud):
    """Clock cycles per bit; the baud-rate error must stay under 2 %."""
    divisor = round(clk_freq / baud)
    if divisor < 4:
        raise ValueError(f"a {clk_freq / 1e6:g} MHz clock is too slow for {baud} baud (needs at least 4 cycles per bit)")
    error = abs(clk_freq / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"{baud} baud from a {clk_freq / 1e6:g} MHz clock is off by {error:.1%}; choose another rate")
    return divisor


class UARTReceiver(wiring.Component):
    """8N1 receiver. ``rx`` is the (already synchronised or not: it is synchronised here) serial
    line; every received byte is offered on ``o`` (no buffering: a byte not taken before the next
    one completes is overwritten, and ``overrun`` pulses). Bits are sampled mid-bit."""

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    overrun: Out(1)

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        sync_rx = Signal(2, init=0b11)
        m.d.sync += sync_rx.eq(Cat(self.rx, sync_rx[0]))
        line = sync_rx[1]
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(8)
        count = Signal(range(9))
        m.d.sync += self.overrun.eq(0)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):  # start bit edge: wait 1.5 bits to the middle of bit 0
                    m.d.sync += [timer.eq(self.divisor * 3 // 2 - 1), count.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [bits.eq(Cat(bits[1:], line)), count.eq(count + 1), timer.eq(self.divisor - 1)]
                    with m.If(count == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(line):  # a valid stop bit
                        m.d.sync += [self.o.payload.eq(bits), self.o.valid.eq(1),
                                     self.overrun.eq(self.o.valid & ~self.o.ready)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
        return m


class UARTTransmitter(wiring.Component):
    """8N1 transmitter: takes bytes from ``i`` and shifts them out on ``tx`` (idle high)."""

    i: In(stream.Signature(8))
    tx: Out(1)

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shift = Signal(10)
        count = Signal(range(11))  # bits left to send (start, 8 data, stop); 0 = idle
        m.d.comb += [self.i.ready.eq(count == 0), self.tx.eq((count == 0) | shift[0])]
        with m.If(count == 0):
            with m.If(self.i.valid):
                m.d.sync += [shift.eq(Cat(0, self.i.payload, 1)), count.eq(10), timer.eq(self.divisor - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [shift.eq(shift >> 1), count.eq(count - 1), timer.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m
