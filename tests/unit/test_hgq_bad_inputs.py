"""Bad HGQ2 (and QKeras) models on the command line: each stops with exit code 2 and exactly one
``error:`` line naming the file, the layer and the fix, no traceback, and the output folder
exactly as it was (every file's hash) with no temporary folder left beside it — the same
contract as the catalogue in ``test_bad_inputs.py``, whose helpers this file uses."""


import pytest

from tests.unit.test_bad_inputs import ctx, leftovers, run, snapshot  # noqa: F401 (ctx: a fixture)
from tests.unit.test_frontend_hgq import _qkeras_file

pytestmark = [pytest.mark.keras,
              pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    keras = pytest.importorskip("keras")
    pytest.importorskip("hgq")
    from hgq.config import QuantizerConfig
    from hgq.layers import QAveragePooling2D, QConv2D, QDense, QEinsumDense
    d = tmp_path_factory.mktemp("hgq_assets")
    keras.utils.set_random_seed(5)

    def save(name, *layers, shape=(4,)):
        keras.Sequential([keras.Input(shape, name="x"), *layers], name=name).save(d / f"{name}.keras")

    save("good", QDense(3, activation="relu", name="fc1"), QDense(2, name="fc2"))
    save("einsum", QDense(4, name="fc"), QEinsumDense("bi,ij->bj", output_shape=3, name="einsum"))
    save("avgpool", QConv2D(2, (2, 2), name="conv"), QAveragePooling2D((2, 2), name="avg"),
         keras.layers.Flatten(), QDense(2), shape=(4, 4, 1))
    save("wrap_sm", QDense(4, name="fc", iq_conf=QuantizerConfig("kif", "datalane", overflow_mode="WRAP_SM")))
    # (hgq2 0.2.0 cannot build a layer with a float quantizer, QuantizerConfig("float"): no case for it)
    save("plain", QDense(4, name="fc"), keras.layers.Dense(2, name="plain"))
    save("softmax", QDense(3, name="out", activation="softmax"))
    save("no_iq", QDense(3, name="fc", enable_iq=False), QDense(2))
    _qkeras_file(d / "qkeras.keras")
    result = run("convert", d / "good.keras", "-o", d / "design")
    assert result.exit_code == 0, result.output
    return d


CASES = [
    ("unsupported HGQ2 layer", "einsum", ["einsum.keras", "layer 'einsum' (QEinsumDense)",
                                          "an HGQ2 layer nnhdl does not convert yet", "supported HGQ2 layers: QDense",
                                          "rebuild the model with those"]),
    ("HGQ2 average pooling", "avgpool", ["avgpool.keras", "layer 'avg' (QAveragePooling2D)",
                                         "QMaxPooling2D", "rebuild the model"]),
    ("unsupported overflow mode", "wrap_sm", ["wrap_sm.keras", "layer 'fc' (QDense)", "overflow mode WRAP_SM",
                                             "SAT_SYM", "re-train with one of them"]),
    ("float layer in an HGQ2 model", "plain", ["plain.keras", "layer 'plain' (Dense)", "float Keras layer",
                                               "use its HGQ2 version"]),
    ("float softmax", "softmax", ["softmax.keras", "layer 'out' (QDense)", "softmax",
                                  "train it with a linear output"]),
    ("no input quantizer", "no_iq", ["no_iq.keras", "layer 'fc' (QDense)", "before any HGQ2 quantizer",
                                     "enable_iq=True"]),
    ("QKeras model", "qkeras", ["qkeras.keras", "a QKeras model (QActivation, QDense, quantized_bits",
                                "QKeras needs Keras 2", "re-train with HGQ2", "precision config"]),
]


@pytest.mark.parametrize("name, model, words", CASES, ids=[c[0] for c in CASES])
def test_bad_hgq_model(ctx, name, model, words):
    before = snapshot(ctx["out"])
    result = run("convert", ctx["a"] / f"{model}.keras", "-o", ctx["out"])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1, result.output
    for word in words:
        assert word in errors[0], (word, errors[0])
    assert snapshot(ctx["out"]) == before
    assert not leftovers(ctx["out"])


def test_bad_hgq_model_into_a_new_folder_writes_nothing(assets, tmp_path):
    result = run("convert", assets / "einsum.keras", "-o", tmp_path / "new")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "new").exists() and not leftovers(tmp_path / "new")

