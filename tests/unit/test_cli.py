"""The command line end to end on a small trained Keras model, and every bad-input path:
clear message, exit code 2, output folder left as it was."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from nnhdl.cli import main
from nnhdl.config import PrecisionConfig
from nnhdl.convert import compile_model, load_design, load_model
from nnhdl.reference import evaluate, to_real

pytestmark = [pytest.mark.keras,
              pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(3)
    d = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 6)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype(int) + (x[:, 3] > 1).astype(int)
    model = keras.Sequential([
        keras.Input((6,), name="features"),
        keras.layers.Dense(10, name="fc1"),
        keras.layers.BatchNormalization(name="bn1"),
        keras.layers.ReLU(name="relu1"),
        keras.layers.Dropout(0.1, name="drop"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ], name="tiny")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, verbose=0)
    model.save(d / "tiny.keras")
    np.save(d / "x.npy", x[:64])
    return d


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def converted(model_dir):
    out = model_dir / "out"
    result = run("convert", model_dir / "tiny.keras", "-o", out, "--precision", "fixed<12,5,RND,SAT>")
    assert result.exit_code == 0, result.output
    return out


def test_convert_writes_everything(converted, model_dir):
    report = json.loads((converted / "report.json").read_text())
    top = report["top"]
    assert top == "tiny"
    verilog = (converted / f"{top}.v").read_text()
    assert re.search(rf"module {top}\(", verilog)
    for port in ("clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready"):
        assert re.search(rf"(input|output) (\[\d+:0\] )?{port};", verilog), port
    assert len(re.findall(rf"^module \\{top}$", (converted / f"{top}.il").read_text(), re.M)) == 1
    design = load_design(converted)
    assert report["latency_cycles"] == design.network.latency
    assert report["input"]["width_bits"] == 6 * 12
    kinds = [layer["kind"] for layer in report["layers"]]
    assert kinds == ["Input", "Dense", "Dense", "Softmax"]  # bn folded, relu fused, dropout dropped
    assert report["layers"][1]["activation"] == "relu"


def test_report_command(converted):
    result = run("report", converted)
    assert result.exit_code == 0, result.output
    assert "latency" in result.output and "fc1" in result.output and "fixed<12,5,RND,SAT>" in result.output


def test_predict_model_and_outdir_agree(converted, model_dir, tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert run("predict", model_dir / "tiny.keras", "--precision", "fixed<12,5,RND,SAT>",
               "--inputs", model_dir / "x.npy", "-o", a).exit_code == 0
    result = run("predict", converted, "--inputs", model_dir / "x.npy", "-o", b, "--trace", tmp_path / "trace")
    assert result.exit_code == 0, result.output
    ya, yb = np.load(a), np.load(b)
    graph = load_design(converted, build=False).graph
    want = to_real(graph, evaluate(graph, np.load(model_dir / "x.npy")))
    np.testing.assert_array_equal(ya, want)
    np.testing.assert_array_equal(yb, want)
    assert sorted(p.stem for p in (tmp_path / "trace").iterdir()) == sorted(op.name for op in graph.ops)


def test_verify_passes(converted, model_dir):
    result = run("verify", converted, "-n", "60", "--seed", "4", "--sim", "amaranth")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    assert "Verilog on disk identical to the design simulated: yes — re-derived" in result.output
    assert "files as the conversion wrote them (SHA-256 recorded in report.json): yes" in result.output
    result = run("verify", converted, "--inputs", model_dir / "x.npy", "--gap", "0.5", "--stall", "0.5",
                 "--sim", "amaranth")
    assert result.exit_code == 0, result.output


def test_credit_flow_control_converts_reports_and_verifies(model_dir, tmp_path):
    out = tmp_path / "credit"
    result = run("convert", model_dir / "tiny.keras", "-o", out, "--family", "ecp5", "--flow-control", "credit")
    assert result.exit_code == 0, result.output
    assert "credit flow control" in result.output and "output queue of" in result.output
    assert json.loads((out / "options.json").read_text())["flow_control"] == "credit"
    result = run("verify", out, "-n", "40", "--gap", "0.3", "--stall", "0.6", "--sim", "amaranth")
    assert result.exit_code == 0 and "PASS" in result.output, result.output
    result = run("convert", model_dir / "tiny.keras", "-o", tmp_path / "stream", "--io", "stream",
                 "--flow-control", "credit")
    assert result.exit_code == 2 and "--flow-control stall" in result.output, result.output
    assert not (tmp_path / "stream").exists()


def test_verify_reports_mismatches(converted, monkeypatch):
    """A deliberately wrong reference makes verify fail with index, expected and received values."""
    import nnhdl.verify as verify_module
    real = verify_module.evaluate

    def off_by_one(graph, x, raw=False):
        y = np.array(real(graph, x, raw=raw))
        y[5, 0] += 1
        return y

    monkeypatch.setattr(verify_module, "evaluate", off_by_one)
    result = run("verify", converted, "-n", "20", "--sim", "amaranth")
    assert result.exit_code == 1
    assert "FAIL" in result.output and "1 of 20 outputs differ" in result.output
    assert re.search(r"input 5 \(output at cycle \d+\): expected \[", result.output)


def test_config_round_trip(model_dir, tmp_path):
    cfg = tmp_path / "config.toml"
    result = run("config", model_dir / "tiny.keras", "-o", cfg, "--precision", "fixed<10,4>")
    assert result.exit_code == 0, result.output
    text = cfg.read_text()
    for layer in ("features", "fc1", "bn1", "relu1", "drop", "out"):
        assert f"layer.{layer}]" in text, layer
    config = PrecisionConfig.load(cfg)
    graph = load_model(model_dir / "tiny.keras")
    x = np.load(model_dir / "x.npy")
    default = compile_model(graph, PrecisionConfig.from_dict({"precision": "fixed<10,4>"}))
    np.testing.assert_array_equal(evaluate(compile_model(graph, config), x), evaluate(default, x))


def test_per_layer_config(model_dir, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('precision = "fixed<16,6>"\ntool.other.key = 3\n[layer.fc1]\nweight = "fixed<8,2,RND>"\n'
                   'accum = "fixed<20,8,RND,SAT>"\n[layer.relu1]\nresult = "ufixed<8,4,RND,SAT>"\n'
                   '[layer.out]\nresult = "ufixed<10,0,RND,SAT>"\n')
    out = tmp_path / "o"
    result = run("convert", model_dir / "tiny.keras", "-c", cfg, "-o", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    fc1 = report["layers"][1]
    assert (fc1["weight"], fc1["accum"], fc1["result"]) == ("fixed<8,2,RND>", "fixed<20,8,RND,SAT>",
                                                           "ufixed<8,4,RND,SAT>")
    assert report["output"]["format"] == "ufixed<10,0,RND,SAT>"
    assert run("verify", out, "-n", "40", "--sim", "amaranth").exit_code == 0


def test_argmax(model_dir, tmp_path):
    out = tmp_path / "am"
    assert run("convert", model_dir / "tiny.keras", "-o", out, "--softmax", "argmax").exit_code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["output"]["kind"] == "argmax index" and report["output"]["shape"] == [1]
    y = tmp_path / "y.npy"
    assert run("predict", out, "--inputs", model_dir / "x.npy", "-o", y).exit_code == 0
    graph = load_design(out, build=False).graph
    logits = evaluate(graph.replace(outputs=("out",)), np.load(model_dir / "x.npy"))
    np.testing.assert_array_equal(np.load(y)[:, 0], np.argmax(logits, axis=1))
    assert run("verify", out, "-n", "40", "--sim", "amaranth").exit_code == 0


# -- bad input: exit 2, clear message, nothing half-written -------------------------------------

@pytest.fixture
def existing_out(tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    return out


def assert_untouched(out):
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_missing_model(tmp_path, existing_out):
    result = run("convert", tmp_path / "nope.keras", "-o", existing_out)
    assert result.exit_code == 2
    assert "nope.keras" in result.output and "no such file" in result.output
    assert_untouched(existing_out)


def test_corrupt_model(tmp_path, existing_out):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip file at all")
    result = run("convert", bad, "-o", existing_out)
    assert result.exit_code == 2 and "bad.keras" in result.output
    assert_untouched(existing_out)


def test_unsupported_layer(tmp_path, existing_out):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.UpSampling2D(name="up"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    path = tmp_path / "up.keras"
    model.save(path)
    result = run("convert", path, "-o", existing_out)
    assert result.exit_code == 2
    assert "'up'" in result.output and "UpSampling2D" in result.output and "supported" in result.output
    assert_untouched(existing_out)


def test_unsupported_conv_argument(tmp_path, existing_out):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, dilation_rate=2, name="conv")])
    path = tmp_path / "dilated.keras"
    model.save(path)
    result = run("convert", path, "-o", existing_out, "--io", "stream")
    assert result.exit_code == 2
    assert "dilated.keras" in result.output and "'conv'" in result.output and "dilation_rate" in result.output
    assert_untouched(existing_out)


def test_io_from_the_config(tmp_path):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((5, 2)), keras.layers.Conv1D(2, 3, name="conv"),
                              keras.layers.GlobalMaxPooling1D(name="gmp")])
    path = tmp_path / "c1d.keras"
    model.save(path)
    cfg = tmp_path / "c.toml"
    cfg.write_text('io = "stream"\nprecision = "fixed<8,3>"\n')
    assert run("convert", path, "-c", cfg, "-o", tmp_path / "s").exit_code == 0
    assert json.loads((tmp_path / "s" / "report.json").read_text())["io"] == "stream"
    assert run("convert", path, "-c", cfg, "--io", "parallel", "-o", tmp_path / "p").exit_code == 0
    assert json.loads((tmp_path / "p" / "report.json").read_text())["io"] == "parallel"


def test_cnn_in_both_io_styles(tmp_path):
    """convert --io parallel|stream, then verify and predict with image-shaped .npy inputs."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((6, 5, 2)),
                              keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv"),
                              keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(3)])
    path = tmp_path / "cnn.keras"
    model.save(path)
    x = np.random.default_rng(0).normal(size=(6, 6, 5, 2))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "wrong.npy", x[:, :, :4])
    outputs = {}
    for io in ("parallel", "stream"):
        out = tmp_path / io
        result = run("convert", path, "-o", out, "--io", io, "--precision", "fixed<10,4,RND,SAT>",
                     "--line-buffer-ram-bits", "100")
        assert result.exit_code == 0, result.output
        report = json.loads((out / "report.json").read_text())
        assert report["io"] == io
        if io == "stream":  # conv: 2 rows of 7 padded pixels of 2 x 10 bits
            assert report["buffers"][0] == {"layer": "conv", "bits": 280, "storage": "memory"}
            assert report["totals"]["memory_bits"] >= 280
        assert report["input"]["transfers_per_inference"] == (30 if io == "stream" else 1)
        result = run("verify", out, "--inputs", tmp_path / "x.npy", "--sim", "amaranth")
        assert result.exit_code == 0 and "PASS" in result.output, result.output
        result = run("predict", out, "--inputs", tmp_path / "x.npy", "-o", tmp_path / f"y_{io}.npy")
        assert result.exit_code == 0, result.output
        outputs[io] = np.load(tmp_path / f"y_{io}.npy")
        result = run("verify", out, "--inputs", tmp_path / "wrong.npy")
        assert result.exit_code == 2 and "wrong.npy" in result.output and "(N, 6, 5, 2)" in result.output
    np.testing.assert_array_equal(outputs["parallel"], outputs["stream"])


def test_bad_precision(model_dir, existing_out):
    result = run("convert", model_dir / "tiny.keras", "-o", existing_out, "--precision", "fixed<16;6>")
    assert result.exit_code == 2 and "fixed<16;6>" in result.output
    assert_untouched(existing_out)


@pytest.mark.parametrize("text, match", [
    ('[layer.fc9]\nweight = "fixed<8,3>"\n', "layer 'fc9' is not in the model"),
    ('[layer.fc1]\nweight = "fixed<8,x>"\n', r"\[layer.fc1\] weight"),
    ('precision = \n', "not valid TOML"),
    ('io = "serial"\n', "io.*must be one of parallel, stream"),
])
def test_bad_config(model_dir, existing_out, tmp_path, text, match):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    result = run("convert", model_dir / "tiny.keras", "-c", cfg, "-o", existing_out)
    assert result.exit_code == 2
    assert re.search(match, result.output), result.output
    assert "bad.toml" in result.output
    assert_untouched(existing_out)


def test_unwritable_output(model_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("convert", model_dir / "tiny.keras", "-o", blocker / "out")
    assert result.exit_code == 2 and "cannot write" in result.output
    assert blocker.read_text() == "x"


def test_wrong_input_shape(converted, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((4, 7)))
    result = run("predict", converted, "--inputs", x, "-o", tmp_path / "y.npy")
    assert result.exit_code == 2 and "(N, 6)" in result.output and "x.npy" in result.output
    assert not (tmp_path / "y.npy").exists()


def test_verify_not_a_design(tmp_path):
    result = run("verify", tmp_path)
    assert result.exit_code == 2 and "nnhdl convert" in result.output
