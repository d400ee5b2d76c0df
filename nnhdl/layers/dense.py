"""Dense layer with constant weights baked into the logic."""

from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from ..arith import dense_plan
from ..cmvm import build_cmvm
from ..fixed import Overflow, Rounding, requantize
from ..options import Multiplier
from .activation import activation_nodes
from .base import PipelinedLayer

__all__ = ["Dense", "dense_sums", "MULTIPLIERS", "CAST_SHARE_MAX_BITS", "check_multiplier", "computed_graphs",
           "remember_graphs"]

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
        (:mod:`nnhdl.cmvm`; where the products must each be cast into the accumulator, the
        same graph less a small correction per product when the cast drops at most
        :data:`CAST_SHARE_MAX_BITS` bits by ``TRN`` or ``RND`` (:func:`_shared_cast_sums`), else as
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
    if multiplier == "cse" and not plan.ordered:
        if not plan.cast_products:
            return _shared_sums(dp, op, plan, xs)
        if _cast_shares(op, xs, in_fmt):
            return _shared_cast_sums(dp, op, plan, xs, in_fmt)
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
    rows = [tuple(int(v) for v in weight[i]) for i in live]
    outputs = _column_sums(dp, ins, rows, offsets)
    if plan.can_overflow:
        outputs = [dp.overflow(total, op.accum_fmt) for total in outputs]
    return outputs


#: The most fraction bits a product may lose in its cast into the accumulator for
#: :func:`_shared_cast_sums`: each (input, weight residue) pair costs a function of that many of
#: the input's low bits and a term that wide in its column. Measured 2026-12-01 on the 8-bit jet
#: tagger (5 adder levels per stage) with accumulators dropping 2 ... 7 product bits: adder and
#: table bits 0.55, 0.61, 0.70, 0.82, 0.95, 1.06 times those of per-product casts, one cycle more
#: latency, and the search 1.6, 1.9, 2.3, 3.4, 5.5, 8.9 s instead of under 1 s.
CAST_SHARE_MAX_BITS = 4


def _cast_shares(op, xs, in_fmt):
    """Can :func:`_shared_cast_sums` build the products cast into ``op``'s accumulator? When the
    cast rounds by truncation or half up (``TRN``, ``RND``: what it adds depends only on the
    product's dropped bits), drops at most :data:`CAST_SHARE_MAX_BITS` bits, and either wraps or
    never overflows; and the variable inputs are plain nodes."""
    acc = op.accum_fmt
    s = in_fmt.frac_bits + op.weight_fmt.frac_bits - acc.frac_bits
    if s > CAST_SHARE_MAX_BITS or (s > 0 and acc.rounding not in (Rounding.TRN, Rounding.RND)):
        return False
    if any(x is not None and not x.is_const and (x.shift or x.negative) for x in xs):
        return False
    if acc.overflow is Overflow.WRAP:
        return True
    # every cast product lies in the accumulator's range (rounding is monotone: the extreme
    # products tell), so no cast saturates
    weight = np.asarray(op.weight)
    if weight.size == 0:
        return True
    extremes = (int(weight.min()), int(weight.max()))  # a product's extremes are at the weights'
    ends = [v * w for x in xs if x is not None for v in (x.real_lo, x.real_hi) for w in extremes]
    if not ends:
        return True
    ends = np.array([min(ends), max(ends)], dtype=object)
    frac = acc.frac_bits + s
    return list(requantize(ends, frac, acc.with_modes(overflow=Overflow.WRAP))) == \
        list(requantize(ends, frac, acc.with_modes(overflow=Overflow.SAT)))


def _shared_cast_sums(dp, op, plan, xs, in_fmt):
    """:func:`dense_sums` where every product is cast into the accumulator (``plan.cast_products``,
    :func:`_cast_shares`), with the products' sums shared like exact ones (:func:`_shared_sums`).

    A product ``p`` cast by dropping ``s`` bits is ``(p + h - r) >> s`` exactly, where ``h`` is
    ``2**(s-1)`` for ``RND`` (else 0) and ``r = (p + h) mod 2**s``; and ``r`` depends only on the
    input's ``s`` low bits and the weight modulo ``2**s``. So each column is one :mod:`nnhdl.cmvm`
    graph over the inputs (exact products), minus the ``r`` of each of its products (a function
    of ``s`` input bits, built once per input and weight residue), plus the constants (the bias
    and ``h`` per product, shifted up by ``s``), then shifted right by ``s`` (the dropped bits are
    zero). A wrapping accumulator wraps the whole sum (the same modulo ``2**width`` as wrapping
    each product); one that saturates is used only when no product can overflow it. With
    ``s <= 0`` only the wrap is left: the exact sum, wrapped."""
    acc = op.accum_fmt
    fp = in_fmt.frac_bits + op.weight_fmt.frac_bits
    s = fp - acc.frac_bits
    if s <= 0:
        exact = replace(plan, shift=-s)
        return [dp.overflow(total, acc) for total in _shared_sums(dp, op, exact, xs)]
    weight = np.asarray(op.weight)
    h, mask = (1 << (s - 1)) if acc.rounding is Rounding.RND else 0, (1 << s) - 1
    live = [i for i, x in enumerate(xs) if x is not None and not x.is_const]
    const = [i for i, x in enumerate(xs) if x is not None and x.is_const]
    offsets = []
    for j in range(op.n_out):
        fixed = sum(int(requantize([xs[i].real_lo * int(weight[i, j])], fp, acc)[0]) for i in const)
        products = sum(1 for i in live if weight[i, j])
        offsets.append(((int(plan.bias[j]) + fixed) << s) + products * h)
    ins = [xs[i] for i in live]
    rows = [tuple(int(v) for v in weight[i]) for i in live]
    for i in live:  # the dropped bits of each of input i's products, by weight residue
        for m in sorted({int(w) & mask for w in weight[i] if w}):
            table = [(v * m + h) & mask for v in range(1 << s)]
            cols = tuple(-1 if weight[i, j] and int(weight[i, j]) & mask == m else 0 for j in range(op.n_out))
            if len(set(table)) == 1:  # the same for every input value (m = 0): a constant
                offsets = [c + t * table[0] for c, t in zip(offsets, cols)]
                continue
            ins.append(dp.low_bits_table(xs[i], s, table))
            rows.append(cols)
    exact = acc.with_modes(rounding=Rounding.TRN)  # the dropped bits are zero: truncation is exact
    return [dp.requantize(total, fp, exact) for total in _column_sums(dp, ins, rows, offsets)]


def _column_sums(dp, ins, rows, offsets):
    """The nodes ``sum_i rows[i][j] * ins[i] + offsets[j]`` for every column ``j``: one shared
    :mod:`nnhdl.cmvm` graph, each column's constant one more input (a leaf of its adder tree, so it
    adds no adder level of its own)."""
    ins, rows = list(ins), list(rows)
    n_out = len(offsets)
    bounds = [(x.real_lo, x.real_hi) for x in ins]
    for j, c in enumerate(offsets):
        if c:
            ins.append(dp.const(c))
            bounds.append((c, c))
            rows.append(tuple(int(j == k) for k in range(n_out)))
    return dp.cmvm(_graph(tuple(rows), n_out, tuple(bounds)), ins)


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
