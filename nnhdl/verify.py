"""RTL versus the bit-exact reference: every output compared, latency checked exactly."""

import time
from dataclasses import dataclass, field

import numpy as np

from .reference import evaluate

__all__ = ["VerifyResult", "verify_design", "random_inputs", "SIMULATORS"]

SIMULATORS = ("amaranth", "icarus", "verilator")


@dataclass
class VerifyResult:
    n: int
    latency: int
    mismatches: list = field(default_factory=list)  # (input index, expected row, received row, cycle)
    latencies: set = field(default_factory=set)     # measured with no gaps or stalls
    cycles: int = 0
    seconds: float = 0.0
    simulator: str = "amaranth"
    mismatch_count: int = 0
    interval: int = 1                                # cycles per inference, as reported
    intervals: set = field(default_factory=set)     # measured at full rate, in steady state

    @property
    def latency_ok(self):
        return self.latencies == {self.latency} and self.intervals <= {self.interval}

    @property
    def passed(self):
        return not self.mismatches and self.latency_ok

    @property
    def rate(self):
        return self.n / self.seconds if self.seconds else float("inf")


def random_inputs(graph, n, seed=0):
    """``n`` raw input vectors spread uniformly over the input format's whole range (int64, or
    Python integers for formats wider than 62 bits)."""
    fmt = graph.input.fmt
    rng = np.random.default_rng(seed)
    if fmt.width <= 62:
        return rng.integers(fmt.min_int, fmt.max_int + 1, size=(n, graph.input.size), dtype=np.int64)
    span = fmt.max_int - fmt.min_int + 1
    words = -(-span.bit_length() // 32) + 1  # a spare word makes the modulo bias negligible
    draws = rng.integers(0, 1 << 32, size=(n, graph.input.size, words), dtype=np.int64)
    flat = [fmt.min_int + sum(int(d) << (32 * k) for k, d in enumerate(row)) % span
            for row in draws.reshape(-1, words)]
    return np.array(flat, dtype=object).reshape(n, graph.input.size)


def verify_design(design, inputs_raw, *, simulator="amaranth", seed=0, gap=0.2, stall=0.2, progress=None,
                  max_report=10, waves=False):
    """Simulate the design on ``inputs_raw`` with random gaps in ``i.valid`` and drops of
    ``o.ready``, compare every output with the reference, and measure the latency on a run with
    no gaps or stalls.

    ``simulator="amaranth"`` simulates the Network rebuilt from the IR in Amaranth's simulator;
    ``"icarus"`` / ``"verilator"`` run the cocotb testbench on the exported Verilog in
    ``design.outdir`` (its build is kept in ``OUTDIR/.nnhdl-sim/<simulator>`` and reused while the
    Verilog is unchanged; ``waves=True`` copies the waveform into ``OUTDIR``)."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    graph = design.graph
    n = len(inputs_raw)
    x = np.asarray(inputs_raw).reshape(n, -1)
    expected = np.asarray(evaluate(graph, x.reshape((n,) + tuple(graph.input.shape)), raw=True))
    expected = expected.reshape(n, -1)
    layout = _transfers(design)
    if simulator != "amaranth":
        return _verify_cocotb(design, x, expected, simulator, seed, gap, stall, waves, layout)
    from .sim.amaranth_sim import run_stream
    from .sim.cocotb_bench import inference_timing

    net = design.network
    bi, wi, bo, wo = layout
    beats = x.reshape(n * bi, wi)
    common = dict(in_fmt=net.in_fmt, out_fmt=net.out_fmt, n_out=wo, beats_in=bi, beats_out=bo)
    t0 = time.perf_counter()
    run = run_stream(net, beats, gap=gap, stall=stall, seed=seed, transfers_out=n * bo,
                     progress=None if progress is None else (lambda k: progress(k // bo)), **common)
    seconds = time.perf_counter() - t0
    k = min(n, 32 if bi == 1 else 6)
    free = run_stream(net, beats[:k * bi], transfers_out=k * bo, **common)
    times = inference_timing(free.in_cycles, free.out_cycles, bi, bo)
    if bi > 1 or bo > 1:  # latency from idle: one inference at a time
        spaced = run_stream(net, beats[:k * bi], transfers_out=k * bo, spaced=net.latency + net.interval, **common)
        lat_times = inference_timing(spaced.in_cycles, spaced.out_cycles, bi, bo)
    else:
        lat_times = times
    result = VerifyResult(n, net.latency, cycles=run.cycles, seconds=seconds, simulator=simulator,
                          latencies={int(b - a) for a, b in lat_times}, interval=net.interval,
                          intervals={int(b[1] - a[1]) for a, b in zip(times[1:], times[2:])})
    got = run.outputs.reshape(n, bo * wo)
    bad = np.nonzero(np.any(got != expected, axis=1))[0]
    for j in bad[:max_report]:
        result.mismatches.append((int(j), expected[j].tolist(), got[j].tolist(),
                                  int(run.out_cycles[(j + 1) * bo - 1])))
    result.mismatch_count = int(len(bad))
    return result


def _transfers(design):
    """(input transfers, words per input transfer, output transfers, words per output transfer)
    per inference."""
    net, report, graph = design.network, design.report, design.graph
    if net is not None:
        return net.in_beats, net.in_words, net.out_beats, net.out_words
    i, o = report.get("input", {}), report.get("output", {})
    return (i.get("transfers_per_inference", 1), i.get("words_per_transfer", graph.input.size),
            o.get("transfers_per_inference", 1), o.get("words_per_transfer", graph.output.size))


def _verify_cocotb(design, x, expected, simulator, seed, gap, stall, waves, layout):
    import shutil
    import tempfile
    from pathlib import Path

    from .sim.cocotb_runner import run_cocotb, write_bench_files

    report = design.report
    if design.outdir is None or "verilog" not in report.get("files", {}):
        raise ValueError("the design has no exported Verilog; convert it with 'nnhdl convert' first")
    outdir = Path(design.outdir)
    verilog = outdir / report["files"]["verilog"]
    graph = design.graph
    build_dir = outdir / ".nnhdl-sim" / simulator
    with tempfile.TemporaryDirectory(prefix="nnhdl-tb-") as tb_dir:
        bi, wi, bo, wo = layout
        write_bench_files(tb_dir, top=report["top"], inputs=x.reshape(-1, wi), expected=expected.reshape(-1, wo),
                          in_fmt=graph.input.fmt, out_fmt=graph.output.fmt, out_size=wo,
                          latency=report["latency_cycles"], gap=gap, stall=stall, seed=seed, beats_in=bi,
                          beats_out=bo, interval=report.get("initiation_interval", 1))
        res = run_cocotb(simulator, verilog, report["top"], tb_dir, build_dir, waves=waves)
    for wave in map(Path, res["waves"]):
        shutil.copy(wave, outdir / f"{report['top']}-{simulator}{wave.suffix}")
    result = VerifyResult(res["n"], res["latency"], cycles=res["cycles"], seconds=res["seconds"],
                          simulator=simulator, latencies=set(res["latencies"]),
                          interval=res.get("interval", 1), intervals=set(res.get("intervals", [])))
    result.mismatches = [(m["index"], m["expected"], m["received"], m["cycle"]) for m in res["mismatches"]]
    result.mismatch_count = res["mismatch_count"]
    return result
