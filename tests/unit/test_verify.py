"""``nnhdl verify`` checks what ships: the files against the SHA-256 recorded at conversion, the
report's timing against the rebuilt design, and (Amaranth path) the Verilog on disk against the
Verilog the rebuilt design exports; the auto simulator rule; bad folders; progress lines; and
the default path with neither cocotb nor TensorFlow importable. Tiny designs, Amaranth simulator
only (the Verilog simulators are in tests/cocotb)."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nnhdl.cli import main
from nnhdl.convert import convert, load_design
from nnhdl.sim.cocotb_runner import ProgressLog, SimulatorMissing
from nnhdl.verify import (AUTO_ICARUS_SECONDS, choose_simulator, file_states, icarus_seconds, rederive_check,
                          report_check)

from ..conftest import make_mlp

ROOT = Path(__file__).resolve().parents[2]


def two_class_argmax(seed=5):
    """4 inputs -> 3 relu -> 2 logits -> argmax: a 1-bit output port."""
    return make_mlp(np.random.default_rng(seed), (4, 3, 2), ["relu"],
                    {"precision": "fixed<8,3>", "softmax": "argmax"}, softmax=True)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return convert(two_class_argmax(), tmp_path_factory.mktemp("verify") / "out").outdir


@pytest.fixture
def folder(base, tmp_path):
    """A fresh copy of the converted folder, free to edit."""
    out = tmp_path / "out"
    shutil.copytree(base, out)
    return out


def verify(*args):
    return CliRunner().invoke(main, ["verify", *map(str, args)])


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_report_records_every_file_and_the_build_options(tmp_path):
    design = convert(two_class_argmax(), tmp_path / "o", multiplier="dsp", levels_per_stage=1, top="two-class")
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    written = {p.name for p in (tmp_path / "o").iterdir()} - {"report.json", ".nnhdl-manifest.json"}
    assert written == {"two_class.v", "two_class.il", "graph.json", "graph.npz", "options.json"}
    assert report["sha256"] == {name: sha256(tmp_path / "o" / name) for name in written}
    assert set(report["files"].values()) == written
    assert (report["options"]["multiplier"], report["options"]["levels_per_stage"]) == ("dsp", 1)
    saved = json.loads((tmp_path / "o" / "options.json").read_text())
    assert (saved["multiplier"], saved["levels_per_stage"], saved["nnhdl_options"]) == ("dsp", 1, 1)
    assert report["output"]["width_bits"] == 1
    # the recorded options rebuild exactly the design that was exported
    rebuilt = load_design(tmp_path / "o")
    assert rebuilt.network.latency == design.network.latency
    assert rederive_check(rebuilt).ok is True and report_check(rebuilt).ok is True
    assert all(s.state == "unchanged" for s in file_states(rebuilt))


def test_amaranth_path_says_what_was_checked(folder):
    result = verify(folder, "-n", "50", "--sim", "amaranth")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "on the Amaranth design rebuilt from graph.json with amaranth (chosen with --sim" in out
    assert ("files as the conversion wrote them (SHA-256 recorded in report.json): yes — "
            "mlp.v, mlp.il, graph.json, graph.npz") in out
    assert "Verilog on disk identical to the design simulated: yes — re-derived" in out
    assert "exported Verilog simulated: not checked — --sim amaranth chosen;" in out
    assert "PASS mlp: 50 outputs" in out


def flip_first_adder(verilog):
    """One ``+`` turned into ``-`` (the hostile user's edit)."""
    text = verilog.read_text()
    k = text.index(" + ")
    verilog.write_text(text[:k] + " - " + text[k + 3:])


def test_edited_verilog_fails_without_a_verilog_simulator(folder):
    flip_first_adder(folder / "mlp.v")
    result = verify(folder, "-n", "30", "--sim", "amaranth")
    assert result.exit_code == 1, result.output
    assert f"FAIL {folder / 'mlp.v'}: edited after conversion" in result.output
    assert "convert the model again" in result.output
    assert "Verilog on disk identical to the design simulated: NO — mlp.v differs" in result.output
    assert "PASS" not in result.output


def test_edited_verilog_with_its_hash_updated_is_caught_by_rederivation(folder):
    """A consistent forgery of report.json's hash still fails: the Verilog is re-derived."""
    flip_first_adder(folder / "mlp.v")
    report = json.loads((folder / "report.json").read_text())
    report["sha256"]["mlp.v"] = sha256(folder / "mlp.v")
    (folder / "report.json").write_text(json.dumps(report))
    result = verify(folder, "-n", "30", "--sim", "amaranth")
    assert result.exit_code == 1, result.output
    assert "SHA-256 recorded in report.json): yes" in result.output
    assert "Verilog on disk identical to the design simulated: NO — mlp.v differs from what the design rebuilt " \
           "from graph.json exports: edited after conversion" in result.output


def test_deleted_verilog_fails(folder):
    (folder / "mlp.v").unlink()
    result = verify(folder, "-n", "30")
    assert result.exit_code == 1, result.output
    assert f"FAIL {folder / 'mlp.v'}: missing" in result.output
    assert "auto: the folder has no exported Verilog" in result.output
    result = verify(folder, "-n", "30", "--sim", "icarus")
    assert result.exit_code == 1 and "mlp.v is missing, so icarus cannot simulate it" in result.output


def test_edited_latency_in_report_fails(folder):
    report = json.loads((folder / "report.json").read_text())
    latency = report["latency_cycles"]
    report["latency_cycles"] = latency + 1
    (folder / "report.json").write_text(json.dumps(report))
    result = verify(folder, "-n", "30", "--sim", "amaranth")
    assert result.exit_code == 1, result.output
    assert f"report.json says latency_cycles {latency + 1} (the design: {latency})" in result.output


def test_edited_weights_fail(folder):
    with np.load(folder / "graph.npz") as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    key = next(k for k, v in arrays.items() if v.dtype.kind in "if" and v.size and np.any(v))
    arrays[key].flat[np.flatnonzero(arrays[key])[0]] *= -1
    np.savez(folder / "graph.npz", **arrays)
    result = verify(folder, "-n", "30", "--sim", "amaranth")
    assert result.exit_code == 1, result.output
    assert "graph.npz edited" in result.output


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "report.json").unlink(), "report.json is missing"),
    (lambda d: (d / "graph.json").unlink(), "has no graph.json"),
    (lambda d: (d / "graph.npz").unlink(), "graph.npz"),
    (lambda d: (d / "report.json").write_text("[1, 2]"), "report.json: not an nnhdl report (a JSON list"),
    (lambda d: (d / "report.json").write_text('"text"'), "not an nnhdl report (a JSON str"),
    (lambda d: (d / "report.json").write_text("{"), "report.json: not valid JSON"),
    (lambda d: (d / "report.json").write_text(json.dumps(dict(json.loads((d / "report.json").read_text()),
                                                              latency_cycles="6"))),
     "'latency_cycles' is missing or not an integer"),
    (lambda d: (d / "report.json").write_text(json.dumps(dict(json.loads((d / "report.json").read_text()),
                                                              sha256={"../x.v": "0"}))),
     "'sha256' names '../x.v', not a file in the folder"),
])
def test_broken_folder_is_a_clear_error(folder, damage, message):
    damage(folder)
    result = verify(folder, "-n", "5")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert "convert" in result.output


def test_negative_seed_is_rejected(folder):
    result = verify(folder, "--seed", "-1")
    assert result.exit_code == 2 and "'--seed'" in result.output and "x>=0" in result.output
    result = CliRunner().invoke(main, ["testbench", str(folder), "-o", str(folder.parent / "tb"), "--seed", "-3"])
    assert result.exit_code == 2 and "'--seed'" in result.output
    assert not (folder.parent / "tb").exists()


def test_old_report_without_hashes_is_said_not_checked(folder):
    report = json.loads((folder / "report.json").read_text())
    del report["sha256"]
    (folder / "report.json").write_text(json.dumps(report))
    result = verify(folder, "-n", "20", "--sim", "amaranth")
    assert result.exit_code == 0, result.output
    assert "not checked — report.json records no hashes" in result.output


# -- the auto rule ----------------------------------------------------------------------------

def fake_simulators(monkeypatch, installed, cocotb=True):
    import nnhdl.sim.cocotb_runner as runner

    def check(sim):
        if not cocotb:
            raise SimulatorMissing("cocotb is not installed, ... pip install 'nnhdl[sim]'")
        if sim not in installed:
            raise SimulatorMissing(f"{sim} is not installed")
    monkeypatch.setattr(runner, "check_simulator", check)


@pytest.mark.parametrize("installed, cocotb, n, want", [
    ({"verilator", "icarus"}, True, 1000, "icarus"),      # tiny: Icarus finishes before Verilator has built
    ({"verilator"}, True, 1000, "verilator"),
    ({"icarus"}, True, 1000, "icarus"),
    ({"icarus"}, True, 10 ** 7, "amaranth"),             # too long on Icarus
    ({"icarus", "verilator"}, True, 10 ** 7, "verilator"),
    (set(), True, 1000, "amaranth"),
    ({"icarus", "verilator"}, False, 1000, "amaranth"),
])
def test_auto_rule(base, monkeypatch, installed, cocotb, n, want):
    fake_simulators(monkeypatch, installed, cocotb)
    design = load_design(base, build=False)
    sim, reason = choose_simulator(design, n)
    assert sim == want, reason
    assert reason.startswith("auto: ")
    if not cocotb:
        assert "pip install 'nnhdl[sim]'" in reason
    assert choose_simulator(design, n, "icarus") == ("icarus", "chosen with --sim")


def test_auto_prefers_a_current_verilator_build(folder, monkeypatch):
    fake_simulators(monkeypatch, {"icarus", "verilator"})
    build = folder / ".nnhdl-sim" / "verilator"
    build.mkdir(parents=True)
    (build / "built-from.sha256").write_text(sha256(folder / "mlp.v") + "\n")
    design = load_design(folder, build=False)
    assert choose_simulator(design, 100) == ("verilator", "auto: Verilator's build of this Verilog is ready")
    flip_first_adder(folder / "mlp.v")  # the build is of another file now
    assert choose_simulator(design, 100)[0] == "icarus"


def test_icarus_estimate_matches_the_measured_rates(base):
    """The jet tagger (121,140 lines) ran at 0.3 inferences/s on Icarus: auto must not pick it."""
    design = load_design(base, build=False)
    assert icarus_seconds(design, 1000) < 5
    jet = type(design)(design.graph, None, dict(design.report, verilog_lines=121_140, latency_cycles=29),
                       design.outdir)
    assert 200 / 0.3 / 2 < icarus_seconds(jet, 200) < 200 / 0.3 * 2
    assert icarus_seconds(jet, 200) > AUTO_ICARUS_SECONDS


# -- progress ---------------------------------------------------------------------------------

def test_progress_log_lines():
    import io
    stream = io.StringIO()
    with ProgressLog(stream, interval=0.1, prefix="x: ") as log:
        log.stage("building a.v with verilator", note="slow")
        time.sleep(0.45)
        log.stage("simulating a.v", total=40)
        log.update(7)
        time.sleep(0.25)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "x: building a.v with verilator… (slow)"
    assert sum(bool(re.fullmatch(r"x: building a\.v with verilator… \d+ s", s)) for s in lines) >= 2
    assert "x: simulating a.v… (40 vectors)" in lines
    assert any(re.fullmatch(r"x: simulating a\.v… 7/40 vectors, \d+ s", s) for s in lines)


def test_progress_log_shows_the_stage_status():
    """``status`` (e.g. what nextpnr is doing) goes into the periodic lines, and a new stage clears it."""
    import io
    stream = io.StringIO()
    with ProgressLog(stream, interval=0.1, prefix="b: ") as log:
        log.stage("place and route (nextpnr)")
        log.status("routing: 97,093 of 106,680 arcs left")
        time.sleep(0.3)
        log.stage("bitstream")
        time.sleep(0.25)
    lines = stream.getvalue().splitlines()
    assert any(re.fullmatch(r"b: place and route \(nextpnr\)… routing: 97,093 of 106,680 arcs left, \d+ s", s)
               for s in lines)
    assert any(re.fullmatch(r"b: bitstream… \d+ s", s) for s in lines)


def test_verify_log_has_stage_and_periodic_lines(folder, monkeypatch):
    """Not a terminal (CliRunner): plain stage lines, and one every NNHDL_PROGRESS_INTERVAL seconds."""
    monkeypatch.setenv("NNHDL_PROGRESS_INTERVAL", "0.05")
    result = verify(folder, "-n", "1500", "--sim", "amaranth")
    assert result.exit_code == 0, result.output
    out = result.output
    for stage in (f"verify: rebuilding the design from {folder / 'graph.json'} and options.json…",
                  "verify: re-exporting the rebuilt design's Verilog to compare with the file…",
                  "verify: simulating the Amaranth design (amaranth)… (1500 vectors)"):
        assert stage in out.splitlines(), out
    periodic = r"^verify: simulating the Amaranth design \(amaranth\)… \d+/1500 vectors, \d+ s$"
    assert re.search(periodic, out, re.M), out


# -- only the base dependencies ---------------------------------------------------------------

BLOCK = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("cocotb", "cocotb_tools", "tensorflow", "keras"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, _Block())
"""

DRIVER = """
import json, sys
import numpy as np
from click.testing import CliRunner
from nnhdl.cli import main
from nnhdl.convert import convert
from tests.conftest import make_mlp

out, x = sys.argv[1], sys.argv[2]
graph = make_mlp(np.random.default_rng(5), (4, 3, 2), ["relu"], {"precision": "fixed<8,3>", "softmax": "argmax"},
                 softmax=True)
convert(graph, out)
np.save(x, np.random.default_rng(1).normal(size=(20, 4)))
runs = {}
for name, args in {"verify": ["verify", out, "-n", "40"],
                   "verify_amaranth": ["verify", out, "-n", "40", "--sim", "amaranth"],
                   "verify_icarus": ["verify", out, "-n", "40", "--sim", "icarus"],
                   "predict": ["predict", out, "--inputs", x, "-o", x + ".y.npy"],
                   "report": ["report", out]}.items():
    r = CliRunner().invoke(main, args)
    runs[name] = [r.exit_code, r.output + (repr(r.exception) if r.exit_code not in (0, 1, 2) else "")]
blocked = ("cocotb", "cocotb_tools", "tensorflow", "keras")
runs["imported"] = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
print(json.dumps(runs))
"""


def test_base_dependencies_only(tmp_path):
    """convert (IR graph), verify, predict and report with cocotb and TensorFlow not importable."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), NNHDL_PROGRESS_INTERVAL="60")
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "out"), str(tmp_path / "x.npy")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.splitlines()[-1])
    assert runs["imported"] == []
    code, out = runs["verify"]
    assert code == 0, out
    assert "with amaranth (auto: cocotb is not installed (pip install 'nnhdl[sim]')" in out
    assert "exported Verilog simulated: not checked" in out and "PASS mlp: 40 outputs" in out
    assert runs["verify_amaranth"][0] == 0, runs["verify_amaranth"][1]
    code, out = runs["verify_icarus"]
    assert code == 2 and "cocotb is not installed" in out and "pip install 'nnhdl[sim]'" in out, out
    assert runs["predict"][0] == 0, runs["predict"][1]
    assert runs["report"][0] == 0, runs["report"][1]
