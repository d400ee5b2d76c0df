"""Folded (time-multiplexed) Dense layer: a reuse factor trades throughput for area.

hls4ml's *reuse factor* R uses each multiplier up to R times per inference, so a layer needs
about ``n_in * n_out / R`` hardware multipliers and accepts a new input every R cycles at most.
:class:`FoldedDense` is that layer for nnhdl, bit-exact with :class:`nnhdl.layers.Dense`.

At large R the vectors, not the multipliers, dominate the area: :func:`link_folded` lets
consecutive folded layers pass them through double-buffered block RAM instead of registers
(same handshakes, latency and interval).
"""

from dataclasses import dataclass, replace
from functools import cached_property

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..arith import dense_plan
from .activation import activation_nodes
from .base import LayerFigures, count_shapes, stream_signature, word_shape
from .pipeline import Datapath, operand_widths, shape_for
from .timing import Folded

__all__ = ["FoldedDense", "FoldSchedule", "fold_schedule", "link_folded"]

#: Cycles between accepting an input and its first product entering an accumulator (input
#: register and controller, ROM and input read, product register).
FRONT_CYCLES = 3

#: Weight-ROM bits per address counter. The ROM is cut into slices of about this many bits per
#: word, each read at a copy of the step counter of its own: a single counter addressing a ROM
#: that synthesis builds from LUTs fans out to every one of them (on the ECP5-85F, the 8-bit jet
#: tagger with every hidden layer folded, 15 % of the device, then did not route: router2 stalled
#: at about 2,800 overused wires, its congestion on the ROM address nets; sliced, it routed in
#: 2.5 min of router1).
ROM_SLICE_BITS = 128


@dataclass(frozen=True)
class FoldSchedule:
    """How a Dense of ``n_in`` inputs and ``n_out`` outputs is folded for a reuse factor.

    The outputs are split among ``lanes`` lanes, ``outputs_per_lane`` consecutive outputs each
    (lane ``l`` computes outputs ``l * g .. l * g + g - 1`` one after the other); a lane has
    ``inputs_per_step`` multipliers and sums, per step, the products of that many consecutive
    inputs (``i = c * k .. c * k + k - 1`` in step ``c`` of an output; ``steps_per_output`` steps
    cover all inputs, the last one padded with zero weights). So every output's terms are added
    in input order, as hls4ml does. ``cycles`` = ``outputs_per_lane * steps_per_output``
    is the layer's initiation interval."""
    n_in: int
    n_out: int
    reuse: int
    inputs_per_step: int   # k
    outputs_per_lane: int  # g
    lanes: int
    steps_per_output: int  # P

    @property
    def cycles(self):
        return self.outputs_per_lane * self.steps_per_output

    @property
    def multipliers(self):
        return self.lanes * self.inputs_per_step


def fold_schedule(n_in, n_out, reuse):
    """The :class:`FoldSchedule` for reuse factor ``reuse`` (a positive integer).

    ``reuse <= n_in``: every output has a lane of ``ceil(n_in / reuse)`` multipliers, and the
    interval is ``ceil(n_in / ceil(n_in / reuse))`` cycles (``reuse`` when it divides ``n_in``,
    never more). ``reuse > n_in``: one multiplier per lane, each lane computing
    ``min(n_out, reuse // n_in)`` outputs in turn; ``reuse >= n_in * n_out`` is one multiplier
    doing every product, ``n_in * n_out`` cycles (a larger R gains nothing, so it is clamped).
    The interval is never more than ``reuse``."""
    if isinstance(reuse, bool) or not isinstance(reuse, int) or reuse < 1:
        raise ValueError(f"the reuse factor must be a positive integer, not {reuse!r}")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"a folded Dense needs at least one input and one output, not {n_in} x {n_out}")
    if reuse <= n_in:
        k, g = -(-n_in // reuse), 1
    else:
        k, g = 1, min(n_out, reuse // n_in)
    return FoldSchedule(n_in, n_out, reuse, k, g, -(-n_out // g), -(-n_in // k))


#: A consumer reads a linked producer's outputs from block RAM only when the producer computes at
#: least this many outputs per lane (shallower buffers are cheaper as registers).
LINK_MIN_OUTPUTS_PER_LANE = 8


def _comb_datapath(name):
    """A :class:`Datapath` used only as an expression builder: no adder-level limit, so it never
    inserts a register (every node stays combinational)."""
    return Datapath(levels_per_stage=1 << 30, name=name)


def _stage_values(dp, nodes):
    """The values of ``nodes`` (built on ``dp``) brought to one common stage, as combinational
    expressions: ``(values, stage)``. A register loaded from ``values[k]`` holds, ``stage`` cycles
    after the datapath's inputs, the value of node ``k`` (like :meth:`Datapath.outputs`, whose last
    register is left to the caller)."""
    nodes = [dp.materialize(n) for n in nodes]
    stage = max((n.stage for n in nodes if not n.is_const), default=0) + 1
    return [n.value if n.is_const else dp.delay(n, stage - 1).value for n in nodes], stage


def _select(index, values):
    """``values[index]`` as a balanced tree of 2-way multiplexers on the bits of ``index`` (any
    value for an index past the end): its depth is ``log2(len(values))``, so the Amaranth
    simulator's generated code stays shallow even for hundreds of values."""
    bit = 0
    while len(values) > 1:
        values = [Mux(index[bit], values[k + 1], values[k]) if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
        bit += 1
    return values[0]


def _intern(index, items, item):
    """The position of ``item`` in ``items`` (appended when new; ``index`` maps items to positions)."""
    if item not in index:
        index[item] = len(items)
        items.append(item)
    return index[item]


class _Link:
    """Block RAM carrying a producer :class:`FoldedDense`'s outputs to the consumer right after it
    (see :func:`link_folded`): one word per output slot ``s`` holds every lane's output ``l * g + s``
    (lane ``l`` in bits ``l * w .. l * w + w - 1``), in two banks (address ``bank * 2**b + s``), so the
    producer fills one inference's bank while the consumer reads the previous one's."""

    def __init__(self, producer):
        sch = producer.schedule
        self.slot_bits = (sch.outputs_per_lane - 1).bit_length()
        self.word = word_shape(producer.out_fmt)
        self.lanes, self.outputs_per_lane = sch.lanes, sch.outputs_per_lane
        self.memory = Memory(shape=unsigned(self.lanes * self.word.width), depth=2 << self.slot_bits, init=[])
        self.write = self.memory.write_port()
        self.read = self.memory.read_port(domain="sync")

    @property
    def bits(self):
        return self.memory.depth * self.lanes * self.word.width


def link_folded(layers):
    """Route the vectors between consecutive folded layers through block RAM.

    ``layers``: a network's layer components in order, before elaboration. For each adjacent pair
    of :class:`FoldedDense` where the consumer takes one input per step (``reuse >= n_in``) and the
    producer computes at least :data:`LINK_MIN_OUTPUTS_PER_LANE` outputs per lane, each in at least
    two steps, the producer writes its outputs into a double-buffered memory (instead of its output
    registers) and the consumer reads its inputs from there (instead of a register copy of the
    whole vector). The handshake between the two is unchanged (``o.valid`` / ``i.ready``; the
    payload, which the consumer ignores, is no longer driven), so every latency and interval is
    too. Why the banks never collide: the producer raises ``o.valid`` for inference ``n`` before
    it writes anything of ``n + 1`` (its first output takes at least two steps) and then holds
    until the consumer accepts, which the consumer does only when idle or in the last step of
    ``n - 1``, whose read is its last of the bank ``n + 1`` will fill (so no write meets a read of
    its address in the same cycle). Layers already linked are skipped; returns the number of links
    made."""
    made = 0
    for a, b in zip(layers, layers[1:]):
        if not (isinstance(a, FoldedDense) and isinstance(b, FoldedDense)) or a._sink or b._source:
            continue
        if b._taps is not None or b.schedule.inputs_per_step != 1 or a.schedule.outputs_per_lane < LINK_MIN_OUTPUTS_PER_LANE \
                or a.schedule.steps_per_output < 2:
            continue
        if word_shape(a.out_fmt) != word_shape(b.in_fmt) or a.op.n_out != b.op.n_in:
            continue
        a._sink = b._source = _Link(a)
        made += 1
    return made


class FoldedDense(LayerFigures, wiring.Component):
    """A Dense layer folded by a reuse factor: ``o = cast(act(b + sum_i x_i * w[i, j]))`` with
    :attr:`multipliers` hardware multipliers, one input accepted every :attr:`interval` cycles.

    Parameters
    ----------
    op : nnhdl.ir.Dense
        A quantized Dense op.
    in_fmt : FixedFormat
        Format of the input words.
    reuse : int
        The reuse factor R (see :func:`fold_schedule`; R = 1 works but the unfolded
        :class:`~nnhdl.layers.Dense` is what a network uses then).
    multiplier : "csd" | "dsp"
        Only for the leaky ReLU slope of the activation (the folded products are variable
        times ROM word, always a hardware ``*``).
    levels_per_stage : int
        Adder levels between registers in the activation and cast after the accumulators.

    Members: ``i`` / ``o`` as :class:`~nnhdl.layers.PipelinedLayer`.

    Hardware (see :class:`FoldSchedule` for the lanes):

    - an input register holds the accepted vector for the whole computation, a multiplexer on
      the step picks its ``inputs_per_step`` words; a consumer linked by :func:`link_folded`
      reads its one input per step from the producer's block RAM instead and keeps no copy;
    - a controller counts the steps ``t = 0 .. interval - 1`` (output slot ``s`` and input step
      ``c`` of the lanes); ``i.ready`` is high only while idle or in the last step, so a new
      input can enter exactly ``interval`` cycles after the previous one;
    - every lane's weights for a step are one word of a ROM (``amaranth.lib.memory.Memory``,
      ``interval`` words of ``multipliers`` weights, read synchronously), cut into slices of
      about ``ROM_SLICE_BITS`` bits a word, each addressed by a copy of the step counter of its
      own, so that no counter fans out to the whole ROM; the products are registered (``*``,
      mapped to DSP blocks where the target has them);
    - each lane's accumulator adds its products exactly as :func:`nnhdl.reference.dense_accumulate`
      does: starting from the bias, each product cast to ``accum`` when the plan casts products,
      a saturating accumulator that can overflow saturated after every single addition in input
      order, a wrapping one wrapped (which commutes with the sums), an exact one never;
    - each finished sum goes through the lane's one activation and cast to ``op.fmt``
      (:func:`activation_nodes`, pipelined like the unfolded layer; the lane's outputs use it one
      after the other) into its output register (a linked producer writes each slot's outputs,
      one per lane, as one word of the link's block RAM instead); ``o.valid`` rises with the
      last slot's write.

    Timing: :attr:`latency` = ``interval + 3 + tail`` cycles from an accepted input to its
    output being valid (``tail``: the activation pipeline's depth); :attr:`interval` cycles
    between inputs at full rate. The whole layer advances only when ``o.valid`` is low or
    ``o.ready`` high, so a stalled output holds everything: nothing is lost or duplicated.
    """

    def __init__(self, op, in_fmt, reuse, *, multiplier="csd", levels_per_stage=2, taps=None, n_vec=None):
        self.op, self.in_fmt, self.out_fmt = op, in_fmt, op.fmt
        self.multiplier = multiplier
        self.plan = dense_plan(op, in_fmt)
        self.schedule = fold_schedule(op.n_in, op.n_out, reuse)
        self.reuse = reuse
        self.n_vec = op.n_in if n_vec is None else n_vec
        self._taps = taps
        if taps is not None and len(taps) != op.n_out:
            raise ValueError(f"{op.name}: {len(taps)} tap lists for {op.n_out} outputs")
        self._source = self._sink = None  # _Link objects set by link_folded
        super().__init__({"i": In(stream_signature(in_fmt, self.n_vec)),
                          "o": Out(stream_signature(op.fmt, op.n_out))})
        sch, acc = self.schedule, op.accum_fmt
        weights = [int(v) for v in op.weight.flat] + [0]
        self._w_range = (min(weights), max(weights))
        self._w_shape = shape_for(*self._w_range)
        self._acc_shape = word_shape(acc)
        g = sch.outputs_per_lane
        self._lane_outputs = [[j for j in range(lane * g, lane * g + g) if j < op.n_out] for lane in range(sch.lanes)]
        # one accumulator per lane; the activation reads it when it holds a finished sum
        self._accs = [Signal(self._acc_shape, name=f"{op.name}_acc{lane}", reset_less=True)
                      for lane in range(sch.lanes)]
        self._levels = levels_per_stage

    @cached_property
    def _tail(self):
        """The shared activation/cast pipeline of the lanes, built on first need:
        ``(datapath, result values, its depth)``."""
        op = self.op
        dp = Datapath(self._levels, name=op.name)
        lo, hi = self._sum_bounds()
        inputs = [dp.input(a, min(lo[j] for j in outs), max(hi[j] for j in outs))
                  for a, outs in zip(self._accs, self._lane_outputs)]
        outs = activation_nodes(dp, op.activation, inputs, op.accum_fmt.frac_bits, op.fmt, op.alpha, op.alpha_fmt,
                                self.multiplier)
        results, depth = _stage_values(dp, outs)
        return dp, results, depth

    @property
    def _dp(self):
        return self._tail[0]

    @property
    def _results(self):
        return self._tail[1]

    @property
    def tail_latency(self):
        return self._tail[2]

    @property
    def latency(self):
        return self.schedule.cycles + FRONT_CYCLES + self.tail_latency

    # -- what the layer is -------------------------------------------------------------------------
    @property
    def logic_bits(self):
        """The output datapath's logic plus the lanes' (the products are in DSP blocks): per input
        group a multiplexer over its distinct sources; per lane the choice of bias or running sum
        and of the output's bias; per product an accumulator adder (and a comparison when it
        saturates); the step counters. Checked against Yosys ``synth_ice40`` on ten folded Dense
        and convolution layers (2026-12-01): LUTs -13 % ... +39 %, flip-flops -12 % ... +27 %."""
        bits = dict(self._dp.logic_bits)
        sch, acc, w_in = self.schedule, self._acc_shape.width, word_shape(self.in_fmt).width
        groups = self._input_groups[0] if self._source is None else [("c", (0, 1))]
        bits["mux"] += sum(len(set(sources)) - 1 for _, sources in groups) * w_in
        biases = [len({int(self.plan.bias[j]) for j in outs}) for outs in self._lane_outputs]
        # per lane: bias or running sum, and the slot's bias, a table of constants (about one LUT4
        # per bit for every 8 of them)
        bits["mux"] += sum(1 + -(-(n - 1) // 8) for n in biases) * acc
        bits["add"] += self._products * acc + 3 * max(1, (sch.cycles - 1).bit_length())
        if self.plan.ordered:
            bits["compare"] += self._products * acc
        return bits

    @property
    def dsp_register_bits(self):
        """``{"AxB": bits}``: the product registers a DSP block of that multiplier shape takes in
        (Yosys packs them into iCE40 ``SB_MAC16``, not into ECP5 ``MULT18X18D``; measured: all of
        them when a lane sums several products per step, about half with one)."""
        if not self._products:
            return {}
        share = 1.0 if self.schedule.inputs_per_step > 1 else 0.5
        (key,) = count_shapes([self._lane_operands])
        return {key: int(self._products * self._product_shape().width * share)}

    def handshake(self):
        """After accepting an input, ready again only in the last of its ``interval`` steps."""
        return Folded(self.latency, self.interval)

    def figures(self):
        sch = self.schedule
        return dict(LayerFigures.figures(self), reuse=self.reuse, dsp_register_bits=self.dsp_register_bits, folding={
            "lanes": sch.lanes, "inputs_per_step": sch.inputs_per_step, "outputs_per_lane": sch.outputs_per_lane,
            "weight_rom_bits": self.rom_bits})

    @property
    def interval(self):
        """Cycles between accepted inputs at full rate (at most the reuse factor)."""
        return self.schedule.cycles

    @property
    def multipliers(self):
        """Hardware multipliers: one per lane slot whose weights are not all zero (plus any of the
        activation)."""
        return self._products + self._dp.multipliers

    @property
    def adders(self):
        return self._products + self._dp.adders

    @property
    def multiplier_widths(self):
        """The lanes' products (input word times weight), then any of the activation."""
        return (self._lane_operands,) * self._products + tuple(self._dp.multiplier_widths)

    @property
    def _lane_operands(self):
        """Operand widths ``(a, b)`` of a lane's multiplier: an input word times a weight."""
        return operand_widths((self.in_fmt.min_int, self.in_fmt.max_int), self._w_range)

    @cached_property
    def _products(self):
        return sum(col is not None for row in self._weight_columns[1] for col in row)

    @property
    def rom_bits(self):
        """Bits of the weight ROM (plus any table of the activation)."""
        return self.schedule.cycles * len(self._weight_columns[0]) * self._w_shape.width + self._dp.rom_bits

    @property
    def memory_bits(self):
        """Bits of the block RAM this layer writes for a linked consumer (:func:`link_folded`)."""
        return self._sink.bits if self._sink else 0

    @property
    def register_bits(self):
        sch, op = self.schedule, self.op
        w_in = word_shape(self.in_fmt).width
        # the step counters (t: one per ROM slice; c and s counted as wide as t) and control bits
        counters = (2 + len(self._rom_slices)) * max(1, (sch.cycles - 1).bit_length()) + 4
        slot = max(1, (sch.outputs_per_lane - 1).bit_length())
        tail = self.tail_latency * (slot + 2) + 1
        if self._source:
            front = 2 * max(1, (self._source.outputs_per_lane - 1).bit_length()) + 2 + sch.inputs_per_step * w_in
        else:
            front = (self.n_vec + len(self._input_groups[0])) * w_in
        prods = self._products * self._product_shape().width
        outputs = 0 if self._sink else op.n_out * word_shape(op.fmt).width
        return counters + tail + front + prods + sch.lanes * self._acc_shape.width + outputs + self._dp.register_bits

    # -- what each multiplier reads ---------------------------------------------------------------
    def _slot(self, t, lane, q):
        """``(i, j)``: multiplier ``q`` of ``lane`` multiplies input position ``i`` of output ``j``
        in step ``t`` (see :class:`FoldSchedule`); ``i`` or ``j`` may be past the last one."""
        sch = self.schedule
        s, c = divmod(t, sch.steps_per_output)
        return c * sch.inputs_per_step + q, lane * sch.outputs_per_lane + s

    @cached_property
    def _weight_columns(self):
        """``(columns, column_of)``: the distinct weight sequences of the multipliers (one weight
        per step, zero past the last input or output), none all zero, and ``column_of[lane][q]``
        the index of that multiplier's sequence, or None when all its weights are zero (then its
        product is the constant 0 and it has no multiplier). Lanes computing the same filter at
        the same steps (a convolution's windows) share one ROM column."""
        sch, w, (n_in, n_out) = self.schedule, self.op.weight, self.op.weight.shape
        index, columns, column_of = {}, [], []
        for lane in range(sch.lanes):
            row = []
            for q in range(sch.inputs_per_step):
                seq = tuple(int(w[i, j]) if i < n_in and j < n_out else 0
                            for i, j in (self._slot(t, lane, q) for t in range(sch.cycles)))
                row.append(_intern(index, columns, seq) if any(seq) else None)
            column_of.append(row)
        return columns, column_of

    @cached_property
    def _input_groups(self):
        """``(groups, group_of)``: the distinct input selections of the multipliers with weights.
        A group is ``(key, sources)``: ``key`` ``"c"`` when the selection depends only on the
        input step ``c`` (``sources[c]``; a Dense's multipliers all share one per ``q``), else
        ``"t"`` (``sources[t]``, per step); a source is a position of the input vector, or None
        for the constant 0 (past the last input, or a convolution's padding). ``group_of[lane][q]``
        indexes ``groups`` (None for a multiplier without weights)."""
        sch, n_in, n_out = self.schedule, self.op.n_in, self.op.n_out
        g, steps = sch.outputs_per_lane, sch.steps_per_output
        index, groups, group_of = {}, [], []
        for lane, cols in enumerate(self._weight_columns[1]):
            row = []
            for q, col in enumerate(cols):
                if col is None:
                    row.append(None)
                    continue
                seq = []
                for t in range(sch.cycles):
                    i, j = self._slot(t, lane, q)
                    if j >= n_out:  # a slot past the last output: any input will do (zero weights)
                        j = lane * g
                    seq.append(None if i >= n_in else i if self._taps is None else self._taps[j][i])
                by_step = tuple(seq[:steps])
                key = ("c", by_step) if all(seq[t] == by_step[t % steps] for t in range(len(seq))) else ("t", tuple(seq))
                row.append(_intern(index, groups, key))
            group_of.append(row)
        return groups, group_of

    @cached_property
    def _rom_slices(self):
        """``[(first column, columns), ...]``: the weight ROM's slices (see ``ROM_SLICE_BITS``),
        each read at a step counter of its own; one slice (of no column) when no weight is
        non-zero."""
        n, per = len(self._weight_columns[0]), max(1, ROM_SLICE_BITS // self._w_shape.width)
        return [(first, min(per, n - first)) for first in range(0, n, per)] or [(0, 0)]

    def weight_rom(self):
        """The ROM words: word ``t`` (step ``t = s * steps_per_output + c``) holds column ``n`` of
        :attr:`_weight_columns` (the weight ``w[c * k + q, l * g + s]`` of each multiplier ``q`` of
        lane ``l`` whose column it is; two's complement) at bit offset ``n * width``."""
        columns, width = self._weight_columns[0], self._w_shape.width
        mask = (1 << width) - 1
        return [sum((col[t] & mask) << (n * width) for n, col in enumerate(columns))
                for t in range(self.schedule.cycles)]

    def _product_shape(self):
        lo, hi = self._product_bounds()
        return shape_for(lo, hi)

    def _product_bounds(self):
        x = (self.in_fmt.min_int, self.in_fmt.max_int)
        corners = [a * b for a in x for b in self._w_range]
        return min(corners), max(corners)

    def _sum_bounds(self):
        """Bounds of each finished sum: the plan's interval when nothing can overflow, else the
        accumulator's range."""
        acc, plan, n = self.op.accum_fmt, self.plan, self.op.n_out
        if plan.can_overflow:
            return [acc.min_int] * n, [acc.max_int] * n
        lo = [int(plan.bias[j]) + sum((int(v) for v in plan.term_lo[:, j]), 0) for j in range(n)]
        hi = [int(plan.bias[j]) + sum((int(v) for v in plan.term_hi[:, j]), 0) for j in range(n)]
        return lo, hi

    # -- hardware --------------------------------------------------------------------------------
    def _accumulate(self, m, base, prods, name):
        """The next accumulator value (an Amaranth expression) from ``base`` (the running sum or the
        bias) and one step's product signals, in input order (see the class docstring). Each
        saturated partial sum is a signal of its own (comb), so the chain stays linear in size."""
        op, plan, acc = self.op, self.plan, self.op.accum_fmt
        dp = _comb_datapath(f"{op.name}_acc")
        fp = self.in_fmt.frac_bits + op.weight_fmt.frac_bits
        plo, phi = self._product_bounds()
        if not prods:  # every weight of the step is zero: the sum stays
            return base
        total = dp.input(base, acc.min_int, acc.max_int)
        terms = []
        for p in prods:
            node = dp.input(p, plo, phi)
            terms.append(dp.requantize(node, fp, acc) if plan.cast_products else replace(node, shift=plan.shift))
        if plan.ordered:
            for q, term in enumerate(terms):
                total = dp.overflow(dp.add(total, term), acc)
                if q < len(terms) - 1:
                    partial = Signal(self._acc_shape, name=f"{name}_s{q}")
                    m.d.comb += partial.eq(dp.materialize(total).value)
                    total = dp.input(partial, acc.min_int, acc.max_int)
        else:
            total = dp.add(total, dp.sum(terms))
            if plan.can_overflow:  # wrapping: the same whether applied per step or at the end
                total = dp.overflow(total, acc)
        return dp.materialize(total).value

    def _buffered_inputs(self, m, en, accept, c, t):
        """The step's inputs one cycle after its step (stage B), one per input group
        (:attr:`_input_groups`): the accepted vector is held in an input register, each group's
        word selected by ``c`` or ``t``."""
        in_shape = word_shape(self.in_fmt)
        xbuf = [Signal(in_shape, name=f"x{i}", reset_less=True) for i in range(self.n_vec)]
        groups = self._input_groups[0]
        xsel = [Signal(in_shape, name=f"xsel{n}", reset_less=True) for n in range(len(groups))]
        with m.If(en):
            with m.If(accept):
                m.d.sync += [x.eq(self.i.payload[i]) for i, x in enumerate(xbuf)]
            for key, counter in (("c", c), ("t", t)):
                members = [(n, sources) for n, (kind, sources) in enumerate(groups) if kind == key]
                if not members:
                    continue
                with m.Switch(counter):
                    for step in range(len(members[0][1])):
                        with m.Case(step):
                            m.d.sync += [xsel[n].eq(0 if sources[step] is None else xbuf[sources[step]])
                                         for n, sources in members]
        return xsel

    def _linked_inputs(self, m, en, accept, run, c):
        """The step's input (one per step: ``i = c``) at stage B, read from the producer's block
        RAM: input ``i`` is lane ``i // g`` of word ``i % g`` in the bank of this inference."""
        link, steps = self._source, self.schedule.steps_per_output
        g = link.outputs_per_lane
        slot = Signal(link.slot_bits, name="in_slot")
        lane = Signal(range(max(link.lanes, 2)), name="in_lane")
        bank = Signal(name="in_bank")
        with m.If(en):
            with m.If(accept):
                m.d.sync += [slot.eq(0), lane.eq(0), bank.eq(~bank)]
            with m.Elif(run):
                with m.If(c == steps - 1):
                    m.d.sync += [slot.eq(0), lane.eq(0)]
                with m.Elif(slot == g - 1):
                    m.d.sync += [slot.eq(0), lane.eq(lane + 1)]
                with m.Else():
                    m.d.sync += slot.eq(slot + 1)
        # the first read of an inference happens in its step 0, right after the accept: the bank
        # toggles at the accept, so the address sees the new bank
        m.d.comb += [link.read.addr.eq(Cat(slot, bank) if link.slot_bits else bank), link.read.en.eq(en)]
        lane_b = Signal.like(lane)
        with m.If(en):
            m.d.sync += lane_b.eq(lane)
        w = link.word.width
        x = Signal(link.word, name="xsel0")
        with m.Switch(lane_b):
            for l in range(link.lanes):
                with m.Case(l):
                    m.d.comb += x.eq(link.read.data[l * w:(l + 1) * w])
        return [x] * len(self._input_groups[0])  # one input per step: at most one group

    def elaborate(self, platform):
        m = Module()
        op, sch = self.op, self.schedule
        k, g, lanes, steps = sch.inputs_per_step, sch.outputs_per_lane, sch.lanes, sch.steps_per_output

        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)

        # controller: step t = s * steps + c of the inference being computed (``ts``: t and its
        # copies, one per ROM slice, see ROM_SLICE_BITS)
        run = Signal()
        t = Signal(range(max(sch.cycles, 2)))
        slices = self._rom_slices
        ts = [t] + [Signal.like(t, name=f"t_rom{n}") for n in range(1, len(slices))]
        c = Signal(range(max(steps, 2)))
        s = Signal(range(max(g, 2)))
        bank = Signal()  # the inference's output bank in a linked producer
        last_step = Signal()
        m.d.comb += [last_step.eq((c == steps - 1) & (s == g - 1)),
                     self.i.ready.eq(en & (~run | last_step))]
        accept = Signal()
        m.d.comb += accept.eq(self.i.valid & self.i.ready)
        with m.If(en):
            with m.If(accept):
                m.d.sync += [run.eq(1), c.eq(0), s.eq(0), bank.eq(~bank)] + [tt.eq(0) for tt in ts]
            with m.Elif(run & last_step):
                m.d.sync += run.eq(0)
            with m.Elif(run):
                m.d.sync += [tt.eq(tt + 1) for tt in ts]
                with m.If(c == steps - 1):
                    m.d.sync += [c.eq(0), s.eq(s + 1)]
                with m.Else():
                    m.d.sync += c.eq(c + 1)

        # stage B: the step's inputs and weights
        if self._source:
            xsel = self._linked_inputs(m, en, accept, run, c)
        else:
            xsel = self._buffered_inputs(m, en, accept, c, t)
        columns, column_of = self._weight_columns
        group_of = self._input_groups[1]
        width, words = self._w_shape.width, self.weight_rom()
        data = []
        for n, (first, count) in enumerate(slices):
            mask = (1 << (count * width)) - 1
            rom = Memory(shape=unsigned(max(1, count * width)), depth=sch.cycles,
                         init=[(word >> (first * width)) & mask for word in words])
            m.submodules[f"weights{n}" if n else "weights"] = rom
            port = rom.read_port(domain="sync")
            m.d.comb += [port.addr.eq(ts[n]), port.en.eq(en)]
            data.append(port.data[:count * width])
        data = Cat(*data)
        v_b, first_b, last_b, bank_b = Signal(), Signal(), Signal(), Signal()
        s_b = Signal.like(s)
        with m.If(en):
            m.d.sync += [v_b.eq(run), first_b.eq(c == 0), last_b.eq(c == steps - 1), s_b.eq(s), bank_b.eq(bank)]
        w_sig = [data[n * width:(n + 1) * width] for n in range(len(columns))]
        if self._w_shape.signed:
            w_sig = [w.as_signed() for w in w_sig]

        # stage C: products
        v_c, first_c, last_c, bank_c = Signal(), Signal(), Signal(), Signal()
        s_c = Signal.like(s)
        # (a multiplier whose weights are all zero has no product: its terms are zero)
        prods = [[Signal(self._product_shape(), name=f"p{lane}_{q}", reset_less=True)
                  for q in range(k) if column_of[lane][q] is not None] for lane in range(lanes)]
        with m.If(en):
            m.d.sync += [v_c.eq(v_b), first_c.eq(first_b), last_c.eq(last_b), s_c.eq(s_b), bank_c.eq(bank_b)]
            for lane in range(lanes):
                used = [q for q in range(k) if column_of[lane][q] is not None]
                m.d.sync += [p.eq(xsel[group_of[lane][q]] * w_sig[column_of[lane][q]])
                             for p, q in zip(prods[lane], used)]

        # stage D: the lanes' accumulators; ``fin``: they hold finished sums of slot ``fin_slot``
        fin, fin_bank = Signal(), Signal()
        fin_slot = Signal.like(s)
        with m.If(en):
            m.d.sync += [fin.eq(v_c & last_c), fin_slot.eq(s_c), fin_bank.eq(bank_c)]
        for lane, outputs in enumerate(self._lane_outputs):
            # the bias of the lane's current output (a continuous assignment, so 4-state simulators
            # see its value from time 0 even if s_c never changes)
            bias = Signal(self._acc_shape, name=f"bias{lane}")
            m.d.comb += bias.eq(_select(s_c, [Const(int(self.plan.bias[j]), self._acc_shape) for j in outputs]))
            base = Signal(self._acc_shape, name=f"base{lane}")
            m.d.comb += base.eq(Mux(first_c, bias, self._accs[lane]))
            nxt = Signal(self._acc_shape, name=f"next{lane}")
            m.d.comb += nxt.eq(self._accumulate(m, base, prods[lane], f"sum{lane}"))  # fits: the plan proves it
            with m.If(en & v_c):
                m.d.sync += self._accs[lane].eq(nxt)

        # tail: each lane's activation and cast, pipelined; the slot travels alongside
        with m.If(en):
            m.d.sync += self._dp.statements()
        self._dp.elaborate_memories(m, en)
        for _ in range(self.tail_latency - 1):
            nfin, nslot, nbank = Signal(), Signal.like(fin_slot), Signal()
            with m.If(en):
                m.d.sync += [nfin.eq(fin), nslot.eq(fin_slot), nbank.eq(fin_bank)]
            fin, fin_slot, fin_bank = nfin, nslot, nbank
        done = Signal()
        with m.If(en):
            m.d.sync += done.eq(fin & (fin_slot == g - 1))
        m.d.comb += self.o.valid.eq(done)
        if self._sink:
            link = self._sink
            m.submodules.link = link.memory
            w = link.word.width
            m.d.comb += [link.write.addr.eq(Cat(fin_slot[:link.slot_bits], fin_bank) if link.slot_bits else fin_bank),
                         link.write.en.eq((en & fin).replicate(len(link.write.en)))]
            for lane, value in enumerate(self._results):
                m.d.comb += link.write.data[lane * w:(lane + 1) * w].eq(value)
        else:
            out = [Signal(word_shape(op.fmt), name=f"{op.name}_out{j}", reset_less=True) for j in range(op.n_out)]
            for lane, outputs in enumerate(self._lane_outputs):
                for slot, j in enumerate(outputs):
                    with m.If(en & fin & (fin_slot == slot)):
                        m.d.sync += out[j].eq(self._results[lane])
            m.d.comb += [self.o.payload[j].eq(reg) for j, reg in enumerate(out)]
        return m
