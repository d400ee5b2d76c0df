"""Dense layers whose products are each cast into a narrower accumulator (hls4ml's ``accum_t``),
built with shared sums (``nnhdl.layers.dense._shared_cast_sums``): every random case (input and
weight formats signed and unsigned, wide and narrow, 0-4 dropped product bits or none at all but
overflowing ones, TRN and RND, wrapping and saturating accumulators, zero weights) equals the
reference bit for bit with gaps and stalls, on random and extreme inputs."""

import random

import numpy as np
import pytest

from nnhdl.layers import Network
from nnhdl.layers import dense as dense_module
from nnhdl.reference import trace
from nnhdl.sim.amaranth_sim import run_stream

from ..conftest import make_mlp


def _case(seed):
    rs, rng = random.Random(seed), np.random.default_rng(seed)
    n_in, n_out = rs.randint(1, 6), rs.randint(1, 5)
    wi, wf = rs.randint(2, 10), rs.randint(1, 9)
    xi, xf = rs.randint(1, 12), rs.randint(0, 8)
    signed = rs.random() < 0.7
    drop = rs.choice([-2, 0, 1, 2, 3, 4])  # product fraction bits the accumulator drops (< 0: it keeps more)
    acc_frac = xf + wf - drop
    rounding = rs.choice(["TRN", "RND"])
    overflow = rs.choice(["WRAP", "WRAP", "SAT"])
    acc_int = rs.randint(1, 10) if overflow == "WRAP" else 16  # a saturating one wide enough never to
    acc = f"fixed<{acc_int + acc_frac},{acc_int},{rounding},{overflow}>"   # overflow (else: not shared)
    config = {"precision": "fixed<24,12>", "layer": {
        "in": {"result": f"{'' if signed else 'u'}fixed<{xi + xf},{xi}>"},
        "fc1": {"weight": f"fixed<{wi + wf},{wi}>", "bias": "fixed<10,4>", "accum": acc,
                "result": rs.choice(["fixed<16,8>", "fixed<8,3,RND,SAT>", acc])}}}
    graph = make_mlp(rng, (n_in, n_out), [], config, weight_scale=rs.choice([0.5, 2, 8]),
                     zero_fraction=rs.random() * 0.5)
    return graph, rng


def _extremes_and_random(fmt, size, rng, n):
    x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(n, size))
    x[0], x[1] = fmt.min_int, fmt.max_int
    x[2] = 0
    return x


@pytest.mark.parametrize("seed", range(30))
def test_cast_products_with_shared_sums_match_reference(seed, monkeypatch):
    graph, rng = _case(seed)
    calls = []
    shared = dense_module._shared_cast_sums
    monkeypatch.setattr(dense_module, "_shared_cast_sums", lambda *a: calls.append(1) or shared(*a))
    net = Network(graph, multiplier="cse", levels_per_stage=1 + seed % 3)
    (_, layer), = net.layers
    op = layer.op
    drop = graph.input.fmt.frac_bits + op.weight_fmt.frac_bits - op.accum_fmt.frac_bits
    net.latency  # noqa: B018  (builds it)
    if layer.plan.cast_products and not layer.plan.ordered:
        assert calls, "a cast the shared sums can build took the per-product path"
    assert drop <= 4
    fmt = graph.input.fmt
    x = _extremes_and_random(fmt, graph.input.size, rng, 40)
    run = run_stream(net, x, in_fmt=fmt, out_fmt=net.out_fmt, n_out=net.out_size, gap=0.3, stall=0.3, seed=seed)
    np.testing.assert_array_equal(run.outputs, trace(graph, x, raw=True)[graph.outputs[0]].reshape(len(x), -1))


def test_shared_cast_sums_are_smaller_than_per_product_casts(rng, monkeypatch):
    """The same layer (products cast by dropping 2 bits, TRN, WRAP) with shared sums has fewer
    adder bits than with each product built and cast on its own (what it was before)."""
    config = {"precision": "fixed<16,6>", "layer": {"in": {"result": "fixed<8,3>"},
              "fc1": {"weight": "fixed<8,1>", "accum": "fixed<16,6>", "result": "fixed<16,6>"}}}
    graph = make_mlp(rng, (16, 12), [], config)
    shared = Network(graph, multiplier="cse")
    shared.latency  # noqa: B018  (builds it now)
    (_, layer), = shared.layers
    assert layer.plan.cast_products and dense_module._cast_shares(layer.op, [None], graph.input.fmt)
    monkeypatch.setattr(dense_module, "_cast_shares", lambda *a: False)
    alone = Network(graph, multiplier="cse")
    bits = [sum(l.logic_bits["add"] for _, l in n.layers) for n in (shared, alone)]
    assert bits[0] < 0.75 * bits[1], bits


@pytest.mark.parametrize("io", ["parallel", "stream"])
@pytest.mark.parametrize("rounding", ["TRN", "RND"])
def test_convolution_with_cast_products_shares_and_matches_reference(rng, io, rounding, monkeypatch):
    """A convolution (same padding, so windows hold padding zeros; every window reads its
    pixels' tables, built once per pixel) with products cast by dropping 2 bits: shared, exact."""
    from nnhdl.config import PrecisionConfig
    from nnhdl.convert import Design
    from nnhdl.passes import lower
    from nnhdl.verify import verify_design

    from .test_cnn_layers import ImageNet

    calls = []
    shared = dense_module._shared_cast_sums
    monkeypatch.setattr(dense_module, "_shared_cast_sums", lambda *a: calls.append(1) or shared(*a))
    g = ImageNet(rng, (5, 5, 2)).conv("c", 3, (3, 3), padding="same", activation="relu").graph()
    config = PrecisionConfig.from_dict({"precision": "fixed<16,6>", "layer": {
        "in": {"result": "fixed<6,2>"},
        "c": {"weight": "fixed<6,1>", "accum": f"fixed<12,5,{rounding}>", "result": "ufixed<8,4>"}}})
    q = lower(g, config)
    net = Network(q, io=io, multiplier="cse")
    net.latency  # noqa: B018  (builds it)
    assert calls
    x = rng.integers(q.input.fmt.min_int, q.input.fmt.max_int + 1, size=(4 if io == "stream" else 12,)
                     + (tuple(q.input.shape) if io == "stream" else (q.input.size,)))
    result = verify_design(Design(q, net), x, seed=1, gap=0.3, stall=0.3)
    assert not result.mismatches, result.mismatches[:2]
