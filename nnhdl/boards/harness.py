"""On-board harnesses around a Network.

- :class:`TimingHarness`: registered inputs from LFSRs, ``o.ready`` toggled by an LFSR bit, the
  output payload folded (XOR) into one registered pin — nothing can be optimised away, and every
  path of the network (including the stall logic) is timed by place-and-route.
- :class:`UARTHarness`: input vectors arrive as bytes on a UART, go through the network, and the
  outputs go back as bytes. Protocol (8N1, ``baud``): for each inference the host sends the input
  payload as ``ceil(in_bits / 8)`` bytes, least significant byte first (the payload word: element 0
  in the low bits, two's complement words); the board answers with the output payload as
  ``ceil(out_bits / 8)`` bytes, least significant first. The host waits for each answer before
  sending the next vector (one inference in flight), so no byte is ever dropped.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .uart import UARTReceiver, UARTTransmitter, divisor_for

__all__ = ["TimingHarness", "UARTHarness", "payload_bytes"]


def payload_bytes(bits):
    return (bits + 7) // 8


class _LFSR32(Elaboratable):
    """A 32-bit Galois LFSR (taps 32, 22, 2, 1), advancing every cycle."""

    def __init__(self, seed):
        self.value = Signal(32, init=seed or 1)

    def elaborate(self, platform):
        m = Module()
        v = self.value
        m.d.sync += v.eq((v >> 1) ^ Mux(v[0], Const(0x80200003, 32), Const(0, 32)))
        return m


class TimingHarness(wiring.Component):
    """Drives ``network`` from LFSRs and folds its outputs into ``out`` (one bit)."""

    out: Out(1)

    def __init__(self, network):
        self.network = network
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        net = self.network
        m.submodules.network = net
        in_bits = len(net.i.payload.as_value())
        lfsrs = [_LFSR32(0x1234567 * (k + 1) & 0xFFFFFFFF) for k in range((in_bits + 31) // 32 + 1)]
        for k, lfsr in enumerate(lfsrs):
            m.submodules[f"lfsr{k}"] = lfsr
        noise = Cat(*(lfsr.value for lfsr in lfsrs))
        inputs = Signal(in_bits)
        m.d.sync += inputs.eq(noise[:in_bits])
        m.d.comb += [net.i.payload.eq(inputs), net.i.valid.eq(1), net.o.ready.eq(noise[-1] | noise[-2])]
        folded = Signal()
        m.d.sync += folded.eq(net.o.payload.as_value().xor() ^ net.o.valid ^ net.i.ready)
        m.d.comb += self.out.eq(folded)
        return m


class UARTHarness(wiring.Component):
    """The network behind a UART (see the module docstring for the protocol)."""

    rx: In(1, init=1)
    tx: Out(1)

    def __init__(self, network, clk_freq, baud=115200):
        self.network = network
        self.divisor = divisor_for(clk_freq, baud)
        self.clk_freq, self.baud = clk_freq, baud
        self.in_bits = len(network.i.payload.as_value())
        self.out_bits = len(network.o.payload.as_value())
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        net = self.network
        m.submodules.network = net
        m.submodules.rx = rx = UARTReceiver(self.divisor)
        m.submodules.tx = tx = UARTTransmitter(self.divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        # bytes -> input word
        n_in = payload_bytes(self.in_bits)
        word_in = Signal(8 * n_in)
        got = Signal(range(n_in + 1))
        m.d.comb += [net.i.payload.eq(word_in[:self.in_bits]), net.i.valid.eq(got == n_in),
                     rx.o.ready.eq(got != n_in)]
        with m.If(rx.o.valid & rx.o.ready):
            m.d.sync += [word_in.eq(Cat(word_in[8:], rx.o.payload)), got.eq(got + 1)]
        with m.If(net.i.valid & net.i.ready):
            m.d.sync += got.eq(0)

        # output word -> bytes
        n_out = payload_bytes(self.out_bits)
        word_out = Signal(8 * n_out)
        left = Signal(range(n_out + 1))
        m.d.comb += [net.o.ready.eq(left == 0), tx.i.payload.eq(word_out[:8]), tx.i.valid.eq(left != 0)]
        with m.If(net.o.valid & net.o.ready):
            m.d.sync += [word_out.eq(net.o.payload.as_value()), left.eq(n_out)]
        with m.If(tx.i.valid & tx.i.ready):
            m.d.sync += [word_out.eq(word_out >> 8), left.eq(left - 1)]
        return m
