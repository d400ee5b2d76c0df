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

    @property
    def latency_ok(self):
        return self.latencies == {self.latency}

    @property
    def passed(self):
        return not self.mismatches and self.latency_ok

    @property
    def rate(self):
        return self.n / self.seconds if self.seconds else float("inf")


def random_inputs(graph, n, seed=0):
    """``n`` raw input vectors spread uniformly over the input format's whole range."""
    fmt = graph.input.fmt
    rng = np.random.default_rng(seed)
    return rng.integers(fmt.min_int, fmt.max_int + 1, size=(n, graph.input.size), dtype=np.int64)


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
    x = np.asarray(inputs_raw).reshape(len(inputs_raw), -1)
    expected = np.asarray(evaluate(graph, x.reshape((len(x),) + tuple(graph.input.shape)), raw=True))
    expected = expected.reshape(len(x), -1)
    if simulator != "amaranth":
        return _verify_cocotb(design, x, expected, simulator, seed, gap, stall, waves)
    from .sim.amaranth_sim import run_stream

    net = design.network
    t0 = time.perf_counter()
    run = run_stream(net, x, in_fmt=net.in_fmt, out_fmt=net.out_fmt, n_out=net.out_size, gap=gap, stall=stall,
                     seed=seed, progress=progress)
    seconds = time.perf_counter() - t0
    free = run_stream(net, x[:min(len(x), 32)], in_fmt=net.in_fmt, out_fmt=net.out_fmt, n_out=net.out_size)
    result = VerifyResult(len(x), net.latency, cycles=run.cycles, seconds=seconds, simulator=simulator,
                          latencies=set((free.out_cycles - free.in_cycles).tolist()))
    bad = np.nonzero(np.any(run.outputs != expected, axis=1))[0]
    for k in bad[:max_report]:
        result.mismatches.append((int(k), expected[k].tolist(), run.outputs[k].tolist(), int(run.out_cycles[k])))
    result.mismatch_count = int(len(bad))
    return result


def _verify_cocotb(design, x, expected, simulator, seed, gap, stall, waves):
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
        write_bench_files(tb_dir, top=report["top"], inputs=x, expected=expected, in_fmt=graph.input.fmt,
                          out_fmt=graph.output.fmt, out_size=graph.output.size,
                          latency=report["latency_cycles"], gap=gap, stall=stall, seed=seed)
        res = run_cocotb(simulator, verilog, report["top"], tb_dir, build_dir, waves=waves)
    for wave in map(Path, res["waves"]):
        shutil.copy(wave, outdir / f"{report['top']}-{simulator}{wave.suffix}")
    result = VerifyResult(res["n"], res["latency"], cycles=res["cycles"], seconds=res["seconds"],
                          simulator=simulator, latencies=set(res["latencies"]))
    result.mismatches = [(m["index"], m["expected"], m["received"], m["cycle"]) for m in res["mismatches"]]
    result.mismatch_count = res["mismatch_count"]
    return result
