"""The arithmetic graph of constant matrix-vector products (nnhdl.cmvm): every graph equals
``x @ W`` exactly (Python ints) on random and extreme inputs, every node stays in its interval
and the intervals are tight (reached by some input)."""

import itertools

import numpy as np
import pytest

from nnhdl.cmvm import build_cmvm, csd_digits, evaluate

METHODS = ["csd", "cse"]


def extreme_inputs(bounds, limit=256):
    """Every corner of the input box (or ``limit`` random corners), plus zeros where allowed."""
    n = len(bounds)
    if 2 ** n <= limit:
        corners = itertools.product(*[(lo, hi) for lo, hi in bounds])
        return np.array(list(corners), dtype=object).reshape(-1, n)
    rs = np.random.default_rng(n)
    pick = rs.integers(0, 2, (limit, n))
    return np.array([[b[k] for b, k in zip(bounds, row)] for row in pick], dtype=object).reshape(-1, n)


def random_inputs(rng, bounds, count=200):
    return np.array([[int(rng.integers(lo, hi + 1)) for lo, hi in bounds] for _ in range(count)],
                    dtype=object).reshape(-1, len(bounds))


def check_graph(graph, w, bounds, rng):
    """Exact against ``x @ w`` in Python ints; :func:`evaluate` checks every node's interval."""
    w = np.asarray(w, dtype=object)
    for x in (extreme_inputs(bounds), random_inputs(rng, bounds)):
        want = x.dot(w) if w.size else np.zeros((len(x), w.shape[1]), dtype=object)
        got = evaluate(graph, x)
        assert got.shape == want.shape
        assert (got == want).all()


def random_bounds(rng, n, kind):
    if kind == "unsigned":
        return [(0, int(rng.integers(0, 2 ** int(rng.integers(1, 12))))) for _ in range(n)]
    if kind == "signed":
        out = []
        for _ in range(n):
            b = int(rng.integers(1, 13))
            out.append((-(1 << (b - 1)), (1 << (b - 1)) - 1))
        return out
    if kind == "wide":
        return [(-(1 << 40), (1 << 40) - 1) for _ in range(n)]
    lo = rng.integers(-100, 100, n)  # arbitrary, also single values
    return [(int(a), int(a + rng.integers(0, 50))) for a in lo]


def special_matrix(rng, n_in, n_out, bits):
    """Random weights with zeros, powers of two, repeated and negated columns and rows."""
    w = rng.integers(-(1 << bits), 1 << bits, (n_in, n_out)).astype(object)
    w[rng.random(w.shape) < 0.25] = 0
    mask = rng.random(w.shape) < 0.15
    w[mask] = [int(s) << int(k) for s, k in zip(rng.choice([-1, 1], mask.sum()), rng.integers(0, bits + 1, mask.sum()))]
    if n_out >= 3:
        w[:, 1] = w[:, 0]
        w[:, 2] = -w[:, 0]
    if n_out >= 4:
        w[:, 3] = w[:, 0] * 4
    if n_in >= 2:
        w[1] = -w[0]
    return w


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["unsigned", "signed", "wide", "any"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (6, 5), (16, 12)])
def test_random_matrices_exact(rng, method, kind, shape):
    for bits in (1, 4, 10):
        w = special_matrix(rng, *shape, bits)
        bounds = random_bounds(rng, shape[0], kind)
        check_graph(build_cmvm(w, bounds, method), w, bounds, rng)


@pytest.mark.parametrize("method", METHODS)
def test_degenerate_matrices(rng, method):
    bounds = [(-8, 7)] * 4
    for w in (np.zeros((4, 3), dtype=int), np.eye(4, dtype=int), -np.eye(4, dtype=int) * 8,
              np.ones((4, 5), dtype=int) * 7, np.zeros((4, 0), dtype=int)):
        g = build_cmvm(w, bounds, method)
        check_graph(g, w, bounds, rng)
    g = build_cmvm(np.zeros((4, 3), dtype=int), bounds, method)
    assert g.outputs == [None] * 3 and not g.adders


def test_intervals_tight(rng):
    """Each adder's interval is reached by a corner of the inputs (exact, not interval arithmetic):
    shared subexpressions do not widen it."""
    w = np.array([[3, 5, 7, -1], [5, 3, -7, 1], [0, 1, 1, 2]])
    bounds = [(-4, 3), (0, 9), (-2, 2)]
    g = build_cmvm(w, bounds, "cse")
    x = extreme_inputs(bounds)
    values = [x[:, i] for i in range(3)]
    for add in g.adders:
        def term(t):
            v = values[t.node] * (1 << t.shift)
            return v if t.sign > 0 else -v
        v = term(add.a) + term(add.b)
        assert (min(v), max(v)) == (add.lo, add.hi)
        values.append(v)


def test_cse_shares_and_saves(rng):
    """Repeated columns and recurring digit pairs are built once: cse needs fewer adders than csd,
    and never more on random matrices."""
    w = np.array([[3, 3, 6, -3], [5, 5, 10, 5], [7, 7, 7, 7]])
    bounds = [(0, 15)] * 3
    assert len(build_cmvm(w, bounds, "cse").adders) < len(build_cmvm(w, bounds, "csd").adders)
    for _ in range(5):
        w = rng.integers(-255, 256, (12, 10))
        bounds = [(-128, 127)] * 12
        assert len(build_cmvm(w, bounds, "cse").adders) <= len(build_cmvm(w, bounds, "csd").adders)


def test_depth_bound(rng):
    w = rng.integers(-1023, 1024, (16, 16))
    bounds = [(0, 255)] * 16
    csd = build_cmvm(w, bounds, "csd")
    assert csd.n_shared == 0
    for bound in (1, 2, 3):
        g = build_cmvm(w, bounds, "cse", max_depth=bound)
        assert g.n_shared > 0
        assert max(add.depth for add in g.adders[:g.n_shared]) <= bound
        check_graph(g, w, bounds, rng)
    # by default no shared pattern is deeper than the csd tree of the longest column
    g = build_cmvm(w, bounds, "cse")
    assert max(add.depth for add in g.adders[:g.n_shared]) <= csd.max_depth


def test_column_trees_are_as_shallow_as_possible_and_narrow_first(rng):
    """Each column's adder tree reaches the least depth its terms allow, ceil(log2(sum 2**depth))
    (Kraft's bound), whatever the terms' depths, and of equally shallow terms adds the narrowest
    first: three terms at depth 0 of ranges 1024, 1 and 2 add the two narrow ones first."""
    from nnhdl.cmvm import Term, _Builder

    for _ in range(30):
        n = int(rng.integers(1, 40))
        builder = _Builder([(0, int(hi)) for hi in rng.integers(1, 1 << 12, n)])
        terms = []
        for i in range(n):  # some terms deeper: sums built beforehand
            t = Term(i, int(rng.integers(0, 6)), int(rng.choice([-1, 1])))
            for _ in range(int(rng.integers(0, 3))):
                t = Term(builder.add(t, Term(int(rng.integers(0, n)), int(rng.integers(0, 4)))), 0)
            terms.append(t)
        kraft = sum(2 ** builder.depths[t.node] for t in terms)
        out = builder.tree(terms)
        assert builder.depths[out.node] == max(0, (kraft - 1).bit_length())
        x = [int(v) for v in rng.integers(0, [hi + 1 for _, hi in builder.bounds])]
        graph = builder.graph([out], 0)
        want = sum(t.sign * (evaluate(builder.graph([Term(t.node)], 0), x)[0] << t.shift) for t in terms)
        assert evaluate(graph, x) == [want]
    builder = _Builder([(0, 1), (0, 2), (0, 1024)])
    out = builder.tree([Term(2), Term(0), Term(1)])
    assert [{add.a.node, add.b.node} for add in builder.adders] == [{0, 1}, {2, 3}]
    assert builder.depths[out.node] == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_in"):
        build_cmvm(np.zeros((3, 2), dtype=int), [(0, 1)] * 2)
    with pytest.raises(ValueError, match="method"):
        build_cmvm(np.zeros((2, 2), dtype=int), [(0, 1)] * 2, "lut")
    with pytest.raises(ValueError, match="empty input interval"):
        build_cmvm(np.zeros((1, 2), dtype=int), [(1, 0)])


def test_csd_digits():
    for v in list(range(-300, 301)) + [2 ** 70 - 1, -(2 ** 65) + 3]:
        digits = csd_digits(v)
        assert sum(d << s for s, d in digits) == v
        shifts = [s for s, _ in digits]
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))


# -- the emitter and registers placed by delay -------------------------------------------------------

def test_emitted_nodes_have_the_graph_intervals(rng):
    """Every emitted output node is exactly as wide as the graph says (shared nodes are not
    widened by interval arithmetic)."""
    from amaranth.hdl import Signal
    w = special_matrix(rng, 8, 6, 6)
    bounds = random_bounds(rng, 8, "any")
    g = build_cmvm(w, bounds, "cse")
    dp = _datapath(2)
    xs = [dp.input(Signal(16, name=f"x{i}"), lo, hi) for i, (lo, hi) in enumerate(bounds)]
    outs = dp.cmvm(g, xs)
    want = np.asarray(w, dtype=object)
    for j, (node, t) in enumerate(zip(outs, g.outputs)):
        lo, hi = g.bounds(t.node) if t is not None else (0, 0)
        if t is not None and t.node >= g.n_in:
            real = sorted(v * t.sign << t.shift for v in (lo, hi))
            assert (node.real_lo, node.real_hi) == tuple(real)
        # and the column's exact range is the sum of the products' ranges
        exact_lo = sum(min(a * int(c), b * int(c)) for (a, b), c in zip(bounds, want[:, j]))
        exact_hi = sum(max(a * int(c), b * int(c)) for (a, b), c in zip(bounds, want[:, j]))
        assert node.real_lo >= exact_lo and node.real_hi <= exact_hi


def _datapath(levels):
    from nnhdl.layers.pipeline import Datapath
    return Datapath(levels)


@pytest.mark.parametrize("family", ["ice40", "ecp5", "xc7"])
def test_delay_placement_meets_its_estimate(rng, family):
    """With a delay model, no stage holds more estimated delay than the clock period allows
    (each operation fits the budget here), faster clocks need more stages, and the slowest clock
    fewer than registering every two adder levels."""
    from amaranth.hdl import Signal
    from nnhdl.layers.pipeline import DelayModel
    w = rng.integers(-127, 128, (24, 12))
    bounds = [(-128, 127)] * 24
    g = build_cmvm(w, bounds, "cse")
    latencies = []
    for mhz in (25, 100, 250):
        model = DelayModel(family, mhz)
        dp = _datapath(model)
        xs = [dp.input(Signal(range(-128, 128), name=f"x{i}"), lo, hi) for i, (lo, hi) in enumerate(bounds)]
        _, stage = dp.outputs(dp.cmvm(g, xs))
        widest = max(len(reg) for reg, _ in dp.registers)
        if model.cost("add", widest + 1) <= model.budget:
            assert 0 < dp.max_delay <= model.budget
        latencies.append(stage)
    assert latencies == sorted(latencies)
    dp2 = _datapath(2)
    xs = [dp2.input(Signal(range(-128, 128), name=f"x{i}"), lo, hi) for i, (lo, hi) in enumerate(bounds)]
    _, stage2 = dp2.outputs(dp2.cmvm(g, xs))
    assert latencies[0] < stage2



_CAP_BITS = 24  # random datapath values are cast back under this many bits (as layers do)
_OPS = ("add", "sum", "const", "cmvm", "requantize", "relu", "maximum", "select", "multiply")


def _random_interval(rng):
    bits = int(rng.integers(1, 13))
    if rng.random() < 0.5:
        return 0, int(rng.integers(1, 2 ** bits))
    return -int(rng.integers(1, 2 ** (bits - 1) + 1)), int(rng.integers(0, 2 ** (bits - 1)))


def _random_format(rng, width=None, int_bits=None):
    from nnhdl.fixed import FixedFormat, Overflow, Rounding
    return FixedFormat(width or int(rng.integers(2, 17)), int(rng.integers(-2, 12)) if int_bits is None else int_bits,
                       bool(width or rng.random() < 0.7), rng.choice(list(Rounding)), rng.choice(list(Overflow)))


def _random_datapath(seed, levels, steps=25):
    """A datapath of ``steps`` random operations (every :class:`Datapath` operation, with random
    signs, shifts, constants and formats) on 2-6 random inputs, its last values registered as
    outputs; values wider than ``_CAP_BITS`` are requantized to 16 bits. The same ``seed`` builds
    the same operations for any ``levels``. Returns ``(datapath, latency)``."""
    from amaranth.hdl import Signal
    from nnhdl.layers.pipeline import Datapath, shape_for
    rng = np.random.default_rng(seed)
    dp = Datapath(levels)
    pool = [dp.input(Signal(shape_for(lo, hi), name=f"x{i}"), lo, hi)
            for i, (lo, hi) in enumerate(_random_interval(rng) for _ in range(int(rng.integers(2, 7))))]

    def pick():
        return pool[int(rng.integers(len(pool)))]

    def capped(node):
        node = dp.materialize(node)
        if max(abs(node.lo), abs(node.hi)).bit_length() < _CAP_BITS:
            return node
        return dp.requantize(node, int(rng.integers(0, 9)), _random_format(rng, 16, 16))

    for _ in range(steps):
        op = rng.choice(_OPS)
        if op == "add":
            b = pick()
            r = dp.add(pick(), dp.negate(b) if rng.random() < 0.5 else b)
        elif op == "sum":
            r = dp.sum([pick() for _ in range(int(rng.integers(2, 9)))] + [dp.const(int(rng.integers(-50, 50)))])
        elif op == "const":
            r = dp.multiply_const(pick(), int(rng.integers(-255, 256)), rng.choice(["csd", "dsp"]))
        elif op == "cmvm":
            xs = [x for x in (dp.materialize(pick()) for _ in range(int(rng.integers(1, 6)))) if not x.is_const]
            xs = xs or [pool[0]]
            w = rng.integers(-64, 65, (len(xs), int(rng.integers(1, 4))))
            outs = dp.cmvm(build_cmvm(w, [(x.lo, x.hi) for x in xs], rng.choice(["csd", "cse"])), xs)
            pool.extend(capped(o) for o in outs[1:])
            r = outs[0]
        elif op == "requantize":
            r = dp.requantize(pick(), int(rng.integers(0, 9)), _random_format(rng))
        elif op == "relu":
            r = dp.relu(pick())
        elif op == "maximum":
            r = dp.maximum(pick(), pick())
        elif op == "select":
            cond = dp.greater_equal(pick(), pick())
            r = dp.select(cond, pick(), pick())
        else:
            r = dp.multiply(pick(), pick())
        pool.append(capped(r))
    _, latency = dp.outputs(pool[-4:])
    return dp, latency


def _largest_operation(model):
    """An upper bound of one operation's estimated delay in :func:`_random_datapath`: a hardware
    multiplier, or a comparator plus multiplexer on the widest value (two capped values
    multiplied, plus a rounding carry)."""
    width = 2 * _CAP_BITS + 2
    return max(model.cost("multiply"), model.cost("compare", width) + model.cost("mux"), model.cost("add", width))


@pytest.mark.parametrize("family", ["ice40", "ecp5", "xc7"])
def test_delay_placement_random_datapaths(rng, family):
    """On random datapaths of every operation at random clocks where each single operation fits
    the clock period: no stage holds more estimated delay than the period allows (the largest
    delay in front of any node, ``Datapath.max_delay``, is within the budget), some logic is
    placed, and the same operations at a faster clock never take fewer stages."""
    from nnhdl.layers.pipeline import DelayModel
    overhead = DelayModel.FAMILIES[family][2]  # a stage's register overhead, ps
    fastest = 1e6 / (overhead + _largest_operation(DelayModel(family)))  # MHz: budget == the largest operation
    for _ in range(12):
        seed = int(rng.integers(2 ** 31))
        clocks = sorted(rng.uniform(fastest / 8, fastest, 3))
        latencies = []
        for mhz in clocks:
            model = DelayModel(family, float(mhz))
            assert _largest_operation(model) <= model.budget
            dp, latency = _random_datapath(seed, model)
            assert 0 < dp.max_delay <= model.budget, (seed, mhz)
            latencies.append(latency)
        assert latencies == sorted(latencies), (seed, clocks, latencies)


def test_delay_model_errors():
    from nnhdl.layers.pipeline import DelayModel
    with pytest.raises(ValueError, match="unknown FPGA family 'gowin'"):
        DelayModel("gowin")
    with pytest.raises(ValueError, match="positive"):
        DelayModel("ecp5", 0)
    assert DelayModel("ecp5").clock_mhz == 100


def test_convert_delay_options():
    """convert's --family/--clock: a clock needs a family; bad values are clear ConvertErrors."""
    from nnhdl.convert import ConvertError, delay_model
    assert delay_model(None, None) is None
    assert delay_model("xc7", None).clock_mhz == 200
    with pytest.raises(ConvertError, match="needs an FPGA family.*--family"):
        delay_model(None, 150)
    with pytest.raises(ConvertError, match="unknown FPGA family"):
        delay_model("gowin", 150)
