"""The jet-tagger example end to end: train (briefly), convert with its config (16-bit weights: the
largest design of the suite), and verify it through the CLI: the exported Verilog on Icarus Verilog
with a handful of vectors; in make test-all also the Amaranth design (which re-derives the Verilog,
minutes at this size) and Verilator with 1,000 vectors."""

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nnhdl.cli import main

pytestmark = [pytest.mark.cocotb, pytest.mark.keras]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def jet_tagger(tmp_path_factory):
    d = tmp_path_factory.mktemp("jet")
    subprocess.run([sys.executable, str(ROOT / "examples/jet_tagger/train.py"), "--out", str(d), "--epochs", "3"],
                   check=True, capture_output=True)
    result = CliRunner().invoke(main, ["convert", str(d / "jet_tagger.keras"), "-c",
                                       str(ROOT / "examples/jet_tagger/config.toml"), "-o", str(d / "rtl")])
    assert result.exit_code == 0, result.output
    return d


@pytest.mark.parametrize("sim, n", [("icarus", 4), pytest.param("amaranth", 40, marks=pytest.mark.slow),
                                    pytest.param("verilator", 1000, marks=pytest.mark.slow)])
def test_jet_tagger_verifies(jet_tagger, sim, n):
    result = CliRunner().invoke(main, ["verify", str(jet_tagger / "rtl"), "--sim", sim, "-n", str(n),
                                       "--inputs", str(jet_tagger / "X_test.npy"), "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert f"PASS jet_tagger: {n} outputs" in result.output
