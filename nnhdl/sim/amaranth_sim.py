"""Run a stream component in Amaranth's simulator with random gaps and stalls."""

from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from .packing import pack, unpack

__all__ = ["StreamRun", "run_stream"]


@dataclass
class StreamRun:
    """What came out of a simulation: outputs (raw ints, one row per input, in order), the cycle
    each input was accepted and each output delivered, and the total cycles simulated."""
    outputs: np.ndarray
    in_cycles: np.ndarray
    out_cycles: np.ndarray
    cycles: int


def run_stream(dut, inputs, *, in_fmt, out_fmt, n_out, gap=0.0, stall=0.0, seed=0, vcd=None,
               progress=None, max_idle=10_000, transfers_out=None, beats_in=1, beats_out=1, spaced=0):
    """Feed ``inputs`` (raw ints, one row per transfer) to ``dut.i`` and collect
    ``transfers_out`` (default: as many as inputs) transfers of ``dut.o``.

    Before each input, ``i.valid`` stays low for a cycle with probability ``gap`` (repeatedly);
    each cycle ``o.ready`` is low with probability ``stall``. One testbench process drives and
    monitors, sampling both handshakes at every clock edge. ``progress(k)`` is called with the
    number of outputs received so far. ``spaced=N``: an inference (``beats_in`` input transfers,
    ``beats_out`` output transfers) starts only ``N`` cycles after the previous one's outputs are
    all out (so, with ``N`` large enough, from an idle design).
    """
    inputs = np.asarray(inputs)
    n = len(inputs)
    n_expected = n if transfers_out is None else int(transfers_out)
    words = pack(inputs, in_fmt.width)
    rng = np.random.default_rng(seed)
    got, in_cycles, out_cycles = [], [], []
    state = {"cycles": 0}

    async def bench(ctx):
        payload_in = dut.i.payload.as_value()
        payload_out = dut.o.payload.as_value()
        k, cycle, idle, done_at = 0, 0, 0, 0
        while len(got) < n_expected:
            drive = k < n and not (gap and rng.random() < gap)
            if spaced and k % beats_in == 0 and (len(got) < k // beats_in * beats_out or cycle < done_at + spaced):
                drive = False
            ctx.set(dut.i.valid, drive)
            if drive:
                ctx.set(payload_in, words[k])
            ctx.set(dut.o.ready, not (stall and rng.random() < stall))
            _, _, iv, ir, ov, orr, data = await ctx.tick().sample(dut.i.valid, dut.i.ready, dut.o.valid,
                                                                   dut.o.ready, payload_out)
            if iv and ir:
                in_cycles.append(cycle)
                k += 1
            if ov and orr:
                got.append(data)
                done_at = cycle
                out_cycles.append(cycle)
                idle = 0
                if progress is not None:
                    progress(len(got))
            else:
                idle += 1
                if idle > max_idle:
                    raise RuntimeError(f"no output for {max_idle} cycles after {len(got)} of {n_expected} outputs")
            cycle += 1
        state["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    outputs = unpack(got, out_fmt.width, n_out, out_fmt.signed)
    return StreamRun(outputs, np.array(in_cycles), np.array(out_cycles), state["cycles"])
