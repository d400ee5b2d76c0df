"""Random CNNs: random chains of convolutions (strided, padded, depthwise), pooling (max and
average, padded), zero padding, global pooling and dense heads, 1-D and 2-D, with random formats
in every rounding and overflow mode, CSE, CSD and DSP multipliers, 1-3 adder levels per stage or
registers placed by a delay model, line buffers in registers or block RAM. Both I/O styles equal the reference with gaps and stalls,
and latency and cycles per inference are exactly as reported."""

import random

import numpy as np
import pytest

from nnhdl.config import PrecisionConfig
from nnhdl.fixed import Overflow, Rounding
from nnhdl.ir import spatial
from nnhdl.layers.pipeline import DelayModel
from nnhdl.passes import lower

from .test_cnn_layers import ImageNet, check

ROUNDING = [r.value for r in Rounding]
OVERFLOW = [o.value for o in Overflow]


def random_format(rs, signed=True):
    w = rs.randint(3, 13)
    return f"{'' if signed else 'u'}fixed<{w},{rs.randint(-1, w + 1)},{rs.choice(ROUNDING)},{rs.choice(OVERFLOW)}>"


def random_cnn(seed):
    rs, rng = random.Random(seed), np.random.default_rng(seed)
    one_d = rs.random() < 0.3
    shape = (rs.randint(3, 12), rs.randint(1, 3)) if one_d else (rs.randint(2, 7), rs.randint(2, 7), rs.randint(1, 3))
    net, names = ImageNet(rng, shape), []
    for k in range(rs.randint(1, 3)):
        h, w, _ = spatial(net.shape)
        kind, name = rs.choice(["conv", "conv", "pool", "pad", "depthwise"]), f"l{k}"
        if kind in ("conv", "depthwise"):
            kh, kw = 1 if one_d else rs.randint(1, min(3, h + 1)), rs.randint(1, min(3, w + 1))
            padding = rs.choice(["valid", "same"])
            if kh > h or kw > w:
                padding = "same"
            net.conv(name, rs.randint(1, 3), (kh, kw), (1 if one_d else rs.randint(1, 2), rs.randint(1, 2)), padding,
                     rs.choice(["linear", "relu", "leaky_relu"]), depthwise=kind == "depthwise",
                     zero_fraction=rs.random() * 0.5)
        elif kind == "pool":
            kh, kw = 1 if one_d else rs.randint(1, min(3, h)), rs.randint(1, min(3, w))
            net.pool(name, rs.choice(["max", "avg"]), (kh, kw), (1 if one_d else rs.randint(1, 2), rs.randint(1, 3)),
                     rs.choice(["valid", "same"]))
        else:
            net.pad(name, (0 if one_d else rs.randint(0, 1), 0 if one_d else rs.randint(0, 2), rs.randint(0, 2),
                           rs.randint(0, 1)))
        names.append(name)
    end = rs.choice(["none", "global", "dense"])
    if end == "global":
        net.global_pool("g", rs.choice(["max", "avg"]))
        names.append("g")
    elif end == "dense":
        net.dense("d", rs.randint(1, 3))
        names.append("d")
    layer = {"in": {"result": random_format(rs, rs.random() < 0.7)}}
    for name in names:
        entry = {"weight": random_format(rs), "bias": random_format(rs), "result": random_format(rs, rs.random() < 0.8)}
        if rs.random() < 0.3:
            entry["accum"] = random_format(rs)
        layer[name] = entry
    graph = lower(net.graph(), PrecisionConfig.from_dict({"precision": random_format(rs), "layer": layer}))
    return graph, rs


@pytest.mark.parametrize("seed", range(30))
def test_random_cnn(seed):
    graph, rs = random_cnn(1000 + seed)
    for io in ("parallel", "stream"):
        check(graph, io, seed, n=3, memory_bits=rs.choice([1, 1024]), multiplier=rs.choice(["cse", "csd", "dsp"]),
              levels=rs.choice([1, 2, 3, DelayModel("ecp5", 150)]))
