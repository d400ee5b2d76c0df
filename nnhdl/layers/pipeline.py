"""A small scheduler for fully pipelined fixed-point datapaths.

:class:`Datapath` builds arithmetic on :class:`Node` values while tracking, for each, the exact
integer interval it can take (so every register is exactly as wide as it must be), the pipeline
stage it belongs to and how many adder levels of combinational logic precede it in that
stage. An operation whose inputs would exceed ``levels_per_stage`` adder levels first
registers them; operands from earlier stages are delayed with registers. So any datapath built
from it is balanced and has II = 1, and its latency is known when it is built.

With a :class:`DelayModel` instead of a level count, the cost of an operation is its estimated
delay (an adder's grows with its carry chain) and a stage holds as much logic as fits the target
clock period: registers go where the period requires them.

Nodes may carry a left ``shift`` (trailing zero bits kept out of the adders) and a negative
``sign`` (so negative canonical signed digits cost a subtraction, not a negation).

All registers update only while ``en`` is high: the whole pipeline holds when stalled.
With ``share``, a value that several expressions read is first driven onto a combinational
signal (:meth:`Datapath.shared`), so its logic is built once: the registers are
:meth:`Datapath.statements`, those signals :meth:`Datapath.combinational`.
An adder that reads another adder's result within a stage reads it from a signal marked ``keep``
(so synthesis builds each adder as its own carry chain; see :meth:`Datapath._apart`).
Nothing here knows about streams; :class:`nnhdl.layers.base.PipelinedLayer` adds them.
"""

from dataclasses import dataclass, replace

from amaranth.hdl import Array, Const, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

import numpy as np
from amaranth.hdl import Cat

from ..cmvm import csd_digits
from ..fixed import FixedFormat, Overflow, Rounding, apply_overflow, bits_for_range, requantize, round_shift

__all__ = ["Node", "Datapath", "DelayModel", "shape_for", "csd_digits"]


def shape_for(lo, hi):
    width, is_signed = bits_for_range(lo, hi)
    return signed(width) if is_signed else unsigned(width)


def _width(lo, hi):
    return bits_for_range(lo, hi)[0]


def operand_widths(a, b):
    """The widths ``(a, b)`` a multiplier of operands in the intervals ``a`` and ``b`` (``(lo, hi)``
    each) works on: both signed when either is (an unsigned operand gains a zero sign bit)."""
    (wa, sa), (wb, sb) = bits_for_range(*a), bits_for_range(*b)
    if sa != sb:
        wa, wb = (wa + (not sa)), (wb + (not sb))
    return wa, wb


def _sum_width(a, b):
    """Carry-chain length of ``a + b``: the wider operand, aligned to the smaller shift, plus one."""
    base = min(a.shift, b.shift)
    return max(_width(n.lo, n.hi) + n.shift - base for n in (a, b)) + 1


@dataclass(frozen=True)
class DelayModel:
    """A rough combinational delay model of an FPGA family and a target clock: registers go where
    a stage's estimated delay would exceed the clock period (see :class:`Datapath`).

    Delays in picoseconds: ``lut`` one LUT level with its routing, ``carry`` per bit of a carry
    chain, ``register`` the clock-to-out plus setup overhead of a stage, ``multiply`` a hardware
    multiplier. An adder or comparator of ``w`` bits costs ``lut + w * carry`` (its LUT level and
    carry chain); a multiplexer one ``lut``. ``clock_mhz`` None: the family's default clock."""
    family: str
    clock_mhz: float = None

    FAMILIES = {  # lut, carry per bit, register overhead, multiplier, default clock MHz
        "ice40": (4000, 400, 1400, 12000, 24.0),  # calibrated on nextpnr 2026-12-01: 31.7 MHz for 24, 21.6 for 16
        "ecp5": (2200, 40, 1000, 5000, 100.0),  # recalibrated 2026-12-01 with kept carry chains: MLP 109.6 MHz for 100
        "xc7": (600, 30, 600, 3000, 200.0),
    }

    def __post_init__(self):
        if self.family not in self.FAMILIES:
            raise ValueError(f"unknown FPGA family {self.family!r} for the delay model; use one of "
                             f"{', '.join(self.FAMILIES)}")
        if self.clock_mhz is None:
            object.__setattr__(self, "clock_mhz", self.FAMILIES[self.family][4])
        if not self.clock_mhz > 0:
            raise ValueError(f"the target clock must be positive, not {self.clock_mhz!r} MHz")

    @property
    def budget(self):
        """Picoseconds of logic a stage may hold: the clock period less the register overhead."""
        return int(1e6 / self.clock_mhz) - self.FAMILIES[self.family][2]

    def cost(self, kind, width=1):
        """Estimated delay of one operation: ``"add"`` / ``"compare"`` (``width`` bits),
        ``"mux"``, ``"multiply"``."""
        lut, carry, _, mul, _ = self.FAMILIES[self.family]
        if kind in ("add", "compare"):
            return lut + max(int(width), 1) * carry
        if kind == "multiply":
            return mul
        return lut


@dataclass(frozen=True, eq=False)
class Node:
    """A datapath value: ``(-1 if negative else 1) * (value << shift)``; ``value`` lies in
    ``lo..hi``. ``stage`` is None for constants; ``depth`` is the combinational cost in front of it
    within its stage (adder levels, or picoseconds with a :class:`DelayModel`)."""
    value: object
    lo: int
    hi: int
    stage: object
    depth: int = 0
    shift: int = 0
    negative: bool = False

    @property
    def is_const(self):
        return self.stage is None

    @property
    def real_lo(self):
        """Bounds of the represented integer (sign and shift applied)."""
        return -(self.hi << self.shift) if self.negative else self.lo << self.shift

    @property
    def real_hi(self):
        return -(self.lo << self.shift) if self.negative else self.hi << self.shift


class Datapath:
    """Builds a pipelined datapath; see the module docstring.

    ``share``: values that several expressions read are driven onto combinational signals
    (:meth:`shared`), whose assignments the caller must add to its module
    (:meth:`combinational`, or :meth:`elaborate_memories`); without it every value stays a
    self-contained expression (for a datapath used only to build expressions), and logic read
    twice is built twice."""

    def __init__(self, levels_per_stage=2, name="dp", share=False):
        self.delays = levels_per_stage if isinstance(levels_per_stage, DelayModel) else None
        if self.delays is None and levels_per_stage < 1:
            raise ValueError(f"levels_per_stage must be at least 1, not {levels_per_stage!r}")
        self.levels = self.delays.budget if self.delays else levels_per_stage
        self.max_delay = 0     # the largest cost in front of any node within its stage
        self.name = name
        self.registers = []  # (register, value)
        self.share = share
        self.wires = []      # (combinational signal, value): logic that several expressions read
        self._wired = {}     # id(value) -> (value, its signal)
        self._logic = {}     # id(value) -> value: the values holding logic (computed, or parts of them)
        self._origin = {}    # id(signal) -> id(value) for the shared signals (one delay chain per value)
        self._sums = set()   # id(value) of the adders' results (kept apart when another adder reads them)
        self._delays = {}
        self._count = 0
        self.adders = 0        # adders/subtractors (including rounding increments)
        self.multipliers = 0   # hardware multipliers
        self.multiplier_widths = []  # their operand widths, (a, b) each (DSP blocks per family: nnhdl.estimate)
        self.rom_bits = 0      # constant tables
        self.logic_bits = {"add": 0, "compare": 0, "mux": 0}  # bits of each kind of logic (estimates)
        self.memories = {}     # key -> (Memory, [(read port, address value)])
        self._tables = {}      # (source id, stage, bits, table) -> (source value, node): low_bits_table

    # -- leaves ---------------------------------------------------------------------------------
    def input(self, value, lo, hi):
        return Node(value, int(lo), int(hi), 0)

    def const(self, v):
        v = int(v)
        if v == 0:
            return Node(Const(0, 1), 0, 0, None)
        mag, shift = abs(v), 0
        while not (mag >> shift) & 1:
            shift += 1
        mag >>= shift
        return Node(Const(mag, shape_for(0, mag)), mag, mag, None, 0, shift, v < 0)

    # -- registers ------------------------------------------------------------------------------
    def _reg(self, node, name=None):
        self._count += 1
        reg = Signal(shape_for(node.lo, node.hi), name=f"{name or self.name}_r{self._count}", reset_less=True)
        self.registers.append((reg, node.value))
        return replace(node, value=reg, stage=node.stage + 1, depth=0)

    def register(self, node, name=None):
        """Register ``node`` (one more stage)."""
        if node.is_const:
            return node
        return self._reg(node, name)

    def delay(self, node, stage):
        """``node`` moved to ``stage`` through registers (shared between users)."""
        if node.is_const or node.stage >= stage:
            return node
        key = (self._source(node.value), stage)
        if key not in self._delays:
            prev = self.delay(node, stage - 1)
            self._delays[key] = (node.value, self._reg(prev))  # keeps node.value alive: ids stay unique
        reg = self._delays[key][1]  # the register holds the value; shift and sign are per use
        return replace(reg, shift=node.shift, negative=node.negative)

    def _cost(self, kind, width=1):
        """One operation's cost: one level, or its delay with a :class:`DelayModel`."""
        return self.delays.cost(kind, width) if self.delays else 1

    def _node(self, value, lo, hi, stage, depth, shift=0, negative=False, adder=False):
        """A computed node (``adder``: an adder's or negation's result, see :meth:`_apart`)."""
        self.max_delay = max(self.max_delay, depth)
        self._logic[id(value)] = value
        if adder:
            self._sums.add(id(value))
        return Node(value, lo, hi, stage, depth, shift, negative)

    def _source(self, value):
        """The id of the value ``value`` stands for: itself, or the value a :meth:`shared` signal
        carries."""
        return self._origin.get(id(value), id(value))

    def _part(self, value, source):
        """``value`` (a shift, slice or extension of ``source``, no logic of its own), marked as
        holding logic if ``source`` does (see :meth:`shared`)."""
        if id(source) in self._logic:
            self._logic[id(value)] = value
        return value

    def shared(self, node):
        """``node`` with its value driven onto a combinational signal (of the value's own shape)
        when the value holds logic: Amaranth copies an expression for every assignment that reads
        it, so logic read by several expressions would be built once per reader in the netlist,
        RTLIL and Verilog. The operations other than :meth:`add` share their operands (so several
        operations on one node read one signal, and an operation that reads a value several times
        reads the signal); :meth:`cmvm` shares the adders that several others read. Registers,
        inputs, constants and plain shifts or slices of them, and any node of a datapath without
        ``share``, are returned as they are."""
        value = node.value
        key = id(value)
        if not self.share or key not in self._logic:
            return node
        if key not in self._wired:
            wire = Signal(value.shape(), name=f"{self.name}_w{len(self.wires)}")
            self.wires.append((wire, value))
            self._wired[key] = (value, wire)  # (value kept alive by _logic: ids stay unique)
            self._origin[id(wire)] = key
        return replace(node, value=self._wired[key][1])

    def align(self, nodes, levels=1):
        """Bring ``nodes`` to one stage, leaving room for ``levels`` more cost (adder levels, or
        picoseconds with a :class:`DelayModel`)."""
        live = [n for n in nodes if not n.is_const]
        if not live:
            return list(nodes)
        stage = max(n.stage for n in live)
        depth = max((n.depth for n in live if n.stage == stage), default=0)
        if depth + levels > self.levels and depth > 0:  # (an operation alone over budget gets a stage)
            stage += 1
        return [self.delay(n, stage) if not n.is_const else n for n in nodes]

    # -- arithmetic -----------------------------------------------------------------------------
    def _stage_of(self, *nodes):
        live = [n for n in nodes if not n.is_const]
        if not live:
            return None, 0
        return live[0].stage, max(n.depth for n in live)

    def add(self, a, b):
        """``a + b`` (each with its sign and shift)."""
        if a.is_const and a.lo == 0:
            return b
        if b.is_const and b.lo == 0:
            return a
        if a.is_const and b.is_const:
            return self.const(a.real_lo + b.real_lo)
        width = _sum_width(a, b)
        cost = self._cost("add", width)
        a, b = (self._apart(n) for n in self.align([a, b], cost))
        if a.shift > b.shift:
            a, b = b, a
        d = b.shift - a.shift
        bv = b.value.shift_left(d) if d else b.value
        blo, bhi = b.lo << d, b.hi << d
        stage, depth = self._stage_of(a, b)
        if a.negative == b.negative:
            value, lo, hi, neg = a.value + bv, a.lo + blo, a.hi + bhi, a.negative
        elif not a.negative:
            value, lo, hi, neg = a.value - bv, a.lo - bhi, a.hi - blo, False
        elif d:  # -a + (b << d) as the negated a - (b << d): its low d bits are a's, no logic
            value, lo, hi, neg = a.value - bv, a.lo - bhi, a.hi - blo, True
        else:
            value, lo, hi, neg = bv - a.value, blo - a.hi, bhi - a.lo, False
        self.adders += 1
        # the low d bits of a + (b << d) and a - (b << d) are a's own: no logic there
        passed = d
        self.logic_bits["add"] += max(_width(lo, hi) - passed, 1)
        return self._node(value, lo, hi, stage, depth + cost, a.shift, neg, adder=True)

    def _apart(self, node):
        """``node`` on its own kept signal if it is an adder's result computed in this stage: an
        adder reading another combinationally would otherwise be merged with it by synthesis
        (Yosys's ``alumacc`` makes one multi-operand ``$macc`` of such chains, which it builds
        from full adders in LUTs instead of carry chains: about twice the logic on ECP5)."""
        if node.is_const or not self.share:
            return node
        if self._source(node.value) not in self._sums:
            return node
        node = self.shared(node)
        node.value.attrs["keep"] = 1
        return node

    def sum(self, nodes):
        """Sum of nodes as a balanced adder tree (terms of similar shift paired first);
        constants are added together first, for free."""
        const = sum((n.real_lo for n in nodes if n.is_const), 0)
        terms = sorted((n for n in nodes if not n.is_const), key=lambda n: (n.shift, n.negative))
        if not terms:
            return self.const(const)
        if const:
            terms.append(self.const(const))
        return self.reduce(terms, self.add)

    def reduce(self, nodes, combine):
        """``combine`` (e.g. :meth:`add`, :meth:`maximum`) over ``nodes`` as a balanced tree,
        neighbours paired first."""
        nodes = list(nodes)
        while len(nodes) > 1:
            nxt = [combine(nodes[k], nodes[k + 1]) for k in range(0, len(nodes) - 1, 2)]
            if len(nodes) % 2:
                nxt.append(nodes[-1])
            nodes = nxt
        return nodes[0]

    def materialize(self, node):
        """A node with shift 0 and positive sign (a negation costs one adder level)."""
        if node.is_const:
            v = node.real_lo
            return Node(Const(v, shape_for(v, v)), v, v, None)
        if node.negative:
            cost = self._cost("add", _width(node.real_lo, node.real_hi))
            (node,) = self.align([node], cost)
            node = self._apart(node)
            value = node.value.shift_left(node.shift) if node.shift else node.value
            self.logic_bits["add"] += _width(node.real_lo, node.real_hi)
            return self._node(-value, node.real_lo, node.real_hi, node.stage, node.depth + cost, adder=True)
        if node.shift:
            value = self._part(node.value.shift_left(node.shift), node.value)
            return Node(value, node.real_lo, node.real_hi, node.stage, node.depth)
        return node

    def multiply_const(self, node, c, multiplier="csd"):
        """``node * c`` for an integer constant ``c``: shift-and-add of canonical signed
        digits (``multiplier="csd"`` or ``"cse"``), or a plain ``*`` (for DSP mapping) with
        ``multiplier="dsp"``."""
        c = int(c)
        if c == 0:
            return self.const(0)
        if node.is_const:
            return self.const(node.real_lo * c)
        node = self.shared(node)  # (one term per digit; other operations may read it too)
        if multiplier == "dsp" and len(csd_digits(c)) > 1:
            node = self.materialize(node)
            cost = self._cost("multiply")
            (node,) = self.align([node], cost)
            cands = (node.lo * c, node.hi * c)
            self.multipliers += 1
            self.multiplier_widths.append(operand_widths((node.lo, node.hi), (c, c)))
            return self._node(node.value * Const(c, shape_for(c, c)), min(cands), max(cands), node.stage,
                              node.depth + cost)
        terms = [replace(node, shift=node.shift + s, negative=node.negative != (d < 0)) for s, d in csd_digits(c)]
        return self.sum(terms)

    def cmvm(self, graph, xs):
        """Emit :class:`nnhdl.cmvm.CMVMGraph` ``graph`` on input nodes ``xs`` (one per graph input,
        their values inside the graph's input intervals): one :meth:`add` per graph adder, so the
        adders are registered and balanced like any other; each adder's node gets the graph's exact
        interval (narrower than interval arithmetic where subexpressions are shared). Returns one
        node per graph output (a constant 0 for an empty column)."""
        nodes = list(xs)
        uses = [0] * (graph.n_in + len(graph.adders))
        for t in [t for add in graph.adders for t in (add.a, add.b)] + graph.outputs:
            if t is not None:
                uses[t.node] += 1

        def term(t):
            n = nodes[t.node]
            return replace(n, shift=n.shift + t.shift, negative=n.negative != (t.sign < 0))

        for add in graph.adders:
            r = self.add(term(add.a), term(add.b))
            if not r.is_const:  # the node holds -(real >> shift) if negative, else real >> shift
                lo, hi = (-add.hi, -add.lo) if r.negative else (add.lo, add.hi)
                lo, hi = -((-lo) >> r.shift), hi >> r.shift
                r = replace(r, lo=max(r.lo, lo), hi=min(r.hi, hi))
                if uses[len(nodes)] > 1:  # a shared subexpression: its logic once
                    r = self.shared(r)
            nodes.append(r)
        return [self.const(0) if t is None else term(t) for t in graph.outputs]

    def requantize(self, node, frac, to: FixedFormat):
        """Hardware :func:`nnhdl.fixed.requantize`: round away ``frac - to.frac_bits`` bits with
        ``to.rounding``, then apply ``to.overflow``. Costs at most two adder levels."""
        node = self.materialize(self.shared(node))
        s = frac - to.frac_bits
        lo, hi = node.lo, node.hi
        qlo, qhi = (int(round_shift(np.array([v], dtype=object), s, to.rounding)[0]) for v in (lo, hi))
        if node.is_const:
            v = int(requantize([lo], frac, to)[0])
            return Node(Const(v, shape_for(v, v)), v, v, None)
        if s <= 0:
            value = self._part(node.value.shift_left(-s), node.value) if s else node.value
            q = Node(value, lo << -s, hi << -s, node.stage, node.depth)
        elif to.rounding is Rounding.TRN:
            # (right shifts stay ``>>``: with ``shift_right``, which narrows the value (to zero bits
            # for a shift past its width), Yosys 0.70's ABC9 asserted in synth_ecp5 on the jet tagger)
            q = Node(self._part(node.value >> s, node.value), lo >> s, hi >> s, node.stage, node.depth)
        else:
            cost = self._cost("add", _width(qlo, qhi))
            (node,) = self.align([node], cost)
            v = self.shared(node).value  # read up to five times below
            if len(v) <= s:  # dropping more bits than the value has: extend it first
                fill = v[-1] if lo < 0 else Const(0, 1)
                v = Cat(v, fill.replicate(s + 1 - len(v)))
                v = v.as_signed() if lo < 0 else v
            floor = v >> s
            half = v[s - 1]
            below = v[:s - 1].any() if s > 1 else Const(0, 1)
            negative = v[-1] if lo < 0 else Const(0, 1)
            inc = {
                Rounding.TRN_ZERO: v[:s].any() & negative,
                Rounding.RND: half,
                Rounding.RND_ZERO: half & (below | negative),
                Rounding.RND_MIN_INF: half & below,
                Rounding.RND_INF: half & (below | ~negative),
                Rounding.RND_CONV: half & (below | floor[0]),
            }[to.rounding]
            self.adders += 1
            self.logic_bits["add"] += _width(qlo, qhi)
            q = self._node(floor + inc, qlo, qhi, node.stage, node.depth + cost)
        return self.overflow(q, to)

    def overflow(self, q, to: FixedFormat):
        """Bring an integer node into ``to``'s range with ``to.overflow``."""
        q = self.materialize(self.shared(q))
        if q.is_const:
            return self.const(int(apply_overflow(np.array([q.lo], dtype=object), to)[0]))
        lo, hi = to.min_int, to.max_int
        if to.overflow is Overflow.SAT_SYM and to.signed:
            lo = -hi
        shape = signed(to.width) if to.signed else unsigned(to.width)
        if lo <= q.lo and q.hi <= hi:
            return q
        if to.overflow is Overflow.WRAP:
            value = source = q.value
            if len(value) < to.width:  # (the value is read twice: once, as a signal)
                value = source = self.shared(q).value
                fill = value[-1] if q.lo < 0 else Const(0, 1)
                value = Cat(value, fill.replicate(to.width - len(value)))
            bits = value[:to.width]
            bits = self._part(bits.as_signed() if to.signed else bits, source)
            return Node(bits, to.min_int, to.max_int, q.stage, q.depth)
        cost = self._cost("compare", _width(q.lo, q.hi)) + self._cost("mux") if self.delays else 1
        (q,) = self.align([q], cost)
        q = self.shared(q)  # compared and passed on
        over = q.value > hi if q.hi > hi else Const(0, 1)
        under = q.value < lo if q.lo < lo else Const(0, 1)
        self.logic_bits["compare"] += _width(q.lo, q.hi) * ((q.hi > hi) + (q.lo < lo))
        self.logic_bits["mux"] += to.width * (1 if to.overflow is Overflow.SAT_ZERO else (q.hi > hi) + (q.lo < lo))
        inner = q.value[:to.width]
        inner = inner.as_signed() if to.signed else inner
        if to.overflow is Overflow.SAT_ZERO:
            value = Mux(over | under, 0, inner)
            nlo, nhi = min(max(q.lo, lo), 0), max(min(q.hi, hi), 0)
        else:
            value = Mux(over, Const(hi, shape), Mux(under, Const(lo, shape), inner))
            nlo, nhi = min(max(q.lo, lo), hi), max(min(q.hi, hi), lo)
        return self._node(value, nlo, nhi, q.stage, q.depth + cost)

    def maximum(self, a, b):
        """``max(a, b)`` (one comparator level)."""
        a, b = self.materialize(self.shared(a)), self.materialize(self.shared(b))
        if a.is_const and b.is_const:
            return self.const(max(a.lo, b.lo))
        width = max(_width(a.lo, a.hi), _width(b.lo, b.hi))
        cost = self._cost("compare", width) + self._cost("mux") if self.delays else 1
        a, b = (self.shared(n) for n in self.align([a, b], cost))  # compared and passed on
        stage, depth = self._stage_of(a, b)
        self.logic_bits["compare"] += width
        self.logic_bits["mux"] += _width(max(a.lo, b.lo), max(a.hi, b.hi))
        return self._node(Mux(a.value >= b.value, a.value, b.value), max(a.lo, b.lo), max(a.hi, b.hi), stage,
                          depth + cost)

    def greater_equal(self, a, b):
        """``a >= b`` as a 1-bit node (one comparator level)."""
        a, b = self.materialize(self.shared(a)), self.materialize(self.shared(b))
        if a.is_const and b.is_const:
            return self.const(int(a.lo >= b.lo))
        cost = self._cost("compare", max(_width(a.lo, a.hi), _width(b.lo, b.hi)))
        a, b = self.align([a, b], cost)
        stage, depth = self._stage_of(a, b)
        self.logic_bits["compare"] += max(_width(a.lo, a.hi), _width(b.lo, b.hi))
        return self._node(a.value >= b.value, 0, 1, stage, depth + cost)

    def relu(self, node):
        node = self.materialize(self.shared(node))
        if node.lo >= 0:
            return node
        if node.is_const:
            return self.const(0)
        cost = self._cost("mux")
        (node,) = self.align([node], cost)
        node = self.shared(node)  # its sign bit selects it
        self.logic_bits["mux"] += _width(0, max(node.hi, 0))
        return self._node(Mux(node.value[-1], 0, node.value), 0, max(node.hi, 0), node.stage, node.depth + cost)

    def low_bits_table(self, node, bits, table):
        """``table[node mod 2**bits]`` as a node (one LUT level; ``table`` has ``2**bits``
        non-negative entries): a function of ``node``'s low ``bits`` bits (two's complement; a
        narrower node is extended by its sign). ``node`` has shift 0 and positive sign."""
        node = self.materialize(self.shared(node))
        key = (self._source(node.value), node.stage, bits, tuple(table))
        if key in self._tables:  # (the windows of a convolution share their inputs)
            return self._tables[key][1]
        value = node.value
        if len(value) < bits:
            fill = value[-1] if node.lo < 0 else Const(0, 1)
            value = Cat(value, fill.replicate(bits - len(value)))
        low = value[:bits]
        lo, hi = min(table), max(table)
        cost = self._cost("mux")
        (node,) = self.align([node], cost)
        self.logic_bits["mux"] += _width(lo, hi)
        entries = Array(Const(int(t), shape_for(lo, hi)) for t in table)
        out = self._node(entries[low], lo, hi, node.stage, node.depth + cost)
        self._tables[key] = (node.value, out)  # (keeps node.value alive: ids stay unique)
        return out

    def select(self, cond, a, b):
        """``a if cond else b`` for a 1-bit node ``cond``."""
        if cond.is_const:
            return a if cond.real_lo else b
        cond = self.shared(cond)
        a, b = self.materialize(self.shared(a)), self.materialize(self.shared(b))
        cost = self._cost("mux")
        cond, a, b = self.align([cond, a, b], cost)
        stage, depth = self._stage_of(cond, a, b)
        self.logic_bits["mux"] += _width(min(a.lo, b.lo), max(a.hi, b.hi))
        return self._node(Mux(cond.value, a.value, b.value), min(a.lo, b.lo), max(a.hi, b.hi), stage, depth + cost)

    def negate(self, node):
        return replace(node, negative=not node.negative)

    def word(self, node, width):
        """The ``width``-bit two's complement word of ``node`` (which must fit), as unsigned bits."""
        node = self.materialize(self.shared(node))
        if node.is_const:
            return self.const(node.lo & ((1 << width) - 1))
        value = source = node.value
        if len(value) < width:
            value = source = self.shared(node).value  # (read twice)
            fill = value[-1] if node.lo < 0 else Const(0, 1)
            value = Cat(value, fill.replicate(width - len(value)))
        return Node(self._part(value[:width], source), 0, (1 << width) - 1, node.stage, node.depth)

    def bits(self, node, start, stop):
        """Bits ``start:stop`` of an unsigned node (as from :meth:`word`)."""
        if node.is_const:
            return self.const((node.real_lo >> start) & ((1 << (stop - start)) - 1))
        value = self._part(node.value[start:stop], node.value)
        return Node(value, 0, (1 << (stop - start)) - 1, node.stage, node.depth)

    def lookup(self, index, table, memory=None):
        """``table[index]`` from a constant table held in an Amaranth ``lib.memory.Memory`` read
        synchronously (one register, enabled with the pipeline), so it maps to block RAM where
        the target has it. Lookups that pass the same ``memory`` key share one memory (one read
        port each)."""
        table = [int(v) for v in table]
        if index.is_const:
            return self.const(table[index.real_lo])
        lo, hi = min(table), max(table)
        key = memory if memory is not None else object()
        if key not in self.memories:
            mem = Memory(shape=shape_for(lo, hi), depth=len(table), init=table)
            self.memories[key] = (mem, [])
            self.rom_bits += len(table) * mem.shape.width
        mem, ports = self.memories[key]
        (index,) = self.align([index], self._cost("mux"))
        port = mem.read_port(domain="sync")
        ports.append((port, index.value))
        return Node(port.data, lo, hi, index.stage + 1, 0)

    def multiply(self, a, b, logic=False):
        """``a * b`` of two variable nodes: a hardware multiplier (``*``, which synthesis maps to
        DSP blocks), or with ``logic`` an array of partial products summed by adders (no DSP)."""
        a, b = self.materialize(self.shared(a)), self.materialize(self.shared(b))
        if a.is_const and b.is_const:
            return self.const(a.lo * b.lo)
        if a.is_const or b.is_const:
            c, v = (a, b) if a.is_const else (b, a)
            return self.multiply_const(v, c.lo)
        if logic:
            return self._multiply_logic(a, b)
        cost = self._cost("multiply")
        a, b = self.align([a, b], cost)
        stage, depth = self._stage_of(a, b)
        cands = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        self.multipliers += 1
        self.multiplier_widths.append(operand_widths((a.lo, a.hi), (b.lo, b.hi)))
        return self._node(a.value * b.value, min(cands), max(cands), stage, depth + cost)

    def _multiply_logic(self, a, b):
        """``a * b`` as the sum over the bits of ``b``'s two's complement word of ``a << i`` where
        the bit is set (the sign bit's term subtracted): exact, built from :meth:`select` and
        :meth:`add`, so it is registered and balanced like any other logic."""
        if _width(b.lo, b.hi) > _width(a.lo, a.hi):
            a, b = b, a  # fewer partial products
        width = _width(b.lo, b.hi)
        word = self.word(b, width)
        a = self.shared(a)  # one partial product per bit of b
        zero = self.const(0)
        terms = []
        for i in range(width):
            bit = self.bits(word, i, i + 1)
            term = self.select(bit, a, zero)
            terms.append(replace(term, shift=term.shift + i, negative=(b.lo < 0 and i == width - 1)))
        product = self.sum(terms)
        cands = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        product = self.materialize(product)
        return replace(product, lo=max(product.lo, min(cands)), hi=min(product.hi, max(cands)))

    def divide_sticky(self, node, d):
        """``2 * floor(v / d) + (v mod d != 0)`` for a positive integer constant ``d`` (see
        :func:`nnhdl.reference.divide_sticky`): an exact floor division by a multiplication with a
        rounded-up reciprocal ``M = ceil(2**s / d)`` of an offset (non-negative) ``v``, then the
        remainder's test."""
        d = int(d)
        node = self.materialize(self.shared(node))
        if node.is_const:
            v = node.lo
            return self.const(2 * (v // d) + (v % d != 0))
        off = d * (-(node.lo // d)) if node.lo < 0 else 0  # a multiple of d making v + off >= 0
        u = self.add(node, self.const(off)) if off else node
        u = self.shared(self.materialize(u))  # multiplied and subtracted from
        top = u.hi
        s = max(top.bit_length(), 1) + d.bit_length()
        m = -(-(1 << s) // d)
        assert top * (m * d - (1 << s)) < (1 << s)
        prod = self.materialize(self.multiply_const(u, m))
        (prod,) = self.align([prod], self._cost("mux"))
        q = Node(self._part(prod.value >> s, prod.value), prod.lo >> s, prod.hi >> s, prod.stage,
                 prod.depth)
        q = self.shared(Node(q.value, u.lo // d, u.hi // d, q.stage, q.depth))  # multiplied and returned
        rem = self.add(u, self.negate(self.multiply_const(q, d)))
        rem = self.materialize(rem)
        rem = Node(rem.value, 0, d - 1, rem.stage, rem.depth)
        sticky = self.greater_equal(rem, self.const(1))
        result = self.add(replace(q, shift=q.shift + 1), sticky)
        return self.add(result, self.const(-2 * (off // d))) if off else result

    def is_negative(self, node):
        node = self.materialize(self.shared(node))
        if node.lo >= 0 or node.is_const:
            return self.const(int(node.lo < 0))
        return Node(self._part(node.value[-1], node.value), 0, 1, node.stage, node.depth)

    # -- output ---------------------------------------------------------------------------------
    def outputs(self, nodes, fmt=None, stage=None):
        """Register ``nodes`` into output registers at one common stage (at least one register
        after the latest node); returns ``(registers, stage)``. ``stage`` is the latency."""
        nodes = [self.materialize(n) for n in nodes]
        live = [n.stage for n in nodes if not n.is_const]
        last = max(live, default=0) + 1
        stage = last if stage is None else max(stage, last)
        regs = []
        for n in nodes:
            if n.is_const:
                n = Node(n.value, n.lo, n.hi, 0)
            n = self.delay(n, stage - 1)
            reg = Signal(shape_for(n.lo, n.hi) if fmt is None else
                         (signed(fmt.width) if fmt.signed else unsigned(fmt.width)),
                         name=f"{self.name}_out{len(regs)}", reset_less=True)
            self.registers.append((reg, n.value))
            regs.append(reg)
        return regs, stage

    def statements(self):
        """The registers' assignments, for the ``sync`` domain under the pipeline's enable; the
        datapath also needs :meth:`combinational` (or :meth:`elaborate_memories`, which adds it)."""
        return [reg.eq(value) for reg, value in self.registers]

    def combinational(self):
        """The assignments of the :meth:`shared` signals, for the ``comb`` domain."""
        return [wire.eq(value) for wire, value in self.wires]

    def elaborate_memories(self, m, en):
        """Add the :meth:`combinational` assignments and the ROMs to module ``m`` (the ROMs' read
        ports advance with ``en``); the registers are :meth:`statements`."""
        m.d.comb += self.combinational()
        for k, (mem, ports) in enumerate(self.memories.values()):
            m.submodules[f"rom{k}"] = mem
            for port, addr in ports:
                m.d.comb += [port.addr.eq(addr), port.en.eq(en)]

    @property
    def register_bits(self):
        return sum(len(reg) for reg, _ in self.registers)
