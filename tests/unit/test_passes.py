"""Passes keep the network's meaning; IR save/load; config parsing; reference-model corner cases."""

import numpy as np
import pytest

from nnhdl.config import ConfigError, PrecisionConfig
from nnhdl.config_template import config_template
from nnhdl.fixed import FixedFormat
from nnhdl.ir import Activation, BatchNorm, Dense, Dropout, Graph, Input, IRError, Softmax
from nnhdl.passes import PassError, drop_dropout, fold_batchnorm, fuse_activation, lower
from nnhdl.reference import ReferenceError, evaluate, to_real, trace

WIDE = PrecisionConfig.from_dict({"precision": "fixed<40,16>"})


def float_mlp(rng, bn=True, act_layer=True, dropout=True):
    ops = [Input("in", (), (5,), origin="in"),
           Dense("fc1", ("in",), (7,), origin="fc1", weight=rng.normal(size=(5, 7)), bias=rng.normal(size=7))]
    prev = "fc1"
    if bn:
        ops.append(BatchNorm("bn", (prev,), (7,), origin="bn", gamma=rng.uniform(0.5, 2, 7), beta=rng.normal(size=7),
                             mean=rng.normal(size=7), variance=rng.uniform(0.5, 2, 7), epsilon=1e-3))
        prev = "bn"
    if act_layer:
        ops.append(Activation("act", (prev,), (7,), origin="act", function="relu"))
        prev = "act"
    if dropout:
        ops.append(Dropout("drop", (prev,), (7,), origin="drop"))
        prev = "drop"
    ops.append(Dense("fc2", (prev,), (3,), origin="fc2", weight=rng.normal(size=(7, 3)), bias=rng.normal(size=3)))
    return Graph(tuple(ops), ("fc2",), name="t")


def float_forward(rng_graph, x):
    """Plain float evaluation of a float graph (independent of the passes)."""
    values = {}
    for op in rng_graph.ops:
        if isinstance(op, Input):
            values[op.name] = x
            continue
        v = values[op.inputs[0]]
        if isinstance(op, Dense):
            v = v @ op.weight + op.bias
            v = np.maximum(v, 0) if op.activation == "relu" else v
        elif isinstance(op, BatchNorm):
            v = (v - op.mean) / np.sqrt(op.variance + op.epsilon) * op.gamma + op.beta
        elif isinstance(op, Activation):
            v = np.maximum(v, 0)
        values[op.name] = v
    return values[rng_graph.outputs[0]]


def test_passes_structure(rng):
    g = float_mlp(rng)
    g1 = drop_dropout(g)
    assert [op.name for op in g1.ops] == ["in", "fc1", "bn", "act", "fc2"]
    assert g1.op("fc2").inputs == ("act",)
    g2 = fold_batchnorm(g1)
    assert [op.name for op in g2.ops] == ["in", "fc1", "act", "fc2"]
    g3 = fuse_activation(g2)
    assert [op.name for op in g3.ops] == ["in", "fc1", "fc2"]
    assert g3.op("fc1").activation == "relu" and g3.op("fc1").result_origin == "act"


def test_lowering_keeps_the_function(rng):
    g = float_mlp(rng)
    x = rng.normal(size=(50, 5))
    q = lower(g, WIDE)
    np.testing.assert_allclose(to_real(q, evaluate(q, x)), float_forward(g, x), atol=2e-5)  # 24 fraction bits


def test_explicit_dense_result_prevents_fusion(rng):
    g = float_mlp(rng, bn=False, dropout=False)
    cfg = PrecisionConfig.from_dict({"layer": {"fc1": {"result": "fixed<8,4>"}, "act": {"result": "ufixed<6,3>"}}})
    q = lower(g, cfg)
    assert [type(op).__name__ for op in q.ops] == ["Input", "Dense", "Activation", "Dense"]
    assert str(q.op("act").fmt) == "ufixed<6,3>"


def _bn(rng, name, src, n, **kw):
    return BatchNorm(name, (src,), (n,), origin=name, gamma=rng.uniform(0.5, 2, n), beta=rng.normal(size=n),
                     mean=rng.normal(size=n), variance=rng.uniform(0.5, 2, n), epsilon=1e-3, **kw)


def _after_relu(rng, tail):
    """in -> fc1 (relu) -> bn -> tail ops (reading "bn")."""
    ops = [Input("in", (), (5,), origin="in"),
           Dense("fc1", ("in",), (7,), origin="fc1", weight=rng.normal(size=(5, 7)), bias=rng.normal(size=7),
                 activation="relu"),
           _bn(rng, "bn", "fc1", 7)] + tail
    return Graph(tuple(ops), (ops[-1].name,), name="t")


def _fc2(rng, src="bn"):
    return Dense("fc2", (src,), (3,), origin="fc2", weight=rng.normal(size=(7, 3)), bias=rng.normal(size=3))


def test_batchnorm_after_activation_folds_into_the_next_dense(rng):
    """Dense(relu) -> BatchNorm -> Dense: W' = diag(g) W, b' = b + c W (exact in floats)."""
    g = _after_relu(rng, [_fc2(rng)])
    folded = fold_batchnorm(g)
    assert [op.name for op in folded.ops] == ["in", "fc1", "fc2"] and folded.op("fc2").inputs == ("fc1",)
    x = rng.normal(size=(40, 5))
    np.testing.assert_allclose(float_forward(folded, x), float_forward(g, x), rtol=1e-12, atol=1e-12)
    q = lower(g, WIDE)
    np.testing.assert_allclose(to_real(q, evaluate(q, x)), float_forward(g, x), atol=1e-4)


def test_batchnorm_before_an_activation_is_a_diagonal_dense(rng):
    """Dense(relu) -> BatchNorm -> ReLU -> Dense: the BatchNorm stays, as a Dense with a diagonal
    weight (its own config entry), and the ReLU after it is fused into it."""
    g = _after_relu(rng, [Activation("act", ("bn",), (7,), origin="act", function="relu"), _fc2(rng, "act")])
    folded = fold_batchnorm(g)
    bn = folded.op("bn")
    assert type(bn) is Dense and bn.origin == "bn" and bn.inputs == ("fc1",)
    assert np.count_nonzero(bn.weight - np.diag(np.diag(bn.weight))) == 0
    cfg = PrecisionConfig.from_dict({"precision": "fixed<40,16>", "layer": {"bn": {"weight": "fixed<20,4>"}}})
    q = lower(g, cfg)
    assert [op.name for op in q.ops] == ["in", "fc1", "bn", "fc2"]
    assert q.op("bn").activation == "relu" and str(q.op("bn").weight_fmt) == "fixed<20,4>"
    x = rng.normal(size=(40, 5))
    np.testing.assert_allclose(to_real(q, evaluate(q, x)), float_forward(g, x), atol=1e-3)


def test_batchnorm_with_its_own_config_entry_is_not_folded_forward(rng):
    g = _after_relu(rng, [_fc2(rng)])
    q = lower(g, PrecisionConfig.from_dict({"precision": "fixed<40,16>", "layer": {"bn": {"result": "fixed<24,8>"}}}))
    assert [op.name for op in q.ops] == ["in", "fc1", "bn", "fc2"] and str(q.op("bn").fmt) == "fixed<24,8>"


def test_batchnorm_on_the_input(rng):
    """Input -> BatchNorm as the whole network: a diagonal Dense; then the same before a Dense: folded into it."""
    alone = Graph((Input("in", (), (3,), origin="in"), _bn(rng, "bn", "in", 3)), ("bn",))
    x = rng.normal(size=(20, 3))
    q = lower(alone, WIDE)
    assert [type(op).__name__ for op in q.ops] == ["Input", "Dense"]
    np.testing.assert_allclose(to_real(q, evaluate(q, x)), float_forward(alone, x), atol=1e-4)
    before = Graph((Input("in", (), (3,), origin="in"), _bn(rng, "bn", "in", 3),
                    Dense("fc", ("bn",), (2,), origin="fc", weight=rng.normal(size=(3, 2)), bias=np.zeros(2))),
                   ("fc",))
    assert [op.name for op in fold_batchnorm(before).ops] == ["in", "fc"]


def test_batchnorm_with_negative_variance(rng):
    bad = _bn(rng, "bn", "fc1", 7).replace(variance=-np.ones(7))
    g = _after_relu(rng, [_fc2(rng)])
    g = g.replace(ops=tuple(bad if op.name == "bn" else op for op in g.ops))
    with pytest.raises(PassError, match="BatchNormalization 'bn': variance \\+ epsilon must be positive"):
        fold_batchnorm(g)


def test_ir_round_trip(rng, tmp_path):
    q = lower(float_mlp(rng), PrecisionConfig.from_dict({"precision": "fixed<10,4,RND,SAT>",
                                                         "layer": {"fc2": {"accum": "fixed<14,6,RND_CONV,SAT_SYM>"}}}))
    q.save(tmp_path / "g")
    q2 = Graph.load(tmp_path / "g")
    assert [(type(a), a.name, a.fmt) for a in q.ops] == [(type(b), b.name, b.fmt) for b in q2.ops]
    x = rng.normal(size=(30, 5)) * 3
    np.testing.assert_array_equal(evaluate(q, x), evaluate(q2, x))
    (tmp_path / "g.json").write_text("{broken")
    with pytest.raises(IRError, match="cannot read the saved graph"):
        Graph.load(tmp_path / "g")


def test_graph_validation():
    with pytest.raises(IRError, match="reads 'nope'"):
        Graph((Input("in", (), (2,)), Activation("a", ("nope",), (2,))), ("a",))
    with pytest.raises(IRError, match="two ops are named"):
        Graph((Input("in", (), (2,)), Input("in", (), (2,))), ("in",))


def test_auto_formats(rng):
    g = float_mlp(rng, bn=False)
    x = rng.normal(size=(200, 5))
    cfg = PrecisionConfig.from_dict({"precision": "fixed<16,6>",
                                     "layer": {"fc1": {"weight": "auto", "result": "auto"}, "fc2": {"accum": "auto", "result": "auto"}}})
    q = lower(g, cfg, calibration=x)
    fc1 = q.op("fc1")
    w = np.abs(g.op("fc1").weight).max()
    assert fc1.weight_fmt.width == 16 and fc1.weight_fmt.max_value >= w > fc1.weight_fmt.max_value / 2 - 1
    assert q.op("fc2").accum_exact
    y_float = float_forward(g, x)
    assert np.max(np.abs(to_real(q, evaluate(q, x)) - y_float)) < 0.05
    with pytest.raises(PassError, match="needs a value range"):
        lower(g, PrecisionConfig.from_dict({"layer": {"in": {"result": "auto"}}}))


def test_wide_values_are_exact():
    """Accumulators wider than int64 are computed with Python integers, exactly."""
    w = np.array([[2.0 ** 20, -(2.0 ** 20)], [2.0 ** 19, 3.0]])
    ops = (Input("in", (), (2,), origin="in"),
           Dense("fc", ("in",), (2,), origin="fc", weight=w, bias=np.array([0.5, -0.25])))
    cfg = PrecisionConfig.from_dict({"layer": {"in": {"result": "fixed<40,30>"},
                                               "fc": {"weight": "fixed<48,24>", "bias": "fixed<8,2>",
                                                      "result": "fixed<80,60>"}}})
    q = lower(Graph(ops, ("fc",)), cfg)
    assert q.op("fc").accum_fmt.width > 64
    x = np.array([[2.0 ** 28 + 2.0 ** -10, -(2.0 ** 28)], [-3.5, 1.25]])
    got = evaluate(q, x)
    xq = [[2 ** 28 + 2 ** -10, -(2 ** 28)], [-3.5, 1.25]]
    from fractions import Fraction
    for r in range(2):
        for j in range(2):
            exact = sum(Fraction(xq[r][i]) * Fraction(w[i, j]) for i in range(2)) + Fraction([0.5, -0.25][j])
            assert Fraction(int(got[r, j]), 2 ** 20) == exact


def test_reference_input_shape(rng):
    q = lower(float_mlp(rng), WIDE)
    with pytest.raises(ReferenceError, match=r"shape \(N, 5\)"):
        evaluate(q, np.zeros((3, 4)))
    assert set(trace(q, np.zeros((2, 5)))) == {op.name for op in q.ops}


@pytest.mark.parametrize("text, match", [
    ({"precision": "fixed<16>"}, "precision: fixed-point format"),
    ({"softmax": "max"}, "softmax: must be one of"),
    ({"layer": {"fc1": {"table_size": 1000}}}, "power of two"),
    ({"layer": {"fc1": "fixed<8,3>"}}, r"\[layer.fc1\]: must be a table"),
])
def test_config_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        PrecisionConfig.from_dict(text, source="c.toml")


def test_config_unknown_layer(rng):
    cfg = PrecisionConfig.from_dict({"layer": {"fc7": {}}}, source="c.toml")
    with pytest.raises(ConfigError, match="c.toml: layer 'fc7' is not in the model"):
        cfg.check_layers(["in", "fc1"])


def test_config_template_lists_every_layer(rng, tmp_path):
    g = float_mlp(rng)
    g = g.replace(ops=g.ops[:-1] + (g.ops[-1].replace(result_key="logits"),
                                    Softmax("fc2_softmax", ("fc2",), (3,), origin="fc2")), outputs=("fc2_softmax",))
    text = config_template(g, PrecisionConfig.from_dict({"precision": "fixed<12,4>"}))
    path = tmp_path / "c.toml"
    path.write_text(text)
    cfg = PrecisionConfig.load(path)
    assert cfg.default == FixedFormat.parse("fixed<12,4>")
    assert set(cfg.layers) == {"in", "fc1", "bn", "act", "fc2"}   # drop is listed as a comment
    assert "logits" in cfg.layers["fc2"] and "exp_table" in cfg.layers["fc2"]
    assert "result" not in cfg.layers["fc1"] and "result" not in cfg.layers["bn"]  # keeps the ReLU fused
    x = rng.normal(size=(20, 5))
    np.testing.assert_array_equal(evaluate(lower(g, cfg), x),
                                  evaluate(lower(g, PrecisionConfig.from_dict({"precision": "fixed<12,4>"})), x))


def test_outside_counts_exactly_what_overflows():
    """``_outside`` (the precision warnings' count) against the brute-force rounding of
    tests/unit/test_fixed.py: a value is outside when its rounded raw value leaves the format."""
    from fractions import Fraction

    from nnhdl.fixed import Overflow, Rounding
    from nnhdl.precision import _outside

    from .test_fixed import brute_round
    for width, int_bits, signed in [(1, 1, True), (3, 1, True), (4, 2, True), (4, 0, False), (3, 5, True),
                                    (5, -1, True), (3, 2, False)]:
        for rounding in Rounding:
            fmt = FixedFormat(width, int_bits, signed, rounding, Overflow.WRAP)
            step = fmt.lsb / 8
            values = np.arange(-1.5 * 2 ** int_bits, 1.5 * 2 ** int_bits, step)
            values = np.concatenate([values, [1e308, -1e308, 1e300, -5e-324]])
            for v in values:
                r = brute_round(Fraction(float(v)) * Fraction(2) ** fmt.frac_bits, rounding)
                want = int(not fmt.min_int <= r <= fmt.max_int)
                assert _outside(np.array([v]), fmt) == want, (fmt, v)
