"""The bad-input catalogue: every bad input a user (or a hostile one) can give the command line.

Each error case runs the CLI and checks: exit code 2, exactly one ``error:`` line that names the
file / layer / option and says how to fix it (key words), no traceback, and the output folder
exactly as it was (every file's hash, hidden ones included) with no temporary folder left beside
it. Lossy but legal choices are warnings: the command prints them and succeeds. Then the output
folder policy: nnhdl's own folders are replaced wholly, other files need --force, temporary
folders vanish on SIGTERM and stale ones are swept."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nnhdl.cli import main
from nnhdl.outputs import MANIFEST

pytestmark = [pytest.mark.keras,
              pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")]

PRECISION = "fixed<10,4,RND,SAT>"  # small: the one real conversion below is quick


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# -- assets: tiny Keras models, inputs, a converted folder ---------------------------------------

@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    keras = pytest.importorskip("keras")
    L = keras.layers
    d = tmp_path_factory.mktemp("assets")
    keras.utils.set_random_seed(7)

    def mlp(name="tiny"):
        return keras.Sequential([keras.Input((4,), name="x"), L.Dense(3, activation="relu", name="fc1"),
                                 L.Dense(2, name="fc2")], name=name)

    mlp().save(d / "tiny.keras")
    mlp().save(d / "tiny.h5")
    nan = mlp("nan")
    w, b = nan.get_layer("fc1").get_weights()
    w[1, 2] = np.nan
    nan.get_layer("fc1").set_weights([w, b])
    nan.save(d / "nan.keras")
    inf = mlp("inf")
    w, b = inf.get_layer("fc2").get_weights()
    b[0] = np.inf
    inf.get_layer("fc2").set_weights([w, b])
    inf.save(d / "inf.keras")
    big = mlp("big")
    w, b = big.get_layer("fc1").get_weights()
    w[0, :] = 1e9
    big.get_layer("fc1").set_weights([w, b])
    big.save(d / "big.keras")
    bn = keras.Sequential([keras.Input((4,), name="x"), L.Dense(3, name="fc1"), L.BatchNormalization(name="bn")])
    bn.get_layer("bn").set_weights([np.ones(3), np.zeros(3), np.zeros(3), np.array([1.0, -0.5, 1.0])])
    bn.save(d / "negvar.keras")
    keras.Sequential([keras.Input((4, 4, 1)), L.UpSampling2D(name="up"), L.Flatten(), L.Dense(2)]).save(d / "up.keras")
    keras.Sequential([keras.Input((4,)), L.Dense(2, activation="tanh", name="th")]).save(d / "tanh.keras")
    x_in = keras.Input((4,), name="x")
    keras.Model(x_in, [L.Dense(2, name="a")(x_in), L.Dense(2, name="b")(x_in)]).save(d / "two_outputs.keras")
    keras.Sequential([keras.Input((None, 3)), L.Conv1D(2, 3, name="c")]).save(d / "free_length.keras")

    (d / "random.keras").write_bytes(np.random.default_rng(0).bytes(3000))
    (d / "random.h5").write_bytes(np.random.default_rng(1).bytes(3000))
    (d / "empty.keras").write_bytes(b"")
    with zipfile.ZipFile(d / "noconfig.keras", "w") as z:
        z.writestr("hello.txt", "not a model")
    (d / "model.txt").write_text("a model?")
    (d / "folder.keras").mkdir()

    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.normal(size=(5, 4)))
    np.save(d / "empty.npy", np.zeros((0, 4)))
    np.save(d / "flat_empty.npy", np.zeros((0,)))
    x = rng.normal(size=(5, 4))
    x[2, 1] = np.nan
    np.save(d / "nan.npy", x)
    np.save(d / "inf.npy", np.full((2, 4), np.inf))
    np.save(d / "complex.npy", rng.normal(size=(5, 4)) + 1j)
    np.save(d / "strings.npy", np.array([["a", "b", "c", "d"]]))
    np.save(d / "bool.npy", np.ones((3, 4), dtype=bool))
    np.save(d / "object.npy", np.array([[1, 2, 3, None]], dtype=object), allow_pickle=True)
    np.save(d / "wrong_shape.npy", rng.normal(size=(5, 3)))
    np.savez(d / "two.npz", a=rng.normal(size=(5, 4)), b=rng.normal(size=(5, 4)))
    np.savez(d / "one.npz", features=np.load(d / "x.npy"))
    np.save(d / "zeros.npy", np.zeros((8, 4)))
    np.save(d / "large.npy", np.full((3, 4), 1000.0))
    (d / "text.npy").write_text("1 2 3 4\n")

    configs = {
        "unknown_layer": '[layer.fc_1]\nweight = "fixed<8,3>"\n',
        "not_toml": "precision = \n",
        "top_typo": 'precison = "fixed<8,3>"\n',
        "layer_typo": '[layer.fc1]\nacum = "fixed<20,8>"\n',
        "bad_format": '[layer.fc1]\nweight = "fixed<8,x>"\n',
        "bad_io": 'io = "serial"\n',
        "table_size": '[layer.fc2]\ntable_size = 1000\n',
        "auto_precision": 'precision = "auto"\n',
        "layer_not_table": "layer = 3\n",
        "entry_not_table": "[layer]\nfc1 = 3\n",
        "bad_softmax": 'softmax = "sigmoid"\n',
        "wide_weight": '[layer.fc1]\nweight = "fixed<300,100>"\n',
        "precision_number": "precision = 16\n",
        "weight_number": "[layer.fc1]\nweight = 8\n",
        "table_size_bool": "[layer.fc2]\ntable_size = true\n",
        "not_utf8": None,
    }
    for name, text in configs.items():
        if text is None:
            (d / f"{name}.toml").write_bytes(b"\xff\xfe\x00precision")
        else:
            (d / f"{name}.toml").write_text(text)

    design = d / "design"
    result = run("convert", d / "tiny.keras", "-o", design, "--precision", PRECISION)
    assert result.exit_code == 0, result.output
    return d


@pytest.fixture
def ctx(assets, tmp_path):
    """A fresh copy of the converted folder (``out``) for the case to leave untouched."""
    out = tmp_path / "out"
    shutil.copytree(assets / "design", out)
    return {"a": assets, "out": out, "tmp": tmp_path}


def snapshot(folder):
    """Every entry under ``folder`` (hidden ones too) with the hash of its bytes."""
    folder = Path(folder)
    if not folder.exists():
        return None
    if folder.is_file():
        return hashlib.sha256(folder.read_bytes()).hexdigest()
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


def leftovers(folder):
    return [p.name for p in Path(folder).parent.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


# -- the catalogue ---------------------------------------------------------------------------------
# (id, setup(ctx) -> None, args(ctx) -> list, key words every one of which the error line contains;
#  "{...}" words are formatted with the ctx paths' names)

def _design_without(name):
    def setup(c):
        (c["out"] / name).unlink()
    return setup


def _write(name, text):
    def setup(c):
        (c["out"] / name).write_text(text)
    return setup


def _foreign(c):
    (c["out"] / "notes.txt").write_text("my notes")


def _out_is_file(c):
    shutil.rmtree(c["out"])
    c["out"].write_text("I am a file")


def _convert(model, *extra):
    return lambda c: ["convert", c["a"] / model, "-o", c["out"], "--precision", PRECISION, *extra]


def _convert_cfg(config):
    return lambda c: ["convert", c["a"] / "tiny.keras", "-o", c["out"], "-c", c["a"] / f"{config}.toml"]


def _convert_precision(text):
    return lambda c: ["convert", c["a"] / "tiny.keras", "-o", c["out"], "--precision", text]


def _calibration(name, *extra):
    return lambda c: ["convert", c["a"] / "tiny.keras", "-o", c["out"], "--precision", PRECISION,
                      "--calibration", c["a"] / name, *extra]


def _predict_inputs(name):
    return lambda c: ["predict", c["out"], "--inputs", c["a"] / name, "-o", c["out"] / "y.npy"]


def _verify_inputs(name):
    return lambda c: ["verify", c["out"], "--inputs", c["a"] / name]


NOTHING = None

CASES = [
    # the model
    ("missing model", NOTHING, lambda c: ["convert", c["tmp"] / "nope.keras", "-o", c["out"]],
     ["nope.keras", "no such file"]),
    ("wrong suffix", NOTHING, _convert("model.txt"), ["model.txt", ".keras or .h5", "model.save"]),
    ("model is a folder", NOTHING, _convert("folder.keras"), ["folder.keras", "is a directory"]),
    ("corrupt .keras", NOTHING, _convert("random.keras"), ["random.keras", "not a .keras file", "save the model again"]),
    ("empty .keras", NOTHING, _convert("empty.keras"), ["empty.keras", "not a .keras file", "save the model again"]),
    ("zip without config.json", NOTHING, _convert("noconfig.keras"),
     ["noconfig.keras", "config.json", "save the model again"]),
    ("corrupt .h5", NOTHING, _convert("random.h5"), ["random.h5", "not an HDF5 file", "save the model again"]),
    ("NaN weights", NOTHING, _convert("nan.keras"), ["nan.keras", "'fc1'", "NaN or infinite", "weight", "retrain"]),
    ("infinite bias", NOTHING, _convert("inf.keras"), ["inf.keras", "'fc2'", "NaN or infinite", "bias", "retrain"]),
    ("BatchNorm negative variance", NOTHING, _convert("negvar.keras"),
     ["negvar.keras", "'bn'", "negative moving_variance", "retrain or fix"]),
    ("unsupported layer", NOTHING, _convert("up.keras"), ["up.keras", "'up'", "UpSampling2D", "supported layers"]),
    ("unsupported activation", NOTHING, _convert("tanh.keras"),
     ["tanh.keras", "'th'", "activation 'tanh'", "supported activations"]),
    ("not a chain", NOTHING, _convert("two_outputs.keras"), ["two_outputs.keras", "2 outputs", "sequential chains"]),
    ("input without a fixed shape", NOTHING, _convert("free_length.keras"),
     ["free_length.keras", "(None, 3)", "every dimension", "keras.Input(shape="]),
    ("a config given as the model", NOTHING, lambda c: ["convert", c["a"] / "bad_io.toml", "-o", c["out"]],
     ["bad_io.toml", ".keras or .h5"]),
    ("a model given as the config", NOTHING,
     lambda c: ["convert", c["a"] / "tiny.keras", "-o", c["out"], "-c", c["a"] / "tiny.keras"],
     ["tiny.keras", "not a text (UTF-8) file", "nnhdl config MODEL"]),
    # the configuration
    ("missing config", NOTHING, lambda c: ["convert", c["a"] / "tiny.keras", "-o", c["out"], "-c", c["tmp"] / "no.toml"],
     ["no.toml", "no such configuration file"]),
    ("config not TOML", NOTHING, _convert_cfg("not_toml"), ["not_toml.toml", "not valid TOML", "line 1", "nnhdl config MODEL"]),
    ("config not UTF-8", NOTHING, _convert_cfg("not_utf8"), ["not_utf8.toml", "not a text (UTF-8) file"]),
    ("unknown config layer", NOTHING, _convert_cfg("unknown_layer"),
     ["unknown_layer.toml", "'fc_1' is not in the model", "did you mean 'fc1'", "Fix the [layer.NAME]"]),
    ("top-level key typo", NOTHING, _convert_cfg("top_typo"),
     ["top_typo.toml", "unknown key 'precison'", "did you mean 'precision'", "valid keys"]),
    ("layer key typo", NOTHING, _convert_cfg("layer_typo"),
     ["layer_typo.toml", "[layer.fc1]", "unknown key 'acum'", "did you mean 'accum'", "valid keys"]),
    ("bad format in config", NOTHING, _convert_cfg("bad_format"),
     ["bad_format.toml", "[layer.fc1] weight", "fixed<8,x>", "like 'fixed<16,6>'"]),
    ("bad io in config", NOTHING, _convert_cfg("bad_io"), ["bad_io.toml", "io", "parallel, stream", "'serial'"]),
    ("bad softmax in config", NOTHING, _convert_cfg("bad_softmax"), ["bad_softmax.toml", "softmax", "table, argmax"]),
    ("table size not a power of two", NOTHING, _convert_cfg("table_size"),
     ["table_size.toml", "[layer.fc2] table_size", "power of two"]),
    ("auto default precision", NOTHING, _convert_cfg("auto_precision"),
     ["auto_precision.toml", "precision", "must be a format"]),
    ("layer not a table", NOTHING, _convert_cfg("layer_not_table"), ["layer_not_table.toml", "[layer.NAME] tables"]),
    ("layer entry not a table", NOTHING, _convert_cfg("entry_not_table"),
     ["entry_not_table.toml", "[layer.fc1]", "must be a table"]),
    ("precision a number", NOTHING, _convert_cfg("precision_number"),
     ["precision_number.toml", "precision", "a string like 'fixed<16,6>'"]),
    ("weight a number", NOTHING, _convert_cfg("weight_number"),
     ["weight_number.toml", "[layer.fc1] weight", "a string like 'fixed<16,6>'"]),
    ("table size a boolean", NOTHING, _convert_cfg("table_size_bool"),
     ["table_size_bool.toml", "[layer.fc2] table_size", "power of two"]),
    ("constant format over 62 bits", NOTHING, _convert_cfg("wide_weight"),
     ["'fc1'", "weight format fixed<300,100>", "at most 62 bits", "[layer.fc1] weight"]),
    # formats and options
    ("unparsable precision", NOTHING, _convert_precision("fixed<16;6>"), ["fixed<16;6>", "write it like"]),
    ("width 0", NOTHING, _convert_precision("fixed<0,0>"), ["precision", "fixed<0,0>", "at least 1"]),
    ("huge width", NOTHING, _convert_precision("fixed<99999999999999,2>"),
     ["precision", "too wide", "at most 1024 bits", "fixed<32,16>"]),
    ("huge integer bits", NOTHING, _convert_precision("fixed<16,99999999>"), ["precision", "out of range"]),
    ("precision too wide for constants", NOTHING, _convert_precision("fixed<300,100>"),
     ["'fc1'", "weight format fixed<300,100>", "at most 62 bits", "narrower --precision"]),
    ("unknown rounding mode", NOTHING, _convert_precision("fixed<8,3,RND_FOO>"),
     ["RND_FOO", "unknown rounding mode", "choose one of"]),
    ("unknown overflow mode", NOTHING, _convert_precision("fixed<8,3,RND,CLAMP>"),
     ["CLAMP", "unknown overflow mode", "choose one of"]),
    ("saturation bits", NOTHING, _convert_precision("ap_fixed<8,3,AP_RND,AP_SAT,2>"),
     ["saturation bits", "remove it or set it to 0"]),
    ("integer format with two numbers", NOTHING, _convert_precision("ap_int<8,3>"), ["ap_int<8,3>", "only a width"]),
    ("auto as --precision", NOTHING, _convert_precision("auto"), ["precision", "must be a format"]),
    ("bad --io", NOTHING, _convert("tiny.keras", "--io", "serial"), ["--io", "serial", "parallel", "stream"]),
    ("bad --multiplier", NOTHING, _convert("tiny.keras", "--multiplier", "lut"), ["--multiplier", "csd", "dsp"]),
    ("bad --levels-per-stage", NOTHING, _convert("tiny.keras", "--levels-per-stage", "0"),
     ["--levels-per-stage", "0"]),
    # the output folder
    ("output folder holds other files", _foreign, _convert("tiny.keras"),
     ["{out}", "nnhdl did not write", "notes.txt", "--force"]),
    ("output path is a file", _out_is_file, _convert("tiny.keras"), ["-o", "{out}", "is a file"]),
    ("output parent is a file", NOTHING,
     lambda c: ["convert", c["a"] / "tiny.keras", "-o", c["out"] / "report.json" / "sub", "--precision", PRECISION],
     ["cannot write", "choose a folder you can write to"]),
    # calibration data
    ("calibration missing", NOTHING, _calibration("nope.npy"), ["nope.npy", "no such file"]),
    ("calibration empty", NOTHING, _calibration("empty.npy"), ["empty.npy", "holds no calibration inputs", "(N, 4)"]),
    ("calibration empty 1-D", NOTHING, _calibration("flat_empty.npy"), ["flat_empty.npy", "holds no", "(N, 4)"]),
    ("calibration NaN", NOTHING, _calibration("nan.npy"), ["nan.npy", "NaN or infinite", "(2, 1)", "remove or replace"]),
    ("calibration infinite", NOTHING, _calibration("inf.npy"), ["inf.npy", "NaN or infinite"]),
    ("calibration complex", NOTHING, _calibration("complex.npy"), ["complex.npy", "complex", "X.real"]),
    ("calibration strings", NOTHING, _calibration("strings.npy"), ["strings.npy", "must be numbers", "astype(float)"]),
    ("calibration npz of two arrays", NOTHING, _calibration("two.npz"),
     ["two.npz", "2 arrays", "a, b", "numpy.save"]),
    ("calibration wrong shape", NOTHING, _calibration("wrong_shape.npy"), ["wrong_shape.npy", "(N, 4)", "(5, 3)"]),
    ("calibration not .npy", NOTHING, _calibration("text.npy"), ["text.npy", "not a readable .npy", "numpy.save"]),
    ("calibration is a folder", NOTHING, lambda c: ["convert", c["a"] / "tiny.keras", "-o", c["out"],
                                                    "--calibration", c["a"] / "folder.keras"],
     ["--calibration", "folder.keras", "directory"]),
    # inputs of predict and verify
    ("predict inputs empty", NOTHING, _predict_inputs("empty.npy"), ["empty.npy", "holds no inputs"]),
    ("predict inputs complex", NOTHING, _predict_inputs("complex.npy"), ["complex.npy", "complex", "X.real"]),
    ("predict inputs pickled objects", NOTHING, _predict_inputs("object.npy"),
     ["object.npy", "not a readable .npy", "numpy.save"]),
    ("predict inputs NaN", NOTHING, _predict_inputs("nan.npy"), ["nan.npy", "NaN or infinite"]),
    ("predict inputs wrong shape", NOTHING, _predict_inputs("wrong_shape.npy"), ["wrong_shape.npy", "(N, 4)"]),
    ("predict inputs npz of two", NOTHING, _predict_inputs("two.npz"), ["two.npz", "2 arrays", "numpy.save"]),
    ("verify inputs bool", NOTHING, _verify_inputs("bool.npy"), ["bool.npy", "must be numbers"]),
    ("verify inputs empty", NOTHING, _verify_inputs("empty.npy"), ["empty.npy", "holds no inputs"]),
    ("verify -n 0", NOTHING, lambda c: ["verify", c["out"], "-n", "0"], ["-n", "0"]),
    ("predict with a config on a converted folder", NOTHING,
     lambda c: ["predict", c["out"], "--inputs", c["a"] / "x.npy", "-o", c["tmp"] / "y.npy", "--precision", PRECISION],
     ["{out}", "already converted", "predict from the model file"]),
    ("predict output is a folder", NOTHING,
     lambda c: ["predict", c["out"], "--inputs", c["a"] / "x.npy", "-o", c["a"]],
     ["-o", "is a directory"]),
    # converted folders that are not (or no longer) what convert wrote
    ("report on a folder without graph.json", _design_without("graph.json"), lambda c: ["report", c["out"]],
     ["{out}", "graph.json", "nnhdl convert"]),
    ("predict from a folder without graph.json", _design_without("graph.json"),
     lambda c: ["predict", c["out"], "--inputs", c["a"] / "x.npy", "-o", c["tmp"] / "y.npy"],
     ["{out}", "graph.json", "nnhdl convert"]),
    ("report on a missing folder", NOTHING, lambda c: ["report", c["tmp"] / "nothing"],
     ["nothing", "no such folder", "nnhdl convert"]),
    ("report.json missing", _design_without("report.json"), lambda c: ["report", c["out"]],
     ["report.json", "is missing", "convert the model again"]),
    ("report.json not JSON", _write("report.json", "{oops"), lambda c: ["report", c["out"]],
     ["report.json", "not valid JSON", "convert the model again"]),
    ("report.json not an object", _write("report.json", "[1, 2]"), lambda c: ["report", c["out"]],
     ["report.json", "not an nnhdl report", "convert the model again"]),
    ("graph.json not JSON", _write("graph.json", "{oops"), lambda c: ["report", c["out"]],
     ["graph.json", "cannot read the saved graph"]),
    ("graph.json of another IR version", _write("graph.json", '{"nnhdl_ir": 99, "ops": []}'),
     lambda c: ["report", c["out"]], ["graph.json", "unsupported IR version 99", "convert the model again"]),
    ("graph.json not a graph", _write("graph.json", '{"nnhdl_ir": 1}'),
     lambda c: ["predict", c["out"], "--inputs", c["a"] / "x.npy", "-o", c["tmp"] / "y.npy"],
     ["graph.json", "not a graph saved by nnhdl", "convert the model again"]),
    # the config command
    ("config output is a folder", NOTHING, lambda c: ["config", c["a"] / "tiny.keras", "-o", c["out"]],
     ["-o", "{out}", "is a directory"]),
    ("config of a corrupt model", NOTHING, lambda c: ["config", c["a"] / "random.keras", "-o", c["out"] / "c.toml"],
     ["random.keras", "not a .keras file"]),
]


@pytest.mark.parametrize("name, setup, args, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(ctx, name, setup, args, words):
    if setup is not None:
        setup(ctx)
    before = snapshot(ctx["out"])
    result = run(*args(ctx))
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:") or line.startswith("Error:")]
    assert len(errors) == 1, result.output
    line = errors[0]
    for word in words:
        word = word.format(out=ctx["out"])
        assert word in line, (word, line)
    assert snapshot(ctx["out"]) == before
    assert not leftovers(ctx["out"])


# -- warnings: lossy but legal ----------------------------------------------------------------------

def _warnings(output):
    return [line for line in output.splitlines() if line.startswith("warning:")]


def test_weights_outside_the_format_warn(assets, tmp_path):
    out = tmp_path / "big"
    result = run("convert", assets / "big.keras", "-o", out, "--precision", "fixed<16,6>")
    assert result.exit_code == 0, result.output
    lines = [w for w in _warnings(result.output) if "weight values" in w]
    assert len(lines) == 1, result.output
    assert all(k in lines[0] for k in ("3 of 12 weight values of layer 'fc1'", "outside fixed<16,6>", "wrap around",
                                       "[layer.fc1] weight = \"fixed<16,31>\""))


def test_calibration_outside_the_input_format_warns(assets, tmp_path):
    result = run("convert", assets / "tiny.keras", "-o", tmp_path / "o", "--precision", PRECISION,
                 "--calibration", assets / "large.npy")
    assert result.exit_code == 0, result.output
    line, = [w for w in _warnings(result.output) if "calibration" in w]
    assert all(k in line for k in ("12 of 12 calibration values", f"input format {PRECISION} of layer 'x'",
                                   "saturate", "[layer.x] result = \"fixed<10,11,RND,SAT>\""))


def test_all_zero_calibration_warns_and_sizes_sensibly(assets, tmp_path):
    cfg = tmp_path / "auto.toml"
    cfg.write_text('precision = "fixed<12,5>"\n[layer.x]\nresult = "auto"\n[layer.fc1]\nresult = "auto"\n')
    result = run("convert", assets / "tiny.keras", "-o", tmp_path / "o", "-c", cfg, "--calibration", assets / "zeros.npy")
    assert result.exit_code == 0, result.output
    assert any("calibration inputs are all zero" in w for w in _warnings(result.output)), result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["input"]["format"] == "fixed<12,2>"  # one integer bit besides the sign, not fixed<12,-60>


def test_predict_inputs_outside_the_input_format_warn(assets, tmp_path):
    result = run("predict", assets / "design", "--inputs", assets / "large.npy", "-o", tmp_path / "y.npy")
    assert result.exit_code == 0, result.output
    line, = _warnings(result.output)
    assert all(k in line for k in ("large.npy: 12 of 12 input values", f"input format {PRECISION}", "saturate",
                                   "[layer.x] result = \"fixed<10,11,RND,SAT>\""))


def test_npz_with_one_array_is_read(assets, tmp_path):
    for name in ("x.npy", "one.npz"):
        result = run("predict", assets / "design", "--inputs", assets / name, "-o", tmp_path / f"{name}.y.npy")
        assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy.y.npy"), np.load(tmp_path / "one.npz.y.npy"))
    result = run("convert", assets / "tiny.keras", "-o", tmp_path / "o", "--calibration", assets / "one.npz",
                 "--precision", PRECISION)
    assert result.exit_code == 0, result.output


# -- the output folder policy ------------------------------------------------------------------------

def test_reconvert_replaces_the_previous_outputs(assets, tmp_path):
    out = tmp_path / "o"
    shutil.copytree(assets / "design", out)
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(["tiny.v", "tiny.il", "graph.json", "graph.npz", "options.json", "report.json"])
    # what build, synth and verify write into the folder: derived from the old design
    for derived in ("build/ulx3s-85f-timing/top.bit", "synth-ecp5/synth-report.json", ".nnhdl-sim/icarus/sim.vvp"):
        (out / derived).parent.mkdir(parents=True)
        (out / derived).write_text("old")
    (out / "tiny-icarus.fst").write_text("old")
    result = run("convert", assets / "tiny.keras", "-o", out, "--precision", PRECISION, "--top", "other")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MANIFEST, "other.v", "other.il", "graph.json", "graph.npz", "options.json", "report.json"])
    assert json.loads((out / MANIFEST).read_text())["top"] == "other"


def test_force_keeps_other_files(assets, tmp_path):
    """--force writes beside the user's files and never removes them, even those named like
    nnhdl's own folders (a project's build/), also when converting again."""
    out = tmp_path / "o"
    (out / "build").mkdir(parents=True)
    (out / "build" / "Makefile").write_text("all:")
    (out / "notes.txt").write_text("mine")
    for top in ("tiny", "again"):
        result = run("convert", assets / "tiny.keras", "-o", out, "--precision", PRECISION, "--force", "--top", top)
        assert result.exit_code == 0, result.output
        assert (out / "notes.txt").read_text() == "mine" and (out / "build" / "Makefile").exists()
        assert (out / f"{top}.v").exists()
    assert not (out / "tiny.v").exists()
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["others"] == ["build", "notes.txt"] and "notes.txt" not in manifest["files"]
    result = run("convert", assets / "tiny.keras", "-o", out, "--precision", PRECISION)
    assert result.exit_code == 2 and "build, notes.txt" in result.output


def test_empty_folder_and_older_design_folders_are_nnhdls(assets, tmp_path):
    from nnhdl.outputs import check_design_folder
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_design_folder(empty) == []
    legacy = tmp_path / "legacy"  # converted by an nnhdl without manifests: report.json lists the files
    shutil.copytree(assets / "design", legacy)
    (legacy / MANIFEST).unlink()
    assert sorted(check_design_folder(legacy)) == sorted(["tiny.v", "tiny.il", "graph.json", "graph.npz", "options.json",
                                                          "report.json"])


def test_stale_temporary_folders_are_swept(assets, tmp_path):
    from nnhdl.outputs import staged_outputs
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".o.nnhdl-{dead}-abc.tmp"
    stale.mkdir()
    (stale / "big.il").write_text("x" * 1000)
    alive = tmp_path / f".o.nnhdl-{os.getppid()}-abc.tmp"  # a live process (maybe converting right now)
    alive.mkdir()
    old = tmp_path / ".o.abcd1234.tmp"  # an earlier nnhdl's name, two hours old
    old.mkdir()
    os.utime(old, (os.path.getmtime(old) - 7200,) * 2)
    other = tmp_path / ".p.nnhdl-999999999-abc.tmp"  # another output's
    other.mkdir()
    with staged_outputs(tmp_path / "o") as tmp:
        (tmp / "f").write_text("new")
    assert not stale.exists() and not old.exists() and alive.exists() and other.exists()
    assert (tmp_path / "o" / "f").read_text() == "new"


def test_sigterm_removes_the_temporary_folder(tmp_path):
    code = textwrap.dedent(f"""
        import time
        from nnhdl.outputs import staged_outputs
        with staged_outputs({str(tmp_path / 'o')!r}) as tmp:
            (tmp / "big.v").write_text("x" * 100000)
            print(tmp, flush=True)
            time.sleep(60)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.is_dir() and tmp.name.startswith(".o.nnhdl-")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert not tmp.exists() and not (tmp_path / "o").exists()
    assert not leftovers(tmp_path / "o")


def test_sigterm_handler_is_restored(tmp_path):
    from nnhdl.outputs import staged_outputs
    before = signal.getsignal(signal.SIGTERM)
    with staged_outputs(tmp_path / "o"):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
