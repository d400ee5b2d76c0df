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
