"""Random quantized models for the fuzz suite, and the three-way check RTL == reference == Fraction.

A model is drawn with hypothesis: a small MLP (Dense layers with every activation, an
Activation op, a table softmax or argmax) or a small CNN (1-D or 2-D convolutions with padding and
strides, depthwise ones, max / average pooling with valid or same padding, global pooling, zero
padding, Reshape, Activation, Flatten and Dense heads), each layer with its own random formats
(1-64 bits, signed or unsigned, every rounding and overflow mode, a set or exact accumulator) and
its weights drawn as random normals, all zeros, or the weight format's extremes (0, +-max,
+-2**k). The float graph is lowered with :func:`nnhdl.passes.lower` and a
:class:`~nnhdl.config.PrecisionConfig`, then simulated in Amaranth's simulator with random gaps and
stalls on inputs that include the input format's extremes (:func:`check_model`).
"""

import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from hypothesis import strategies as st

from nnhdl.config import PrecisionConfig
from nnhdl.convert import Design
from nnhdl.fixed import FixedFormat, Overflow, Rounding
from nnhdl.ir import Activation, Dense, Graph, Input, Reshape, Softmax, spatial
from nnhdl.layers import Network, NetworkError
from nnhdl.passes import PassError, lower
from nnhdl.reference import trace
from nnhdl.verify import verify_design

from ..fraction_model import trace_exact
from ..rtl.test_cnn_layers import ImageNet

ROUNDING = [r.value for r in Rounding]
OVERFLOW = [o.value for o in Overflow]
ACTIVATIONS = ["linear", "relu", "leaky_relu"]


@dataclass
class Stats:
    """What the fuzz suite ran: models checked, and how many mismatched or crashed."""
    models: int = 0
    mismatches: int = 0
    crashes: int = 0
    refused: int = 0  # models nnhdl refuses with a clear message (PassError, NetworkError)
    seconds: float = 0.0
    by_kind: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)  # short descriptions of the first failures


STATS = Stats()


# -- strategies ---------------------------------------------------------------------------------

@st.composite
def formats(draw, signed=None, wmax=64):
    """A format string: width 1-64 (narrow, wide, and the edges around 32 and 62-64 bits),
    integer bits -3..width+3, any modes."""
    width = draw(st.one_of(st.integers(1, min(12, wmax)), st.integers(13, wmax),
                           st.sampled_from([w for w in (1, 2, 31, 32, 33, 48, 61, 62, 63, 64) if w <= wmax])))
    int_bits = draw(st.integers(-3, width + 3))
    sign = draw(st.booleans()) if signed is None else signed
    return (f"{'' if sign else 'u'}fixed<{width},{int_bits},{draw(st.sampled_from(ROUNDING))},"
            f"{draw(st.sampled_from(OVERFLOW))}>")


#: Constants (weight, bias, alpha; and the default precision, which sets unnamed ones) are at most
#: 62 bits wide: nnhdl refuses wider ones at quantize time.
CONSTANT_WMAX = 62


def layer_entry(draw, weights=True):
    entry = {"result": draw(formats())}
    if weights:
        entry.update(weight=draw(formats(signed=True, wmax=CONSTANT_WMAX)),
                     bias=draw(formats(signed=True, wmax=CONSTANT_WMAX)))
        if draw(st.booleans()):
            entry["accum"] = draw(formats())
    if draw(st.booleans()):
        entry["alpha"] = draw(formats(signed=True, wmax=CONSTANT_WMAX))
    return entry


def extreme_values(fmt_text, shape, rng, style):
    """Floats of ``shape`` that quantize to the format's special values (``style="extreme"``),
    to zero (``"zero"``), or random normals scaled to the format (``"normal"``)."""
    fmt = FixedFormat.parse(fmt_text)
    if style == "zero":
        return np.zeros(shape)
    if style == "normal":
        return rng.normal(size=shape) * 2.0 ** (fmt.int_bits - 2)
    raws = [fmt.min_int, fmt.max_int, 0, 1, -1, 1 << max(fmt.width - 2, 0), -(1 << max(fmt.width - 2, 0))]
    raws = [r for r in raws if fmt.min_int <= r <= fmt.max_int]
    picks = rng.integers(0, len(raws), size=shape)
    return np.vectorize(lambda k: float(raws[k]) * 2.0 ** -fmt.frac_bits, otypes=[float])(picks)


def set_constants(graph, config, rng, styles):
    """Replace each Dense / Conv's float weight and bias by values of the drawn style."""
    ops = []
    for op in graph.ops:
        if isinstance(op, Dense) and op.origin in styles:
            entry = config["layer"][op.origin]
            ws, bs = styles[op.origin]
            weight = extreme_values(entry["weight"], op.weight.shape, rng, ws)
            if getattr(op, "depthwise", False):
                weight = weight * (op.weight != 0)  # keep the block-diagonal structure
            op = op.replace(weight=weight, bias=extreme_values(entry["bias"], op.bias.shape, rng, bs))
        ops.append(op)
    return graph.replace(ops=tuple(ops))


@st.composite
def mlps(draw):
    """(float graph, config dict, kind) of a small MLP."""
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 8))
    ops, prev = [Input("in", (), (n,), origin="in")], "in"
    layer = {"in": {"result": draw(formats())}}
    styles = {}
    for k in range(1, draw(st.integers(1, 4)) + 1):
        m, name = draw(st.integers(1, 6)), f"fc{k}"
        act = draw(st.sampled_from(ACTIVATIONS))
        ops.append(Dense(name, (prev,), (m,), origin=name, weight=rng.normal(size=(n, m)), bias=rng.normal(size=m),
                         activation=act, alpha=draw(st.sampled_from([0.25, 1.0, -0.5, 3.0]))))
        layer[name] = layer_entry(draw)
        styles[name] = (draw(st.sampled_from(["normal", "zero", "extreme"])),
                        draw(st.sampled_from(["normal", "zero", "extreme"])))
        prev, n = name, m
        if draw(st.integers(0, 3)) == 0:
            aname = f"act{k}"
            ops.append(Activation(aname, (prev,), (n,), origin=aname, function=draw(st.sampled_from(ACTIVATIONS)),
                                  alpha=draw(st.sampled_from([0.25, 1.0, -2.0]))))
            layer[aname] = layer_entry(draw, weights=False)
            prev = aname
    config = {"precision": draw(formats(wmax=CONSTANT_WMAX)), "layer": layer}
    softmax = draw(st.sampled_from(["none", "argmax", "table"]))
    if softmax != "none" and isinstance(ops[-1], Dense) and ops[-1].n_out > 1:
        last = ops[-1]
        ops[-1] = last.replace(result_key="logits")
        layer[last.origin].pop("result")
        layer[last.origin]["logits"] = draw(formats())
        layer[last.origin]["result"] = draw(formats())
        if softmax == "table":
            layer[last.origin]["table_size"] = draw(st.sampled_from([16, 256, 1024]))
        config["softmax"] = softmax
        ops.append(Softmax(f"{last.name}_softmax", (last.name,), (last.n_out,), origin=last.origin))
    graph = set_constants(Graph(tuple(ops), (ops[-1].name,), name="fuzz_mlp"), config, rng, styles)
    return graph, config, "mlp"


@st.composite
def cnns(draw):
    """(float graph, config dict, kind) of a small CNN (now and then from a flat input that a
    Reshape turns into the image)."""
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    one_d = draw(st.booleans())
    shape = ((draw(st.integers(2, 9)), draw(st.integers(1, 3))) if one_d else
             (draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 3))))
    flat_input = draw(st.integers(0, 4)) == 0  # a flat input reshaped into the image
    net = ImageNet(rng, (int(np.prod(shape)),) if flat_input else shape)
    if flat_input:
        net.reshape("r_in", shape)
    layer = {"in": {"result": draw(formats())}}
    styles = {}
    for k in range(draw(st.integers(1, 4))):
        h, w, c = spatial(net.shape)
        kind, name = draw(st.sampled_from(["conv", "conv", "depthwise", "pool", "pad", "act", "reshape"])), f"l{k}"
        one = len(net.shape) == 2
        if kind in ("conv", "depthwise"):
            kh, kw = 1 if one else draw(st.integers(1, min(3, h + 1))), draw(st.integers(1, min(3, w + 1)))
            padding = draw(st.sampled_from(["valid", "same"]))
            if kh > h or kw > w:
                padding = "same"
            net.conv(name, draw(st.integers(1, 2)), (kh, kw), (1 if one else draw(st.integers(1, 2)),
                                                                draw(st.integers(1, 2))), padding,
                     draw(st.sampled_from(ACTIVATIONS)), depthwise=kind == "depthwise")
            layer[name] = layer_entry(draw)
            styles[name] = (draw(st.sampled_from(["normal", "zero", "extreme"])),
                            draw(st.sampled_from(["normal", "extreme"])))
        elif kind == "pool":
            kh, kw = 1 if one else draw(st.integers(1, h)), draw(st.integers(1, w))
            net.pool(name, draw(st.sampled_from(["max", "avg"])), (kh, kw),
                     (1 if one else draw(st.integers(1, 2)), draw(st.integers(1, 3))),
                     draw(st.sampled_from(["valid", "same"])))
            layer[name] = {"result": draw(formats())}
        elif kind == "pad":
            net.pad(name, (0 if one else draw(st.integers(0, 1)), 0 if one else draw(st.integers(0, 1)),
                           draw(st.integers(0, 2)), draw(st.integers(0, 1))))
        elif kind == "act":
            net.ops.append(Activation(name, (net.ops[-1].name,), net.shape, origin=name,
                                      function=draw(st.sampled_from(ACTIVATIONS)),
                                      alpha=draw(st.sampled_from([0.25, 1.0, -2.0]))))
            layer[name] = layer_entry(draw, weights=False)
        else:  # same pixels in other rows, or regrouped channels (gathered in stream style)
            choices = [(w, h, c), (h * w, c), (h, w * c)]
            net.reshape(name, draw(st.sampled_from(choices)))
    end = draw(st.sampled_from(["none", "global", "dense", "softmax", "global_dense"]))
    if end == "none" and all(isinstance(op, Reshape) for op in net.ops[1:]):
        end = "dense"  # a network of reshapes only has no hardware
    if end == "global":
        net.global_pool("g", draw(st.sampled_from(["max", "avg"])))
        layer["g"] = {"result": draw(formats())}
    elif end == "global_dense":
        net.global_pool("g", draw(st.sampled_from(["max", "avg"])))
        layer["g"] = {"result": draw(formats())}
        net.dense("d", draw(st.integers(1, 3)))
        layer["d"] = layer_entry(draw)
        styles["d"] = (draw(st.sampled_from(["normal", "zero", "extreme"])), "normal")
    elif end in ("dense", "softmax"):
        net.dense("d", draw(st.integers(2 if end == "softmax" else 1, 3)))
        layer["d"] = layer_entry(draw)
        styles["d"] = (draw(st.sampled_from(["normal", "zero", "extreme"])), "normal")
    config = {"precision": draw(formats(wmax=CONSTANT_WMAX)), "layer": layer}
    if end == "softmax":
        d = net.ops[-1]
        net.ops[-1] = d.replace(result_key="logits")
        config["softmax"] = draw(st.sampled_from(["argmax", "table"]))
        layer["d"].pop("result")
        layer["d"]["logits"] = draw(formats())
        layer["d"]["result"] = draw(formats())
        net.ops.append(Softmax("d_softmax", ("d",), d.shape, origin="d"))
    graph = set_constants(net.graph(), config, rng, styles)
    return graph, config, "cnn"


@st.composite
def runs(draw, models):
    """A model plus how to build and drive it."""
    graph, config, kind = draw(models)
    return dict(graph=graph, config=config, kind=kind,
                io=draw(st.sampled_from(["parallel", "stream"])),
                multiplier=draw(st.sampled_from(["csd", "dsp", "cse"])), levels=draw(st.integers(1, 3)),
                memory_bits=draw(st.sampled_from([1, 1024])), n=draw(st.integers(3, 6)),
                gap=draw(st.sampled_from([0.0, 0.2, 0.5])), stall=draw(st.sampled_from([0.0, 0.3, 0.6])),
                seed=draw(st.integers(0, 2 ** 16)), flow=draw(st.sampled_from(["stall", "credit"])))


# -- the check ----------------------------------------------------------------------------------

def random_raw_inputs(fmt, shape, rng):
    """Raw inputs ``shape`` in ``fmt``: its extremes, zero and uniform draws (Python ints when
    wider than 62 bits)."""
    special = [fmt.min_int, fmt.max_int, 0]
    out = []
    for _ in range(int(np.prod(shape))):
        r = rng.random()
        if r < 0.3:
            out.append(special[int(rng.integers(0, 3))])
        else:
            out.append(fmt.min_int + int(rng.integers(0, 2 ** 62)) * (fmt.max_int - fmt.min_int + 1) // 2 ** 62)
    return np.array(out, dtype=np.int64 if fmt.width <= 62 else object).reshape(shape)


def assert_traces_equal(graph, x):
    """The reference equals the Fraction evaluation on every op."""
    got, want = trace(graph, x, raw=True), trace_exact(graph, x, raw=True)
    for op in graph.ops:
        g = [int(v) for v in np.asarray(got[op.name]).flat]
        assert g == [int(v) for v in want[op.name].flat], f"reference != Fraction at op {op.name!r}"
    return got[graph.outputs[0]]


def check_model(run):
    """RTL (Amaranth simulator) == reference == Fraction evaluation, and latency / interval as
    reported. Records the outcome in :data:`STATS`."""
    t0 = time.perf_counter()
    STATS.models += 1
    STATS.by_kind[(run["kind"], run["io"])] = STATS.by_kind.get((run["kind"], run["io"]), 0) + 1
    try:
        try:
            graph = lower(run["graph"], PrecisionConfig.from_dict(run["config"]))
        except PassError:  # a clear refusal (e.g. 1-bit logits for a table softmax) is a right answer
            STATS.refused += 1
            return
        rng = np.random.default_rng(run["seed"])
        x = random_raw_inputs(graph.input.fmt, (run["n"],) + tuple(graph.input.shape), rng)
        assert_traces_equal(graph, x)
        try:
            net = Network(graph, io=run["io"], memory_bits=run["memory_bits"], multiplier=run["multiplier"],
                          levels_per_stage=run["levels"],
                          flow_control=run["flow"] if run["io"] == "parallel" else "stall")
        except NetworkError as e:  # a clear refusal of a degenerate stream network is a right answer
            if "does not depend on its input" not in str(e):
                raise
            STATS.refused += 1
            return
        result = verify_design(Design(graph, net), x, seed=run["seed"], gap=run["gap"], stall=run["stall"])
        assert not result.mismatches, f"RTL != reference: {result.mismatches[:2]}"
        assert result.latencies == {net.latency}, f"latency {result.latencies} != reported {net.latency}"
        assert result.intervals and result.intervals <= {net.interval}, \
            f"interval {result.intervals} != reported {net.interval}"
    except AssertionError as e:
        STATS.mismatches += 1
        _note(run, e)
        raise
    except Exception as e:
        STATS.crashes += 1
        _note(run, e)
        raise
    finally:
        STATS.seconds += time.perf_counter() - t0
        _progress()


def _progress():
    """With ``NNHDL_FUZZ_PROGRESS=<file>``, keep the running totals in that file (JSON)."""
    path = os.environ.get("NNHDL_FUZZ_PROGRESS")
    if path:
        data = asdict(STATS)
        data["by_kind"] = {f"{k}/{io}": n for (k, io), n in STATS.by_kind.items()}
        with open(path, "w") as f:
            json.dump(data, f)


def _note(run, e):
    if len(STATS.failures) < 20:
        STATS.failures.append(f"{run['kind']}/{run['io']}: {type(e).__name__}: {str(e)[:200]}")
