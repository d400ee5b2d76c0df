"""The examples run as documented."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_custom_design_example(tmp_path):
    example = load(ROOT / "examples/custom_design/dense_in_my_design.py")
    got, expected = example.main(tmp_path)
    assert got == expected and len(got) == 8
    assert "module classifier(" in (tmp_path / "classifier.v").read_text()
