"""The network input (:class:`nnhdl.ir.Input`): its format comes from the configuration (see
:func:`nnhdl.passes.quantize`, which also quantizes the calibration data in it)."""

from ..ir import Input
from .registry import OpKind, register

__all__ = ["InputKind"]


@register
class InputKind(OpKind):
    op_type = Input

    def config_entry(self, op, ctx):
        return f"input, shape {tuple(op.shape)}", [ctx.line("result")]
