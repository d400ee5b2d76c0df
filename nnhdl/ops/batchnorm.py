"""BatchNormalization (:class:`nnhdl.ir.BatchNorm`): folded away by
:func:`nnhdl.passes.fold_batchnorm` (into the layer before or after it, or as a per-channel
scale and shift of its own); only its configuration entry is its own."""

from ..ir import BatchNorm, Dense
from ..precision import PassError
from .registry import OpKind, register

__all__ = ["BatchNormKind"]


@register
class BatchNormKind(OpKind):
    op_type = BatchNorm

    def quantize(self, op, q):
        raise PassError(f"BatchNormalization {op.origin or op.name!r} was not folded; run fold_batchnorm first")

    def config_entry(self, op, ctx):
        origin, folded, body = ctx.origin, ctx.folded, []
        backward = next((o for o in folded.ops if o.result_origin == origin), None)
        alone = next((o for o in folded.ops if o.origin == origin and isinstance(o, Dense)), None)
        if backward is not None:
            desc = f"BatchNormalization, folded into '{backward.origin}' before it"
            consumers = folded.consumers(backward.name)
        elif alone is not None:
            desc = ("BatchNormalization as a layer of its own: a per-channel scale (weight) and shift (bias), "
                    "exact sum (accum unset)")
            consumers = folded.consumers(alone.name)
            body += [ctx.line("weight"), ctx.line("bias", pad="bias  "), ctx.accum_line()]
        else:
            desc = ("BatchNormalization, folded into the next layer (exact); a [layer] entry here keeps it a "
                    "layer of its own (weight = scales, bias = shifts, result)")
            consumers = ()
        if backward is not None or alone is not None:
            from ..ir import Activation
            feeds_activation = len(consumers) == 1 and isinstance(consumers[0], Activation)
            body += ctx.result_lines(origin, feeds_activation and consumers[0].origin)
        return desc, body
