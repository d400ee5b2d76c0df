"""Precision configuration: a default format plus per-layer overrides.

In TOML (an unknown key, top-level or in a layer table, is an error that lists the valid keys
and suggests the closest one; other tools' settings may go in ``[tool.NAME]`` tables)::

    precision = "fixed<16,6>"        # default for every tensor not named below
    softmax = "table"                # or "argmax"
    io = "parallel"                  # or "stream": images one pixel per cycle (nnhdl convert --io)
    [layer.fc1]                      # Keras layer name
    weight = "fixed<16,6>"
    bias   = "fixed<16,6>"
    accum  = "fixed<37,17>"
    result = "fixed<16,6>"
    reuse  = 8                       # fold the layer: each multiplier used up to 8 times (II <= 8)

Keys of a layer table:

``weight``, ``bias``
    formats of the constants (default: the default precision).
``accum``
    hls4ml's ``accum_t``: products and the running sum are cast to it (default: exact).
``result``
    the layer's output as Keras sees it, after a fused activation (for an InputLayer: the
    input format; for a Dense with ``activation="softmax"``: the softmax output).
``logits``
    for a Dense with ``activation="softmax"``: the format of the Dense output that feeds the
    softmax (default: the default precision).
``reuse``
    for a Dense or a convolution: the reuse factor R, a positive integer (default: ``nnhdl convert
    --reuse``, else 1). R = 1 is the fully parallel layer (one constant multiplier per weight,
    II = 1); R > 1 folds a Dense onto about ``n_in * n_out / R`` hardware multipliers with the
    weights in a ROM, and it then accepts one input every R cycles at most (see
    :class:`nnhdl.layers.FoldedDense`); a convolution likewise, per image with ``io = parallel``
    and per window with ``io = stream`` (:mod:`nnhdl.layers.folded_conv`).
``alpha``
    format of a leaky ReLU's slope (default: the default precision, as hls4ml's ``param_t``).
``exp_table``, ``inv_table``, ``table_size``
    softmax tables, hls4ml's ``exp_table_t``, ``inv_table_t``, ``table_size`` (default
    ``fixed<18,8,RND,SAT>``, ``fixed<18,8,RND,SAT>``, 1024).
``exp_accum``, ``inv_input``
    hls4ml's softmax ``accum_t`` (the exp values are converted to it and summed in it) and
    ``inv_inp_t`` (the sum is converted to it; its top bits address the inverse table); default
    ``fixed<18,8,RND,SAT>`` each.
``inp_norm``
    hls4ml's ``inp_norm_t``: ``max - x`` is converted to it and its top bits address the exp
    table. Default (unset or ``"auto"``): the softmax input format without its sign bit,
    truncating and wrapping (``ufixed<15,5>`` for ``fixed<16,6>`` logits), and then the exp table
    has at most ``2**15`` entries; set, the exp table keeps ``table_size`` entries.

Any format entry may be ``"auto"``: integer bits chosen from the constants' range (weight,
bias, alpha) or from the value range (result, logits: calibration data when given, else the
interval bound), at the default width; ``accum = "auto"`` means exact. A zero range (all-zero
constants or calibration values) gets one integer bit besides the sign.

A BatchNormalization folded into the layer before or after it has no arithmetic of its own;
one that stays a layer (after an activation, not followed by a Dense or an unpadded
convolution, or given a ``[layer.NAME]`` entry) is a per-channel scale and shift configured like
a Dense: ``weight`` (the scales), ``bias`` (the shifts), ``accum``, ``result``
(see :func:`nnhdl.passes.fold_batchnorm`).
"""

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .fixed import FixedFormat, FormatError
from .options import IOStyle

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["PrecisionConfig", "ConfigError", "AUTO", "FORMAT_KEYS", "COUNT_KEYS", "check_reuse", "TOP_LEVEL_KEYS",
           "DEFAULT_PRECISION", "DEFAULT_TABLE_FORMAT", "DEFAULT_TABLE_SIZE", "did_you_mean"]

AUTO = "auto"
FORMAT_KEYS = ("weight", "bias", "accum", "result", "logits", "alpha", "exp_table", "inv_table", "exp_accum",
               "inv_input", "inp_norm")
INT_KEYS = ("table_size",)
#: Keys whose value is a positive integer (the reuse factor of a folded layer).
COUNT_KEYS = ("reuse",)
DEFAULT_PRECISION = FixedFormat.parse("fixed<16,6>")
DEFAULT_TABLE_FORMAT = FixedFormat.parse("fixed<18,8,RND,SAT>")
DEFAULT_TABLE_SIZE = 1024
SOFTMAX_CHOICES = ("table", "argmax")
#: The keys a configuration file may have at its top level (``[tool.NAME]`` tables hold other
#: tools' settings; nnhdl ignores them).
TOP_LEVEL_KEYS = ("precision", "softmax", "io", "layer", "tool")


def did_you_mean(word, choices):
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``word`` (difflib), else ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(where, key, valid):
    return ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, valid)}; valid keys: {', '.join(valid)}. "
                       "Fix the spelling or remove it.")


class ConfigError(ValueError):
    """The precision configuration is invalid (names the file, the layer and the key)."""


def _where(source, layer=None, key=None):
    parts = [str(source)] if source else []
    if layer is not None:
        parts.append(f"[layer.{layer}]")
    if key is not None:
        parts.append(key)
    return " ".join(parts)


def check_reuse(value, where):
    """``value`` as a reuse factor (a positive integer, or ``"auto"``: chosen by ``nnhdl convert
    --fit BOARD``), else :class:`ConfigError` naming ``where``."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: the reuse factor must be a positive integer (1 = fully parallel, R = each "
                          f"multiplier used R times) or \"auto\" (chosen by --fit BOARD), not {value!r}; write e.g. "
                          "reuse = 4")
    return value


def _parse_entry(value, source, layer, key):
    if key in COUNT_KEYS:
        return check_reuse(value, _where(source, layer, key))
    if key in INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 2 or value & (value - 1):
            raise ConfigError(f"{_where(source, layer, key)}: must be a power of two >= 2, not {value!r}")
        return value
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return FixedFormat.parse(value)
    except FormatError as e:
        raise ConfigError(f"{_where(source, layer, key)}: {e}") from None


#: Values of the top-level ``io`` key: how data enters the chip (see :class:`nnhdl.layers.Network`).
IO_CHOICES = tuple(style.value for style in IOStyle)


@dataclass(frozen=True)
class PrecisionConfig:
    """A default format and per-layer settings (``layers[name][key]`` is a FixedFormat,
    ``"auto"`` or, for ``table_size``, an int). ``source`` names where it was read from."""
    default: FixedFormat = DEFAULT_PRECISION
    layers: dict = field(default_factory=dict)
    softmax: str = "table"
    source: str = ""
    ignored: tuple = ()
    io: str = None  # "parallel" | "stream" | None (the converter's default, parallel)

    @classmethod
    def from_dict(cls, data, source="", default=None, softmax=None):
        """Build from a dict shaped like the TOML file. ``default`` / ``softmax`` override
        the file's (command-line options win)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{_where(source)}: the configuration must be a table, not {type(data).__name__}")
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                raise _unknown_key(_where(source), key, TOP_LEVEL_KEYS)
        prec = default if default is not None else data.get("precision", DEFAULT_PRECISION)
        if isinstance(prec, str) and prec.strip().lower() == AUTO:
            raise ConfigError(f"{_where(source, key='precision')}: the default precision must be a format, not 'auto'")
        try:
            default_fmt = FixedFormat.parse(prec)
        except FormatError as e:
            raise ConfigError(f"{_where(source, key='precision')}: {e}") from None
        sm = softmax if softmax is not None else data.get("softmax", "table")
        if sm not in SOFTMAX_CHOICES:
            raise ConfigError(f"{_where(source, key='softmax')}: must be one of {', '.join(SOFTMAX_CHOICES)}, not {sm!r}")
        io = data.get("io")
        if io is not None and io not in IO_CHOICES:
            raise ConfigError(f"{_where(source, key='io')}: must be one of {', '.join(IO_CHOICES)}, not {io!r}")
        layers, ignored = {}, []  # nothing is ignored any more; ``ignored`` stays for old callers
        raw_layers = data.get("layer", {})
        if not isinstance(raw_layers, dict):
            raise ConfigError(f"{_where(source, key='layer')}: must be a table of [layer.NAME] tables")
        for name, entries in raw_layers.items():
            if not isinstance(entries, dict):
                raise ConfigError(f"{_where(source, name)}: must be a table of keys like weight = \"fixed<16,6>\"")
            parsed = {}
            for key, value in entries.items():
                if key in FORMAT_KEYS or key in INT_KEYS or key in COUNT_KEYS:
                    parsed[key] = _parse_entry(value, source, name, key)
                else:
                    raise _unknown_key(_where(source, name), key, FORMAT_KEYS + INT_KEYS + COUNT_KEYS)
            layers[name] = parsed
        return cls(default_fmt, layers, sm, str(source), tuple(ignored), io)

    @classmethod
    def load(cls, path, default=None, softmax=None):
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such configuration file") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text (UTF-8) file, so not a TOML configuration; give the file "
                              "'nnhdl config MODEL -o config.toml' writes") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the configuration: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}; fix that line or start again from "
                              "'nnhdl config MODEL -o config.toml'") from None
        return cls.from_dict(data, source=path, default=default, softmax=softmax)

    def get(self, layer, key, fallback=None):
        """``(value, explicit)``: the layer's setting, else ``fallback`` (default: the default
        precision for format keys)."""
        entries = self.layers.get(layer, {})
        if key in entries:
            return entries[key], True
        if fallback is None:
            fallback = {"accum": None, "exp_table": DEFAULT_TABLE_FORMAT, "inv_table": DEFAULT_TABLE_FORMAT,
                        "exp_accum": DEFAULT_TABLE_FORMAT, "inv_input": DEFAULT_TABLE_FORMAT, "inp_norm": None,
                        "table_size": DEFAULT_TABLE_SIZE}.get(key, self.default)
        return fallback, False

    def layer_reuse(self):
        """``{layer name: R}`` for every layer table that sets ``reuse``."""
        return {name: entries["reuse"] for name, entries in self.layers.items() if "reuse" in entries}

    def check_layers(self, known, model=""):
        """Raise :class:`ConfigError` if the configuration names a layer not in ``known``."""
        unknown = [name for name in self.layers if name not in known]
        if unknown:
            raise ConfigError(
                f"{_where(self.source)}: layer {unknown[0]!r} is not in the model{f' {model}' if model else ''}"
                f"{did_you_mean(unknown[0], known)}; its layers are: {', '.join(known)}. "
                "Fix the [layer.NAME] table name or remove it.")
