import os
import zlib

import numpy as np
import pytest

from nnhdl.config import PrecisionConfig
from nnhdl.ir import Dense, Graph, Input, Softmax
from nnhdl.passes import lower


@pytest.fixture
def rng(request):
    """A seeded generator; the seed (NNHDL_SEED or derived from the test id) is printed on failure."""
    seed = int(os.environ.get("NNHDL_SEED", zlib.crc32(request.node.nodeid.encode()) % 2 ** 31))
    print(f"rng seed: {seed} (set NNHDL_SEED={seed} to repeat)")
    return np.random.default_rng(seed)


def make_mlp(rng, sizes, activations, config=None, softmax=False, weight_scale=1.0, zero_fraction=0.2,
             calibration=None):
    """A random float MLP (sizes[0] inputs, then Dense layers) lowered with ``config``.

    Layer names: in, fc1, fc2, ...; a final softmax becomes ``fcN`` (logits) + ``fcN_softmax``."""
    ops = [Input("in", (), (sizes[0],), origin="in")]
    prev = "in"
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), start=1):
        w = rng.normal(size=(n_in, n_out)) * weight_scale / np.sqrt(n_in)
        w[rng.random(w.shape) < zero_fraction] = 0.0
        b = rng.normal(size=n_out) * 0.3
        name = f"fc{k}"
        act = activations[k - 1] if k - 1 < len(activations) else "linear"
        last_softmax = softmax and k == len(sizes) - 1
        ops.append(Dense(name, (prev,), (n_out,), origin=name, weight=w, bias=b,
                         activation="leaky_relu" if act == "leaky_relu" else ("relu" if act == "relu" else "linear"),
                         alpha=0.3, result_key="logits" if last_softmax else "result"))
        prev = name
        if last_softmax:
            ops.append(Softmax(f"{name}_softmax", (name,), (n_out,), origin=name))
            prev = f"{name}_softmax"
    graph = Graph(tuple(ops), (prev,), name="mlp")
    if config is None or isinstance(config, dict):
        config = PrecisionConfig.from_dict(config or {})
    return lower(graph, config, calibration)


def sample_pipeline(m, x, outs, values, latency):
    """Simulate module ``m`` (synchronous, one clock) feeding ``values`` into signal ``x`` one per
    cycle and return, per value, the outputs ``outs`` read ``latency`` cycles later."""
    from amaranth.sim import Simulator

    got = []

    async def bench(ctx):
        for k in range(len(values) + latency):
            if k < len(values):
                ctx.set(x, values[k])
            await ctx.tick()
            if k >= latency - 1 and len(got) < len(values):
                got.append([ctx.get(o) for o in outs])

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got
