"""Convolution, pooling, padding and reshaping in both I/O styles: the RTL equals the reference
bit for bit with random gaps and stalls, and the latency (from idle) and the cycles per
inference (at full rate) are exactly the ones the Network reports."""

import random

import numpy as np
import pytest

from nnhdl.config import PrecisionConfig
from nnhdl.convert import Design
from nnhdl.fixed import Overflow, Rounding
from nnhdl.ir import Conv, Dense, Flatten, Graph, Input, Pad, Pool, Reshape, spatial, window_count
from nnhdl.layers import Network
from nnhdl.passes import lower
from nnhdl.verify import verify_design

ROUNDING = [r.value for r in Rounding]
OVERFLOW = [o.value for o in Overflow]


def _geometry(shape, kernel, strides, padding):
    h, w, _ = spatial(shape)
    kh, kw = kernel
    sh, sw = strides
    if padding == "same":
        pads = []
        for n, k, s in ((h, kh, sh), (w, kw, sw)):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    return (0, 0, 0, 0) if padding == "valid" else tuple(padding)


class ImageNet:
    """Builds a float image graph op by op."""

    def __init__(self, rng, shape):
        self.rng = rng
        self.ops = [Input("in", (), tuple(shape), origin="in")]

    @property
    def shape(self):
        return self.ops[-1].shape

    def _out(self, oh, ow, c):
        return (ow, c) if len(self.shape) == 2 else (oh, ow, c)

    def conv(self, name, cout, kernel, strides=(1, 1), padding="valid", activation="linear", depthwise=False,
             zero_fraction=0.2):
        in_shape = spatial(self.shape)
        pads = _geometry(self.shape, kernel, strides, padding)
        cin = in_shape[2]
        if depthwise:
            mult = cout
            k = self.rng.normal(size=(*kernel, cin, mult))
            weight = np.zeros((*kernel, cin, cin * mult))
            for c in range(cin):
                weight[:, :, c, c * mult:(c + 1) * mult] = k[:, :, c, :]
            cout = cin * mult
        else:
            weight = self.rng.normal(size=(*kernel, cin, cout))
        weight = weight.reshape(-1, cout) * (self.rng.random(size=(weight.size // cout, cout)) >= zero_fraction)
        oh = window_count(in_shape[0], kernel[0], strides[0], pads[0], pads[1])
        ow = window_count(in_shape[1], kernel[1], strides[1], pads[2], pads[3])
        self.ops.append(Conv(name, (self.ops[-1].name,), self._out(oh, ow, cout), origin=name, weight=weight,
                             bias=self.rng.normal(size=cout), activation=activation, alpha=0.25, in_shape=in_shape,
                             kernel=tuple(kernel), strides=tuple(strides), padding=pads, depthwise=depthwise))
        return self

    def pool(self, name, kind, pool, strides=None, padding="valid"):
        in_shape = spatial(self.shape)
        strides = tuple(strides or pool)
        pads = _geometry(self.shape, pool, strides, padding)
        oh = window_count(in_shape[0], pool[0], strides[0], pads[0], pads[1])
        ow = window_count(in_shape[1], pool[1], strides[1], pads[2], pads[3])
        self.ops.append(Pool(name, (self.ops[-1].name,), self._out(oh, ow, in_shape[2]), origin=name, kind=kind,
                             in_shape=in_shape, pool=tuple(pool), strides=strides, padding=pads))
        return self

    def global_pool(self, name, kind):
        h, w, c = spatial(self.shape)
        self.ops.append(Pool(name, (self.ops[-1].name,), (c,), origin=name, kind=kind, in_shape=(h, w, c),
                             pool=(h, w), strides=(h, w), padding=(0, 0, 0, 0)))
        return self

    def pad(self, name, pads):
        h, w, c = spatial(self.shape)
        self.ops.append(Pad(name, (self.ops[-1].name,), self._out(h + pads[0] + pads[1], w + pads[2] + pads[3], c),
                            origin=name, in_shape=(h, w, c), padding=tuple(pads)))
        return self

    def reshape(self, name, shape):
        self.ops.append(Reshape(name, (self.ops[-1].name,), tuple(shape), origin=name))
        return self

    def dense(self, name, n):
        if len(self.shape) > 1:
            size = int(np.prod(self.shape))
            self.ops.append(Flatten(f"{name}_flatten", (self.ops[-1].name,), (size,), origin=f"{name}_flatten"))
        n_in = self.shape[0]
        self.ops.append(Dense(name, (self.ops[-1].name,), (n,), origin=name, weight=self.rng.normal(size=(n_in, n)),
                              bias=self.rng.normal(size=n)))
        return self

    def graph(self):
        return Graph(tuple(self.ops), (self.ops[-1].name,), name="cnn")


def check(graph, io, seed, n=4, memory_bits=1024, multiplier="csd", levels=2):
    net = Network(graph, io=io, memory_bits=memory_bits, multiplier=multiplier, levels_per_stage=levels)
    fmt = graph.input.fmt
    rng = np.random.default_rng(seed)
    x = rng.integers(fmt.min_int, fmt.max_int + 1, size=(n,) + tuple(graph.input.shape))
    result = verify_design(Design(graph, net), x, seed=seed, gap=0.3, stall=0.3)
    assert not result.mismatches, result.mismatches[:2]
    assert result.latencies == {net.latency}
    assert result.intervals <= {net.interval} and result.intervals, result.intervals
    if io == "parallel":
        assert net.interval == 1 and net.latency == sum(layer.latency for _, layer in net.layers)
    return net


def formats(seed, layers):
    rs = random.Random(seed)

    def fmt(signed=True):
        w = rs.randint(5, 12)
        return f"{'' if signed else 'u'}fixed<{w},{rs.randint(1, w)},{rs.choice(ROUNDING)},{rs.choice(OVERFLOW)}>"

    cfg = {"precision": fmt(), "layer": {"in": {"result": fmt(rs.random() < 0.7)}}}
    for name in layers:
        entry = {"weight": fmt(), "bias": fmt(), "result": fmt(rs.random() < 0.8)}
        if rs.random() < 0.3:
            entry["accum"] = fmt()
        cfg["layer"][name] = entry
    return PrecisionConfig.from_dict(cfg)


CONV2D = [  # (input shape, cout, kernel, strides, padding, activation)
    ((5, 6, 2), 3, (3, 3), (1, 1), "valid", "relu"),
    ((5, 6, 2), 2, (3, 3), (1, 1), "same", "linear"),
    ((6, 5, 1), 2, (2, 3), (2, 1), "same", "leaky_relu"),
    ((7, 7, 2), 2, (3, 2), (2, 2), "valid", "relu"),
    ((4, 5, 3), 4, (1, 1), (1, 1), "valid", "linear"),
    ((5, 5, 1), 1, (5, 5), (1, 1), "valid", "linear"),
    ((6, 4, 2), 2, (2, 2), (3, 2), "same", "relu"),
]


@pytest.mark.parametrize("io", ["parallel", "stream"])
@pytest.mark.parametrize("case", range(len(CONV2D)))
def test_conv2d(rng, case, io):
    shape, cout, kernel, strides, padding, act = CONV2D[case]
    g = ImageNet(rng, shape).conv("c", cout, kernel, strides, padding, act).graph()
    q = lower(g, formats(case, ["c"]))
    multiplier = "dsp" if case == 3 else ("csd" if case % 2 else "cse")
    check(q, io, case, memory_bits=1 if case % 2 else 1024, multiplier=multiplier, levels=1 + case % 3)


CONV1D = [((12, 2), 3, 3, 1, "valid"), ((11, 1), 2, 4, 2, "same"), ((9, 3), 2, 1, 1, "valid"),
          ((10, 2), 2, 3, 3, "same")]


@pytest.mark.parametrize("io", ["parallel", "stream"])
@pytest.mark.parametrize("case", range(len(CONV1D)))
def test_conv1d(rng, case, io):
    shape, cout, k, s, padding = CONV1D[case]
    g = ImageNet(rng, shape).conv("c", cout, (1, k), (1, s), padding, "relu").graph()
    check(lower(g, formats(10 + case, ["c"])), io, case)


@pytest.mark.parametrize("io", ["parallel", "stream"])
@pytest.mark.parametrize("mult,padding", [(1, "valid"), (2, "same")])
def test_depthwise_and_separable(rng, io, mult, padding):
    g = (ImageNet(rng, (5, 6, 2)).conv("dw", mult, (3, 3), (1, 1), padding, "linear", depthwise=True)
         .conv("pw", 3, (1, 1), activation="relu").graph())
    check(lower(g, formats(20 + mult, ["dw", "pw"])), io, mult, memory_bits=1)


POOLS = [  # (input shape, kind, pool, strides, padding)
    ((6, 6, 2), "max", (2, 2), None, "valid"),
    ((6, 6, 2), "avg", (2, 2), None, "valid"),
    ((7, 5, 1), "max", (3, 3), (2, 2), "same"),
    ((7, 5, 2), "avg", (3, 3), (2, 2), "same"),
    ((5, 7, 1), "avg", (3, 2), (1, 1), "same"),
    ((8, 6, 1), "avg", (3, 3), (3, 3), "valid"),
    ((12, 2), "max", (1, 3), None, "same"),
    ((10, 3), "avg", (1, 3), (1, 2), "valid"),
]


@pytest.mark.parametrize("io", ["parallel", "stream"])
@pytest.mark.parametrize("case", range(len(POOLS)))
def test_pooling(rng, case, io):
    shape, kind, pool, strides, padding = POOLS[case]
    g = ImageNet(rng, shape).pool("p", kind, pool, strides, padding).graph()
    check(lower(g, formats(30 + case, ["p"])), io, case, memory_bits=1 if case % 2 else 1024)


@pytest.mark.parametrize("io", ["parallel", "stream"])
@pytest.mark.parametrize("kind,shape", [("max", (4, 5, 2)), ("avg", (4, 5, 2)), ("avg", (6, 3)), ("avg", (4, 4, 1)),
                                        ("max", (7, 1))])
def test_global_pooling(rng, io, kind, shape):
    g = ImageNet(rng, shape).global_pool("g", kind).graph()
    check(lower(g, formats(len(shape) + (kind == "max"), ["g"])), io, 1)


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_padding_reshape_flatten_dense(rng, io):
    g = (ImageNet(rng, (4, 5, 2)).pad("z", (1, 0, 2, 1)).conv("c", 2, (2, 2), activation="relu")
         .reshape("r", (2, 14, 2)).pool("p", "max", (2, 3)).dense("d", 3).graph())
    check(lower(g, formats(40, ["c", "p", "d"])), io, 2)


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_flat_input_reshaped_to_an_image(rng, io):
    g = ImageNet(rng, (24,)).reshape("r", (4, 3, 2)).conv("c", 2, (2, 2), activation="relu").dense("d", 2).graph()
    net = check(lower(g, formats(41, ["c", "d"])), io, 3)
    assert (net.in_beats, net.in_words) == ((12, 2) if io == "stream" else (1, 24))


def test_reshape_that_changes_channels_gathers_the_stream(rng):
    """After a Reshape that regroups the channels, the stream is gathered and the rest is parallel."""
    g = (ImageNet(rng, (4, 4, 2)).conv("c1", 3, (2, 2), activation="relu").reshape("r", (3, 9, 1))
         .conv("c2", 2, (2, 3)).graph())
    net = check(lower(g, formats(43, ["c1", "c2"])), "stream", 5)
    assert [type(layer).__name__ for _, layer in net.layers] == ["ConvStream", "Collect", "Conv"]


def test_stream_output_is_an_image(rng):
    """A network that ends on a convolution streams its output pixels too."""
    g = ImageNet(rng, (5, 4, 2)).conv("c1", 2, (3, 3), padding="same", activation="relu").conv("c2", 3, (2, 2)).graph()
    net = check(lower(g, formats(42, ["c1", "c2"])), "stream", 4)
    assert (net.out_beats, net.out_words) == (4 * 3, 3)


def test_line_buffer_storage(rng):
    g = ImageNet(rng, (6, 20, 4)).conv("c", 2, (3, 3)).graph()
    q = lower(g, PrecisionConfig.from_dict({"precision": "fixed<8,3>"}))
    big = Network(q, io="stream").layers[0][1]
    assert (big.line_buffer_bits, big.line_buffer_kind, big.memory_bits) == (2 * 20 * 4 * 8, "memory", 1280)
    small = Network(q, io="stream", memory_bits=4096).layers[0][1]
    assert (small.line_buffer_kind, small.memory_bits) == ("registers", 0)


def test_stream_rejects_dense_on_pixels(rng):
    from nnhdl.layers import NetworkError
    g = ImageNet(rng, (4, 4, 2)).graph()
    ops = g.ops + (Dense("d", ("in",), (4, 4, 3), origin="d", weight=rng.normal(size=(2, 3)), bias=np.zeros(3)),)
    q = lower(Graph(ops, ("d",)), PrecisionConfig())
    with pytest.raises(NetworkError, match="add a Flatten before it"):
        Network(q, io="stream")
