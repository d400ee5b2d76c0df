"""Random networks with random formats (every rounding and overflow mode, signed and unsigned,
negative and oversized integer bits, narrow accumulators, zero weights, softmax/argmax, CSE, CSD
and DSP multipliers, 1-3 adder levels per stage or registers placed by a delay model, credit or
stall flow control): RTL equals the reference with gaps and stalls."""

import random

import numpy as np
import pytest

from nnhdl.fixed import Overflow, Rounding
from nnhdl.layers import Network
from nnhdl.layers.pipeline import DelayModel
from nnhdl.reference import trace
from nnhdl.sim.amaranth_sim import run_stream

from ..conftest import make_mlp

ROUNDING = [r.value for r in Rounding]
OVERFLOW = [o.value for o in Overflow]


def random_format(rs, signed=True, wmin=3, wmax=14):
    w = rs.randint(wmin, wmax)
    return f"{'' if signed else 'u'}fixed<{w},{rs.randint(-2, w + 2)},{rs.choice(ROUNDING)},{rs.choice(OVERFLOW)}>"


def random_case(seed):
    rs, rng = random.Random(seed), np.random.default_rng(seed)
    n = rs.randint(2, 4)
    sizes = tuple(rs.randint(1, 7) for _ in range(n))
    acts = [rs.choice(["linear", "relu", "leaky_relu"]) for _ in range(n - 1)]
    layer = {"in": {"result": random_format(rs, rs.random() < 0.7)}}
    for k in range(1, n):
        entry = {"weight": random_format(rs), "bias": random_format(rs), "result": random_format(rs, rs.random() < 0.8)}
        if rs.random() < 0.5:
            entry["accum"] = random_format(rs, rs.random() < 0.9, 4, 20)
        layer[f"fc{k}"] = entry
    softmax = rs.random() < 0.4
    if softmax:
        layer[f"fc{n - 1}"]["logits"] = layer[f"fc{n - 1}"].pop("result")
        layer[f"fc{n - 1}"]["result"] = random_format(rs, rs.random() < 0.5)
    config = {"precision": random_format(rs, True, 6, 14), "softmax": rs.choice(["table", "argmax"]), "layer": layer}
    graph = make_mlp(rng, sizes, acts, config, softmax=softmax, weight_scale=rs.choice([0.5, 2, 8]),
                     zero_fraction=rs.random() * 0.5)
    levels = rs.choice([1, 2, 3, DelayModel("ecp5", 150), DelayModel("xc7", 300)])
    return graph, rs.choice(["cse", "csd", "dsp"]), levels, rng


def random_flow(seed):
    """Flow control for case ``seed``: the default (stall) or either one (its own random stream:
    the cases stay what they were)."""
    return random.Random(seed + 7919).choice([None, "credit", "stall"])


@pytest.mark.parametrize("seed", range(40))
def test_random_network(seed):
    graph, multiplier, levels, rng = random_case(seed)
    net = Network(graph, multiplier=multiplier, levels_per_stage=levels, flow_control=random_flow(seed))
    fmt = graph.input.fmt
    x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(60, graph.input.size))
    run = run_stream(net, x, in_fmt=fmt, out_fmt=net.out_fmt, n_out=net.out_size, gap=0.3, stall=0.3, seed=seed)
    np.testing.assert_array_equal(run.outputs, trace(graph, x, raw=True)[graph.outputs[0]].reshape(len(x), -1))
