"""Constant matrix-vector products as an arithmetic graph of shifts, additions and subtractions.

:func:`build_cmvm` turns an integer matrix ``W`` (``n_in`` x ``n_out``) and the integer intervals
of the inputs ``x_0 .. x_{n_in-1}`` into a :class:`CMVMGraph`: a DAG whose every adder computes
``(+/-)(u << s) (+/-) (v << t)`` from two earlier values (inputs or adders), and which gives, for
each column ``j``, a :class:`Term` (a value with a shift and a sign, or nothing for zero) equal to
``sum_i x_i * W[i, j]`` exactly. Every value carries its exact integer interval, computed from its
integer coefficients on the inputs (so shared subexpressions do not widen it).

Two ways of building it:

- ``method="csd"``: each weight on its own, as the canonical signed digits of the weight; a column
  is then a balanced adder tree over all digits of all its weights (nothing is shared).
- ``method="cse"``: the digits of the whole matrix first, then common two-term subexpressions
  ``x_a + (+/-)(x_b << d)`` that recur (in any column, at any shift, with either sign) are built once
  and substituted greedily, the most frequent first (of equally frequent ones the shallowest, then
  the one with the smallest shift difference ``d``: the narrowest adder), until no pattern occurs
  twice; a pattern's
  adder depth is bounded by ``max_depth``. Each column is finally an adder tree over its remaining
  terms, pairing the shallowest (then the narrowest) terms first so that it is as shallow as
  possible (:meth:`_Builder.tree`).

:func:`evaluate` evaluates a graph on integer inputs with Python ints (for tests); the RTL
emitter is :meth:`nnhdl.layers.pipeline.Datapath.cmvm`. Nothing here imports Amaranth.
"""

import heapq
from dataclasses import dataclass

import numpy as np

__all__ = ["Term", "Adder", "CMVMGraph", "build_cmvm", "evaluate", "csd_digits"]


def csd_digits(value):
    """Canonical signed digits of an integer: ``[(shift, +1 | -1), ...]`` with no two adjacent
    non-zero digits; ``value == sum(sign << shift)``."""
    digits, shift, v = [], 0, int(value)
    while v:
        if v & 1:
            d = 2 - (v & 3)  # +1 if v = 1 (mod 4), -1 if v = 3 (mod 4)
            digits.append((shift, d))
            v -= d
        v >>= 1
        shift += 1
    return digits


@dataclass(frozen=True)
class Term:
    """``sign * (value[node] << shift)``; ``sign`` is +1 or -1."""
    node: int
    shift: int = 0
    sign: int = 1


@dataclass(frozen=True)
class Adder:
    """``a + b`` of two terms over earlier nodes; the node's value lies in ``lo..hi``."""
    a: Term
    b: Term
    lo: int
    hi: int
    depth: int


@dataclass
class CMVMGraph:
    """Nodes ``0 .. n_in-1`` are the inputs (intervals ``input_bounds``), node ``n_in + k`` is
    ``adders[k]``. ``outputs[j]`` is the term equal to column ``j``'s sum, ``None`` if it is 0.
    The first ``n_shared`` adders are the shared subexpressions (cse), the others the columns'
    adder trees."""
    n_in: int
    input_bounds: list
    adders: list
    outputs: list
    n_shared: int = 0

    def bounds(self, node):
        return self.input_bounds[node] if node < self.n_in else (self.adders[node - self.n_in].lo,
                                                                  self.adders[node - self.n_in].hi)

    def depth(self, node):
        return 0 if node < self.n_in else self.adders[node - self.n_in].depth

    @property
    def max_depth(self):
        return max((self.depth(t.node) for t in self.outputs if t is not None), default=0)


def evaluate(graph, x):
    """The outputs of ``graph`` for integer inputs ``x`` (``(n_samples, n_in)``), as a Python-int
    object array ``(n_samples, n_out)``; also checks every value against its interval."""
    x = np.asarray(x, dtype=object).reshape(-1, graph.n_in)
    values = [x[:, i] for i in range(graph.n_in)]

    def term(t):
        v = values[t.node] * (1 << t.shift)
        return v if t.sign > 0 else -v

    for k, add in enumerate(graph.adders):
        v = term(add.a) + term(add.b)
        if len(v) and (min(v) < add.lo or max(v) > add.hi):
            raise AssertionError(f"adder {k} leaves its interval {add.lo}..{add.hi}")
        values.append(v)
    zero = np.zeros(len(x), dtype=object)
    cols = [zero if t is None else term(t) for t in graph.outputs]
    return np.stack(cols, axis=1) if cols else np.zeros((len(x), 0), dtype=object)


class _Builder:
    """Adds adders to a graph, tracking each node's integer coefficients on the inputs (for its
    exact interval) and its depth."""

    def __init__(self, bounds):
        self.n_in = len(bounds)
        self.bounds = [(int(lo), int(hi)) for lo, hi in bounds]
        self.lo_in = np.array([b[0] for b in self.bounds], dtype=object)
        self.hi_in = np.array([b[1] for b in self.bounds], dtype=object)
        self.coef = [None] * self.n_in  # input i: unit vector, made on demand
        self.adders = []
        self.depths = [0] * self.n_in

    def coefficients(self, node):
        c = self.coef[node]
        if c is None:
            c = np.zeros(self.n_in, dtype=object)
            c[node] = 1
            self.coef[node] = c
        return c

    def add(self, a, b):
        c = self.coefficients(a.node) * (a.sign << a.shift) + self.coefficients(b.node) * (b.sign << b.shift)
        lo = int(np.sum(np.where(c > 0, c * self.lo_in, c * self.hi_in)))
        hi = int(np.sum(np.where(c > 0, c * self.hi_in, c * self.lo_in)))
        depth = max(self.depths[a.node], self.depths[b.node]) + 1
        self.adders.append(Adder(a, b, lo, hi, depth))
        self.coef.append(c)
        self.depths.append(depth)
        return self.n_in + len(self.adders) - 1

    def tree(self, terms):
        """One term equal to the sum of ``terms``: adds the two shallowest first, so the result
        is as shallow as the terms allow (depth ``ceil(log2(sum(2 ** depth)))``), and of equally
        shallow ones those of the smallest value ranges, so the narrow sums come first and stay
        narrow (the jet tagger's layers: 0.7-1.0 % fewer adder bits than the least shifted first,
        about 2 % more register bits).

        (Pairing by range under that depth alone, keeping ``sum(2 ** depth) <= 2 ** D`` after
        each addition, saves 1.8 % of the adder bits but leaves early sums waiting for late ones:
        14-20 % more register bits. Not done.)"""
        if not terms:
            return None
        depths = self.depths
        heap = [(depths[t.node], self.span(t), k, t) for k, t in enumerate(terms)]
        heapq.heapify(heap)
        count = len(heap)
        while len(heap) > 1:
            a = heapq.heappop(heap)[3]
            b = heapq.heappop(heap)[3]
            # keep the result's shift the smaller one and its sign the first operand's
            base, sign = min(a.shift, b.shift), a.sign
            node = self.add(Term(a.node, a.shift - base, 1), Term(b.node, b.shift - base, a.sign * b.sign))
            t = Term(node, base, sign)
            heapq.heappush(heap, (depths[node], self.span(t), count, t))
            count += 1
        return heap[0][3]

    def span(self, t):
        """The size of term ``t``'s value range (its interval's, shifted)."""
        if t.node < self.n_in:
            lo, hi = self.bounds[t.node]
        else:
            add = self.adders[t.node - self.n_in]
            lo, hi = add.lo, add.hi
        return (hi - lo) << t.shift

    def graph(self, outputs, n_shared):
        return CMVMGraph(self.n_in, self.bounds, self.adders, outputs, n_shared)


def _digit_terms(w):
    """Per column, the terms of the canonical signed digits of all its weights."""
    n_in, n_out = w.shape
    cache = {}
    cols = []
    for j in range(n_out):
        terms = []
        for i in range(n_in):
            v = int(w[i, j])
            if v:
                if v not in cache:
                    cache[v] = csd_digits(v)
                terms += [Term(i, s, d) for s, d in cache[v]]
        cols.append(terms)
    return cols


def build_cmvm(weight, bounds, method="cse", max_depth=None):
    """The graph of ``x @ weight`` (see the module docstring) for integer ``weight`` (``n_in`` x
    ``n_out``) and inputs with integer intervals ``bounds[i] = (lo, hi)``.

    ``method``: ``"csd"`` or ``"cse"``. ``max_depth`` (cse): the largest adder depth of a shared
    pattern (None: the depth of the csd adder tree of the column with the most digits)."""
    w = np.asarray(weight)
    if w.ndim != 2 or w.shape[0] != len(bounds):
        raise ValueError(f"weight must be (n_in, n_out) with n_in = {len(bounds)} inputs, not {w.shape}")
    if method not in ("csd", "cse"):
        raise ValueError(f"method must be 'csd' or 'cse', not {method!r}")
    for lo, hi in bounds:
        if int(lo) > int(hi):
            raise ValueError(f"empty input interval {lo}..{hi}")
    builder = _Builder(bounds)
    cols = _digit_terms(w)
    if method == "cse":
        if max_depth is None:  # no deeper than the deepest column's csd adder tree
            max_depth = max(1, (max((len(c) for c in cols), default=1) - 1).bit_length())
        cols = _share(builder, cols, max_depth)
    n_shared = len(builder.adders)
    return builder.graph([builder.tree(terms) for terms in cols], n_shared)


# -- common subexpression elimination ------------------------------------------------------------
#
# A pattern is a pair of terms of one column, keyed by (first node, second node, shift difference,
# sign product) with the terms ordered by (node, shift), so negated and shifted occurrences share a
# key; the key is one int64: ((n1 * _NB + n2) * 2 _SH + d + _SH) * 2 + (signs differ).
# Occurrences of a pattern only appear when its newer node is made (every term of a node is added
# then) and only disappear afterwards, so the pair counts stored when a node is made are upper
# bounds of the pattern's later counts: the greedy loop pops the largest bound from a heap, recounts
# the pattern's non-overlapping occurrences, and uses it if the bound was exact (it is then the
# most frequent pattern), else pushes it back with its real count.
# The heap holds only the patterns counted at least ``threshold`` times; when no bound reaches it,
# the threshold halves and every column's pairs are counted afresh. So the many patterns that occur
# a few times at first, and whose terms larger patterns take before their turn comes, are never
# looked at one by one (on a 64 x 32 layer with 16-bit weights: 205k patterns popped -> 25k).

_SH = 1 << 9    # shift differences are stored offset by this (|d| < 2**9)
_NB = 1 << 24   # node ids below this


def _unkey(key):
    neg = key & 1
    key >>= 1
    d = key % (2 * _SH) - _SH
    key //= 2 * _SH
    return key // _NB, key % _NB, d, -1 if neg else 1


def _keys(n1, s1, g1, n2, s2, g2):
    """Pattern keys of term pairs (numpy int64 arrays); (n1, s1) < (n2, s2) elementwise."""
    return (((n1 * _NB + n2) * (2 * _SH) + (s2 - s1 + _SH)) << 1) | (g1 != g2)


class _Column:
    """A column's terms: ``by_node[node][shift] = sign`` and the same as arrays (for keys)."""

    def __init__(self, terms):
        terms = sorted(terms, key=lambda t: (t.node, t.shift))
        m = len(terms)
        self.n = np.array([t.node for t in terms], dtype=np.int64)
        self.s = np.array([t.shift for t in terms], dtype=np.int64)
        self.g = np.array([t.sign for t in terms], dtype=np.int64)
        self.m = m
        self.pos = {(t.node, t.shift): k for k, t in enumerate(terms)}
        self.by_node = {}
        for t in terms:
            self.by_node.setdefault(t.node, {})[t.shift] = t.sign

    def pair_keys(self):
        """The keys of all pairs of the column's terms (sorting them by (node, shift) first)."""
        m = self.m
        order = np.lexsort((self.s[:m], self.n[:m]))
        self.n[:m], self.s[:m], self.g[:m] = self.n[order], self.s[order], self.g[order]
        self.pos = {(n, s): k for k, (n, s) in enumerate(zip(self.n[:m].tolist(), self.s[:m].tolist()))}
        i, j = np.triu_indices(m, 1)
        return _keys(self.n[i], self.s[i], self.g[i], self.n[j], self.s[j], self.g[j])

    def remove(self, node, shift):
        shifts = self.by_node[node]
        del shifts[shift]
        if not shifts:
            del self.by_node[node]
        k = self.pos.pop((node, shift))
        last = self.m - 1
        if k != last:
            self.n[k], self.s[k], self.g[k] = self.n[last], self.s[last], self.g[last]
            self.pos[(int(self.n[k]), int(self.s[k]))] = k
        self.m = last

    def add_newest(self, node, shift, sign):
        """Add a term of a node newer than all others; returns the keys of its pairs."""
        m = self.m
        keys = _keys(self.n[:m], self.s[:m], self.g[:m], node, shift, sign)
        self.n[m], self.s[m], self.g[m] = node, shift, sign
        self.pos[(node, shift)] = m
        self.by_node.setdefault(node, {})[shift] = sign
        self.m = m + 1
        return keys

    def terms(self):
        return [Term(n, s, g) for n, shifts in self.by_node.items() for s, g in shifts.items()]


def _share(builder, cols, max_depth):
    """Greedy two-term common subexpression elimination over all columns (see the module
    docstring); returns the remaining terms of each column."""
    if any(abs(t.shift) >= _SH // 2 for terms in cols for t in terms):
        return cols  # weights wider than 255 bits: not worth sharing
    columns = [_Column(terms) for terms in cols]
    depths = builder.depths
    heap = []  # (-count bound, depth, shift difference, key, where): where = (segment, start, length) or
    #          the key's columns; among equally frequent patterns the shallowest, then the narrowest
    segments = []  # per record(): the columns of its keys, grouped by key
    threshold = 2  # the heap holds every pattern that may occur at least this often

    def record(keys, cols):
        """Push the patterns among ``keys`` (found in columns ``cols``) that occur at least
        ``threshold`` times."""
        if not len(keys):
            return
        order = np.argsort(keys, kind="stable")
        keys, cols = keys[order], cols[order]
        uniq, start, cnt = np.unique(keys, return_index=True, return_counts=True)
        keep = cnt >= threshold
        uniq, start, cnt = uniq[keep], start[keep], cnt[keep]
        if not len(uniq):
            return
        pair = uniq >> 1
        n2 = (pair // (2 * _SH)) % _NB
        n1 = pair // (2 * _SH * _NB)
        dep = np.array(depths, dtype=np.int64)
        depth = np.maximum(dep[n1], dep[n2]) + 1
        span = np.abs((pair % (2 * _SH)) - _SH)  # the shift difference: the shared adder's extra width
        ok = depth <= max_depth
        seg = len(segments)
        segments.append(cols)
        for key, c, d, w, k in zip(uniq[ok].tolist(), cnt[ok].tolist(), depth[ok].tolist(), span[ok].tolist(),
                                   start[ok].tolist()):
            heapq.heappush(heap, (-c, d, w, key, (seg, k, c)))

    def recount():
        """Empty the heap and record every column's pairs afresh."""
        heap.clear()
        segments.clear()
        keys = [c.pair_keys() for c in columns]
        if keys:
            record(np.concatenate(keys), np.repeat(np.arange(len(keys)), [len(k) for k in keys]))

    recount()
    if heap:  # start with the patterns at least half as frequent as the most frequent one
        threshold = max(2, -heap[0][0] // 2)
        heap[:] = [entry for entry in heap if -entry[0] >= threshold]
        heapq.heapify(heap)
    alive = {}  # node -> its terms over all columns (a pattern occurs at most this often)
    for col in columns:
        for t in col.terms():
            alive[t.node] = alive.get(t.node, 0) + 1
    while True:
        if not heap or -heap[0][0] < threshold:
            if threshold == 2:
                break
            threshold = max(2, threshold // 2)
            recount()
            continue
        negc, depth, span, key, where = heapq.heappop(heap)
        a, b, d, g = _unkey(key)
        if (alive.get(a, 0) // 2 if a == b else min(alive.get(a, 0), alive.get(b, 0))) < 2:
            continue  # fewer than two occurrences left: the recount below would drop it too
        if type(where) is tuple:  # first look at this pattern: its columns from its record() segment
            seg, start, length = where
            where = sorted(set(segments[seg][start:start + length].tolist()))
        # non-overlapping occurrences: (a, s) with (b, s + d) of sign g * sign(a, s)
        found = []
        live = []  # the columns that still hold it (occurrences never come back once gone)
        for j in where:
            by_node = columns[j].by_node
            sa = by_node.get(a)
            sb = by_node.get(b)
            if not sa or not sb:
                continue
            n = len(found)
            if a != b:
                found += [(j, s, ga) for s, ga in sa.items() if sb.get(s + d) == g * ga]
            else:
                used = set()
                for s in sorted(sa):
                    if s not in used and s + d not in used and sb.get(s + d) == g * sa[s]:
                        used.update((s, s + d))
                        found.append((j, s, sa[s]))
            if len(found) > n:
                live.append(j)
        if len(found) < -negc and not (len(found) >= threshold and heap and len(found) >= -heap[0][0]):
            # a stale bound, and not still the most frequent: back with its real count (below the
            # threshold, the next recount finds it again)
            if len(found) >= threshold:
                heapq.heappush(heap, (-len(found), depth, span, key, live))
            continue
        node = builder.add(Term(a, max(0, -d), 1), Term(b, max(0, d), g))
        new_keys, new_cols = [], []
        for j, s, ga in sorted(found):
            col = columns[j]
            col.remove(a, s)
            col.remove(b, s + d)
            alive[a] -= 1
            alive[b] -= 1
            alive[node] = alive.get(node, 0) + 1
            k = col.add_newest(node, min(s, s + d), ga)
            new_keys.append(k)
            new_cols.append(np.full(len(k), j))
        record(np.concatenate(new_keys), np.concatenate(new_cols))
    return [col.terms() for col in columns]
