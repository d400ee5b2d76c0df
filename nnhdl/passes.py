"""Pure graph passes: each takes a Graph and returns a new one.

:func:`lower` runs them in order: :func:`drop_dropout`, :func:`fold_batchnorm`,
:func:`fuse_activation`, :func:`quantize` (each op quantized by its kind, :mod:`nnhdl.ops`,
which also infers exact accumulators by interval arithmetic and resolves ``auto`` formats).

Lossy but legal choices are reported as :class:`PrecisionWarning` (Python's ``warnings``; the
command line prints them): constants (weight, bias, alpha) or calibration values outside their
format, which then wrap or saturate, and all-zero calibration data.
"""

from dataclasses import dataclass

import numpy as np

from .config import PrecisionConfig
from .fixed import quantize as quantize_values
from .ir import Activation, BatchNorm, Conv, Dense, Dropout, Flatten, Graph, Input, spatial
from .ops.registry import kind_of
from .precision import (MAX_CONSTANT_BITS, PassError, PrecisionWarning, Resolver, check_calibration,
                        warn_inputs_outside)
from .reference import evaluate_op

__all__ = ["drop_dropout", "fold_batchnorm", "fuse_activation", "quantize", "lower", "PassError",
           "PrecisionWarning", "MAX_CONSTANT_BITS", "warn_inputs_outside", "QuantizeContext"]


def _without(graph, op, replacement_name):
    """Remove ``op``; its consumers (and outputs) read ``replacement_name`` instead."""
    def rewire(names):
        return tuple(replacement_name if n == op.name else n for n in names)
    ops = tuple(o.replace(inputs=rewire(o.inputs)) for o in graph.ops if o is not op)
    return graph.replace(ops=ops, outputs=rewire(graph.outputs))


def _swap(graph, old, new):
    return graph.replace(ops=tuple(new if o is old else o for o in graph.ops))


def drop_dropout(graph: Graph) -> Graph:
    """Dropout is the identity at inference: remove it."""
    for op in graph.ops:
        if isinstance(op, Dropout):
            return drop_dropout(_without(graph, op, op.inputs[0]))
    return graph


def _bn_affine(bn):
    """``(g, c)``: BatchNormalization is ``y = g * x + c`` per channel (last axis)."""
    var = np.asarray(bn.variance, np.float64) + bn.epsilon
    if np.any(~(var > 0)):
        raise PassError(f"BatchNormalization {bn.origin or bn.name!r}: variance + epsilon must be positive "
                        f"(it is {float(var.min()):g}); fix the layer's statistics")
    g = np.asarray(bn.gamma, np.float64) / np.sqrt(var)
    return g, np.asarray(bn.beta, np.float64) - np.asarray(bn.mean, np.float64) * g


def _has_own_entry(config, bn):
    """Whether the configuration sets anything for the BatchNormalization itself."""
    return config is not None and bool(config.layers.get(bn.origin or bn.name))


def _forward_target(graph, bn, config):
    """The Dense or convolution ``bn`` can be folded into exactly (forward): BatchNorm reads one value per channel, so the next layer must see every
    BatchNorm output as an input row (a Dense, possibly after a Flatten, or a convolution with no
    padding: a padded zero is not normalized, so folding into a padded convolution would turn it
    into ``c``). ``None`` when that is not possible, or when the configuration has an entry for
    the BatchNormalization (it then stays a tensor of its own)."""
    if _has_own_entry(config, bn) or bn.name in graph.outputs:
        return None
    name, flattened = bn.name, False
    while True:
        consumers = graph.consumers(name)
        if len(consumers) != 1 or name in graph.outputs:
            return None
        nxt = consumers[0]
        if isinstance(nxt, Flatten) and not flattened:
            name, flattened = nxt.name, True
            continue
        if isinstance(nxt, Conv):
            return nxt if not flattened and not any(nxt.padding) else None
        return nxt if isinstance(nxt, Dense) else None


def _fold_forward(graph, bn, dense, g, c):
    """``W' = diag(g) W``, ``b' = b + c W`` for the rows of ``dense``; drop ``bn``."""
    w = np.asarray(dense.weight, np.float64)
    channel = np.arange(w.shape[0]) % len(g)  # row order (kh, kw, channel) or a flattened channels-last tensor
    folded = dense.replace(weight=w * g[channel][:, None], bias=np.asarray(dense.bias, np.float64) + c[channel] @ w)
    return _without(_swap(graph, dense, folded), bn, bn.inputs[0])


def scale_shift(bn, g, c):
    """The per-channel ``y = g * x + c`` of ``bn`` as an op the rest of nnhdl already knows: a
    Dense with a diagonal weight for a flat tensor, a depthwise 1x1 convolution for an image or a
    signal (zero weights cost nothing in hardware). It keeps the BatchNormalization's name and
    origin, so its ``[layer.NAME]`` entry sets ``weight`` (the scales), ``bias`` (the shifts),
    ``accum`` and ``result`` as for a Dense."""
    common = dict(name=bn.name, inputs=bn.inputs, shape=tuple(bn.shape), origin=bn.origin,
                  result_key=bn.result_key, result_origin=bn.result_origin, weight=np.diag(g), bias=c)
    if len(bn.shape) == 1:
        return Dense(**common)
    return Conv(**common, in_shape=spatial(bn.shape), kernel=(1, 1), strides=(1, 1), padding=(0, 0, 0, 0),
                depthwise=True)


def fold_batchnorm(graph: Graph, config: PrecisionConfig = None) -> Graph:
    """Remove every BatchNormalization (``y = g * x + c`` per channel, ``g = gamma / sqrt(var +
    eps)``, ``c = beta - mean * g``), exactly in the float graph:

    1. after a linear Dense or convolution that feeds only it: fold backward,
       ``w' = w * g``, ``b' = (b - mean) * g + beta`` (the folded layer's output is the
       BatchNorm's: its config entry sets the result);
    2. else, before a Dense (directly or after a Flatten) or an unpadded convolution: fold
       forward, ``W' = diag(g) W``, ``b' = b + c W`` (unless ``config`` has an entry for the
       BatchNorm, which keeps it a layer of its own);
    3. else: a layer of its own, :func:`scale_shift`.
    """
    for bn in graph.ops:
        if not isinstance(bn, BatchNorm):
            continue
        g, c = _bn_affine(bn)
        prev = graph.op(bn.inputs[0])
        if isinstance(prev, Dense) and prev.activation == "linear" and len(graph.consumers(prev.name)) == 1:
            folded = prev.replace(weight=np.asarray(prev.weight, np.float64) * g[None, :],
                                  bias=(np.asarray(prev.bias, np.float64) - bn.mean) * g + bn.beta,
                                  result_origin=bn.origin, result_key=bn.result_key)
            return fold_batchnorm(_without(_swap(graph, prev, folded), bn, prev.name), config)
        target = _forward_target(graph, bn, config)
        if target is not None:
            return fold_batchnorm(_fold_forward(graph, bn, target, g, c), config)
        return fold_batchnorm(_swap(graph, bn, scale_shift(bn, g, c)), config)
    return graph


def fuse_activation(graph: Graph, config: PrecisionConfig = None) -> Graph:
    """Merge a linear Dense and the element-wise Activation after it into one Dense.

    The fused layer computes the activation on the exact (or ``accum``) value and casts once,
    to the activation layer's ``result``. A Dense whose own ``result`` (or, after folding, its
    BatchNormalization's) is set explicitly in ``config`` is not fused: its output is then a
    real, rounded tensor."""
    config = config or PrecisionConfig()
    for act in graph.ops:
        if not isinstance(act, Activation):
            continue
        prev = graph.op(act.inputs[0])
        if (not isinstance(prev, Dense) or prev.activation != "linear" or len(graph.consumers(prev.name)) != 1
                or config.get(prev.result_origin or prev.origin, prev.result_key)[1]):
            continue
        fused = prev.replace(activation=act.function, alpha=act.alpha, origin=prev.origin,
                             result_origin=act.origin, result_key=act.result_key)
        return fuse_activation(_without(_swap(graph, prev, fused), act, prev.name), config)
    return graph


@dataclass(frozen=True)
class QuantizeContext:
    """What an op kind's ``quantize`` gets: ``src`` the formats of the op's inputs, ``calibration``
    the raw values of its first input on the calibration data (``None`` without calibration),
    ``resolve`` the :class:`~nnhdl.precision.Resolver` of the configuration, ``config`` itself
    and ``where`` ("layer 'fc1'") for messages."""
    src: tuple
    calibration: object
    resolve: Resolver
    config: PrecisionConfig
    where: str


def quantize(graph: Graph, config: PrecisionConfig = None, calibration=None) -> Graph:
    """Give every op its formats and turn constants into integers (each op by its kind's
    ``quantize``, see :mod:`nnhdl.ops`).

    ``calibration``: optional float inputs ``(N, *input_shape)`` used to size ``auto`` results."""
    config = config or PrecisionConfig()
    res = Resolver(config)
    ops, fmts, calib = [], {}, {}
    for op in graph.ops:
        srcs = [fmts[n] for n in op.inputs]
        where = f"layer {op.origin or op.name!r}"
        if isinstance(op, Input):  # the graph's entry: its format, and the calibration values in it
            if calibration is not None:
                calibration = np.asarray(calibration, np.float64)
                if calibration.size == 0:
                    raise PassError("the calibration data are empty; give at least one input, shaped "
                                    f"(N, {', '.join(map(str, op.shape))})")
            cal = None if calibration is None else (float(np.min(calibration)), float(np.max(calibration)))
            new = op.replace(fmt=res.fmt(op.origin, op.result_key, cal, where))
            if calibration is not None:
                check_calibration(calibration, new.fmt, op)
                calib[op.name] = quantize_values(calibration, new.fmt)
        else:
            q = QuantizeContext(tuple(srcs), calib.get(op.inputs[0]) if op.inputs else None, res, config, where)
            new = kind_of(op).quantize(op, q)
        ops.append(new)
        fmts[op.name] = new.fmt
        if calibration is not None and not isinstance(new, Input):
            calib[op.name] = evaluate_op(new, [calib[n] for n in op.inputs], srcs)
    return graph.replace(ops=tuple(ops))


def lower(graph: Graph, config: PrecisionConfig = None, calibration=None) -> Graph:
    """Float graph -> quantized graph: drop Dropout, fold BatchNorm, fuse activations, quantize."""
    config = config or PrecisionConfig()
    g = drop_dropout(graph)
    g = fold_batchnorm(g, config)
    g = fuse_activation(g, config)
    return quantize(g, config, calibration)
