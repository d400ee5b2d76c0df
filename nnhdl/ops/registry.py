"""The op registry: for every op kind of the IR, the one :class:`OpKind` that says what it is.

An op kind lives in one module of :mod:`nnhdl.ops` (``nnhdl/ops/<kind>.py``): its IR dataclass
(or the one in :mod:`nnhdl.ir` for the original ops), its quantization, its reference evaluation
(registered on :func:`nnhdl.reference.evaluate_op`), its hardware lowering and Amaranth
component, its report fields and its entry in the default configuration. The passes, the
hardware lowering, the report and the configuration template ask the registry; they know no
op by name. Modules of :mod:`nnhdl.ops` are found and imported on first use
(:func:`load_all`), so a new op needs no line anywhere else but the frontend that makes it.
"""

import importlib
import pkgutil

__all__ = ["OpKind", "register", "kind_of", "op_type", "load_all", "is_loaded", "registered_kinds"]

_KINDS = {}   # IR dataclass -> OpKind
_TYPES = {}   # IR dataclass name -> IR dataclass
_loaded = False


class OpKind:
    """What one op kind is. Subclasses set :attr:`op_type` and override what applies.

    Hooks (``op`` is an instance of :attr:`op_type`):

    ``quantize(op, q)``
        The quantized op (formats set, constants integer) from a
        :class:`nnhdl.passes.QuantizeContext` ``q`` (source formats, calibration values, the
        format resolver). Default: the input's format passes through unchanged.
    ``lower(op, layout, ctx)``
        Hardware lowering: ``(stages, layout)`` — the :class:`nnhdl.hardware.Stage` list that
        computes ``op`` on data arriving in ``layout`` (:class:`nnhdl.hardware.Layout`), and the
        layout of its output; ``ctx`` (:class:`nnhdl.hardware.LowerContext`) holds the build
        options. Ops that never reach hardware (the input, BatchNormalization, which is folded)
        have none.
    ``component(stage, options)``
        The Amaranth component of one of this kind's stages (cheap to construct: the logic is
        built when it is first needed).
    ``report(op)``
        Extra ``report.json`` fields of the op (formats, constants, geometry). Default: none.
    ``config_entry(op, ctx)``
        ``(description, lines)`` of the op's ``[layer.NAME]`` table in the default
        configuration (:mod:`nnhdl.config_template`). Default: a ``result`` line.
    """

    op_type = None
    #: Whether the op only moves data (no arithmetic, no format of its own).
    passthrough = False
    #: Whether the op's configuration lines join its Keras layer's table when another op of the
    #: same layer comes first (a softmax after its Dense).
    joins_layer_entry = False

    def quantize(self, op, q):
        return op.replace(fmt=q.src[0])

    def lower(self, op, layout, ctx):
        raise NotImplementedError(f"{type(op).__name__} op {op.name!r} has no hardware lowering")

    def component(self, stage, options):
        raise NotImplementedError(f"{type(stage.op).__name__} op {stage.op.name!r} has no hardware component")

    def report(self, op):
        return {}

    def config_entry(self, op, ctx):
        return f"{type(op).__name__}", [ctx.line("result")]

    def kind_name(self, op):
        """The layer kind shown in reports."""
        return type(op).__name__


def register(kind_class):
    """Class decorator: register an :class:`OpKind` subclass for its ``op_type``."""
    kind = kind_class()
    _KINDS[kind_class.op_type] = kind
    _TYPES[kind_class.op_type.__name__] = kind_class.op_type
    return kind_class


def is_loaded():
    return _loaded


def load_all():
    """Import every module of :mod:`nnhdl.ops` (each registers its kinds); idempotent."""
    global _loaded
    if _loaded:
        return
    package = importlib.import_module(__name__.rpartition(".")[0])
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "registry":
            importlib.import_module(f"{package.__name__}.{info.name}")
    _loaded = True


def kind_of(op):
    """The :class:`OpKind` of ``op`` (or of an IR dataclass), by its most specific registered type."""
    load_all()
    cls = op if isinstance(op, type) else type(op)
    for base in cls.__mro__:
        if base in _KINDS:
            return _KINDS[base]
    raise KeyError(f"no op kind is registered for {cls.__name__}")


def op_type(name):
    """The IR dataclass called ``name`` (as saved in ``graph.json``), or None."""
    load_all()
    return _TYPES.get(name)


def registered_kinds():
    load_all()
    return dict(_KINDS)
