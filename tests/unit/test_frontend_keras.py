"""The Keras frontend: layer mapping, file round trips (.keras / .h5), numerics through
``nnhdl.passes.lower`` + the reference model, and every error path."""

import inspect
import re
import subprocess
import sys

import numpy as np
import pytest

from nnhdl import ir
from nnhdl.config import PrecisionConfig
from nnhdl.fixed import FixedFormat
from nnhdl.frontend.keras import FrontendError, _sanitize

# Keras' own saving code trips numpy 2's __array__(copy=...) deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

WIDE = PrecisionConfig(default=FixedFormat.parse("fixed<24,10>"))


def test_import_does_not_load_tensorflow(tmp_path):
    """Importing nnhdl (and failing on a bad path) must not import TensorFlow or Keras."""
    code = ("import sys, nnhdl, nnhdl.frontend, nnhdl.frontend.keras, nnhdl.passes, nnhdl.reference\n"
            "from nnhdl.frontend.keras import FrontendError, load\n"
            f"for bad_path in ({str(tmp_path / 'missing.keras')!r}, {str(tmp_path)!r}):\n"
            "    try:\n"
            "        load(bad_path)\n"
            "    except FrontendError:\n"
            "        pass\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
            "print(bad)\n"
            "sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name, ident", [
    ("jet_tagger", "jet_tagger"), ("my model-1", "my_model_1"), ("2net", "n_2net"), ("--", "network"),
    ("a.b/c", "a_b_c"), ("_x y!", "_x_y"), ("module", "module_net"), ("wire", "wire_net")])
def test_sanitize(name, ident):
    assert _sanitize(name) == ident
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", _sanitize(name))


# -- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def _set_bn_stats(layer, rng):
    n = layer.moving_mean.shape[0]
    values = {"gamma": rng.uniform(0.5, 1.5, n), "beta": rng.normal(0, 0.3, n),
              "moving_mean": rng.normal(0, 0.5, n), "moving_variance": rng.uniform(0.5, 2.0, n)}
    layer.set_weights([values[v.path.split("/")[-1]] for v in layer.weights])


@pytest.fixture(scope="module")
def mlp(keras):
    """Every element-wise activation kind, BatchNorm after a linear Dense, a softmax Dense."""
    keras.utils.set_random_seed(1)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((6,), name="features"),
        L.Dense(10, activation="relu", name="fc1"),
        L.Dense(10, name="fc2"),
        L.BatchNormalization(name="bn"),
        L.LeakyReLU(negative_slope=0.1, name="lrelu"),
        L.Dropout(0.3, name="drop"),
        L.Dense(8, activation="leaky_relu", name="fc3"),
        L.Dense(8, use_bias=False, name="fc4"),
        L.ReLU(negative_slope=0.05, name="relu_slope"),
        L.Dense(8, activation="linear", name="fc5"),
        L.Activation("relu", name="act_relu"),
        L.Dense(6, name="fc6"),
        L.Activation("leaky_relu", name="act_leaky"),
        L.Activation("linear", name="act_linear"),
        L.ReLU(name="relu_plain"),
        L.Dense(5, activation="softmax", name="out"),
    ], name="test-mlp")
    _set_bn_stats(model.get_layer("bn"), np.random.default_rng(1))
    return model


@pytest.fixture(scope="module")
def mlp_files(mlp, tmp_path_factory):
    d = tmp_path_factory.mktemp("mlp")
    paths = {}
    for ext in ("keras", "h5"):
        paths[ext] = d / f"mlp.{ext}"
        mlp.save(paths[ext])
    return paths


@pytest.fixture(scope="module")
def flat_model(keras):
    """A 2-D input, the inference no-op layers, Flatten, a Softmax layer."""
    keras.utils.set_random_seed(2)
    L = keras.layers
    return keras.Sequential([
        keras.Input((4, 3)),
        L.SpatialDropout1D(0.2, name="sdrop"),
        L.GaussianNoise(0.1, name="noise"),
        L.GaussianDropout(0.1, name="gdrop"),
        L.AlphaDropout(0.1, name="adrop"),
        L.Flatten(name="flat"),
        L.Dense(5, name="fc"),
        L.Softmax(name="sm"),
    ], name="flat_model")


@pytest.fixture(scope="module")
def x6():
    return np.random.default_rng(7).normal(size=(64, 6)).astype(np.float32)


def _kinds(graph):
    return [(type(op).__name__, op.name) for op in graph.ops]


def _check_chain(graph):
    assert graph.is_chain()
    assert graph.outputs == (graph.ops[-1].name,)
    assert all(op.fmt is None for op in graph.ops)


# -- mapping -----------------------------------------------------------------------------------

MLP_OPS = [("Input", "features"), ("Dense", "fc1"), ("Dense", "fc2"), ("BatchNorm", "bn"), ("Activation", "lrelu"),
           ("Dropout", "drop"), ("Dense", "fc3"), ("Dense", "fc4"), ("Activation", "relu_slope"), ("Dense", "fc5"),
           ("Activation", "act_relu"), ("Dense", "fc6"), ("Activation", "act_leaky"), ("Activation", "act_linear"),
           ("Activation", "relu_plain"), ("Dense", "out"), ("Softmax", "out_softmax")]


def _check_mlp(graph, model, source):
    import keras
    _check_chain(graph)
    assert _kinds(graph) == MLP_OPS
    assert graph.name == "test_mlp"
    assert graph.meta == {"source": source, "framework": f"keras {keras.__version__}"}
    shapes = {op.name: op.shape for op in graph.ops}
    assert shapes["features"] == (6,) and shapes["fc4"] == (8,) and shapes["out_softmax"] == (5,)
    for op in graph.ops:
        assert op.origin == (op.name if op.name != "out_softmax" else "out")
    acts = {op.name: (op.activation, op.alpha) for op in graph.ops if isinstance(op, ir.Dense)}
    assert acts == {"fc1": ("relu", 0.0), "fc2": ("linear", 0.0), "fc3": ("leaky_relu", 0.2),
                    "fc4": ("linear", 0.0), "fc5": ("linear", 0.0), "fc6": ("linear", 0.0), "out": ("linear", 0.0)}
    funcs = {op.name: (op.function, op.alpha) for op in graph.ops if isinstance(op, ir.Activation)}
    assert funcs == {"lrelu": ("leaky_relu", pytest.approx(0.1)), "relu_slope": ("leaky_relu", pytest.approx(0.05)),
                     "act_relu": ("relu", 0.0), "act_leaky": ("leaky_relu", 0.2), "act_linear": ("linear", 0.0),
                     "relu_plain": ("relu", 0.0)}
    out, sm = graph.op("out"), graph.op("out_softmax")
    assert out.result_key == "logits" and sm.result_key == "result" and sm.inputs == ("out",)
    for name in ("fc1", "fc3", "out"):
        w, b = model.get_layer(name).get_weights()
        op = graph.op(name)
        assert op.weight.dtype == np.float64 and op.weight.shape == w.shape
        np.testing.assert_array_equal(op.weight, w)
        np.testing.assert_array_equal(op.bias, b)
    fc4 = graph.op("fc4")
    np.testing.assert_array_equal(fc4.weight, model.get_layer("fc4").get_weights()[0])
    np.testing.assert_array_equal(fc4.bias, np.zeros(8))
    bn, kbn = graph.op("bn"), model.get_layer("bn")
    np.testing.assert_array_equal(bn.gamma, kbn.gamma.numpy())
    np.testing.assert_array_equal(bn.beta, kbn.beta.numpy())
    np.testing.assert_array_equal(bn.mean, kbn.moving_mean.numpy())
    np.testing.assert_array_equal(bn.variance, kbn.moving_variance.numpy())
    assert bn.epsilon == pytest.approx(kbn.epsilon)


@pytest.mark.keras
def test_in_memory_model(mlp):
    from nnhdl.frontend.keras import load
    _check_mlp(load(mlp), mlp, "<keras.Model>")


@pytest.mark.keras
@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_file_round_trip(mlp, mlp_files, ext):
    from nnhdl.frontend.keras import load
    path = mlp_files[ext]
    _check_mlp(load(path), mlp, str(path))
    _check_mlp(load(str(path)), mlp, str(path))


@pytest.mark.keras
def test_leaky_relu_default_is_keras_default(keras):
    from nnhdl.frontend.keras import _leaky_relu_default
    default = inspect.signature(keras.activations.leaky_relu).parameters["negative_slope"].default
    assert _leaky_relu_default(keras) == default == 0.2


@pytest.mark.keras
def test_reference_matches_keras(mlp, mlp_files, x6):
    """BN folded, activations fused, wide formats: the fixed-point logits are Keras' to ~1e-3."""
    from nnhdl import passes, reference
    from nnhdl.frontend.keras import keras_predict, load
    graph = load(mlp_files["keras"])
    q = passes.lower(graph, WIDE)
    assert not any(isinstance(op, (ir.BatchNorm, ir.Dropout)) for op in q.ops)
    assert _kinds(q)[:3] == [("Input", "features"), ("Dense", "fc1"), ("Dense", "fc2")]
    assert q.op("fc2").activation == "leaky_relu" and q.op("fc2").result_origin == "lrelu"
    values = reference.trace(q, x6)
    logits = reference.to_real(q, values["out"], "out")
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected = keras_predict(mlp, x6)
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), expected, atol=1e-3)
    np.testing.assert_allclose(keras_predict(mlp_files["h5"], x6), expected, atol=1e-6)
    # the (coarse, hls4ml-style) table softmax still tracks the probabilities once its normalised input
    # resolves these small logits (hls4ml 1.3's default inp_norm for fixed<24,10> has 0.5-wide buckets)
    fine = PrecisionConfig.from_dict({"precision": "fixed<24,10>",
                                      "layer": {"out": {"inp_norm": "ufixed<12,3,TRN,SAT>"}}})
    probs = reference.to_real(q, reference.trace(passes.lower(graph, fine), x6)["out_softmax"])
    assert np.abs(probs - expected).max() < 0.35
    assert np.mean(probs.argmax(axis=1) == expected.argmax(axis=1)) > 0.8


@pytest.mark.keras
def test_linear_output_matches_keras(keras, x6):
    from nnhdl import passes, reference
    from nnhdl.frontend.keras import keras_predict, load
    keras.utils.set_random_seed(3)
    L = keras.layers
    model = keras.Sequential([keras.Input((6,)), L.Dense(12, activation="relu", name="fc1"),
                              L.Dense(12, name="fc2"), L.BatchNormalization(name="bn"), L.ReLU(name="r"),
                              L.Dense(3, name="out")])
    _set_bn_stats(model.get_layer("bn"), np.random.default_rng(3))
    q = passes.lower(load(model), WIDE)
    got = reference.to_real(q, reference.evaluate(q, x6))
    np.testing.assert_allclose(got, keras_predict(model, x6), atol=1e-3)


@pytest.mark.keras
def test_flatten_noops_softmax_layer(flat_model, tmp_path):
    from nnhdl import passes, reference
    from nnhdl.frontend.keras import keras_predict, load
    path = tmp_path / "flat.keras"
    flat_model.save(path)
    graph = load(path)
    _check_chain(graph)
    assert _kinds(graph) == [("Input", "input"), ("Dropout", "sdrop"), ("Dropout", "noise"), ("Dropout", "gdrop"),
                             ("Dropout", "adrop"), ("Flatten", "flat"), ("Dense", "fc"), ("Softmax", "sm")]
    assert [op.shape for op in graph.ops] == [(4, 3)] * 5 + [(12,), (5,), (5,)]
    assert graph.op("input").origin == "input"
    assert graph.op("sm").result_key == "result" and graph.op("fc").result_key == "result"
    x = np.random.default_rng(0).normal(size=(20, 4, 3))
    q = passes.lower(graph, PrecisionConfig(default=FixedFormat.parse("fixed<24,10>"), softmax="argmax"))
    assert [type(op).__name__ for op in q.ops] == ["Input", "Flatten", "Dense", "Softmax"]
    got = reference.evaluate(q, x)[:, 0]
    np.testing.assert_array_equal(got, keras_predict(flat_model, x).argmax(axis=1))


@pytest.mark.keras
def test_softmax_activation_layer_and_bn_without_scale_center(keras):
    from nnhdl.frontend.keras import load
    L = keras.layers
    model = keras.Sequential([keras.Input((5,), name="x"), L.Dense(4, name="fc"),
                              L.BatchNormalization(center=False, scale=False, name="bn"),
                              L.Activation("softmax", name="act")])
    graph = load(model)
    assert _kinds(graph) == [("Input", "x"), ("Dense", "fc"), ("BatchNorm", "bn"), ("Softmax", "act")]
    bn = graph.op("bn")
    np.testing.assert_array_equal(bn.gamma, np.ones(4))
    np.testing.assert_array_equal(bn.beta, np.zeros(4))
    assert bn.gamma.dtype == bn.beta.dtype == bn.mean.dtype == np.float64


@pytest.mark.keras
def test_functional_chain_and_input_names(keras, tmp_path):
    from nnhdl.frontend.keras import load
    L = keras.layers
    inp = keras.Input((3,), name="pixels")
    out = L.Dense(2, activation="relu", name="fc")(L.Dense(4, name="fc0")(inp))
    graph = load(keras.Model(inp, out, name="func"))
    assert _kinds(graph) == [("Input", "pixels"), ("Dense", "fc0"), ("Dense", "fc")]
    assert graph.op("pixels").origin == "pixels" and graph.op("fc0").inputs == ("pixels",)
    # auto-generated input names (input_layer_<n>, depending on the session) become "input"
    inp = keras.Input((3,))
    auto = keras.Model(inp, L.Dense(2, name="fc")(inp))
    built = keras.Sequential([L.Dense(2, name="fc")])
    built.build((None, 3))
    for model in (auto, built):
        for ext in ("keras", "h5"):
            path = tmp_path / f"{model.name}.{ext}"
            model.save(path)
            g = load(path)
            assert _kinds(g) == [("Input", "input"), ("Dense", "fc")]
            assert g.input.shape == (3,) and g.input.origin == "input"
    # a layer really named "input" keeps its name; the auto-named input keeps Keras' name
    clash = keras.Sequential([keras.Input((3,)), L.Dense(2, name="input"), L.Dense(2, name="out_softmax"),
                              L.Dense(2, activation="softmax", name="out")])
    kinds = _kinds(load(clash))
    assert kinds[0][0] == "Input" and re.fullmatch(r"input_layer(_\d+)?", kinds[0][1])
    assert kinds[1:] == [("Dense", "input"), ("Dense", "out_softmax"), ("Dense", "out"), ("Softmax", "out_softmax_1")]


@pytest.mark.keras
def test_graph_save_load(mlp, tmp_path):
    from nnhdl.frontend.keras import load
    graph = load(mlp)
    graph.save(tmp_path / "graph")
    again = ir.Graph.load(tmp_path / "graph")
    assert _kinds(again) == MLP_OPS and again.name == graph.name and again.meta == graph.meta


# -- errors ------------------------------------------------------------------------------------

@pytest.mark.keras
def test_missing_file(tmp_path):
    from nnhdl.frontend.keras import load
    path = tmp_path / "nope.keras"
    with pytest.raises(FrontendError, match=re.escape(f"{path}: no such file")):
        load(path)


@pytest.mark.keras
def test_wrong_suffix(tmp_path):
    from nnhdl.frontend.keras import load
    path = tmp_path / "model.pb"
    path.write_bytes(b"x")
    with pytest.raises(FrontendError, match=re.escape(str(path)) + r".*\.keras or \.h5"):
        load(path)
    folder = tmp_path / "saved.keras"
    folder.mkdir()
    with pytest.raises(FrontendError, match="is a directory"):
        load(folder)


@pytest.mark.keras
@pytest.mark.parametrize("ext", ["keras", "h5"])
@pytest.mark.parametrize("damage", ["random", "truncated", "empty"])
def test_unreadable_file(mlp_files, tmp_path, ext, damage):
    from nnhdl.frontend.keras import keras_predict, load
    path = tmp_path / f"bad.{ext}"
    good = mlp_files[ext].read_bytes()
    data = {"random": np.random.default_rng(0).bytes(5000), "truncated": good[:len(good) // 2], "empty": b""}[damage]
    path.write_bytes(data)
    # the container check (zip / HDF5 signature) or Keras itself: never Keras' "File not found"
    pattern = re.escape(str(path)) + (r": (not a \.keras file|a damaged zip archive|not an HDF5 file|"
                                      r"could not be read as a Keras model \(\w+).*save the model again|"
                                      r": could not be read as a Keras model \(\w+")
    with pytest.raises(FrontendError, match=pattern):
        load(path)
    with pytest.raises(FrontendError, match=pattern):
        keras_predict(path, np.zeros((1, 6)))


@pytest.mark.keras
def test_unsupported_layer(keras, tmp_path):
    from nnhdl.frontend.keras import load
    L = keras.layers
    model = keras.Sequential([keras.Input((4,)), L.Dense(4, name="fc"), L.LayerNormalization(name="ln")])
    msg = (r"layer 'ln' \(LayerNormalization\) is not supported; supported layers: InputLayer, Dense, Activation, "
           r"ReLU, LeakyReLU, BatchNormalization, Dropout, Flatten, Softmax")
    with pytest.raises(FrontendError, match="^" + msg):
        load(model)
    path = tmp_path / "ln.keras"
    model.save(path)
    with pytest.raises(FrontendError, match="^" + re.escape(f"{path}: ") + msg):
        load(path)


@pytest.mark.keras
@pytest.mark.parametrize("kind", ["dense", "activation_layer"])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "gelu"])
def test_unsupported_activation(keras, kind, act):
    from nnhdl.frontend.keras import load
    L = keras.layers
    layer = L.Dense(3, activation=act, name="fc") if kind == "dense" else L.Activation(act, name="fc")
    cls = "Dense" if kind == "dense" else "Activation"
    model = keras.Sequential([keras.Input((3,)), layer])
    with pytest.raises(FrontendError, match=rf"layer 'fc' \({cls}\) has activation '{act}'.*"
                                            r"supported activations: linear, relu, leaky_relu, softmax"):
        load(model)


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore:The object being serialized includes a `lambda`")
def test_custom_activation_function(keras):
    from nnhdl.frontend.keras import load

    def relu(x):  # same name as the built-in, but not it
        return keras.ops.relu(x) * 2

    for fn, shown in ((relu, "relu"), (lambda x: x, "<lambda>")):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation=fn, name="fc")])
        with pytest.raises(FrontendError, match=rf"'fc' \(Dense\) has activation '{shown}'"):
            load(model)


@pytest.mark.keras
def test_dense_needs_flat_input(keras):
    from nnhdl.frontend.keras import load
    model = keras.Sequential([keras.Input((4, 3)), keras.layers.Dense(2, name="fc")])
    with pytest.raises(FrontendError, match=r"layer 'fc' \(Dense\) reads a tensor of shape \(4, 3\).*Add a Flatten"):
        load(model)


@pytest.mark.keras
@pytest.mark.parametrize("kwargs, arg", [({"max_value": 6.0, "negative_slope": 0.1}, "max_value=6 with a negative slope"),
                                         ({"threshold": 0.5}, "threshold=0.5")])
def test_relu_arguments(keras, kwargs, arg):
    from nnhdl.frontend.keras import load
    model = keras.Sequential([keras.Input((3,)), keras.layers.ReLU(name="r", **kwargs)])
    with pytest.raises(FrontendError, match=rf"layer 'r' \(ReLU\) sets {re.escape(arg)}.* which is not supported"):
        load(model)


@pytest.mark.keras
def test_axis_must_be_last(keras):
    from nnhdl.frontend.keras import load
    L = keras.layers
    for layer, cls in ((L.Softmax(axis=1, name="s"), "Softmax"), (L.BatchNormalization(axis=1, name="s"),
                                                                   "BatchNormalization")):
        model = keras.Sequential([keras.Input((4, 3)), layer])
        with pytest.raises(FrontendError, match=rf"layer 's' \({cls}\) .*axis=1.*only the last axis"):
            load(model)
    # the last axis given as a positive index is fine
    ok = keras.Sequential([keras.Input((4, 3)), L.Softmax(axis=2, name="s"), L.BatchNormalization(axis=2, name="b")])
    assert _kinds(load(ok))[1:] == [("Softmax", "s"), ("BatchNorm", "b")]


@pytest.mark.keras
def test_branches_are_rejected(keras, tmp_path):
    from nnhdl.frontend.keras import load
    L = keras.layers
    x = keras.Input((3,))
    a, b = L.Dense(3, name="a")(x), L.Dense(3, name="b")(x)
    branch = keras.Model(x, L.Add(name="add")([a, b]))
    x1, x2 = keras.Input((3,)), keras.Input((3,))
    two_in = keras.Model([x1, x2], L.Dense(2, name="d")(L.Concatenate()([x1, x2])))
    s = L.Dense(3, name="shared")
    x = keras.Input((3,))
    shared = keras.Model(x, s(s(x)))
    x = keras.Input((3,))
    two_out = keras.Model(x, [L.Dense(2)(x), L.Dense(1)(x)])
    for model in (branch, two_in, shared, two_out):
        with pytest.raises(FrontendError, match="only sequential chains of layers .* are supported for now"):
            load(model)
    path = tmp_path / "branch.h5"
    branch.save(path)
    with pytest.raises(FrontendError, match=re.escape(f"{path}: ") + r"layer 'b' \(Dense\) does not read"):
        load(path)


@pytest.mark.keras
def test_input_shape_must_be_fixed(keras):
    from nnhdl.frontend.keras import load
    model = keras.Sequential([keras.Input((None, 3), name="seq"), keras.layers.Flatten()])
    with pytest.raises(FrontendError, match=r"has shape \(None, 3\); every dimension except the batch must be fixed"):
        load(model)


@pytest.mark.keras
def test_unbuilt_model_and_wrong_type(keras):
    from nnhdl.frontend.keras import load
    with pytest.raises(FrontendError, match="has no defined input.*keras.Input"):
        load(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(FrontendError, match="expected a path to a .keras or .h5 file or a keras.Model, not int"):
        load(42)
