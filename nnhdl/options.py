"""Build options: how a quantized graph becomes hardware, as one typed, versioned value.

:class:`BuildOptions` is validated once, when it is made; everything after it (the hardware
lowering, the Network, the report, ``nnhdl verify``, the boards) reads the same object. A
converted folder keeps it in ``options.json`` (:data:`OPTIONS_FILE`), beside ``graph.json``:
the graph and the options together determine the design exactly.
"""

import enum
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Optional

__all__ = ["BuildOptions", "Multiplier", "IOStyle", "FlowControl", "Family", "OptionsError", "OPTIONS_FILE",
           "OPTIONS_VERSION", "LINE_BUFFER_MEMORY_BITS"]

OPTIONS_FILE = "options.json"
OPTIONS_VERSION = 1

#: Line buffers (pixel-stream convolution and pooling) of at least this many bits are held in
#: memory (block RAM where the target has it); smaller ones in registers.
LINE_BUFFER_MEMORY_BITS = 1024


class OptionsError(ValueError):
    """A build option has a value nnhdl does not know (names the option and the valid values)."""


class _Choice(str, enum.Enum):
    """A string-valued choice: compares equal to its value, prints as it."""

    def __str__(self):
        return self.value

    @classmethod
    def parse(cls, value, option):
        try:
            return cls(value.value if isinstance(value, enum.Enum) else value)
        except ValueError:
            raise OptionsError(f"{option} must be one of {', '.join(m.value for m in cls)}, not {value!r}") from None


class Multiplier(_Choice):
    """How a product by a constant weight is built: ``CSE`` one shared shift-and-add graph for the
    whole matrix (:mod:`nnhdl.cmvm`), ``CSD`` each weight's canonical signed digits on their own,
    ``DSP`` a plain ``*`` that synthesis maps to DSP blocks."""
    CSE = "cse"
    CSD = "csd"
    DSP = "dsp"


class IOStyle(_Choice):
    """How tensors travel: ``PARALLEL`` one word per tensor, ``STREAM`` images one pixel per transfer."""
    PARALLEL = "parallel"
    STREAM = "stream"


class FlowControl(_Choice):
    """How a network waits for its consumer (:class:`nnhdl.layers.Network`).

    ``CREDIT``: the layers never wait for the network's output; its results pass through a small
    queue when the consumer is not ready (straight through when it is), and an input is accepted
    only while the queue has a place for it. The consumer's ready signal then reaches only the
    queue, not every register's enable.
    ``STALL``: every layer holds its registers while the one after it is not ready; the consumer's
    ready signal is a combinational chain through all layers (no queue; the only choice with
    ``io="stream"``; the default).

    Measured 2026-12-01 (ULX3S-85F, nextpnr, timing harness, the 8-bit jet tagger's first layer fully
    parallel and the whole tagger folded): in neither did the stall chain limit the clock, and
    the queue costs LUTs, so ``STALL`` stays the default and ``CREDIT`` is the choice where a
    design's critical path is the consumer's ready signal."""
    CREDIT = "credit"
    STALL = "stall"


class Family(_Choice):
    """FPGA families with a delay model (:class:`nnhdl.layers.pipeline.DelayModel`, whose
    ``FAMILIES`` table has an entry for each)."""
    ICE40 = "ice40"
    ECP5 = "ecp5"
    XC7 = "xc7"


def _positive_int(value, option):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionsError(f"{option} must be a positive integer, not {value!r}")
    return value


@dataclass(frozen=True)
class BuildOptions:
    """Every choice that shapes the hardware of a quantized graph.

    ``multiplier``: :class:`Multiplier`. ``io``: :class:`IOStyle`. ``levels_per_stage``: adder
    levels between registers, unless ``family`` is set: then registers go where the family's
    delay model at ``clock_mhz`` (default: the family's) requires them. ``memory_bits``: line
    buffers at least this large are block RAM. ``reuse``: the reuse factor of every Dense
    and convolution (1 = fully parallel); ``layer_reuse``: per-layer overrides, ``((layer name, R), ...)``.
    ``logic_multipliers``: layers (op or Keras names) whose products of two variables (the table
    softmax's) are built from adders instead of DSP blocks (``nnhdl convert --fit`` sets it when
    the board is short of DSPs). ``flow_control``: :class:`FlowControl` (``credit`` needs
    ``io="parallel"``).
    Strings are accepted wherever a choice is expected; every value is checked here.
    """
    multiplier: Multiplier = Multiplier.CSE
    io: IOStyle = IOStyle.PARALLEL
    levels_per_stage: int = 2
    family: Optional[Family] = None
    clock_mhz: Optional[float] = None
    memory_bits: int = LINE_BUFFER_MEMORY_BITS
    reuse: int = 1
    layer_reuse: tuple = field(default_factory=tuple)
    logic_multipliers: tuple = field(default_factory=tuple)
    flow_control: FlowControl = FlowControl.STALL

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)
        put("multiplier", Multiplier.parse(self.multiplier, "multiplier"))
        put("io", IOStyle.parse(self.io, "io"))
        put("flow_control", FlowControl.parse(self.flow_control, "flow_control"))
        if self.io is IOStyle.STREAM and self.flow_control is FlowControl.CREDIT:
            raise OptionsError("credit flow control needs io = parallel (a pixel stream's layers wait for each "
                               "other within an image): use --flow-control stall with --io stream")
        if self.levels_per_stage is None:
            put("levels_per_stage", 2)
        _positive_int(self.levels_per_stage, "levels_per_stage")
        if self.family is not None:
            put("family", Family.parse(self.family, "family"))
        if self.clock_mhz is not None:
            if isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, (int, float)) or not self.clock_mhz > 0:
                raise OptionsError(f"the target clock must be a positive number of MHz, not {self.clock_mhz!r}")
            if self.family is None:
                raise OptionsError(f"a target clock ({self.clock_mhz} MHz) needs an FPGA family for its delay model: "
                                   f"add --family {' / '.join(f.value for f in Family)}")
            put("clock_mhz", float(self.clock_mhz))
        if isinstance(self.memory_bits, bool) or not isinstance(self.memory_bits, int) or self.memory_bits < 0:
            raise OptionsError(f"memory_bits must be a non-negative integer, not {self.memory_bits!r}")
        if isinstance(self.reuse, bool) or not isinstance(self.reuse, int) or self.reuse < 1:
            raise OptionsError(f"reuse must be a positive integer (1 = fully parallel), not {self.reuse!r}")
        pairs = self.layer_reuse.items() if isinstance(self.layer_reuse, dict) else self.layer_reuse
        checked = []
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[0], str):
                raise OptionsError(f"layer_reuse must map layer names to reuse factors, not {self.layer_reuse!r}")
            name, r = pair
            if isinstance(r, bool) or not isinstance(r, int) or r < 1:
                raise OptionsError(f"reuse of layer {name!r} must be a positive integer (1 = fully parallel), "
                                   f"not {r!r}")
            checked.append((name, r))
        put("layer_reuse", tuple(checked))
        names = self.logic_multipliers
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise OptionsError(f"logic_multipliers must be a list of layer names, not {names!r}")
        put("logic_multipliers", tuple(names))

    @classmethod
    def of(cls, options=None, **changes):
        """``options`` (default: the defaults) with ``changes``; ``None`` values are left out
        (so command-line flags that were not given change nothing)."""
        base = options if options is not None else cls()
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = [k for k in changes if k not in {f.name for f in fields(cls)}]
        if unknown:
            raise TypeError(f"unknown build option {unknown[0]!r}")
        return replace(base, **changes) if changes else base

    def replace(self, **changes):
        return replace(self, **changes)

    @property
    def pipelining(self):
        """What places the registers: the adder-level count, or a :class:`DelayModel`."""
        if self.family is None:
            return self.levels_per_stage
        from .layers.pipeline import DelayModel
        return DelayModel(self.family.value, self.clock_mhz)

    def reuse_of(self, *names):
        """The ``layer_reuse`` entry for the first of ``names`` that has one, else None."""
        table = dict(self.layer_reuse)
        for name in names:
            if name and name in table:
                return table[name]
        return None

    # -- persistence ------------------------------------------------------------------------------
    def to_dict(self):
        data = asdict(self)
        for key in ("multiplier", "io", "family", "flow_control"):
            data[key] = None if data[key] is None else str(data[key])
        data["layer_reuse"] = dict(self.layer_reuse)
        data["logic_multipliers"] = list(self.logic_multipliers)
        return {"nnhdl_options": OPTIONS_VERSION, **data}

    @classmethod
    def from_dict(cls, data, where="build options"):
        """Options from :meth:`to_dict`'s form; an unknown version or key is an :class:`OptionsError`
        naming ``where``."""
        if not isinstance(data, dict):
            raise OptionsError(f"{where}: not a JSON object; convert the model again")
        data = dict(data)
        version = data.pop("nnhdl_options", OPTIONS_VERSION)
        if version != OPTIONS_VERSION:
            raise OptionsError(f"{where}: options version {version!r}, this nnhdl reads {OPTIONS_VERSION}; "
                               "convert the model again")
        known = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            raise OptionsError(f"{where}: unknown build option {unknown[0]!r}; convert the model again")
        try:
            return cls(**{k: v for k, v in data.items() if v is not None or k in ("family", "clock_mhz")})
        except OptionsError as e:
            raise OptionsError(f"{where}: {e}; convert the model again") from None

    @classmethod
    def from_report(cls, options):
        """Options recorded in the ``options`` object of a report written before ``options.json``
        existed (nnhdl 0.1 folders); keys the options do not have are ignored."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in options.items() if k in known}
        if data.get("levels_per_stage") is None:
            data.pop("levels_per_stage", None)
        return cls.from_dict(data, "report.json 'options'")

    def save(self, folder):
        path = Path(folder) / OPTIONS_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, folder):
        path = Path(folder) / OPTIONS_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise OptionsError(f"{path}: cannot read the build options ({e}); convert the model again") from None
        return cls.from_dict(data, str(path))
