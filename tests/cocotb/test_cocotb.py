"""The exported Verilog under cocotb on Icarus Verilog and Verilator: bit- and cycle-exact with the
reference, failing loudly on a corrupted design; and the standalone testbench folder."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from nnhdl.cli import main
from nnhdl.convert import convert, load_design
from nnhdl.sim.cocotb_runner import SimulatorMissing, check_simulator
from nnhdl.verify import random_inputs, verify_design

from ..conftest import make_mlp

pytestmark = pytest.mark.cocotb

SIMS = ["icarus", "verilator"]


def need(sim):
    try:
        check_simulator(sim)
    except SimulatorMissing as e:
        pytest.fail(f"{e} (the project's 'make setup' installs it)")


MODELS = {
    "relu-leaky-softmax fixed<10,4,RND,SAT>": ((6, 10, 8, 4), ["relu", "leaky_relu"],
                                              {"precision": "fixed<10,4,RND,SAT>"}, True),
    "wrapping accum, ufixed in, argmax": ((9, 7, 5), ["relu"],
                                         {"precision": "fixed<12,5>", "softmax": "argmax",
                                          "layer": {"in": {"result": "ufixed<8,2>"},
                                                    "fc1": {"accum": "fixed<14,6>"},
                                                    "fc2": {"accum": "fixed<16,6,RND_CONV,SAT_SYM>"}}}, True),
    "linear out fixed<8,3,RND,SAT>": ((5, 6, 3), ["relu"], {"precision": "fixed<8,3,RND,SAT>"}, False),
}


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    rng = np.random.default_rng(2024)
    out = {}
    for name, (sizes, acts, config, softmax) in MODELS.items():
        graph = make_mlp(rng, sizes, acts, config, softmax=softmax)
        folder = tmp_path_factory.mktemp("design")
        out[name] = convert(graph, folder / "out")
    return out


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("name", list(MODELS))
def test_random_models(designs, sim, name):
    need(sim)
    design = load_design(designs[name].outdir)
    x = random_inputs(design.graph, 300, seed=3)
    result = verify_design(design, x, simulator=sim, gap=0.3, stall=0.3, seed=9)
    assert result.mismatches == [] and result.mismatch_count == 0
    assert result.latencies == {design.report["latency_cycles"]}
    assert result.n == 300


def corrupt_one_constant(verilog_path):
    """Change the constant of one addition (a bias) in the last Dense module (a visible fault)."""
    text = verilog_path.read_text()
    modules = [m.start() for m in re.finditer(r"^module ", text, re.M)]
    last_dense = text.rfind("module \\", 0, len(text))
    pattern = re.compile(r"(\$signed\([^()]+\) [+-] \$signed\()(\d+)'h([0-9a-f]+)\)")
    match = pattern.search(text, last_dense if last_dense >= 0 else modules[-1])
    assert match, "no bias constant found to corrupt"
    width, value = int(match.group(2)), int(match.group(3), 16)
    new = value ^ (1 << (width - 3))  # a large change, well above the rounding
    digits = len(match.group(3))
    corrupted = text[:match.start(2)] + f"{width}'h{new:0{digits}x}" + text[match.end(3):]
    verilog_path.write_text(corrupted)


@pytest.mark.parametrize("sim", SIMS)
def test_corrupted_verilog_fails(designs, sim, tmp_path):
    need(sim)
    import shutil
    src = designs["linear out fixed<8,3,RND,SAT>"].outdir
    out = tmp_path / "out"
    shutil.copytree(src, out, ignore=shutil.ignore_patterns(".nnhdl-sim"))
    ok = CliRunner().invoke(main, ["verify", str(out), "--sim", sim, "-n", "100"])
    assert ok.exit_code == 0, ok.output
    corrupt_one_constant(out / "mlp.v")
    bad = CliRunner().invoke(main, ["verify", str(out), "--sim", sim, "-n", "100"])
    assert bad.exit_code == 1, bad.output
    assert "FAIL" in bad.output
    assert re.search(r"input \d+ \(output at cycle \d+\): expected \[.*\], got \[.*\]", bad.output), bad.output


def test_waves(designs):
    need("icarus")
    out = designs["linear out fixed<8,3,RND,SAT>"].outdir
    result = CliRunner().invoke(main, ["verify", str(out), "--sim", "icarus", "-n", "20", "--waves"])
    assert result.exit_code == 0, result.output
    waves = list(out.glob("mlp-icarus.*"))
    assert waves and waves[0].stat().st_size > 100


def test_missing_simulator(designs, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    out = designs["linear out fixed<8,3,RND,SAT>"].outdir
    result = CliRunner().invoke(main, ["verify", str(out), "--sim", "icarus", "-n", "5"])
    assert result.exit_code == 2
    assert "apt-get install iverilog" in result.output


BLOCK_NNHDL = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "nnhdl" or name.startswith("nnhdl."):
            raise ImportError("nnhdl must not be needed by a standalone testbench")
sys.meta_path.insert(0, _Block())
"""


@pytest.mark.parametrize("sim", SIMS)
def test_standalone_testbench(designs, sim, tmp_path):
    need(sim)
    out = designs["wrapping accum, ufixed in, argmax"].outdir
    tb = tmp_path / "tb"
    result = CliRunner().invoke(main, ["testbench", str(out), "-o", str(tb), "-n", "150"])
    assert result.exit_code == 0, result.output
    assert {"mlp.v", "cocotb_bench.py", "packing.py", "run.py", "inputs.npy", "expected.npy", "bench.json",
            "README.md"} <= {p.name for p in tb.iterdir()}
    for f in ("cocotb_bench.py", "packing.py", "run.py", "cocotb_runner.py"):
        assert not re.search(r"^\s*(from|import)\s+nnhdl", (tb / f).read_text(), re.M), f
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_NNHDL)
    env = dict(os.environ, PYTHONPATH=str(blocker))
    proc = subprocess.run([sys.executable, "run.py", "--sim", sim], cwd=tb, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "PASS" in proc.stdout


def _cnn_graph():
    from nnhdl.config import PrecisionConfig
    from nnhdl.passes import lower

    from ..rtl.test_cnn_layers import ImageNet

    rng = np.random.default_rng(77)
    g = (ImageNet(rng, (6, 7, 2)).conv("c1", 3, (3, 3), padding="same", activation="relu")
         .pool("p1", "avg", (2, 2), padding="same").conv("c2", 2, (2, 2), activation="leaky_relu").dense("d", 3)
         .graph())
    return lower(g, PrecisionConfig.from_dict({"precision": "fixed<10,4,RND,SAT>",
                                               "layer": {"in": {"result": "fixed<8,3>"}}}))


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_cnn_verilog(tmp_path, sim, io):
    """A CNN's Verilog in both I/O styles (line buffers in block RAM for the stream): bit- and
    cycle-exact under cocotb, with gaps and stalls."""
    need(sim)
    from nnhdl.layers import Network

    graph = _cnn_graph()
    design = convert(graph, tmp_path / "out", io=io)
    if io == "stream":
        assert design.report["buffers"] and design.report["input"]["transfers_per_inference"] == 42
    x = random_inputs(design.graph, 12, seed=4)
    result = verify_design(load_design(design.outdir), x, simulator=sim, gap=0.3, stall=0.3, seed=5)
    assert result.mismatch_count == 0 and result.n == 12
    assert result.latencies == {design.report["latency_cycles"]}
    assert result.intervals == {design.report["initiation_interval"]}
    assert isinstance(design.network, Network)


# -- 1-bit ports, shipped-file checks and progress on Icarus (tiny designs) ---------------------

ONE_BIT = {
    "two-class argmax (1-bit output)": ((4, 3, 2), {"precision": "fixed<8,3>", "softmax": "argmax"}, 5),
    "1-bit input, two-class argmax": ((1, 3, 2), {"precision": "fixed<8,3>", "softmax": "argmax",
                                                  "layer": {"in": {"result": "ufixed<1,1>"}}}, 1),
}


@pytest.fixture(scope="module")
def one_bit(tmp_path_factory):
    out = {}
    for name, (sizes, config, seed) in ONE_BIT.items():
        graph = make_mlp(np.random.default_rng(seed), sizes, ["relu"], config, softmax=True)
        out[name] = convert(graph, tmp_path_factory.mktemp("one_bit") / "out")
    return out


@pytest.mark.parametrize("name", list(ONE_BIT))
def test_one_bit_ports(one_bit, name):
    """Ports of width 1 (cocotb gives a Logic, not a LogicArray): both classes come out, bit-exact."""
    need("icarus")
    from nnhdl.reference import evaluate

    design = load_design(one_bit[name].outdir)
    assert design.report["output"]["width_bits"] == 1
    x = random_inputs(design.graph, 200, seed=1)
    classes = np.asarray(evaluate(design.graph, x, raw=True)).ravel()
    assert set(classes.tolist()) == {0, 1}  # an output that actually toggles
    result = verify_design(design, x, simulator="icarus", gap=0.3, stall=0.3, seed=2)
    assert result.mismatch_count == 0 and result.n == 200
    assert result.latencies == {design.report["latency_cycles"]}


def test_one_bit_standalone_testbench_prints_progress(one_bit, tmp_path):
    """The standalone folder on a 1-bit design: passes, and run.py prints its stages and periodic
    progress lines."""
    need("icarus")
    out = one_bit["1-bit input, two-class argmax"].outdir
    tb = tmp_path / "tb"
    result = CliRunner().invoke(main, ["testbench", str(out), "-o", str(tb), "-n", "3000"])
    assert result.exit_code == 0, result.output
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_NNHDL)
    env = dict(os.environ, PYTHONPATH=str(blocker))
    proc = subprocess.run([sys.executable, "run.py", "--sim", "icarus", "--progress-interval", "0.2"], cwd=tb,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "building mlp.v with icarus…" in lines
    assert "simulating mlp.v with icarus… (3000 vectors)" in lines
    assert any(re.fullmatch(r"simulating mlp\.v with icarus… \d+/3000 vectors, \d+ s", s) for s in lines), lines
    assert "PASS mlp on icarus: 3000 of 3000" in proc.stdout


def test_verify_log_shows_build_and_simulation_stages(one_bit, tmp_path, monkeypatch):
    """Not a terminal: a line per stage, and periodic lines with the vectors done."""
    need("icarus")
    import shutil
    out = tmp_path / "out"
    shutil.copytree(one_bit["two-class argmax (1-bit output)"].outdir, out,
                    ignore=shutil.ignore_patterns(".nnhdl-sim"))
    monkeypatch.setenv("NNHDL_PROGRESS_INTERVAL", "0.2")
    result = CliRunner().invoke(main, ["verify", str(out), "--sim", "icarus", "-n", "3000"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "verify: building mlp.v with icarus…" in lines
    assert "verify: simulating mlp.v with icarus… (3000 vectors)" in lines
    assert any(re.fullmatch(r"verify: simulating mlp\.v with icarus… \d+/3000 vectors, \d+ s", s) for s in lines)
    assert "  exported Verilog simulated: yes — mlp.v under icarus (cocotb)" in lines


def test_default_path_on_a_tiny_design_simulates_the_verilog(one_bit, tmp_path):
    """--sim auto on a tiny design with Icarus installed runs the exported Verilog."""
    need("icarus")
    import shutil
    out = tmp_path / "out"
    shutil.copytree(one_bit["two-class argmax (1-bit output)"].outdir, out,
                    ignore=shutil.ignore_patterns(".nnhdl-sim"))
    result = CliRunner().invoke(main, ["verify", str(out), "-n", "100"])
    assert result.exit_code == 0, result.output
    assert "on mlp.v under cocotb with icarus (auto: Icarus Verilog, estimated" in result.output
    assert "PASS mlp: 100 outputs of mlp.v (cocotb)" in result.output


@pytest.mark.parametrize("edit", ["verilog", "latency", "deleted"])
def test_shipped_file_edits_fail_on_icarus(one_bit, tmp_path, edit):
    """On the exported-Verilog path too: an edited or deleted .v, or an edited latency, fails."""
    need("icarus")
    import json
    import shutil
    out = tmp_path / "out"
    shutil.copytree(one_bit["two-class argmax (1-bit output)"].outdir, out,
                    ignore=shutil.ignore_patterns(".nnhdl-sim"))
    if edit == "verilog":
        text = (out / "mlp.v").read_text()
        k = text.index(" + ")
        (out / "mlp.v").write_text(text[:k] + " - " + text[k + 3:])
    elif edit == "latency":
        report = json.loads((out / "report.json").read_text())
        report["latency_cycles"] += 1
        (out / "report.json").write_text(json.dumps(report))
    else:
        (out / "mlp.v").unlink()
    result = CliRunner().invoke(main, ["verify", str(out), "--sim", "icarus", "-n", "100"])
    assert result.exit_code == 1, result.output
    assert "PASS" not in result.output
    expect = {"verilog": f"FAIL {out / 'mlp.v'}: edited after conversion",
              "latency": "FAIL mlp: measured latency",
              "deleted": f"FAIL {out / 'mlp.v'}: missing"}[edit]
    assert expect in result.output


def test_auto_without_simulators_falls_back_to_amaranth(designs, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    out = designs["linear out fixed<8,3,RND,SAT>"].outdir
    result = CliRunner().invoke(main, ["verify", str(out), "-n", "20"])
    assert result.exit_code == 0, result.output
    assert "with amaranth (auto: neither Verilator nor Icarus Verilog is installed" in result.output
    assert "exported Verilog simulated: not checked" in result.output and "install Verilator" in result.output
    assert "Verilog on disk identical to the design simulated: yes — re-derived" in result.output


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_cocotb_path_does_not_build_the_amaranth_design(one_bit, tmp_path, monkeypatch, sim):
    """``verify --sim icarus|verilator`` simulates the Verilog on disk: it reads graph.json (for the
    reference) and options.json, but never builds the Amaranth design."""
    need(sim)
    import shutil

    from nnhdl.layers import network

    def refuse(*args, **kwargs):
        raise AssertionError("the Amaranth design was built")

    monkeypatch.setattr(network.Network, "__init__", refuse)
    out = tmp_path / "out"
    shutil.copytree(one_bit["two-class argmax (1-bit output)"].outdir, out,
                    ignore=shutil.ignore_patterns(".nnhdl-sim"))
    result = CliRunner().invoke(main, ["verify", str(out), "--sim", sim, "-n", "100"])
    assert result.exit_code == 0, result.output
    assert f"PASS mlp: 100 outputs of mlp.v (cocotb)" in result.output
    assert "the Amaranth design is not rebuilt" in result.output
