"""Fixed-point formats and the one definition of rounding and overflow.

A value in a :class:`FixedFormat` is stored as an integer ``raw``; its real value is
``raw * 2**-frac_bits`` where ``frac_bits = width - int_bits``. ``int_bits`` counts the
sign bit, exactly as in ``ap_fixed<W,I>``: ``fixed<16,6>`` has 16 bits, 6 of them integer
(sign included) and 10 fractional; ``ufixed<8,0>`` holds [0, 1) in steps of 1/256.

Everything that changes the number of fractional bits or the range of a value goes through
:func:`quantize` (floats -> raw integers) or :func:`requantize` (raw integers in one scaling ->
raw integers of another format). The reference model uses them; the RTL helpers in
:mod:`nnhdl.layers.arith` mirror them and are tested against them.

Rounding modes (applied to the bits below the new LSB; ap_fixed meanings):

=============  ======================================================
TRN            truncate towards minus infinity (drop the bits)
TRN_ZERO       truncate towards zero
RND            round to nearest, ties towards plus infinity
RND_ZERO       round to nearest, ties towards zero
RND_MIN_INF    round to nearest, ties towards minus infinity
RND_INF        round to nearest, ties away from zero
RND_CONV       round to nearest, ties to even (convergent)
=============  ======================================================

Overflow modes (applied after rounding, so a rounding carry can overflow):

=============  ======================================================
WRAP           keep the low ``width`` bits (two's complement wrap)
SAT            clamp to the largest / smallest representable value
SAT_ZERO       any overflowing value becomes zero
SAT_SYM        clamp symmetrically: signed results lie in [-max, max] (the most
               negative code -2**(W-1) is never produced, as in ap_fixed)
=============  ======================================================
"""

import enum
import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["Rounding", "Overflow", "FixedFormat", "FormatError", "quantize", "requantize",
           "round_shift", "apply_overflow", "to_float", "bits_for_range", "INT64_SAFE_BITS", "MAX_WIDTH",
           "MAX_INT_BITS"]

#: Raw integers whose magnitude stays below 2**INT64_SAFE_BITS are kept in int64 arrays;
#: wider ones are computed exactly with Python integers (numpy object arrays).
INT64_SAFE_BITS = 62

#: The widest format nnhdl accepts: 1024 bits, ap_fixed's default ``AP_INT_MAX_W``.
MAX_WIDTH = 1024
#: ``int_bits`` must lie in ``[-MAX_INT_BITS, MAX_INT_BITS]`` (the binary point at most this far
#: from the word's ends): a bound that keeps every scaling a reasonable shift.
MAX_INT_BITS = 4 * MAX_WIDTH


class FormatError(ValueError):
    """A fixed-point format string or parameter is invalid."""


class Rounding(enum.Enum):
    TRN = "TRN"
    TRN_ZERO = "TRN_ZERO"
    RND = "RND"
    RND_ZERO = "RND_ZERO"
    RND_INF = "RND_INF"
    RND_MIN_INF = "RND_MIN_INF"
    RND_CONV = "RND_CONV"


class Overflow(enum.Enum):
    WRAP = "WRAP"
    SAT = "SAT"
    SAT_ZERO = "SAT_ZERO"
    SAT_SYM = "SAT_SYM"


_FORMAT_RE = re.compile(
    r"^\s*(?P<ap>ap_)?(?P<kind>u?fixed|u?int)\s*<\s*(?P<w>[+-]?\d+)\s*"
    r"(?:,\s*(?P<i>[+-]?\d+)\s*)?"
    r"(?:,\s*(?P<q>\w+)\s*)?(?:,\s*(?P<o>\w+)\s*)?(?:,\s*(?P<n>\d+)\s*)?>\s*$")

_SPELLINGS = "fixed<16,6>, ufixed<8,0>, fixed<16,6,RND,SAT>, ap_fixed<16,6,AP_RND,AP_SAT>, ap_ufixed<8,2>, ap_int<8>"


def _mode(enum_cls, name, text):
    key = name.upper()
    if key.startswith("AP_"):
        key = key[3:]
    try:
        return enum_cls(key)
    except ValueError:
        choices = ", ".join(m.value for m in enum_cls)
        raise FormatError(f"unknown {enum_cls.__name__.lower()} mode {name!r} in {text!r}; "
                          f"choose one of {choices}") from None


@dataclass(frozen=True)
class FixedFormat:
    """A fixed-point number format, ``ap_fixed<width, int_bits, rounding, overflow>``.

    ``int_bits`` includes the sign bit for signed formats and may be negative or exceed
    ``width`` (then the format only holds small fractions, or only multiples of a power of two).
    ``rounding`` and ``overflow`` say what happens when a value is *converted into* this format.
    """
    width: int
    int_bits: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self):
        if not isinstance(self.width, (int, np.integer)) or isinstance(self.width, bool) or self.width < 1:
            raise FormatError(f"width must be a positive integer, not {self.width!r}")
        if not isinstance(self.int_bits, (int, np.integer)) or isinstance(self.int_bits, bool):
            raise FormatError(f"int_bits must be an integer, not {self.int_bits!r}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "int_bits", int(self.int_bits))
        if self.width > MAX_WIDTH:
            raise FormatError(f"width {self.width} is too wide: nnhdl formats have at most {MAX_WIDTH} bits "
                              f"(ap_fixed's AP_INT_MAX_W); use a narrower format like fixed<32,16>")
        if abs(self.int_bits) > MAX_INT_BITS:
            raise FormatError(f"int_bits {self.int_bits} is out of range: nnhdl formats have between "
                              f"-{MAX_INT_BITS} and {MAX_INT_BITS} integer bits")
        if isinstance(self.rounding, str):
            object.__setattr__(self, "rounding", _mode(Rounding, self.rounding, self.rounding))
        if isinstance(self.overflow, str):
            object.__setattr__(self, "overflow", _mode(Overflow, self.overflow, self.overflow))

    # -- text ---------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text):
        """Parse ``fixed<W,I[,Q[,O]]>``, ``ufixed<...>``, ``ap_fixed<W,I,AP_Q,AP_O>``,
        ``ap_ufixed<...>``, ``ap_int<W>`` / ``int<W>`` / ``uint<W>``."""
        if isinstance(text, FixedFormat):
            return text
        if not isinstance(text, str):
            raise FormatError(f"a fixed-point format must be a string like 'fixed<16,6>', not {text!r}")
        m = _FORMAT_RE.match(text)
        if not m:
            raise FormatError(f"cannot parse fixed-point format {text!r}; write it like {_SPELLINGS}")
        kind = m["kind"]
        signed = not kind.startswith("u")
        width = int(m["w"])
        if kind.endswith("int"):
            if m["i"] is not None or m["q"] is not None:
                raise FormatError(f"integer format {text!r} takes only a width, like 'ap_int<8>'")
            int_bits = width
        else:
            if m["i"] is None:
                raise FormatError(f"fixed-point format {text!r} needs width and integer bits, like 'fixed<16,6>'")
            int_bits = int(m["i"])
        if width < 1:
            raise FormatError(f"width must be at least 1 in {text!r}")
        if width > MAX_WIDTH:
            raise FormatError(f"width {width} in {text!r} is too wide: nnhdl formats have at most {MAX_WIDTH} "
                              f"bits (ap_fixed's AP_INT_MAX_W); use a narrower format like fixed<32,16>")
        if abs(int_bits) > MAX_INT_BITS:
            raise FormatError(f"integer bits {int_bits} in {text!r} are out of range: at most {MAX_INT_BITS} "
                              f"in magnitude; use a format like fixed<32,16>")
        rounding = _mode(Rounding, m["q"], text) if m["q"] else Rounding.TRN
        overflow = _mode(Overflow, m["o"], text) if m["o"] else Overflow.WRAP
        if m["n"] is not None and int(m["n"]) != 0:
            raise FormatError(f"saturation bits (the 5th parameter) are not supported in {text!r}; "
                              "remove it or set it to 0")
        return cls(width, int_bits, signed, rounding, overflow)

    def __str__(self):
        base = f"{'' if self.signed else 'u'}fixed<{self.width},{self.int_bits}"
        if self.overflow is not Overflow.WRAP:
            return f"{base},{self.rounding.value},{self.overflow.value}>"
        if self.rounding is not Rounding.TRN:
            return f"{base},{self.rounding.value}>"
        return base + ">"

    def to_ap(self):
        """The Vivado/Vitis HLS spelling, e.g. ``ap_fixed<16,6,AP_RND,AP_SAT>``."""
        return (f"ap_{'' if self.signed else 'u'}fixed<{self.width},{self.int_bits},"
                f"AP_{self.rounding.value},AP_{self.overflow.value}>")

    # -- range --------------------------------------------------------------------------------
    @property
    def frac_bits(self):
        return self.width - self.int_bits

    @property
    def min_int(self):
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self):
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def result_min_int(self):
        """The smallest raw value a conversion into this format can produce (``-max_int`` for
        signed SAT_SYM, which never yields the most negative code)."""
        return -self.max_int if self.signed and self.overflow is Overflow.SAT_SYM else self.min_int

    @property
    def min_value(self):
        return math.ldexp(self.min_int, -self.frac_bits)

    @property
    def max_value(self):
        return math.ldexp(self.max_int, -self.frac_bits)

    @property
    def lsb(self):
        """The value of one unit in the last place."""
        return math.ldexp(1.0, -self.frac_bits)

    def with_modes(self, rounding=None, overflow=None):
        return FixedFormat(self.width, self.int_bits, self.signed,
                           self.rounding if rounding is None else _mode(Rounding, str(getattr(rounding, "value", rounding)), str(rounding)),
                           self.overflow if overflow is None else _mode(Overflow, str(getattr(overflow, "value", overflow)), str(overflow)))

    @classmethod
    def containing(cls, lo, hi, frac_bits, rounding=Rounding.TRN, overflow=Overflow.WRAP):
        """The narrowest format with ``frac_bits`` fractional bits that holds raw integers
        ``lo..hi`` exactly (signed only when ``lo < 0``)."""
        width, signed = bits_for_range(lo, hi)
        return cls(width, width - frac_bits, signed, rounding, overflow)

    # -- conversions --------------------------------------------------------------------------
    def quantize(self, x):
        return quantize(x, self)

    def to_float(self, raw):
        return to_float(raw, self.frac_bits)


def bits_for_range(lo, hi):
    """(width, signed) of the narrowest two's complement word holding every integer in lo..hi."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range {lo}..{hi}")
    if lo >= 0:
        return max(hi.bit_length(), 1), False
    return max(hi.bit_length(), (-lo - 1).bit_length()) + 1, True


def _as_int_array(v, bits):
    """``v`` as an int64 array when values up to 2**bits fit, else as Python integers."""
    arr = np.asarray(v)
    if bits <= INT64_SAFE_BITS:
        if arr.dtype == object:
            return arr.astype(np.int64)
        return arr.astype(np.int64, copy=False)
    if arr.dtype != object:
        return np.vectorize(int, otypes=[object])(arr) if arr.size else arr.astype(object)
    return arr


def _magnitude_bits(v):
    arr = np.asarray(v)
    if arr.size == 0:
        return 0
    if arr.dtype != object:
        lo, hi = int(arr.min()), int(arr.max())
    else:
        lo, hi = min(arr.flat), max(arr.flat)
    return max(abs(int(lo)), abs(int(hi))).bit_length()


def _round_up(floor, nonzero, half, above_half, rounding):
    """Whether to add one to ``floor`` for the given rounding mode.

    ``floor`` is the value rounded towards minus infinity; the discarded part is non-zero /
    exactly one half / above one half as flagged. The value is negative iff ``floor < 0``
    whenever a non-zero part was discarded.
    """
    if rounding is Rounding.TRN:
        return np.zeros(np.shape(floor), dtype=bool)
    negative = floor < 0
    if rounding is Rounding.TRN_ZERO:
        return nonzero & negative
    if rounding is Rounding.RND:
        return half | above_half
    if rounding is Rounding.RND_ZERO:
        return above_half | (half & negative)
    if rounding is Rounding.RND_MIN_INF:
        return above_half
    if rounding is Rounding.RND_INF:
        return above_half | (half & ~negative)
    if rounding is Rounding.RND_CONV:
        return above_half | (half & ((floor & 1) == 1))
    raise AssertionError(rounding)


def round_shift(v, shift, rounding):
    """Divide raw integers by ``2**shift`` with the given rounding (``shift`` may be <= 0:
    then it multiplies exactly). Works on int64 or Python-int arrays; widens when needed.

    Overflow-free: an int64 input of any value is safe (``floor << shift`` lies between ``v``
    and ``-2**63``, and ``floor + 1`` is at most ``2**62`` for ``shift >= 1``); shifts of 63 or
    more are done with Python integers."""
    v = np.asarray(v)
    if shift <= 0:
        bits = _magnitude_bits(v) - shift + 1
        return _as_int_array(v, bits) << (-shift)
    if v.dtype != np.int64 or shift > INT64_SAFE_BITS:
        v = _as_int_array(v, max(_magnitude_bits(v) + 1, shift + 2))
    floor = v >> shift
    if rounding is Rounding.TRN:
        return floor
    rem = v - (floor << shift)
    half_value = 1 << (shift - 1)
    inc = _round_up(floor, rem != 0, rem == half_value, rem > half_value, rounding)
    return floor + inc.astype(floor.dtype if floor.dtype != object else np.int64)


def apply_overflow(v, fmt):
    """Bring raw integers into ``fmt``'s range with ``fmt.overflow``."""
    v = np.asarray(v)
    lo, hi = fmt.min_int, fmt.max_int
    if v.dtype != np.int64 or fmt.width > INT64_SAFE_BITS:
        v = _as_int_array(v, max(_magnitude_bits(v), fmt.width) + 1)
    mode = fmt.overflow
    if mode is Overflow.WRAP:
        # no addition before the mask: safe for every int64 value (two's complement &)
        out = v & ((1 << fmt.width) - 1)
        if fmt.signed:
            out = np.where(out > hi, out - (1 << fmt.width), out)
    elif mode is Overflow.SAT:
        out = np.where(v > hi, hi, np.where(v < lo, lo, v))
    elif mode is Overflow.SAT_ZERO:
        out = np.where((v > hi) | (v < lo), 0, v)
    elif mode is Overflow.SAT_SYM:
        # as ap_fixed: the most negative code is never produced, even for an in-range -2**(W-1)
        sym_lo = -hi if fmt.signed else lo
        out = np.where(v > hi, hi, np.where(v < sym_lo, sym_lo, v))
    else:
        raise AssertionError(mode)
    return out if out.dtype == np.int64 and fmt.width <= INT64_SAFE_BITS else _as_int_array(out, fmt.width)


def requantize(v, frac_bits, to):
    """Convert raw integers with ``frac_bits`` fractional bits into format ``to``: round away
    the extra fractional bits with ``to.rounding``, then fix the range with ``to.overflow``."""
    return apply_overflow(round_shift(v, frac_bits - to.frac_bits, to.rounding), to)


def quantize(x, fmt):
    """Convert real numbers (floats) into raw integers of ``fmt``, rounding the exact binary value
    of each float with ``fmt.rounding`` and then applying ``fmt.overflow``.

    Scaling by ``2**frac_bits`` is done in float64 only where it is exact (no overflow to
    infinity, no underflow to a subnormal or zero) and the integer part fits int64; every other
    element is scaled exactly with Python integers."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"cannot quantize non-finite values (NaN or infinity) to {fmt}")
    with np.errstate(over="ignore", under="ignore"):
        y = np.ldexp(x, fmt.frac_bits)
    exact = (np.abs(y) < 2.0 ** INT64_SAFE_BITS) & ((np.abs(y) >= np.finfo(np.float64).tiny) | (x == 0))
    if np.all(exact):
        floor = np.floor(y)
        rem = y - floor  # exact, in [0, 1)
        ifloor = floor.astype(np.int64)
        inc = _round_up(ifloor, rem != 0, rem == 0.5, rem > 0.5, fmt.rounding)
        return apply_overflow(ifloor + inc.astype(np.int64), fmt)
    flat = [_quantize_scalar(float(v), fmt.frac_bits, fmt.rounding) for v in x.flat]
    return apply_overflow(np.array(flat, dtype=object).reshape(x.shape), fmt)


def _quantize_scalar(x, frac_bits, rounding):
    """One float's exact value times ``2**frac_bits``, rounded to an integer (Python ints)."""
    num, den = x.as_integer_ratio()  # den is a power of two
    if frac_bits >= 0:
        num <<= frac_bits
    else:
        den <<= -frac_bits
    floor, rem = divmod(num, den)
    twice = 2 * rem
    inc = _round_up(np.array(floor, dtype=object), np.array(rem != 0), np.array(twice == den),
                    np.array(twice > den), rounding)
    return floor + int(inc)


def to_float(raw, frac_bits):
    """Real values of raw integers with ``frac_bits`` fractional bits, as float64."""
    raw = np.asarray(raw)
    if raw.dtype == object:
        raw = raw.astype(np.float64)
    return np.ldexp(raw.astype(np.float64), -frac_bits)
