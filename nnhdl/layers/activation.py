"""Element-wise activations: linear (a cast), ReLU, leaky ReLU."""

from .base import PipelinedLayer

__all__ = ["Activation", "activation_nodes"]


def activation_nodes(dp, function, pres, frac, result, alpha=None, alpha_fmt=None, multiplier="csd"):
    """``cast_result(act(pre))`` for each node of ``pres`` (raw values with ``frac`` fractional
    bits); mirrors :func:`nnhdl.reference.activate`."""
    out = []
    for pre in pres:
        if function == "linear":
            out.append(dp.requantize(pre, frac, result))
        elif function == "relu":
            out.append(dp.requantize(dp.relu(pre), frac, result))
        elif function == "leaky_relu":
            pos = dp.requantize(pre, frac, result)
            neg = dp.requantize(dp.multiply_const(pre, int(alpha), multiplier), frac + alpha_fmt.frac_bits, result)
            out.append(dp.select(dp.is_negative(pre), neg, pos))
        else:
            raise ValueError(f"unsupported activation {function!r}")
    return out


class Activation(PipelinedLayer):
    """A standalone element-wise activation layer (``linear`` / ``relu`` / ``leaky_relu``) that
    casts its result to ``op.fmt``. Members and latency: see :class:`PipelinedLayer`."""

    def __init__(self, op, in_fmt, *, multiplier="csd", levels_per_stage=2, size=None):
        self.op = op
        self.multiplier = multiplier
        size = op.size if size is None else size  # the channels of one pixel in a pixel stream
        super().__init__(in_fmt, size, op.fmt, size, levels_per_stage=levels_per_stage, name=op.name)

    def build(self, dp, xs):
        op = self.op
        return activation_nodes(dp, op.function, xs, self.in_fmt.frac_bits, op.fmt, op.alpha, op.alpha_fmt,
                                self.multiplier)
