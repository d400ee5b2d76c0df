"""Three trained MLPs of different shapes and precisions: the RTL in the Amaranth simulator equals
the reference bit for bit on 10,000 inputs each (random gaps and stalls), with the exact latency."""

import numpy as np
import pytest

from nnhdl.config import PrecisionConfig
from nnhdl.convert import build_network, compile_model, load_model
from nnhdl.fixed import quantize
from nnhdl.verify import random_inputs, verify_design
from nnhdl.convert import Design

pytestmark = [pytest.mark.keras, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")]

N_VECTORS = 10_000


def _digits_4x4():
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = digits.images.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16) / 16.0  # [0, 1]
    return x.astype("float32"), digits.target


def _synthetic(rng, n, features, classes):
    centers = rng.normal(size=(classes, features)) * 1.5
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.normal(size=(n, features))
    return x.astype("float32"), y


CASES = {
    # name: (layers, config, data)
    "8-16-8-4 fixed<16,6>": ([("relu", 16), ("relu", 8), ("softmax", 4)], {"precision": "fixed<16,6>"}, "synthetic8"),
    "10-12-3 fixed<8,3,RND,SAT>": ([("leaky_relu", 12), ("linear", 3)],
                                   {"precision": "fixed<8,3,RND,SAT>"}, "synthetic10"),
    "digits 16-12-10 ufixed<8,0> in": ([("relu", 12), ("softmax", 10)],
                                       {"precision": "fixed<10,4,RND,SAT>",
                                        "layer": {"input": {"result": "ufixed<8,0,RND,SAT>"}}}, "digits"),
}


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name", list(CASES))
def test_trained_mlp_10k(keras, tmp_path, name):
    layers, config, data = CASES[name]
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    if data == "digits":
        x, y = _digits_4x4()
    else:
        x, y = _synthetic(rng, 3000, int(data[len("synthetic"):]), layers[-1][1])
    model = keras.Sequential([keras.Input((x.shape[1],), name="input")] +
                             [keras.layers.Dense(n, activation=act, name=f"fc{k + 1}")
                              for k, (act, n) in enumerate(layers)])
    loss = "sparse_categorical_crossentropy" if layers[-1][0] == "softmax" else "mse"
    target = y if layers[-1][0] == "softmax" else np.eye(layers[-1][1])[y]
    model.compile("adam", loss, metrics=["accuracy"] if layers[-1][0] == "softmax" else None)
    model.fit(x, target, epochs=8, batch_size=64, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)

    graph = compile_model(load_model(path), PrecisionConfig.from_dict(config))
    design = Design(graph, build_network(graph))
    # half realistic inputs, half uniformly random over the whole input format
    real = quantize(x[rng.integers(0, len(x), N_VECTORS // 2)], graph.input.fmt)
    inputs = np.concatenate([real, random_inputs(graph, N_VECTORS - len(real), seed=11)])
    result = verify_design(design, inputs, gap=0.25, stall=0.25, seed=5)
    assert result.mismatches == []
    assert result.latencies == {design.network.latency}
    assert result.n == N_VECTORS
