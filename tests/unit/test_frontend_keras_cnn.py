"""Keras CNN layers: the float graph equals Keras, and unsupported arguments name the layer."""

import numpy as np
import pytest

from nnhdl.config import PrecisionConfig
from nnhdl.frontend.keras import FrontendError, load
from nnhdl.passes import lower
from nnhdl.reference import evaluate, to_real

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore:__array__ implementation")]


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def _matches_keras(model, x):
    """Lowered at 40 bits, the reference model is Keras up to float rounding."""
    q = lower(load(model), PrecisionConfig.from_dict({"precision": "fixed<40,14>"}))
    y = to_real(q, evaluate(q, x))
    k = np.asarray(model.predict(x, verbose=0)).reshape(y.shape)
    assert np.max(np.abs(y - k)) < 1e-4
    return q


def test_2d_layers_match_keras(keras, rng):
    L = keras.layers
    keras.utils.set_random_seed(3)
    m = keras.Sequential([
        keras.Input((9, 7, 3)), L.ZeroPadding2D(((1, 0), (2, 1))), L.Conv2D(4, 3, strides=(2, 1), padding="same"),
        L.BatchNormalization(), L.ReLU(), L.DepthwiseConv2D(2, depth_multiplier=2, padding="same"),
        L.AveragePooling2D(2, padding="same"), L.SeparableConv2D(5, (2, 3), activation="relu", name="sep"),
        L.MaxPooling2D((2, 1), strides=1), L.Reshape((-1, 5)), L.Conv1D(3, 2, padding="causal"),
        L.GlobalMaxPooling1D(), L.Dense(4)])
    m.layers[2].set_weights([rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4)])
    q = _matches_keras(m, rng.normal(size=(16, 9, 7, 3)))
    kinds = [type(op).__name__ for op in q.ops]
    assert kinds == ["Input", "Pad", "Conv", "Conv", "Pool", "Conv", "Conv", "Pool", "Reshape", "Conv", "Pool", "Dense"]
    assert [op.name for op in q.ops if op.origin == "sep_depthwise"] == ["sep_depthwise"]
    assert q.op("sep_depthwise").depthwise and q.op("sep").activation == "relu"


def test_1d_layers_match_keras(keras, rng):
    L = keras.layers
    m = keras.Sequential([keras.Input((30, 2)), L.Conv1D(4, 5, strides=2, padding="same", activation="relu"),
                          L.AveragePooling1D(3, strides=2), L.ZeroPadding1D(2), L.Conv1D(3, 3),
                          L.MaxPooling1D(2, padding="same"), L.GlobalAveragePooling1D()])
    _matches_keras(m, rng.normal(size=(16, 30, 2)))


def test_global_average_2d(keras, rng):
    m = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.GlobalAveragePooling2D()])
    _matches_keras(m, rng.normal(size=(8, 6, 6, 2)))


@pytest.mark.parametrize("make, message", [
    (lambda L: L.Conv2D(2, 3, dilation_rate=2, name="c"), "layer 'c' (Conv2D) uses dilation_rate=(2, 2); only 1"),
    (lambda L: L.Conv2D(2, 3, groups=2, name="c"), "layer 'c' (Conv2D) uses groups=2; only groups=1"),
    (lambda L: L.MaxPooling2D(2, data_format="channels_first", name="p"),
     "layer 'p' (MaxPooling2D) uses data_format='channels_first'; only 'channels_last'"),
    (lambda L: L.GlobalAveragePooling2D(keepdims=True, name="g"), "layer 'g' (GlobalAveragePooling2D) uses keepdims"),
])
def test_unsupported_arguments(keras, make, message):
    m = keras.Sequential([keras.Input((6, 6, 4)), make(keras.layers)])
    with pytest.raises(FrontendError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(m)


def test_reshape_of_a_flat_tensor_to_an_image(keras):
    m = keras.Sequential([keras.Input((16,)), keras.layers.Dense(12), keras.layers.Reshape((6, 2)),
                          keras.layers.Conv1D(2, 2, name="c")])
    ops = load(m).ops
    assert [type(op).__name__ for op in ops][-2:] == ["Reshape", "Conv"] and ops[-1].in_shape == (1, 6, 2)


def test_dense_on_an_image_is_refused(keras):
    m = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Dense(3, name="d")])
    with pytest.raises(FrontendError, match="layer 'd' .*Add a Flatten layer before it"):
        load(m)


# -- BatchNormalization after an activation --------------------------------------------------------

def _set_bn(layer, rng):
    n = layer.moving_mean.shape[0]
    values = {"gamma": rng.uniform(0.5, 2, n), "beta": rng.normal(0, 0.5, n),
              "moving_mean": rng.normal(0, 0.5, n), "moving_variance": rng.uniform(0.3, 2.0, n)}
    layer.set_weights([values[v.path.split("/")[-1]] for v in layer.weights])


def _rtl_equals_reference(q, rng, io="parallel", n=6):
    """The Amaranth design of ``q`` equals the reference bit for bit, at the reported latency."""
    from nnhdl.convert import Design
    from nnhdl.layers import Network
    from nnhdl.verify import verify_design
    net = Network(q, io=io)
    fmt = q.input.fmt
    x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(n,) + tuple(q.input.shape))
    result = verify_design(Design(q, net), x, seed=1, gap=0.3, stall=0.3)
    assert result.passed, (result.mismatches[:2], result.latencies, net.latency)


def test_batchnorm_after_dense_relu(keras, rng):
    """Dense(relu) -> BatchNormalization -> Dense: the BatchNorm is folded into the next Dense
    (W' = diag(g) W, b' = b + c W); the float algebra matches Keras, and the RTL the reference."""
    L = keras.layers
    m = keras.Sequential([keras.Input((5,)), L.Dense(6, activation="relu", name="fc1"),
                          L.BatchNormalization(name="bn"), L.Dense(3, name="fc2")])
    _set_bn(m.get_layer("bn"), rng)
    q = _matches_keras(m, rng.normal(size=(32, 5)))
    assert [(type(op).__name__, op.name) for op in q.ops] == [("Input", "input"), ("Dense", "fc1"), ("Dense", "fc2")]
    small = lower(load(m), PrecisionConfig.from_dict({"precision": "fixed<8,4,RND,SAT>"}))
    _rtl_equals_reference(small, rng)


def test_batchnorm_after_conv_relu_before_padded_conv(keras, rng):
    """Conv2D(relu) -> BatchNormalization -> Conv2D(padding="same"): folding into the padded
    convolution would be wrong at the border (a padded zero is not normalized), so the BatchNorm
    is a depthwise 1x1 convolution of its own; both I/O styles equal the reference."""
    L = keras.layers
    m = keras.Sequential([keras.Input((5, 4, 2)), L.Conv2D(3, 2, activation="relu", name="c1"),
                          L.BatchNormalization(name="bn"), L.Conv2D(2, 3, padding="same", name="c2")])
    _set_bn(m.get_layer("bn"), rng)
    q = _matches_keras(m, rng.normal(size=(16, 5, 4, 2)))
    bn = q.op("bn")
    assert [(type(op).__name__, op.name) for op in q.ops] == [("Input", "input"), ("Conv", "c1"), ("Conv", "bn"),
                                                              ("Conv", "c2")]
    assert bn.depthwise and bn.kernel == (1, 1) and bn.origin == "bn"
    cfg = PrecisionConfig.from_dict({"precision": "fixed<8,4,RND,SAT>", "layer": {"bn": {"weight": "fixed<6,3,RND>"}}})
    small = lower(load(m), cfg)
    assert str(small.op("bn").weight_fmt) == "fixed<6,3,RND>"
    for io in ("parallel", "stream"):
        _rtl_equals_reference(small, rng, io=io, n=3)


def test_batchnorm_before_valid_conv_and_flatten_dense_is_folded(keras, rng):
    """Before an unpadded convolution, or a Flatten and a Dense, folding forward is exact."""
    L = keras.layers
    m = keras.Sequential([keras.Input((5, 4, 2)), L.Conv2D(3, 2, activation="relu", name="c1"),
                          L.BatchNormalization(name="bn1"), L.Conv2D(2, 2, name="c2"), L.ReLU(name="r"),
                          L.BatchNormalization(name="bn2"), L.Flatten(name="flat"), L.Dense(3, name="fc")])
    _set_bn(m.get_layer("bn1"), rng)
    _set_bn(m.get_layer("bn2"), rng)
    q = _matches_keras(m, rng.normal(size=(16, 5, 4, 2)))
    assert [op.name for op in q.ops] == ["input", "c1", "c2", "flat", "fc"]


def test_batchnorm_template_entries(keras):
    """The default config explains where each BatchNormalization went."""
    from nnhdl.config import tomllib
    from nnhdl.config_template import config_template
    L = keras.layers
    m = keras.Sequential([keras.Input((5, 4, 2)), L.Conv2D(3, 2, activation="relu", name="c1"),
                          L.BatchNormalization(name="bn"), L.Conv2D(2, 3, padding="same", name="c2"),
                          L.Flatten(), L.Dense(4, name="fc"), L.BatchNormalization(name="bn_after_fc"),
                          L.ReLU(name="r"), L.BatchNormalization(name="bn_folded_fwd"), L.Dense(2, name="out")])
    text = config_template(load(m))
    assert "[layer.bn]   # BatchNormalization as a layer of its own" in text
    assert "[layer.bn_after_fc]   # BatchNormalization, folded into 'fc' before it" in text
    assert "# [layer.bn_folded_fwd]   # BatchNormalization, folded into the next layer" in text
    cfg = PrecisionConfig.from_dict(tomllib.loads(text))
    lower(load(m), cfg)  # the template is a valid configuration of this model
