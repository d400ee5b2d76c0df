"""Formats from the precision configuration: the resolver of ``[layer.NAME]`` keys (``auto``
sized from value ranges), constants turned into integers, and the precision warnings
for values outside their formats. Used by the op kinds' ``quantize`` (:mod:`nnhdl.ops`)."""

import math
import warnings

import numpy as np

from .config import AUTO, PrecisionConfig
from .fixed import INT64_SAFE_BITS, MAX_WIDTH, FixedFormat, Overflow, quantize as quantize_values
from .ir import IRError

__all__ = ["PrecisionWarning", "PassError", "MAX_CONSTANT_BITS", "Resolver", "auto_format", "quantize_constant",
           "warn_inputs_outside", "check_calibration", "real_range", "const_range", "activation_range"]

#: Constants (weight, bias, alpha) are stored as 64-bit integers in ``graph.npz`` and computed
#: in int64 by the reference model: their formats may be at most this wide.
MAX_CONSTANT_BITS = INT64_SAFE_BITS


class PrecisionWarning(UserWarning):
    """A lossy but legal choice: values outside their format (they wrap or saturate), or
    calibration data that says nothing about the value range."""


class PassError(IRError):
    """A graph cannot be transformed (names the layer and what to change)."""


# -- formats ------------------------------------------------------------------------------

def _int_bits_for(lo, hi, width, signed):
    """Smallest integer-bit count such that a ``width``-bit format holds [lo, hi]; a zero range
    (nothing to go by) gets one integer bit besides the sign."""
    if lo == 0 and hi == 0:
        return 2 if signed else 1
    m = max(abs(float(lo)), abs(float(hi)), 2.0 ** -60)
    start = int(math.floor(math.log2(m))) - 1
    for i in range(start, start + 4):
        f = FixedFormat(width, i + (1 if signed else 0), signed)
        if f.min_value <= lo and hi <= f.max_value:
            return f.int_bits
    return start + 4 + (1 if signed else 0)


def auto_format(lo, hi, template: FixedFormat):
    signed = template.signed or lo < 0
    return FixedFormat(template.width, _int_bits_for(lo, hi, template.width, signed), signed,
                       template.rounding, template.overflow)


def _outside(values, fmt: FixedFormat):
    """How many of the real ``values`` lie outside ``fmt``'s range once rounded with its
    rounding mode (so its overflow mode acts on them)."""
    x = np.asarray(values, np.float64)
    if x.size == 0:
        return 0
    if fmt.width + 2 > MAX_WIDTH:  # no wider format to compare in: compare the reals
        return int(np.count_nonzero((x < fmt.min_value) | (x > fmt.max_value)))
    # the same fraction bits, two more integer bits, saturating: exact, and out-of-range stays out
    # (clipped first to the wide format's edge, so that no scaling overflows a float)
    wide = FixedFormat(fmt.width + 2, fmt.int_bits + 2, True, fmt.rounding, Overflow.SAT)
    edge = math.ldexp(1.0, fmt.int_bits + 1)
    raw = quantize_values(np.clip(x, -edge, edge), wide)
    return int(np.count_nonzero((raw < fmt.min_int) | (raw > fmt.max_int)))


_OVERFLOW_EFFECT = {Overflow.WRAP: "wrap around", Overflow.SAT: "saturate", Overflow.SAT_SYM: "saturate",
                    Overflow.SAT_ZERO: "become zero"}


def _range_text(fmt):
    return f"{fmt.min_value:g} to {fmt.max_value:g}"


def _warn_values_outside(values, fmt, what, fix, stacklevel=4, fmt_name=None, source=""):
    """Warn (:class:`PrecisionWarning`) when ``values`` do not fit ``fmt``: how many, of what
    (``what``: "weight values of layer 'fc1'"), what happens to them, and ``fix(better_format)``.
    ``fmt_name`` describes the format (default: the format itself); ``source`` (a file) starts the text."""
    n = _outside(values, fmt)
    if n:
        lo, hi = const_range(values)
        warnings.warn(PrecisionWarning(
            f"{source + ': ' if source else ''}{n} of {np.size(values)} {what} lie outside {fmt_name or fmt} ({_range_text(fmt)}; they span {lo:g} "
            f"to {hi:g}) "
            f"and {_OVERFLOW_EFFECT[fmt.overflow]}; {fix(auto_format(lo, hi, fmt))}"), stacklevel=stacklevel)


def _warn_outside(values, fmt, what, layer, key):
    """Warn when constants ``values`` (``what``: "weight values of layer 'fc1'") do not fit ``fmt``."""
    _warn_values_outside(values, fmt, what, lambda better: f"set [layer.{layer}] {key} = \"{better}\" (or \"auto\")")


def quantize_constant(values, fmt, layer, key, where):
    """``values`` as raw integers of ``fmt``; refuses formats too wide for graph.npz and warns
    when values fall outside the format."""
    if fmt.width > MAX_CONSTANT_BITS:
        raise PassError(f"{where}: the {key} format {fmt} is {fmt.width} bits wide; constants (weight, bias, alpha) "
                        f"have at most {MAX_CONSTANT_BITS} bits. Set [layer.{layer}] {key} = \"fixed<16,6>\" "
                        f"(or another narrower format), or a narrower --precision")
    _warn_outside(values, fmt, f"{key} values of {where}", layer, key)
    return quantize_values(values, fmt)


def warn_inputs_outside(graph, x, source=""):
    """Warn (:class:`PrecisionWarning`) when float inputs ``x`` of a quantized graph lie outside
    its input format: the reference model and the hardware then see wrapped or saturated values.
    ``source`` (the file) starts the message."""
    op = graph.input
    layer = op.origin or op.name
    _warn_values_outside(x, op.fmt, "input values",
                         lambda better: f"convert with [layer.{layer}] result = \"{better}\" to take them as they are",
                         stacklevel=3, fmt_name=f"the input format {op.fmt} of layer {layer!r}", source=source)


def check_calibration(calibration, fmt, op):
    """Warn about calibration data that are all zero or outside the input format."""
    if not np.any(calibration):
        warnings.warn(PrecisionWarning(
            "the calibration inputs are all zero: they say nothing about the value ranges; 'auto' formats sized "
            "from them get one integer bit. Give representative inputs"), stacklevel=3)
    layer = op.origin or op.name
    _warn_values_outside(calibration, fmt, "calibration values",
                         lambda better: f"set [layer.{layer}] result = \"{better}\" (or \"auto\")",
                         fmt_name=f"the input format {fmt} of layer {layer!r}")


class Resolver:
    def __init__(self, config: PrecisionConfig):
        self.config = config

    def fmt(self, layer, key, values=None, where=""):
        """The configured format for ``layer.key``; ``auto`` resolved from ``values``
        (a (lo, hi) pair of reals, or a function returning one)."""
        value, _ = self.config.get(layer, key)
        if value is None or isinstance(value, FixedFormat):
            return value
        if value == AUTO:
            if values is None:
                raise PassError(f"{where or layer}: '{key} = auto' needs a value range; give calibration data "
                                f"or a format like {self.config.default}")
            lo, hi = values() if callable(values) else values
            return auto_format(lo, hi, self.config.default)
        return value


def real_range(raw, frac):
    raw = np.asarray(raw)
    if raw.size == 0:
        return 0.0, 0.0
    return math.ldexp(float(raw.min()), -frac), math.ldexp(float(raw.max()), -frac)


def const_range(values):
    v = np.asarray(values, np.float64)
    return (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)


def activation_range(function, lo, hi, alpha):
    if function == "relu":
        return max(lo, 0.0), max(hi, 0.0)
    if function == "leaky_relu":
        cands = [lo, hi, lo * alpha, hi * alpha, 0.0]
        return min(c for c in cands), max(cands)
    return lo, hi


