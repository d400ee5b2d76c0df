"""Per-element casts (:class:`nnhdl.ir.Requantize`) from quantization-aware models: each element
its own format (see :mod:`nnhdl.per_element`)."""

from ..hardware import HardwareError, Stage
from ..ir import Requantize
from ..per_element import pixel_formats, requantize_elements
from ..reference import evaluate_op
from .registry import OpKind, register

__all__ = ["RequantizeKind"]


@evaluate_op.register
def _(op: Requantize, inputs, formats):
    return requantize_elements(inputs[0], formats[0].frac_bits, op.formats, op.fmt).reshape(
        (inputs[0].shape[0],) + tuple(op.shape))


@register
class RequantizeKind(OpKind):
    op_type = Requantize

    def quantize(self, op, q):
        return op  # the formats come from the model: nothing to resolve

    def lower(self, op, layout, ctx):
        params = {}
        if layout.image is not None:
            h, w, _ = layout.image
            formats = pixel_formats(op, h * w)
            if formats is None:
                raise HardwareError(
                    f"Requantize {op.origin or op.name!r} gives every pixel its own formats (HGQ2 heterogeneous "
                    f"over the image), which a pixel stream cannot carry: build with io='parallel', or train with "
                    f"per-channel activation bits (QuantizerConfig(..., heterogeneous_axis=(-1,)))")
            params["formats"] = formats
        return [Stage(op.name, op, layout.fmt, image=layout.image, in_size=layout.size, params=params)], \
            layout.after(op)

    def component(self, stage, options):
        from ..layers.requantize import Requantize as RequantizeLayer
        return RequantizeLayer(stage.op, stage.in_fmt, formats=stage.params.get("formats"),
                               levels_per_stage=options.pipelining)

    def config_entry(self, op, ctx):
        return "Requantize: per-element formats from the model; nothing to set", []
