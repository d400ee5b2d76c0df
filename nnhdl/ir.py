"""The model IR: a graph of small frozen op dataclasses.

A :class:`Graph` is built by a frontend with float constants and no formats (the *float
graph*); the passes in :mod:`nnhdl.passes` fold and fuse ops and finally quantize it, after
which every op has an output :class:`~nnhdl.fixed.FixedFormat` ``fmt`` and every constant is
an integer array in its own format (the *quantized graph*). Ops name their producers in
``inputs``, so the graph is not limited to a chain, though today's layers are sequential.

Shapes never include the batch dimension. A graph is saved as ``graph.json`` (structure,
formats) beside ``graph.npz`` (constants).
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .fixed import FixedFormat
from .ops.registry import op_type as registered_op_type

__all__ = ["window_count", "Op", "Input", "Dense", "Conv", "Pool", "Pad", "Reshape", "BatchNorm", "Activation", "Dropout",
           "Flatten", "Softmax", "Requantize", "Graph", "IRError", "ACTIVATIONS", "FORMAT_VERSION", "spatial"]

FORMAT_VERSION = 1

#: Element-wise activations that Dense can fuse and the Activation op computes.
ACTIVATIONS = ("linear", "relu", "leaky_relu")


class IRError(ValueError):
    """A graph is malformed or a saved graph cannot be read."""


@dataclass(frozen=True, eq=False)
class Op:
    """Base of all ops.

    ``name`` is unique in the graph; ``inputs`` names the producing ops; ``shape`` is the
    output shape; ``fmt`` the output format (``None`` in a float graph). ``origin`` is the
    name of the framework layer (Keras layer name) the op came from, used to look up
    precision settings; ``fmt`` is set by key ``result_key`` of layer ``result_origin``
    (default: ``origin``), which differs after an activation layer was fused into a Dense.
    """
    name: str
    inputs: tuple
    shape: tuple
    fmt: Optional[FixedFormat] = None
    origin: str = ""
    result_key: str = "result"
    result_origin: str = ""

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, eq=False)
class Input(Op):
    """The network input."""


@dataclass(frozen=True, eq=False)
class Dense(Op):
    """``y = act(sum_i x_i * w[i, j] + b[j])``, then cast to ``fmt``.

    Arithmetic (quantized graph), following hls4ml's ``io_parallel`` latency dense:
    every product ``x_i * w[i, j]`` is cast to ``accum_fmt``, the bias is cast to
    ``accum_fmt``, the running sum ``b + p_0 + p_1 + ...`` is cast to ``accum_fmt`` after each
    addition (only the overflow mode can act there), and the activation is applied to the
    accumulator value, whose result is cast to ``fmt``. When the configuration gives no
    accumulator, ``accum_fmt`` is exact (interval arithmetic: nothing can round or overflow).

    ``weight`` has shape ``(n_in, n_out)``; in a quantized graph ``weight``, ``bias`` and
    ``alpha`` are integer arrays in ``weight_fmt``, ``bias_fmt``, ``alpha_fmt``.
    """
    weight: np.ndarray = None
    bias: np.ndarray = None
    activation: str = "linear"
    alpha: object = 0.0  # leaky_relu negative slope (float, then an int in alpha_fmt)
    weight_fmt: Optional[FixedFormat] = None
    bias_fmt: Optional[FixedFormat] = None
    accum_fmt: Optional[FixedFormat] = None
    alpha_fmt: Optional[FixedFormat] = None
    accum_exact: bool = True

    @property
    def n_in(self):
        return self.weight.shape[0]

    @property
    def n_out(self):
        return self.weight.shape[1]


def spatial(shape):
    """The ``(height, width, channels)`` view of a channels-last tensor shape: a 1-D signal
    ``(length, channels)`` is an image of height 1."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return (1,) + shape
    if len(shape) == 1:
        return (1, 1) + shape
    raise IRError(f"no spatial view of a tensor of shape {shape}")


def window_count(size, kernel, stride, pad_lo, pad_hi):
    """Number of window positions along one axis."""
    return (size + pad_lo + pad_hi - kernel) // stride + 1


@dataclass(frozen=True, eq=False)
class Conv(Dense):
    """A 2-D convolution (a 1-D one is an image of height 1), channels last, dilation 1.

    It is a :class:`Dense` applied to every window: ``weight`` has shape
    ``(kh * kw * in_channels, out_channels)``, rows ordered (kernel row, kernel column, input
    channel), and every output pixel is computed with exactly Dense's arithmetic (products,
    accumulator, activation, cast) on its window, terms in that row order. ``padding`` (top,
    bottom, left, right) adds zero inputs around the image; zero terms change nothing, so a
    padded window sums only its real pixels. ``in_shape`` is the input's :func:`spatial`
    view; ``shape`` the output's Keras shape. A depthwise convolution is a Conv whose weight is
    block diagonal (``depthwise`` records it: zero weights cost nothing in hardware).
    """
    in_shape: tuple = ()
    kernel: tuple = (1, 1)
    strides: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    depthwise: bool = False

    @property
    def out_spatial(self):
        (h, w, _), (kh, kw), (sh, sw), (pt, pb, pl, pr) = self.in_shape, self.kernel, self.strides, self.padding
        return window_count(h, kh, sh, pt, pb), window_count(w, kw, sw, pl, pr), self.n_out


@dataclass(frozen=True, eq=False)
class Pool(Op):
    """Max or average pooling over ``pool`` windows moved by ``strides``, per channel.

    ``padding`` (top, bottom, left, right) positions are outside the image and are not part of
    any window (Keras ``padding="same"``): the max is over the window's real pixels and the
    average divides their exact sum by their count. Arithmetic: ``max`` is exact, then cast to
    ``fmt``; ``avg`` is the exact rational ``sum / count`` rounded by ``fmt``'s rounding mode
    (as if the division had infinitely many fraction bits), then ``fmt``'s overflow mode. A
    global pooling is a Pool whose window is the whole image (output shape ``(channels,)``).
    """
    kind: str = "max"
    in_shape: tuple = ()
    pool: tuple = (1, 1)
    strides: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)

    @property
    def out_spatial(self):
        (h, w, c), (kh, kw), (sh, sw), (pt, pb, pl, pr) = self.in_shape, self.pool, self.strides, self.padding
        return window_count(h, kh, sh, pt, pb), window_count(w, kw, sw, pl, pr), c

    @property
    def is_global(self):
        return tuple(self.pool) == tuple(self.in_shape[:2]) and not any(self.padding)


@dataclass(frozen=True, eq=False)
class Pad(Op):
    """Zero padding (Keras ZeroPadding1D/2D): ``padding`` (top, bottom, left, right) pixels of
    value zero around the :func:`spatial` view ``in_shape`` of the input; format unchanged."""
    in_shape: tuple = ()
    padding: tuple = (0, 0, 0, 0)


@dataclass(frozen=True, eq=False)
class Reshape(Op):
    """A new shape for the same row-major data; no arithmetic."""


@dataclass(frozen=True, eq=False)
class BatchNorm(Op):
    """Keras BatchNormalization on the last axis (float graph only: folded into a Dense)."""
    gamma: np.ndarray = None
    beta: np.ndarray = None
    mean: np.ndarray = None
    variance: np.ndarray = None
    epsilon: float = 1e-3


@dataclass(frozen=True, eq=False)
class Activation(Op):
    """Element-wise ``linear`` / ``relu`` / ``leaky_relu`` of the input, cast to ``fmt``.
    For ``leaky_relu`` negative inputs are multiplied by ``alpha`` exactly before the cast."""
    function: str = "linear"
    alpha: object = 0.0
    alpha_fmt: Optional[FixedFormat] = None


@dataclass(frozen=True, eq=False)
class Dropout(Op):
    """Identity at inference (dropped by a pass)."""


@dataclass(frozen=True, eq=False)
class Flatten(Op):
    """Reshape to one dimension (row-major); no arithmetic."""


@dataclass(frozen=True, eq=False)
class Softmax(Op):
    """Softmax over the last axis.

    ``implementation="table"``: hls4ml 1.3's ``stable`` table-based softmax (see
    :mod:`nnhdl.softmax`): ``table_size`` entries (before hls4ml's clipping) in the exp table
    (``exp_fmt``, hls4ml's ``exp_table_t``) and the inverse table (``inv_fmt``,
    ``inv_table_t``); the exp values are summed in ``accum_fmt`` (``accum_t``), the sum cast to
    ``inv_input_fmt`` (``inv_inp_t``) addresses the inverse table, and ``x_max - x`` is cast to
    ``norm_fmt`` (``inp_norm_t``; ``None``: hls4ml's default from the input format).
    ``accum_fmt`` / ``inv_input_fmt`` ``None`` mean hls4ml's default ``fixed<18,8,RND,SAT>``.
    ``implementation="argmax"``: the output is the index of the largest input (the first one on
    ties), an unsigned integer.
    """
    implementation: str = "table"
    table_size: int = 1024
    exp_fmt: Optional[FixedFormat] = None
    inv_fmt: Optional[FixedFormat] = None
    accum_fmt: Optional[FixedFormat] = None
    inv_input_fmt: Optional[FixedFormat] = None
    norm_fmt: Optional[FixedFormat] = None


@dataclass(frozen=True, eq=False)
class Requantize(Op):
    """Cast each element ``k`` of the input (flattened row-major) to its own format
    ``formats[k]`` (its rounding, then its overflow mode, as :func:`nnhdl.fixed.requantize`);
    ``None`` is a zero-bit element, always 0. The result is stored in ``fmt``, a union format
    that holds every element's values exactly (no further rounding or overflow).
    Built from quantization-aware models whose every activation element has its own format
    (see :mod:`nnhdl.per_element`)."""
    formats: tuple = ()


_OP_TYPES = {cls.__name__: cls for cls in (Input, Dense, Conv, Pool, Pad, Reshape, BatchNorm, Activation, Dropout,
                                            Flatten, Softmax, Requantize)}


def _encode(value, arrays, key):
    if isinstance(value, FixedFormat):
        return {"format": str(value)}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise IRError(f"cannot save {key}: values wider than 64 bits")
        arrays[key] = value
        return {"array": key}
    if isinstance(value, tuple):
        return [_encode(v, arrays, key) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def _decode(value, arrays):
    if isinstance(value, dict) and "format" in value:
        return FixedFormat.parse(value["format"])
    if isinstance(value, dict) and "array" in value:
        return arrays[value["array"]]
    if isinstance(value, list):
        return tuple(_decode(v, arrays) for v in value)
    return value


@dataclass(frozen=True, eq=False)
class Graph:
    """Ops in topological order, and the names of the output ops."""
    ops: tuple
    outputs: tuple
    name: str = "network"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        names = set()
        for op in self.ops:
            if op.name in names:
                raise IRError(f"two ops are named {op.name!r}")
            for src in op.inputs:
                if src not in names:
                    raise IRError(f"op {op.name!r} reads {src!r}, which is not defined before it")
            names.add(op.name)
        for out in self.outputs:
            if out not in names:
                raise IRError(f"output {out!r} is not an op of the graph")

    # -- access -------------------------------------------------------------------------------
    def op(self, name):
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    @property
    def inputs(self):
        return tuple(op for op in self.ops if isinstance(op, Input))

    @property
    def input(self):
        ins = self.inputs
        if len(ins) != 1:
            raise IRError(f"expected one input, the graph has {len(ins)}")
        return ins[0]

    @property
    def output(self):
        if len(self.outputs) != 1:
            raise IRError(f"expected one output, the graph has {len(self.outputs)}")
        return self.op(self.outputs[0])

    def consumers(self, name):
        return tuple(op for op in self.ops if name in op.inputs)

    @property
    def is_quantized(self):
        return all(op.fmt is not None for op in self.ops)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def is_chain(self):
        prev = None
        for op in self.ops:
            if prev is not None and op.inputs != (prev.name,):
                return False
            prev = op
        return True

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self, arrays):
        ops = []
        for op in self.ops:
            entry = {"op": type(op).__name__}
            for f in dataclasses.fields(op):
                entry[f.name] = _encode(getattr(op, f.name), arrays, f"{op.name}/{f.name}")
            ops.append(entry)
        return {"nnhdl_ir": FORMAT_VERSION, "name": self.name, "outputs": list(self.outputs),
                "meta": self.meta, "ops": ops}

    @classmethod
    def from_dict(cls, data, arrays):
        if data.get("nnhdl_ir") != FORMAT_VERSION:
            raise IRError(f"unsupported IR version {data.get('nnhdl_ir')!r} (this nnhdl reads {FORMAT_VERSION})")
        ops = []
        for entry in data["ops"]:
            entry = dict(entry)
            kind = entry.pop("op")
            op_class = _OP_TYPES.get(kind) or registered_op_type(kind)
            if op_class is None:
                raise IRError(f"unknown op type {kind!r}")
            ops.append(op_class(**{k: _decode(v, arrays) for k, v in entry.items()}))
        return cls(tuple(ops), tuple(data["outputs"]), data.get("name", "network"), data.get("meta", {}))

    def save(self, stem):
        """Write ``<stem>.json`` and ``<stem>.npz``."""
        stem = Path(stem)
        arrays = {}
        text = json.dumps(self.to_dict(arrays), indent=1)
        np.savez(stem.with_suffix(".npz"), **arrays)
        stem.with_suffix(".json").write_text(text)

    @classmethod
    def load(cls, stem):
        stem = Path(stem)
        json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
        try:
            data = json.loads(json_path.read_text())
            with np.load(npz_path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as e:
            raise IRError(f"cannot read the saved graph {json_path} / {npz_path}: {e}") from e
        try:
            return cls.from_dict(data, arrays)
        except IRError as e:
            raise IRError(f"{json_path}: {e}; convert the model again") from None
        except (AttributeError, KeyError, TypeError, ValueError) as e:  # valid JSON, not a graph nnhdl wrote
            raise IRError(f"{json_path}: not a graph saved by nnhdl ({type(e).__name__}: {e}); "
                          "convert the model again") from None
