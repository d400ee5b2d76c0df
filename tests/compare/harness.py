"""Run one Keras model through hls4ml (Vivado backend, io_parallel, C++ simulation with g++) and
through nnhdl's reference model under the same per-layer types, layer by layer.

The hls4ml types are read off nnhdl's quantized graph, so both tools see the same formats:
input, Dense weight / bias / accum / result (and the fused activation's result), and for a
softmax its result, exp_table, inv_table, accum (nnhdl ``exp_accum``), inv_inp (``inv_input``),
table_size and, when set, inp_norm. :func:`hls4ml_config` checks that hls4ml took every type.
"""

import numpy as np

from nnhdl.config import PrecisionConfig
from nnhdl.convert import compile_model, load_model
from nnhdl.ir import Dense, Input, Softmax
from nnhdl.reference import trace


def ap_type(fmt):
    """An nnhdl FixedFormat as an ``ap_[u]fixed<W,I,AP_Q,AP_O>`` string."""
    return (f"ap_{'' if fmt.signed else 'u'}fixed<{fmt.width},{fmt.int_bits},"
            f"AP_{fmt.rounding.value},AP_{fmt.overflow.value}>")


def hls4ml_layer_name(op):
    """The hls4ml layer whose traced output is nnhdl op ``op``'s output."""
    if isinstance(op, Dense) and op.activation != "linear":
        return f"{op.name}_{op.activation}"
    return op.name


def hls4ml_config(hls4ml, model, graph):
    """hls4ml's name-granularity config with every type taken from nnhdl's quantized ``graph``."""
    cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vivado")
    layers = cfg["LayerName"]
    for op in graph.ops:
        if isinstance(op, Input):
            layers[op.name]["Precision"]["result"] = ap_type(op.fmt)
        elif isinstance(op, Dense):
            prec = layers[op.name]["Precision"]
            prec.update(weight=ap_type(op.weight_fmt), bias=ap_type(op.bias_fmt), accum=ap_type(op.accum_fmt),
                        result=ap_type(op.fmt))
            if op.activation != "linear":
                layers[hls4ml_layer_name(op)]["Precision"]["result"] = ap_type(op.fmt)
        elif isinstance(op, Softmax):
            entry = layers[op.name]
            entry["Precision"].update(result=ap_type(op.fmt), accum=ap_type(op.accum_fmt))
            # hls4ml 1.3.0 ignores the softmax's Precision entries exp_table / inv_table / inv_inp
            # (its defaults win); layer keys ending in _t set those types
            entry.update(exp_table_t=ap_type(op.exp_fmt), inv_table_t=ap_type(op.inv_fmt),
                         inv_inp_t=ap_type(op.inv_input_fmt))
            entry["TableSize"] = op.table_size
            entry["Implementation"] = "stable"
            if op.norm_fmt is not None:
                entry["inp_norm_t"] = ap_type(op.norm_fmt)
        else:
            raise AssertionError(f"no hls4ml mapping for {type(op).__name__} {op.name!r}")
    for entry in layers.values():
        entry["Trace"] = True
    return cfg


def check_types(hls_model, graph):
    """Every softmax type hls4ml will use is the one nnhdl's op has (hls4ml silently ignores
    some config entries)."""
    for op in graph.ops:
        if not isinstance(op, Softmax):
            continue
        node = hls_model.graph[op.name]
        for attr, fmt in (("exp_table_t", op.exp_fmt), ("inv_table_t", op.inv_fmt), ("accum_t", op.accum_fmt),
                          ("inv_inp_t", op.inv_input_fmt), ("inp_norm_t", op.norm_fmt)):
            if fmt is None:
                assert node.get_attr(attr) is None, (op.name, attr)
                continue
            p = node.get_attr(attr).precision
            got = (p.width, p.integer, p.signed, p.rounding_mode.name, p.saturation_mode.name)
            assert got == (fmt.width, fmt.int_bits, fmt.signed, fmt.rounding.value, fmt.overflow.value), \
                (op.name, attr, got, str(fmt))


class Comparison:
    """Both tools' per-layer outputs for inputs ``x`` (float32 values), as multiples of each
    layer's LSB: ``nnhdl[name]`` raw ints, ``hls4ml[name]`` floats (exact multiples, or not)."""

    def __init__(self, hls4ml, model, config_dict, x, outdir):
        self.graph = compile_model(load_model(model), PrecisionConfig.from_dict(config_dict))
        x = np.asarray(x, dtype=np.float32)
        hls_model = hls4ml.converters.convert_from_keras_model(
            model, hls_config=hls4ml_config(hls4ml, model, self.graph), backend="Vivado", io_type="io_parallel",
            output_dir=str(outdir))
        check_types(hls_model, self.graph)
        _, traced = hls_model.trace(np.ascontiguousarray(x))
        ref = trace(self.graph, x.astype(np.float64))
        self.layers = [op for op in self.graph.ops if not isinstance(op, Input)]
        self.nnhdl, self.hls4ml = {}, {}
        for op in self.layers:
            self.nnhdl[op.name] = np.asarray(ref[op.name])
            got = np.asarray(traced[hls4ml_layer_name(op)], dtype=np.float64).reshape(self.nnhdl[op.name].shape)
            self.hls4ml[op.name] = np.ldexp(got, op.fmt.frac_bits)

    def differences(self, name):
        """hls4ml minus nnhdl in LSBs (floats: a non-integer means hls4ml's value is off the grid)."""
        return self.hls4ml[name] - self.nnhdl[name].astype(np.float64)
