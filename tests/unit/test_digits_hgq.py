"""An HGQ2 Conv2D network trained on scikit-learn's 8x8 digits (``examples/digits_hgq``): nnhdl's
reference equals HGQ2's own quantized forward pass on all 1,797 images, and the RTL equals the
reference with random gaps and stalls, in parallel I/O and (per-channel activation bits) in a
pixel stream.

Expectations come from HGQ2: ``model(x, training=False)`` on the dataset's float32 images, whose
float outputs times ``2**frac`` must be nnhdl's raw integers exactly. The models are trained for
a few epochs only (deterministic seeds): bit-exactness does not depend on accuracy, and the
calibrated WRAP quantizers and trained weights give heterogeneous formats.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nnhdl.ir import Pool, Requantize

pytestmark = [pytest.mark.keras,
              pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 3
N_RTL = 20


def _example(name):
    path = ROOT / "examples" / "digits_hgq" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"digits_hgq_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("keras")
    pytest.importorskip("hgq")
    pytest.importorskip("sklearn")
    return _example("train")


@pytest.fixture(scope="module")
def images(example):
    """All 1,797 images (float32, pixels k/16) and labels, and the training split."""
    X_train, y_train, X_test, y_test = example.load_dataset(0)
    return np.concatenate([X_train, X_test]), X_train, y_train


def _trained(example, images, activation_bits):
    import keras
    _, X_train, y_train = images
    return example.train(keras, X_train, y_train, EPOCHS, 1e-5, activation_bits, seed=0)


@pytest.fixture(scope="module")
def element_model(example, images):
    """Every activation element its own format (the example's default)."""
    return _trained(example, images, "element")


@pytest.fixture(scope="module")
def channel_model(example, images):
    """Activation formats per channel: streamable."""
    return _trained(example, images, "channel")


def assert_equals_hgq(model, graph, x):
    from nnhdl.reference import evaluate
    expected = np.asarray(model(x, training=False), dtype=np.float64)
    scaled = np.ldexp(expected, graph.output.fmt.frac_bits)
    raw = np.asarray(evaluate(graph, x))
    assert np.all(scaled == np.floor(scaled)), "HGQ2's output is not on the output format's grid"
    differ = np.flatnonzero((scaled.astype(object) != raw.astype(object)).any(axis=1))
    assert differ.size == 0, f"{differ.size} of {len(x)} images differ, first {differ[:5]}"


def requantize_ops(graph):
    return {op.name: op for op in graph.ops if isinstance(op, Requantize)}


def test_element_formats_equal_hgq_on_all_digits(element_model, images):
    from nnhdl.frontend.keras import load
    x_all = images[0]
    assert len(x_all) == 1797
    graph = load(element_model)
    assert [type(op).__name__ for op in graph.ops] == ["Input", "Requantize", "Conv", "Requantize", "Pool",
                                                        "Flatten", "Requantize", "Dense"]
    rq = requantize_ops(graph)
    assert set(rq) == {"conv1_iq", "pool1_iq", "logits_iq"}
    assert len(rq["pool1_iq"].formats) == 8 * 8 * 8
    # per element: the same channel has different formats at different pixels
    pool_formats = np.array(rq["pool1_iq"].formats, dtype=object).reshape(8, 8, 8)
    assert any(len(set(pool_formats[:, :, c].ravel())) > 1 for c in range(8))
    assert isinstance(graph.op("pool1"), Pool) and graph.op("pool1").fmt == rq["pool1_iq"].fmt
    # the weights are HGQ2's quantized kernels, exactly
    for name in ("conv1", "logits"):
        layer, op = element_model.get_layer(name), graph.op(name)
        qk = np.asarray(layer.qkernel, dtype=np.float64).reshape(op.weight.shape)
        assert np.array_equal(np.ldexp(qk, op.weight_fmt.frac_bits), op.weight)
    assert_equals_hgq(element_model, graph, x_all)


def test_element_formats_rtl_parallel_with_stalls(element_model, images, tmp_path):
    from nnhdl.convert import convert
    from nnhdl.reference import quantize_inputs
    from nnhdl.verify import verify_design
    design = convert(element_model, tmp_path / "rtl", io="parallel", verilog=False, rtlil=False)
    assert design.report["totals"]["multipliers"] == 0
    x = quantize_inputs(design.graph, images[0][::90][:N_RTL])
    result = verify_design(design, x, gap=0.3, stall=0.3, seed=3)
    assert result.n == N_RTL and not result.mismatches


def test_element_formats_refused_in_a_stream(element_model, tmp_path):
    """A pixel stream needs one format per channel: the CLI says so (exit 2, nothing written)."""
    from nnhdl.cli import main
    path = tmp_path / "digits_hgq.keras"
    element_model.save(path)
    result = CliRunner().invoke(main, ["convert", str(path), "-o", str(tmp_path / "out"), "--io", "stream"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for words in ("'conv1'", "io='parallel'", "heterogeneous_axis=(-1,)"):
        assert words in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_channel_formats_equal_hgq_and_stream_rtl(channel_model, images, tmp_path):
    from nnhdl.convert import convert
    from nnhdl.frontend.keras import load
    from nnhdl.reference import quantize_inputs
    from nnhdl.verify import verify_design
    graph = load(channel_model)
    rq = requantize_ops(graph)
    pool_formats = np.array(rq["pool1_iq"].formats, dtype=object).reshape(64, 8)
    assert all(len(set(pool_formats[:, c])) == 1 for c in range(8))  # shared over the pixels
    assert_equals_hgq(channel_model, graph, images[0])
    design = convert(graph, tmp_path / "rtl", io="stream", verilog=False, rtlil=False)
    x = quantize_inputs(graph, images[0][::90][:N_RTL])
    result = verify_design(design, x, gap=0.3, stall=0.3, seed=4)
    assert result.n == N_RTL and not result.mismatches


@pytest.mark.slow
def test_digits_hgq_example(example, tmp_path, capsys):
    """The example as documented: train (default epochs), convert with no configuration, verify
    the RTL in Amaranth's simulator, and accuracy.py: nnhdl == HGQ2 on all 1,797 images."""
    from nnhdl.cli import main
    assert example.main(["--out", str(tmp_path)]) == 0
    runner = CliRunner()
    result = runner.invoke(main, ["convert", str(tmp_path / "digits_hgq.keras"), "-o", str(tmp_path / "rtl")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["verify", str(tmp_path / "rtl"), "--sim", "amaranth", "--inputs",
                                  str(tmp_path / "X_test.npy"), "-n", "50"])
    assert result.exit_code == 0 and "PASS" in result.output, result.output
    capsys.readouterr()
    assert _example("accuracy").main(tmp_path) == 0
    out = capsys.readouterr().out
    assert "1797 of 1797 images" in out
    accuracy = float(out.split("HGQ2 (its own forward pass):")[1].split()[0])
    assert accuracy > 0.9
