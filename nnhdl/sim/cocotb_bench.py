"""cocotb testbench parts for a network exported by nnhdl, and a generic test that uses them.

This file needs only cocotb (2.x), numpy and ``packing.py`` beside it, so ``nnhdl testbench``
copies it into a standalone folder that runs without nnhdl. The parts follow cocotb's own split:

- :class:`StreamDriver` drives ``i__payload``/``i__valid`` with random gaps in ``valid``;
- :class:`Backpressure` drops ``o__ready`` at random;
- :class:`StreamMonitor` records every handshake on a stream with its cycle number;
- :class:`Scoreboard` compares outputs in order, bit for bit, with the reference outputs and checks
  the latency of a run without gaps or stalls.

The generic test reads its configuration from the folder named by ``NNHDL_TB_DIR``:
``bench.json`` (top, words, widths, latency, gap/stall/seed) and ``inputs.npy`` /
``expected.npy`` (raw integers, one row per transfer, element 0 in the low bits). It writes
``results.json`` there and fails (the cocotb test fails) on any mismatch. While the main run goes,
it keeps ``progress.txt`` there up to date (about twice a second: ``<inferences out> <total>``)
for the runner's progress display.

A stream transfer happens at a rising edge of ``clk`` where ``valid`` and ``ready`` are both high;
the parts sample both in the ``ReadOnly`` phase before that edge, so they see settled values.
"""

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

try:  # inside the nnhdl package
    from .packing import inference_timing, pack, unpack
except ImportError:  # in a standalone testbench folder
    from packing import inference_timing, pack, unpack

__all__ = ["CycleCounter", "StreamDriver", "Backpressure", "StreamMonitor", "Scoreboard", "Mismatch",
           "reset", "run_vectors", "inference_timing", "unsigned"]


def unsigned(value):
    """A sampled port value as an unsigned int: multi-bit ports give a ``LogicArray``, 1-bit ports
    (e.g. an argmax over two classes) a ``Logic``, which has no ``to_unsigned``."""
    to_unsigned = getattr(value, "to_unsigned", None)
    return to_unsigned() if to_unsigned is not None else int(value)


class CycleCounter:
    """Counts rising edges of ``clock``; ``cycle`` is the index of the current cycle."""

    def __init__(self, clock):
        self.clock = clock
        self.cycle = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clock)
            self.cycle += 1

    def stop(self):
        self._task.cancel()


class StreamDriver:
    """Sends words on the stream ``<prefix>__payload/__valid/__ready``; before each word ``valid``
    stays low for a cycle with probability ``gap`` (repeatedly)."""

    def __init__(self, dut, clock, prefix="i", gap=0.0, rng=None):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.clock, self.gap = clock, gap
        self.rng = rng or random.Random(0)
        self.valid.value = 0

    async def send(self, words):
        for word in words:
            while self.gap and self.rng.random() < self.gap:
                self.valid.value = 0
                await RisingEdge(self.clock)
            self.payload.value = int(word)
            self.valid.value = 1
            while True:
                await ReadOnly()
                accepted = bool(self.ready.value)
                await RisingEdge(self.clock)
                if accepted:
                    break
        self.valid.value = 0


class Backpressure:
    """Drives ``ready`` low with probability ``stall`` in each cycle (always high if 0)."""

    def __init__(self, ready, clock, stall=0.0, rng=None):
        self.ready, self.clock, self.stall = ready, clock, stall
        self.rng = rng or random.Random(1)
        self.ready.value = 1
        self._task = cocotb.start_soon(self._run()) if stall else None

    async def _run(self):
        while True:
            self.ready.value = 0 if self.rng.random() < self.stall else 1
            await RisingEdge(self.clock)

    def stop(self):
        if self._task is not None:
            self._task.cancel()
        self.ready.value = 1


class StreamMonitor:
    """Records ``(cycle, word)`` for every transfer on ``<prefix>__payload/__valid/__ready``."""

    def __init__(self, dut, clock, counter, prefix="o"):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.clock, self.counter = clock, counter
        self.transfers = []
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await ReadOnly()
            if self.valid.value == 1 and self.ready.value == 1:
                self.transfers.append((self.counter.cycle, unsigned(self.payload.value)))
            await RisingEdge(self.clock)

    def stop(self):
        self._task.cancel()

    @property
    def words(self):
        return [w for _, w in self.transfers]

    @property
    def cycles(self):
        return [c for c, _ in self.transfers]


class Mismatch(dict):
    """One wrong output: index, cycle, expected and received elements."""


class Scoreboard:
    """Compares received output rows with the expected ones, in order, bit for bit."""

    def __init__(self, expected_rows, width, n, signed):
        self.expected = np.asarray(expected_rows)
        self.width, self.n, self.signed = width, n, signed

    def compare(self, words, cycles, limit=10):
        got = unpack(words, self.width, self.n, self.signed)
        mismatches, count = [], 0
        if len(got) != len(self.expected):
            mismatches.append(Mismatch(index=min(len(got), len(self.expected)), cycle=None,
                                       expected=f"{len(self.expected)} outputs", received=f"{len(got)} outputs"))
            count += 1
        for k in range(min(len(got), len(self.expected))):
            if not np.array_equal(got[k], self.expected[k]):
                count += 1
                if len(mismatches) < limit:
                    mismatches.append(Mismatch(index=k, cycle=cycles[k], expected=self.expected[k].tolist(),
                                               received=got[k].tolist()))
        return count, mismatches


async def reset(dut, clock, cycles=3):
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 1
    for _ in range(cycles):
        await RisingEdge(clock)
    dut.rst.value = 0
    await RisingEdge(clock)


async def write_progress(path, monitor, beats_out, total, clock, every=0.5):
    """Every ``every`` seconds (wall clock, checked each 64 cycles), write
    ``<inferences out> <total>`` into ``path`` (replaced whole, so a reader never sees half)."""
    last = 0.0
    while True:
        await ClockCycles(clock, 64)
        now = time.monotonic()
        if now - last >= every:
            last = now
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(f"{len(monitor.transfers) // beats_out} {total}\n")
            os.replace(tmp, path)


async def run_vectors(dut, inputs, expected, cfg, gap, stall, seed, spaced=False, progress_file=None):
    """Drive all ``inputs`` (one row per transfer) through the DUT and score the outputs; returns a
    result dict. ``spaced``: start each inference ``latency + interval`` cycles after the previous
    one's outputs are out (so each starts from an idle DUT). ``progress_file``: a path kept up to
    date with the number of inferences out (see :func:`write_progress`)."""
    clock = dut.clk
    in_words = pack(inputs, cfg["in_width"])
    counter = CycleCounter(clock)
    rng = random.Random(seed)
    driver = StreamDriver(dut, clock, "i", gap, random.Random(rng.random()))
    backpressure = Backpressure(dut.o__ready, clock, stall, random.Random(rng.random()))
    in_monitor = StreamMonitor(dut, clock, counter, "i")
    out_monitor = StreamMonitor(dut, clock, counter, "o")
    t0 = time.perf_counter()
    start = counter.cycle
    beats_in, beats_out = cfg.get("beats_in", 1), cfg.get("beats_out", 1)
    reporter = (None if progress_file is None else
                cocotb.start_soon(write_progress(Path(progress_file), out_monitor, beats_out,
                                                 len(in_words) // beats_in, clock)))
    n_out = len(in_words) // beats_in * beats_out
    limit = 100 * (cfg["latency"] + 10)
    if spaced:
        for k in range(len(in_words) // beats_in):
            await driver.send(in_words[k * beats_in:(k + 1) * beats_in])
            idle = 0
            while len(out_monitor.transfers) < (k + 1) * beats_out and idle < limit:
                await RisingEdge(clock)
                idle += 1
            for _ in range(cfg["latency"] + cfg.get("interval", 1)):  # until the DUT is idle
                await RisingEdge(clock)
    else:
        await driver.send(in_words)
    idle = 0
    while len(out_monitor.transfers) < n_out and idle < limit:
        await RisingEdge(clock)
        idle += 1
    seconds = time.perf_counter() - t0
    if reporter is not None:
        reporter.cancel()
    backpressure.stop()
    in_monitor.stop()
    out_monitor.stop()
    counter.stop()
    board = Scoreboard(expected, cfg["out_width"], cfg["out_size"], cfg["out_signed"])
    count, mismatches = board.compare(out_monitor.words, out_monitor.cycles)
    times = inference_timing([c for c, _ in in_monitor.transfers], [c for c, _ in out_monitor.transfers],
                             beats_in, beats_out)
    latencies = sorted({last - first for first, last in times})
    intervals = sorted({b[1] - a[1] for a, b in zip(times[1:], times[2:])})
    return {"n": len(in_words) // beats_in, "mismatch_count": count, "mismatches": mismatches,
            "latencies": latencies, "intervals": intervals, "cycles": counter.cycle - start, "seconds": seconds}


@cocotb.test()
async def stream_matches_reference(dut):
    """Every output equals the reference (random gaps and stalls); latency exact without them."""
    tb_dir = Path(os.environ.get("NNHDL_TB_DIR", "."))
    cfg = json.loads((tb_dir / "bench.json").read_text())
    inputs = np.load(tb_dir / "inputs.npy", allow_pickle=False)
    expected = np.load(tb_dir / "expected.npy", allow_pickle=False)
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut, dut.clk)
    stalled = await run_vectors(dut, inputs, expected, cfg, cfg["gap"], cfg["stall"], cfg["seed"],
                                progress_file=tb_dir / "progress.txt")
    await reset(dut, dut.clk)
    bi, bo = cfg.get("beats_in", 1), cfg.get("beats_out", 1)
    k = min(len(inputs) // bi, 32 if bi == 1 else 6)
    free = await run_vectors(dut, inputs[:k * bi], expected[:k * bo], cfg, 0.0, 0.0, cfg["seed"] + 1)
    await reset(dut, dut.clk)
    spaced = await run_vectors(dut, inputs[:k * bi], expected[:k * bo], cfg, 0.0, 0.0, cfg["seed"] + 2, spaced=True)
    # latency from idle; at full rate it is the same for II = 1 with one transfer each way (checked then)
    latencies = free["latencies"] if bi == bo == 1 and cfg.get("interval", 1) == 1 else spaced["latencies"]
    result = {"n": stalled["n"], "mismatch_count": stalled["mismatch_count"] + free["mismatch_count"],
              "mismatches": stalled["mismatches"] or free["mismatches"], "latencies": latencies,
              "intervals": free["intervals"], "interval": cfg.get("interval", 1),
              "latency": cfg["latency"], "cycles": stalled["cycles"], "seconds": stalled["seconds"]}
    (tb_dir / "results.json").write_text(json.dumps(result, indent=1))
    for m in result["mismatches"]:
        dut._log.error(f"input {m['index']} (output at cycle {m['cycle']}): expected {m['expected']}, "
                       f"received {m['received']}")
    assert result["mismatch_count"] == 0, f"{result['mismatch_count']} of {result['n']} outputs differ"
    assert result["latencies"] == [cfg["latency"]], \
        f"latency {result['latencies']} cycles, expected {cfg['latency']}"
    assert result["intervals"] in ([], [result["interval"]]), \
        f"{result['intervals']} cycles per inference, expected {result['interval']}"
