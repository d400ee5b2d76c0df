"""Dense layer with constant weights baked into the logic."""

from dataclasses import replace

from ..arith import dense_plan
from .activation import activation_nodes
from .base import PipelinedLayer

__all__ = ["Dense", "dense_sums"]


class Dense(PipelinedLayer):
    """Fully pipelined dense layer: ``o = cast(act(b + sum_i x_i * w[i, j]))``, II = 1.

    Parameters
    ----------
    op : nnhdl.ir.Dense
        A quantized Dense op (integer weights and bias, formats set).
    in_fmt : FixedFormat
        Format of the input words.
    multiplier : "csd" | "dsp"
        ``"csd"``: each product is a shift-and-add of the weight's canonical signed digits
        (zero weights and zero digits cost nothing); ``"dsp"``: a plain ``*`` by the constant,
        which synthesis maps to DSP blocks.
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

    def __init__(self, op, in_fmt, *, multiplier="csd", levels_per_stage=2):
        if multiplier not in ("csd", "dsp"):
            raise ValueError(f"multiplier must be 'csd' or 'dsp', not {multiplier!r}")
        self.op = op
        self.multiplier = multiplier
        self.plan = dense_plan(op, in_fmt)
        super().__init__(in_fmt, op.n_in, op.fmt, op.n_out, levels_per_stage=levels_per_stage, name=op.name)

    def build(self, dp, xs):
        op = self.op
        sums = dense_sums(dp, op, self.plan, xs, self.in_fmt, self.multiplier)
        return activation_nodes(dp, op.activation, sums, op.accum_fmt.frac_bits, op.fmt, op.alpha, op.alpha_fmt,
                                self.multiplier)


def dense_sums(dp, op, plan, xs, in_fmt, multiplier):
    """The accumulator node of each output of Dense-like ``op`` (see :class:`Dense`) for input
    nodes ``xs``; an input that is ``None`` is a constant zero (padding) and costs nothing."""
    acc = op.accum_fmt
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
