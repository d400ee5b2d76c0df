"""Softmax (:class:`nnhdl.ir.Softmax`): hls4ml 1.3's stable table softmax, or argmax."""

from ..config import AUTO
from ..fixed import FixedFormat
from ..hardware import Stage, refuse_pixels
from ..ir import Dense, Softmax
from ..precision import PassError
from ..softmax import default_inp_norm, softmax_plan_of, warn_if_coarse
from .registry import OpKind, register

__all__ = ["SoftmaxKind"]


@register
class SoftmaxKind(OpKind):
    op_type = Softmax
    joins_layer_entry = True

    def quantize(self, op, q):
        """hls4ml 1.3's table softmax (or argmax) with its formats; refuses table settings hls4ml
        cannot index, warns when the exp table is coarse (see :mod:`nnhdl.softmax`)."""
        config, res, src = q.config, q.resolve, q.src[0]
        n = op.shape[-1]
        if config.softmax == "argmax":
            bits = max(1, (n - 1).bit_length())
            return op.replace(implementation="argmax", fmt=FixedFormat(bits, bits, False), shape=(1,))
        layer = op.origin or op.name
        where = f"layer {layer!r}"
        fmt = res.fmt(op.origin, op.result_key, (0.0, 1.0), where)
        exp_fmt = res.fmt(op.origin, "exp_table", (0.0, 1.0), where)
        inv_fmt = res.fmt(op.origin, "inv_table", (0.0, float(n)), where)
        accum_fmt = res.fmt(op.origin, "exp_accum", (0.0, float(n)), where)
        inv_input_fmt = res.fmt(op.origin, "inv_input", (0.0, float(n)), where)
        norm_fmt = None if config.get(op.origin, "inp_norm")[0] == AUTO else res.fmt(op.origin, "inp_norm")
        table_size, _ = config.get(op.origin, "table_size")
        new = op.replace(implementation="table", fmt=fmt, exp_fmt=exp_fmt, inv_fmt=inv_fmt,
                         table_size=int(table_size), accum_fmt=accum_fmt, inv_input_fmt=inv_input_fmt,
                         norm_fmt=norm_fmt)
        try:
            plan = softmax_plan_of(new, src)
        except ValueError as e:
            raise PassError(f"{where} (softmax): {e}") from None
        warn_if_coarse(plan, layer)
        return new

    def lower(self, op, layout, ctx):
        if layout.image is not None:
            refuse_pixels(op)
        return [Stage(op.name, op, layout.fmt, in_size=layout.size)], layout.after(op)

    def component(self, stage, options):
        from ..layers.softmax import Argmax, Softmax as SoftmaxLayer
        if stage.op.implementation == "argmax":
            return Argmax(stage.op, stage.in_fmt, stage.in_size, levels_per_stage=options.pipelining)
        logic = any(name in options.logic_multipliers for name in (stage.op.name, stage.op.origin) if name)
        return SoftmaxLayer(stage.op, stage.in_fmt, levels_per_stage=options.pipelining, logic_multipliers=logic)

    def kind_name(self, op):
        return "Argmax" if op.implementation == "argmax" else "Softmax"

    def report(self, op):
        if op.implementation != "table":
            return {}
        return {"exp_table": str(op.exp_fmt), "inv_table": str(op.inv_fmt), "table_size": op.table_size}

    def config_entry(self, op, ctx):
        return "Softmax", [
            f"result = \"{ctx.value('result')}\"   # softmax output",
            ctx.line("exp_table"), ctx.line("inv_table"), f"table_size = {ctx.value('table_size')}",
            f"{ctx.line('exp_accum')}   # hls4ml's accum_t: the sum of the exp values",
            f"{ctx.line('inv_input')}   # hls4ml's inv_inp_t: the sum that addresses the inverse table",
            _inp_norm_line(ctx, op)]


def _inp_norm_line(ctx, op):
    """The ``inp_norm`` line; commented out (showing hls4ml's default) when unset."""
    norm = ctx.config.get(ctx.origin, "inp_norm")[0]
    if isinstance(norm, FixedFormat):
        return f"inp_norm = \"{norm}\""
    before = ctx.ops[0]
    logits = ctx.config.get(ctx.origin, "logits")[0] if isinstance(before, Dense) else None
    shown = default_inp_norm(logits) if isinstance(logits, FixedFormat) else "ufixed<15,5>"
    return f"# inp_norm = \"{shown}\"   # unset: the softmax input format without its sign bit (hls4ml's inp_norm_t)"
