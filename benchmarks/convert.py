"""Conversion and simulation speed on the jet tagger (16-64-32-32-5).

Prints, for the trained jet tagger at a few precisions / multiplier styles: conversion time (model
file -> Verilog + RTLIL, Keras import excluded) and its split (build: quantize and build the datapath
in nnhdl, the layers' searches for shared subexpressions on two processes when the machine has two
cores, one with NNHDL_JOBS=1; RTLIL: elaborate, netlist and RTLIL text in Amaranth; Verilog:
Yosys's write_verilog of that RTLIL), Verilog lines, latency in cycles, adders, register bits,
reference-model inferences/s and Amaranth-simulator inferences/s (with random gaps and stalls, all outputs checked). It measures
and prints; it asserts nothing.

Usage: python benchmarks/convert.py [--model build/jet_tagger/jet_tagger.keras] [--sim-vectors 200]
(the model is trained with examples/jet_tagger/train.py first if it does not exist).
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from jet_model import ensure_model  # noqa: E402  (benchmarks/jet_model.py)

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    # label, config dict, multiplier
    ("fixed<16,6> (hls4ml default), cse", {"precision": "fixed<16,6>"}, "cse"),
    ("fixed<16,6>, csd", {"precision": "fixed<16,6>"}, "csd"),
    ("fixed<16,6>, dsp '*'", {"precision": "fixed<16,6>"}, "dsp"),
    ("fixed<8,3,RND,SAT>, cse", {"precision": "fixed<8,3,RND,SAT>"}, "cse"),
    ("fixed<8,3,RND,SAT>, csd", {"precision": "fixed<8,3,RND,SAT>"}, "csd"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "build/jet_tagger/jet_tagger.keras"))
    parser.add_argument("--sim-vectors", type=int, default=200)
    parser.add_argument("--ref-vectors", type=int, default=100_000)
    args = parser.parse_args()

    from nnhdl.config import PrecisionConfig
    from nnhdl.convert import convert, load_model
    from nnhdl.parallel import default_jobs
    from nnhdl.reference import evaluate
    from nnhdl.verify import random_inputs, verify_design

    model = ensure_model(args.model)
    t0 = time.perf_counter()
    graph = load_model(model)
    keras_load = time.perf_counter() - t0

    table = Table(title=f"nnhdl benchmarks: jet tagger 16-64-32-32-5 ({model})", title_justify="left")
    for col in ("precision, multiplier", "convert s", "build s", "RTLIL s", "Verilog s", "Verilog lines",
                "latency", "adders", "multipliers", "register bits", "reference inf/s", "Amaranth sim inf/s",
                "sim check"):
        table.add_column(col, justify="left" if col.startswith("precision") else "right")
    for label, config, multiplier in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            design = convert(graph, Path(tmp) / "out", config=PrecisionConfig.from_dict(config),
                             multiplier=multiplier)
            seconds = time.perf_counter() - t0
        report = design.report
        x = random_inputs(design.graph, args.ref_vectors, seed=1)
        evaluate(design.graph, x[:1000], raw=True)  # warm up
        t0 = time.perf_counter()
        evaluate(design.graph, x, raw=True)
        ref_rate = len(x) / (time.perf_counter() - t0)
        result = verify_design(design, x[:args.sim_vectors], gap=0.2, stall=0.2, seed=2)
        t = report["totals"]
        split = report["timings_s"]
        build = split.get("quantize", 0) + split.get("build RTL", 0)
        table.add_row(label, f"{seconds:.1f}", f"{build:.1f}", f"{split.get('export RTLIL', 0):.1f}",
                      f"{split.get('export Verilog', 0):.1f}",
                      f"{report['verilog_lines']:,}", str(report["latency_cycles"]), f"{t['adders']:,}",
                      str(t["multipliers"]), f"{t['register_bits']:,}", f"{ref_rate:,.0f}", f"{result.rate:,.1f}",
                      "PASS" if result.passed else "FAIL")
    console = Console(width=200)
    console.print(table)
    console.print(f"Keras model load (TensorFlow import included): {keras_load:.1f} s, not counted above. "
                  f"Machine: {platform.machine()}, {os.cpu_count()} cores ({default_jobs()} processes used), "
                  f"Python {platform.python_version()}; "
                  f"{time.strftime('%Y-%m-%d')}. Simulator rate: {args.sim_vectors} vectors with 20% gaps "
                  "and 20% stalls, every output checked against the reference.")


if __name__ == "__main__":
    main()
