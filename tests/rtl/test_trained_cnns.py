"""The CNN examples, trained here: fixed point within 1 point of the float accuracy, and the RTL
in both I/O styles equal to the reference (and so to each other), with gaps and stalls."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnhdl.convert import convert, load_config, load_model
from nnhdl.frontend.keras import keras_predict
from nnhdl.reference import evaluate, quantize_inputs, to_real
from nnhdl.verify import verify_design

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.keras]

EXAMPLES = {"digits_cnn": "digits_cnn.keras", "waveform_1d": "waveform_cnn.keras"}


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_trained_cnn(tmp_path, example):
    subprocess.run([sys.executable, str(ROOT / "examples" / example / "train.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    model = tmp_path / EXAMPLES[example]
    x, y = np.load(tmp_path / "X_test.npy"), np.load(tmp_path / "y_test.npy")
    graph = load_model(model)
    config = load_config(ROOT / "examples" / example / "config.toml")
    float_acc = np.mean(keras_predict(model, x).argmax(axis=1) == y)
    outputs = {}
    for io in ("parallel", "stream"):
        design = convert(graph, tmp_path / io, config=config, io=io)
        q = design.graph
        if io == "parallel":
            fixed_acc = np.mean(to_real(q, evaluate(q, x)).argmax(axis=1) == y)
            assert abs(fixed_acc - float_acc) <= 0.01, (fixed_acc, float_acc)
        raw = quantize_inputs(q, x[:60])
        result = verify_design(design, raw, gap=0.2, stall=0.2, seed=3)
        assert result.passed, (result.mismatches[:2], result.latencies, result.intervals)
        outputs[io] = evaluate(q, raw, raw=True)
        if io == "stream":
            assert design.report["input"]["transfers_per_inference"] == int(np.prod(x.shape[1:-1]))
            assert design.report["cycles_per_inference"] > 1
        else:
            assert design.report["cycles_per_inference"] == 1
    np.testing.assert_array_equal(outputs["parallel"], outputs["stream"])
