"""nnhdl against hls4ml 1.3.0 itself: small random Keras MLPs ending in a softmax, converted by
both tools under the same per-layer types, every layer compared bit for bit (hls4ml's C++
simulation, compiled with g++, traced layer by layer; no vendor tools).

Each compiled hls4ml model costs g++ time (about 10-20 s here), so the default set is three
models shared by the per-layer checks; ``-m slow`` adds a sweep of table sizes and formats.
Layer outputs here are at most 24 bits wide, so hls4ml's float trace holds them exactly.
"""

import zlib

import numpy as np
import pytest

hls4ml = pytest.importorskip("hls4ml", reason="hls4ml is not installed (pip install -e '.[compare]')")
keras = pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]')")

from .harness import Comparison  # noqa: E402

pytestmark = pytest.mark.compare

N_INPUTS = 300

# name: (logits format, table_size, extra softmax keys); input, weights, hidden results fixed<16,6>
CASES = {
    "fixed16_6_t1024": ("fixed<16,6>", 1024, {}),
    "fixed12_4_rnd_sat_t256": ("fixed<12,4,RND,SAT>", 256, {"exp_table": "fixed<16,6,RND,SAT>",
                                                             "inv_table": "fixed<16,8,RND,SAT>"}),
    "fixed10_3_t4096_types": ("fixed<10,3>", 4096, {"exp_accum": "fixed<14,5,RND,SAT>",
                                                    "inv_input": "ufixed<12,4,RND,SAT>"}),
}
SLOW_CASES = {
    "fixed16_6_t512": ("fixed<16,6>", 512, {}),
    "fixed16_6_t2048_inp_norm": ("fixed<16,6>", 2048, {"inp_norm": "ufixed<14,5,RND,SAT>"}),
    "fixed12_4_rnd_sat_t1024_narrow": ("fixed<12,4,RND,SAT>", 1024, {"exp_table": "fixed<12,2,RND,SAT>",
                                                                      "exp_accum": "fixed<10,4,RND_CONV,SAT>",
                                                                      "inv_input": "fixed<10,4,RND,SAT>"}),
    "fixed10_3_t256": ("fixed<10,3>", 256, {}),
    "fixed20_8_t1024_wide_result": ("fixed<20,8>", 1024, {"result": "fixed<20,2,RND,SAT>"}),
    "fixed8_3_t64_wrap": ("fixed<8,3>", 64, {"exp_table": "fixed<14,4,RND,WRAP>", "inv_table": "fixed<14,6,TRN,WRAP>"}),
}


def _random_mlp(seed):
    """A random Keras MLP: 3-12 inputs, a ReLU hidden layer, 2-8 softmax classes."""
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = int(rng.integers(3, 13)), int(rng.integers(4, 17)), int(rng.integers(2, 9))
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((n_in,), name="in"),
                              keras.layers.Dense(n_hidden, activation="relu", name="fc1"),
                              keras.layers.Dense(n_out, activation="softmax", name="out")], name=f"mlp{seed}")
    w, b = model.get_layer("out").get_weights()
    model.get_layer("out").set_weights([w * rng.uniform(1.0, 4.0), b])  # logits spread over the table
    x = rng.normal(size=(N_INPUTS, n_in)) * rng.uniform(0.5, 3.0)
    x[: N_INPUTS // 10] *= 0.05  # close logits: the fine end of the exp table
    return model, x.astype(np.float32)


def _config(logits, table_size, extra):
    out = {"logits": logits, "result": extra.get("result", "ufixed<16,0,RND,SAT>"), "table_size": table_size,
           "accum": "fixed<32,12>"}
    out.update({k: v for k, v in extra.items() if k != "result"})
    return {"precision": "fixed<16,6>",
            "layer": {"in": {"result": "fixed<16,6>"}, "fc1": {"accum": "fixed<32,12>", "result": "fixed<16,6>"},
                      "out": out}}


def _compare(case, cases, tmp_path_factory):
    seed = zlib.crc32(case.encode()) % 2 ** 31
    model, x = _random_mlp(seed)
    return Comparison(hls4ml, model, _config(*cases[case]), x, tmp_path_factory.mktemp(case))


@pytest.fixture(scope="module", params=list(CASES))
def comparison(request, tmp_path_factory):
    return _compare(request.param, CASES, tmp_path_factory)


@pytest.fixture(scope="module", params=list(SLOW_CASES))
def slow_comparison(request, tmp_path_factory):
    return _compare(request.param, SLOW_CASES, tmp_path_factory)


def assert_layers_identical(cmp: Comparison):
    for op in cmp.layers:
        diff = cmp.differences(op.name)
        assert np.all(diff == np.round(diff)), f"{op.name}: hls4ml values off the {op.fmt} grid"
        bad = np.argwhere(diff != 0)
        if len(bad):
            s = bad[0][0]
            raise AssertionError(f"{op.name} ({op.fmt}): {len(bad)} of {diff.size} values differ, first at sample "
                                 f"{s}: hls4ml {cmp.hls4ml[op.name][s]} nnhdl {cmp.nnhdl[op.name][s]} (LSBs)")


def test_every_layer_bit_identical(comparison):
    assert [op.name for op in comparison.layers] == ["fc1", "out", "out_softmax"]
    assert_layers_identical(comparison)


def test_softmax_outputs_vary(comparison):
    """The inputs reach many table entries: the softmax outputs are not all alike."""
    y = comparison.nnhdl["out_softmax"]
    assert len(np.unique(y)) > 20


@pytest.mark.slow
def test_every_layer_bit_identical_sweep(slow_comparison):
    assert_layers_identical(slow_comparison)
