"""Hardware lowering: a quantized graph and its :class:`~nnhdl.options.BuildOptions` become an
explicit list of hardware stages.

:func:`lower_hardware` is a pure function. Each op's :class:`~nnhdl.ops.OpKind` lowers it
(``lower``) given the data layout it receives: a flat word per tensor, or an image streamed one
pixel per transfer (``io="stream"``). The stages nnhdl inserts on its own are data here too —
zero padding in front of a streamed convolution or pooling (``"pad"``), gathering a streamed
image into one word before the layers that take whole tensors (``"collect"``) — so the
:class:`~nnhdl.layers.Network` only instantiates and connects the stages, and the report and
the timing model read the same list.
"""

from dataclasses import dataclass, field
from typing import Optional

from .fixed import FixedFormat
from .ir import Graph, spatial
from .options import BuildOptions, IOStyle
from .ops.registry import kind_of

__all__ = ["Stage", "Layout", "HardwareGraph", "lower_hardware", "build_component", "HardwareError", "refuse_pixels",
           "pad_stage", "LowerContext"]


class HardwareError(ValueError):
    """The graph cannot be turned into hardware (names the layer and what to change)."""


@dataclass(frozen=True)
class Layout:
    """How a tensor travels between stages: words of ``fmt``; ``image`` (height, width, channels)
    when it is streamed one pixel per transfer, else ``None`` (one word of ``size`` values)."""
    fmt: FixedFormat
    image: Optional[tuple]
    size: int

    def after(self, op, image="same"):
        """The layout of ``op``'s output: its format and size, the same image (or ``image``)."""
        return Layout(op.fmt, self.image if image == "same" else image, op.size)


@dataclass(frozen=True, eq=False)
class Stage:
    """One hardware stage. ``op`` is the IR op it computes (``None`` for a stage nnhdl inserted);
    ``in_fmt`` the format of its input words; ``image`` its input image when streamed by pixels
    (else ``None``, and ``in_size`` values arrive as one word); ``kind`` ``"op"`` (the op kind's
    component), ``"pad"`` or ``"collect"``; ``params`` the stage's own settings (e.g. ``reuse``,
    ``padding``)."""
    name: str
    op: object
    in_fmt: FixedFormat
    image: Optional[tuple] = None
    in_size: int = 0
    kind: str = "op"
    params: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class HardwareGraph:
    """The stages of a network in order, and its ports: ``in_words`` words of the input format per
    transfer and ``in_beats`` transfers per inference (the same for the output)."""
    stages: tuple
    options: BuildOptions
    in_fmt: FixedFormat
    out_fmt: FixedFormat
    in_image: Optional[tuple]
    in_words: int
    in_beats: int
    out_words: int
    out_beats: int

    @property
    def io(self):
        return self.options.io


class LowerContext:
    """What an op kind's ``lower`` may ask: the options, the stages so far, the per-layer reuse
    factors (each use is recorded, so entries for no layer are reported)."""

    def __init__(self, graph, options):
        self.graph, self.options = graph, options
        self.stages = []
        self.in_image = None
        self.reuse_used = set()

    @property
    def at_start(self):
        return not self.stages

    def layer_reuse(self, op):
        """The ``layer_reuse`` entry for ``op`` (by op name, then Keras layer name), or None."""
        for key in (op.name, op.origin):
            r = self.options.reuse_of(key)
            if r is not None:
                self.reuse_used.add(key)
                return r
        return None


def refuse_pixels(op):
    raise HardwareError(f"{type(op).__name__} {op.origin or op.name!r} reads an image streamed by pixels; add a "
                        "Flatten before it, or build the network with io='parallel'")


def pad_stage(name, in_shape, padding, fmt, value):
    """A ``"pad"`` stage: ``padding`` (top, bottom, left, right) pixels of raw ``value`` around each
    ``in_shape`` image of a pixel stream."""
    return Stage(name, None, fmt, tuple(in_shape), kind="pad",
                 params={"in_shape": tuple(in_shape), "padding": tuple(padding), "value": int(value)})


def collect_stage(name, fmt, image):
    """A ``"collect"`` stage: a streamed image gathered into one word."""
    return Stage(name, None, fmt, tuple(image), kind="collect", params={"pixels": image[0] * image[1],
                                                                          "channels": image[2]})


def lower_hardware(graph: Graph, options: BuildOptions = None) -> HardwareGraph:
    """The :class:`HardwareGraph` of a quantized, sequential graph (see the module docstring)."""
    options = options or BuildOptions()
    if not graph.is_quantized:
        raise HardwareError("the graph is not quantized; run nnhdl.passes.lower() first")
    if not graph.is_chain():
        raise HardwareError("only sequential networks (a chain of layers) can be built for now")
    ctx = LowerContext(graph, options)
    inp = graph.input
    image = spatial(inp.shape) if options.io is IOStyle.STREAM and len(inp.shape) > 1 else None
    ctx.in_image = image
    layout = Layout(inp.fmt, image, inp.size)
    for op in graph.ops[1:]:
        stages, layout = kind_of(op).lower(op, layout, ctx)
        ctx.stages += stages
    if not ctx.stages:
        raise HardwareError("the network has no layers to build")
    unused = [name for name, _ in options.layer_reuse if name not in ctx.reuse_used]
    if unused:
        raise HardwareError(f"reuse is set for layer {unused[0]!r}, which is not a Dense or convolution layer of this "
                            "network; the reuse factor applies to Dense and convolution layers: remove it there")
    first_in, out = ctx.in_image, graph.output
    return HardwareGraph(
        stages=tuple(ctx.stages), options=options, in_fmt=inp.fmt, out_fmt=out.fmt, in_image=first_in,
        in_words=first_in[2] if first_in else inp.size, in_beats=first_in[0] * first_in[1] if first_in else 1,
        out_words=layout.image[2] if layout.image else out.size,
        out_beats=layout.image[0] * layout.image[1] if layout.image else 1)


def build_component(stage: Stage, options: BuildOptions):
    """The Amaranth component of ``stage``."""
    if stage.kind == "pad":
        from .layers.pixels import PadStream
        p = stage.params
        return PadStream(p["in_shape"], p["padding"], stage.in_fmt, p["value"], name=stage.name)
    if stage.kind == "collect":
        from .layers.pixels import Collect
        return Collect(stage.in_fmt, stage.params["pixels"], stage.params["channels"], name=stage.name)
    return kind_of(stage.op).component(stage, options)
