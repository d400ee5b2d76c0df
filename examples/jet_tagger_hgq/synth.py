"""Yosys resources of the HGQ2 jet tagger against the uniform 8-bit and 16-bit taggers.

All three designs compute the same 16-64-32-32-5 network's logits (the float tagger's softmax is
left out, as HGQ2's tagger has none), converted with nnhdl's default options (``cse``
shift-and-add constants, two adder levels per pipeline stage, parallel I/O):

- ``hgq``: DIR/jet_tagger_hgq.keras as trained (its own per-element formats, no configuration);
- ``uniform 8-bit``: the float tagger with every tensor ``fixed<8,3,RND,SAT>`` (exact accumulators);
- ``uniform 16-bit``: the float tagger with ``examples/jet_tagger/config.toml`` (``fixed<16,6>``
  with 12-bit weights).

Each is synthesised by ``nnhdl.boards.build.synthesize`` (the ``nnhdl synth`` path: Yosys
``synth_ecp5``, multipliers allowed on DSPs). Printed per design: the fixed-point test accuracy
(nnhdl's reference, argmax of the logits), LUTs as ``nnhdl synth`` counts them (LUT4 cells plus
two per CCU2C carry cell), the LUT4 and CCU2C cells themselves, flip-flops, DSPs, latency in
cycles, nnhdl's adder count and how long conversion and synthesis took.

Usage: python examples/jet_tagger_hgq/synth.py DIR [--only hgq,8,16] [--keep WORKDIR]
(DIR from train.py; the float tagger is DIR/jet_tagger_float.keras)
"""

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def logits_graph(graph):
    """``graph`` without a final Softmax op: the Dense before it gives the (result) output."""
    from nnhdl.ir import Graph, Softmax
    ops = list(graph.ops)
    if isinstance(ops[-1], Softmax):
        ops.pop()
        ops[-1] = replace(ops[-1], result_key="result")
    return Graph(tuple(ops), (ops[-1].name,), name=graph.name, meta=graph.meta)


def designs(directory, only):
    """``(name, model or graph, config)`` of the designs to measure."""
    from nnhdl.config import PrecisionConfig
    from nnhdl.convert import load_config
    from nnhdl.frontend.keras import load
    d = Path(directory)
    found = []
    if "hgq" in only:
        found.append(("HGQ2", d / "jet_tagger_hgq.keras", None))
    if {"8", "16"} & set(only):
        floating = logits_graph(load(d / "jet_tagger_float.keras"))
        if "8" in only:
            found.append(("uniform fixed<8,3,RND,SAT>", floating,
                          PrecisionConfig.from_dict({"precision": "fixed<8,3,RND,SAT>"})))
        if "16" in only:
            found.append(("uniform 16-bit (config.toml)", floating,
                          load_config(ROOT / "examples/jet_tagger/config.toml")))
    return found


def measure(name, model, config, x, y, workdir):
    """Convert, evaluate and synthesise one design; a dict of what is printed."""
    from nnhdl.boards.build import synthesize
    from nnhdl.convert import convert
    from nnhdl.reference import evaluate
    t0 = time.perf_counter()
    design = convert(model, workdir / "rtl", config=config, rtlil=False)
    t1 = time.perf_counter()
    accuracy = float(np.mean(np.asarray(evaluate(design.graph, x)).argmax(axis=1) == y))
    verilog = workdir / "rtl" / design.report["files"]["verilog"]
    cells, needed = synthesize(verilog, design.top, "ecp5", workdir / "yosys")
    t2 = time.perf_counter()
    return {"name": name, "accuracy": accuracy, "LUT": needed["LUT"], "LUT4": cells.get("LUT4", 0),
            "CARRY": cells.get("CCU2C", 0), "FF": needed["FF"], "DSP": needed["DSP"],
            "latency": design.report["latency_cycles"], "adders": design.report["totals"]["adders"],
            "convert_s": t1 - t0, "synth_s": t2 - t1}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="folder written by train.py")
    parser.add_argument("--only", default="hgq,8,16", help="designs to measure: hgq, 8, 16 (default all)")
    parser.add_argument("--keep", type=Path, help="keep the converted designs and Yosys logs here")
    args = parser.parse_args(argv)
    only = args.only.split(",")
    x, y = np.load(args.directory / "X_test.npy"), np.load(args.directory / "y_test.npy")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        print("design | test accuracy | LUT | LUT4 | CCU2C | FF | DSP | latency | adders | convert s | synth s",
              flush=True)
        for k, (name, model, config) in enumerate(designs(args.directory, only)):
            r = measure(name, model, config, x, y, work / f"design{k}")
            print(f"{r['name']} | {r['accuracy']:.4f} | {r['LUT']} | {r['LUT4']} | {r['CARRY']} | {r['FF']} | "
                  f"{r['DSP']} | "
                  f"{r['latency']} | {r['adders']} | {r['convert_s']:.0f} | {r['synth_s']:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
