"""Dense layer with constant weights baked into the logic."""

from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from ..arith import dense_plan
from ..cmvm import build_cmvm
from ..options import Multiplier
from .activation import activation_nodes
from .base import PipelinedLayer

__all__ = ["Dense", "dense_sums", "MULTIPLIERS", "check_multiplier", "computed_graphs", "remember_graphs"]

MULTIPLIERS = tuple(m.value for m in Multiplier)


def check_multiplier(multiplier):
    """Raise :class:`~nnhdl.options.OptionsError` (a ValueError) unless ``multiplier`` is a
    :class:`~nnhdl.options.Multiplier`."""
    Multiplier.parse(multiplier, "multiplier")


class Dense(PipelinedLayer):
    """Fully pipelined dense layer: ``o = cast(act(b + sum_i x_i * w[i, j]))``, II = 1.

    Parameters
    ----------
    op : nnhdl.ir.Dense
        A quantized Dense op (integer weights and bias, formats set).
    in_fmt : FixedFormat
        Format of the input words.
    multiplier : "cse" | "csd" | "dsp"
        ``"cse"``: the whole matrix-vector product is one arithmetic graph of shifts and
        additions in which two-term subexpressions common to several products are built once
        (:mod:`nnhdl.cmvm`; where the products must each be cast into the accumulator, as
        ``"csd"``); ``"csd"``: each product is a shift-and-add of the weight's canonical signed
        digits (zero weights and zero digits cost nothing); ``"dsp"``: a plain ``*`` by the
        constant, which synthesis maps to DSP blocks.
    levels_per_stage : int
        Adder levels between registers (pipeline depth knob).

    The arithmetic follows :class:`nnhdl.ir.Dense` bit for bit (see
    :func:`nnhdl.reference.dense_accumulate`): with an exact accumulator the products and the
    bias are summed by a balanced registered adder tree whose every node is exactly as wide as
    its interval; with a given ``accum`` format each product is rounded/overflowed into it,
    and a saturating accumulator that can overflow is summed in hls4ml's order (bias first,
    then inputs 0, 1, ...), one saturating addition after the other.
    Members and latency: see :class:`PipelinedLayer`.
    """

    def __init__(self, op, in_fmt, *, multiplier="cse", levels_per_stage=2):
        check_multiplier(multiplier)
        self.op = op
        self.multiplier = multiplier
        self.plan = dense_plan(op, in_fmt)
        super().__init__(in_fmt, op.n_in, op.fmt, op.n_out, levels_per_stage=levels_per_stage, name=op.name)

    def figures(self):
        return dict(super().figures(), reuse=1)

    def build(self, dp, xs):
        op = self.op
        sums = dense_sums(dp, op, self.plan, xs, self.in_fmt, self.multiplier)
        return activation_nodes(dp, op.activation, sums, op.accum_fmt.frac_bits, op.fmt, op.alpha, op.alpha_fmt,
                                self.multiplier)


def dense_sums(dp, op, plan, xs, in_fmt, multiplier):
    """The accumulator node of each output of Dense-like ``op`` (see :class:`Dense`) for input
    nodes ``xs``; an input that is ``None`` is a constant zero (padding) and costs nothing."""
    acc = op.accum_fmt
    if multiplier == "cse" and not plan.cast_products and not plan.ordered:
        return _shared_sums(dp, op, plan, xs)
    fp = in_fmt.frac_bits + op.weight_fmt.frac_bits
    outputs = []
    for j in range(op.n_out):
        terms = []
        for i, x in enumerate(xs):
            w = int(op.weight[i, j])
            if w == 0 or x is None:
                continue
            p = dp.multiply_const(x, w, multiplier)
            if plan.cast_products:
                t = dp.requantize(p, fp, acc)
            else:
                t = replace(p, shift=p.shift + plan.shift)
            terms.append(t)
        bias = dp.const(int(plan.bias[j]))
        if plan.ordered:
            total = bias
            for t in terms:
                total = dp.overflow(dp.add(total, t), acc)
        else:
            total = dp.sum(terms + [bias])
            if plan.can_overflow:
                total = dp.overflow(total, acc)
        outputs.append(total)
    return outputs


def _shared_sums(dp, op, plan, xs):
    """:func:`dense_sums` with exact products (no cast, no ordered saturation): one
    :mod:`nnhdl.cmvm` graph in accumulator units over the variable inputs and, as one more input
    per column, its bias plus the products of constant inputs (a leaf of the column's adder tree,
    so it adds no adder level of its own)."""
    live = [i for i, x in enumerate(xs) if x is not None and not x.is_const]
    const = [i for i, x in enumerate(xs) if x is not None and x.is_const]
    weight = np.asarray(op.weight)
    offsets = [int(plan.bias[j]) + (sum(xs[i].real_lo * int(weight[i, j]) for i in const) << plan.shift)
               for j in range(op.n_out)]
    ins = [replace(xs[i], shift=xs[i].shift + plan.shift) for i in live]
    bounds = [(x.real_lo, x.real_hi) for x in ins]
    rows = [tuple(int(v) for v in weight[i]) for i in live]
    for j, c in enumerate(offsets):
        if c:
            ins.append(dp.const(c))
            bounds.append((c, c))
            rows.append(tuple(int(j == k) for k in range(op.n_out)))
    graph = _graph(tuple(rows), op.n_out, tuple(bounds))
    outputs = dp.cmvm(graph, ins)
    if plan.can_overflow:
        outputs = [dp.overflow(total, op.accum_fmt) for total in outputs]
    return outputs


_GRAPHS = {}  # (rows, n_out, bounds) -> CMVMGraph, the most recently used last
_GRAPHS_KEPT = 32
_recorders = []  # dicts collecting the graphs computed while open (computed_graphs)


def _graph(rows, n_out, bounds):
    """The shared (``cse``) graph of the weight matrix ``rows`` (cached: every window of a Conv
    has the same one, except where it is on padding)."""
    key = (rows, n_out, bounds)
    graph = _GRAPHS.pop(key, None)
    if graph is None:
        graph = build_cmvm(np.array(rows, dtype=object).reshape(len(rows), n_out), bounds, "cse")
        for recorder in _recorders:
            recorder[key] = graph
    remember_graphs({key: graph})
    return graph


@contextmanager
def computed_graphs():
    """A dict that collects, while the context is open, the ``cse`` graphs computed (not found in
    the cache), by key: to hand them to another process (:func:`remember_graphs`)."""
    recorder = {}
    _recorders.append(recorder)
    try:
        yield recorder
    finally:
        del _recorders[next(k for k, r in enumerate(_recorders) if r is recorder)]  # (dicts compare by value)


def remember_graphs(graphs):
    """Add ``graphs`` (from :func:`computed_graphs`) to the cache, so layers built afterwards with
    the same weights and input ranges skip the search."""
    for key, graph in graphs.items():
        _GRAPHS.pop(key, None)
        _GRAPHS[key] = graph
    while len(_GRAPHS) > _GRAPHS_KEPT:
        del _GRAPHS[next(iter(_GRAPHS))]
