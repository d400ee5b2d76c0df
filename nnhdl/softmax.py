"""Softmax arithmetic shared by the reference model and the RTL: hls4ml 1.3's ``stable`` softmax.

This is hls4ml 1.3.0's ``nnet::softmax_stable`` (Vivado backend, ``io_parallel``;
``templates/vivado/nnet_utils/nnet_activation.h``) with the types hls4ml's Python side gives it
(``backends/vivado/passes/core_templates.py`` ``SoftmaxConfigTemplate``,
``backends/fpga/passes/fix_softmax_table_size.py``), bit for bit:

1. ``x_max`` = the largest input;
2. ``d_i = x_max - x_i`` (exact, never negative) cast to ``inp_norm`` (by default the input
   format without its sign bit, ``ufixed<W-1, I-1>`` truncating and *wrapping*: a difference of
   ``2**(I-1)`` or more wraps around);
3. ``e_i = exp_table[top N_e bits of d_i's word]``, ``exp_table[k] = exp(-v_k)`` with ``v_k`` the
   ``inp_norm`` value whose top ``N_e`` bits are ``k`` and the others zero (the lower edge of the
   bucket), computed in float32 and converted to ``exp_table``; ``e_i`` cast to ``exp_accum``;
4. ``s`` = sum of the ``e_i`` in hls4ml's ``reduce`` tree order, each addition cast to
   ``exp_accum``; ``s`` cast to ``inv_input``;
5. ``r = inv_table[top N_i bits of s's word]``, ``inv_table[k] = 1 / u_k`` (float32) with ``u_k``
   the ``inv_input`` value whose top ``N_i`` bits are ``k``, converted to ``inv_table``;
6. ``y_i = e_i * r`` (exact product) cast to the output format.

Table sizes: ``T = min(table_size, 2**min(input width, inv_table width))``; the inverse table has
``T`` entries (``N_i = ceillog2(T)``); the exp table too, except that with the default
``inp_norm`` and a signed input it has at most ``2**(W-1)`` (``N_e = ceillog2`` of that).

Raw integers are int64 where every value provably fits, Python integers (numpy object arrays)
otherwise, so any width works.
"""

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np

from .config import DEFAULT_TABLE_FORMAT
from .fixed import INT64_SAFE_BITS, FixedFormat, Overflow, Rounding, apply_overflow, quantize, requantize

__all__ = ["SoftmaxPlan", "softmax_plan", "softmax_plan_of", "softmax_tables", "softmax_stable", "table_index_bits",
           "reduce_split", "reduce_tree", "tree_sum", "default_inp_norm", "warn_if_coarse"]


def table_index_bits(table_size):
    """hls4ml's ``ceillog2(table_size)``: the address bits of a table (at least 1)."""
    return 1 if table_size <= 2 else 1 + table_index_bits((table_size + 1) // 2)


def reduce_split(n):
    """hls4ml's ``reduce`` split of ``n > 2`` values: ``(left, right)``, left the largest power of
    two below ``n``."""
    left = 1 << ((n - 1).bit_length() - 1) if n > 2 else 1
    return left, n - left


def reduce_tree(items, combine):
    """``combine`` over ``items`` in hls4ml's ``reduce`` tree order (:func:`reduce_split`): the
    one order the reference (numpy values) and the hardware (datapath nodes) both follow."""
    if len(items) == 1:
        return items[0]
    left, _ = reduce_split(len(items))
    return combine(reduce_tree(items[:left], combine), reduce_tree(items[left:], combine))


def default_inp_norm(in_fmt: FixedFormat) -> FixedFormat:
    """hls4ml 1.3's default ``inp_norm_t``: ``ap_ufixed<W-s, I-s>`` (truncating, wrapping) of an
    input ``ap_[u]fixed<W, I>`` with ``s`` = 1 if signed else 0."""
    s = int(in_fmt.signed)
    return FixedFormat(in_fmt.width - s, in_fmt.int_bits - s, False, Rounding.TRN, Overflow.WRAP)


@dataclass(frozen=True)
class SoftmaxPlan:
    """Every format and size of one table softmax, resolved (see the module docstring)."""
    in_fmt: FixedFormat
    out_fmt: FixedFormat
    norm_fmt: FixedFormat      # inp_norm_t: x_max - x_i
    exp_fmt: FixedFormat       # exp_table_t
    accum_fmt: FixedFormat     # accum_t: the exp values and their sum
    inv_input_fmt: FixedFormat  # inv_inp_t: the sum that addresses the inverse table
    inv_fmt: FixedFormat       # inv_table_t
    exp_size: int
    inv_size: int

    @property
    def exp_bits(self):
        return table_index_bits(self.exp_size)

    @property
    def inv_bits(self):
        return table_index_bits(self.inv_size)

    @property
    def exp_step(self):
        """Distance between the inputs of consecutive exp table entries (in input units)."""
        return math.ldexp(1.0, self.norm_fmt.int_bits - self.exp_bits)


def softmax_plan(in_fmt, out_fmt, exp_fmt, inv_fmt, table_size, accum_fmt=None, inv_input_fmt=None,
                 norm_fmt=None) -> SoftmaxPlan:
    """Resolve a table softmax's formats and table sizes as hls4ml 1.3 does. ``None`` for
    ``accum_fmt`` / ``inv_input_fmt`` means hls4ml's default ``fixed<18,8,RND,SAT>``, for
    ``norm_fmt`` the default :func:`default_inp_norm` (which also limits the exp table).
    Raises ValueError (naming the key and the fix) where hls4ml's index slicing would be
    undefined."""
    accum_fmt = accum_fmt or DEFAULT_TABLE_FORMAT
    inv_input_fmt = inv_input_fmt or DEFAULT_TABLE_FORMAT
    size = min(int(table_size), 1 << min(in_fmt.width, inv_fmt.width))
    exp_size = size
    if norm_fmt is None:
        if in_fmt.signed and in_fmt.width < 2:
            raise ValueError(f"the softmax input format {in_fmt} is too narrow: give it at least 2 bits")
        norm_fmt = default_inp_norm(in_fmt)
        if in_fmt.signed:
            exp_size = min(size, 1 << norm_fmt.width)
    plan = SoftmaxPlan(in_fmt, out_fmt, norm_fmt, exp_fmt, accum_fmt, inv_input_fmt, inv_fmt, exp_size, size)
    if plan.exp_bits > norm_fmt.width:
        raise ValueError(f"the exp table's {exp_size} entries need {plan.exp_bits} index bits but inp_norm "
                         f"{norm_fmt} has only {norm_fmt.width}: set table_size = {1 << norm_fmt.width} or less, "
                         "or widen inp_norm")
    if plan.inv_bits > inv_input_fmt.width:
        raise ValueError(f"the inverse table's {size} entries need {plan.inv_bits} index bits but inv_input "
                         f"{inv_input_fmt} has only {inv_input_fmt.width}: set table_size = "
                         f"{1 << inv_input_fmt.width} or less, or widen inv_input")
    if max(plan.exp_bits, plan.inv_bits) > 24:
        raise ValueError(f"table_size {table_size} is too large: at most 2**24 entries")
    return plan


def softmax_plan_of(op, in_fmt: FixedFormat) -> SoftmaxPlan:
    """The plan of a quantized :class:`nnhdl.ir.Softmax` op (``implementation="table"``) fed
    ``in_fmt``."""
    return softmax_plan(in_fmt, op.fmt, op.exp_fmt, op.inv_fmt, op.table_size, op.accum_fmt, op.inv_input_fmt,
                        op.norm_fmt)


def warn_if_coarse(plan: SoftmaxPlan, layer):
    """Warn when consecutive exp table entries are 1.0 or more apart in the input (the table
    reads only the top bits of a wide difference, so the softmax is crude)."""
    if plan.exp_step >= 1.0:
        warnings.warn(f"layer {layer!r}: the softmax exp table has {plan.exp_size} entries for differences in "
                      f"{plan.norm_fmt}, {plan.exp_step:g} apart: the softmax outputs will be crude. Give the "
                      f"softmax input fewer integer bits (e.g. logits = \"fixed<16,6>\") or a larger table_size.",
                      stacklevel=2)


def _ints(values, bits):
    """``values`` as int64 when magnitudes below ``2**bits`` fit, else as Python integers."""
    arr = np.asarray(values)
    if bits <= INT64_SAFE_BITS:
        return arr.astype(np.int64)
    if arr.dtype == object or not arr.size:
        return arr.astype(object)
    return np.vectorize(int, otypes=[object])(arr)


def _value_with_top_bits(k, fmt: FixedFormat, n):
    """The value of the ``fmt`` word whose top ``n`` bits are ``k`` and the others zero
    (hls4ml's ``softmax_real_val_from_idx``), as a float64 (exact: ``n`` <= 24 significant bits)."""
    word = int(k) << (fmt.width - n)
    if fmt.signed and word >> (fmt.width - 1):
        word -= 1 << fmt.width
    return math.ldexp(word, -fmt.frac_bits)


def _float32_to_fixed(values, fmt):
    """float32 values (possibly +-inf) as ap_fixed's float constructor converts them: exactly
    rounded with ``fmt.rounding``; infinity as a huge power of two (saturated, or 0 when wrapped)."""
    v = np.asarray(values, dtype=np.float64)
    big = np.isinf(v)
    out = quantize(np.where(big, 0.0, v), fmt)
    if np.any(big):
        sign = np.where(v > 0, 1, -1).astype(object)
        huge = apply_overflow(sign * (1 << (fmt.width + 2 + max(0, fmt.frac_bits))), fmt)
        out = np.where(big, huge, out)
        out = _ints(out, fmt.width + 1)
    return out


def _exp_float32(x):
    """float32 ``exp`` (glibc's ``expf``): exp in float64, rounded to float32."""
    return np.exp(np.asarray(x, dtype=np.float32).astype(np.float64)).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _tables(norm_fmt, exp_fmt, inv_input_fmt, inv_fmt, exp_size, inv_size):
    exp_bits, inv_bits = table_index_bits(exp_size), table_index_bits(inv_size)
    with np.errstate(over="ignore", divide="ignore"):
        xs = np.array([_value_with_top_bits(k, norm_fmt, exp_bits) for k in range(exp_size)], dtype=np.float32)
        exp_table = _float32_to_fixed(_exp_float32(-xs), exp_fmt)
        us = np.array([_value_with_top_bits(k, inv_input_fmt, inv_bits) for k in range(inv_size)], dtype=np.float32)
        inv_table = _float32_to_fixed(np.float32(1.0) / us, inv_fmt)
    exp_table.setflags(write=False)
    inv_table.setflags(write=False)
    return exp_table, inv_table


def softmax_tables(plan: SoftmaxPlan):
    """``(exp_table, inv_table)``: raw integers of ``plan.exp_fmt`` / ``plan.inv_fmt`` (read-only)."""
    return _tables(plan.norm_fmt, plan.exp_fmt, plan.inv_input_fmt, plan.inv_fmt, plan.exp_size, plan.inv_size)


def _top_bits(raw, fmt: FixedFormat, n):
    """The top ``n`` bits of each ``fmt.width``-bit two's complement word, as int64 indices."""
    word = _ints(raw, fmt.width + 1) & ((1 << fmt.width) - 1)
    return (word >> (fmt.width - n)).astype(np.int64)


def tree_sum(values, fmt: FixedFormat):
    """Sum over the last axis in hls4ml's ``reduce`` tree order, each addition cast to ``fmt``
    (raw integers of ``fmt``)."""
    return reduce_tree([values[..., k] for k in range(values.shape[-1])],
                       lambda a, b: apply_overflow(a + b, fmt))


def softmax_stable(x, plan: SoftmaxPlan):
    """hls4ml 1.3's ``softmax_stable`` over the last axis of raw inputs ``x`` (of
    ``plan.in_fmt``); raw outputs of ``plan.out_fmt``. See the module docstring."""
    exp_table, inv_table = softmax_tables(plan)
    x = _ints(x, plan.in_fmt.width + 1)
    d = requantize(x.max(axis=-1, keepdims=True) - x, plan.in_fmt.frac_bits, plan.norm_fmt)
    e = requantize(exp_table[_top_bits(d, plan.norm_fmt, plan.exp_bits)], plan.exp_fmt.frac_bits, plan.accum_fmt)
    e = _ints(e, plan.accum_fmt.width + 1)
    s = requantize(tree_sum(e, plan.accum_fmt), plan.accum_fmt.frac_bits, plan.inv_input_fmt)
    r = inv_table[_top_bits(s, plan.inv_input_fmt, plan.inv_bits)]
    bits = plan.accum_fmt.width + plan.inv_fmt.width
    product = _ints(e, bits) * _ints(r, bits)[..., None]
    return requantize(product, plan.accum_fmt.frac_bits + plan.inv_fmt.frac_bits, plan.out_fmt)
