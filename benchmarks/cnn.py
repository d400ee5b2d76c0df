"""The digits CNN in both I/O styles: conversion time, cycles per image, latency, register bits,
block-RAM bits, reference-model images/s and Amaranth-simulator images/s (all outputs checked
against the reference, with random gaps and stalls). It measures and prints; it asserts nothing.

Usage: python benchmarks/cnn.py [--dir build/digits_cnn] [--sim-images 20]
(the model is trained with examples/digits_cnn/train.py first if it does not exist).
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=str(ROOT / "build/digits_cnn"))
    parser.add_argument("--sim-images", type=int, default=20)
    parser.add_argument("--ref-images", type=int, default=20_000)
    args = parser.parse_args()
    d = Path(args.dir)
    model = d / "digits_cnn.keras"
    if not model.exists():
        print(f"training the digits CNN into {d} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "examples/digits_cnn/train.py"), "--out", str(d)], check=True)

    from nnhdl.convert import convert, load_config, load_model
    from nnhdl.reference import evaluate
    from nnhdl.verify import random_inputs, verify_design

    graph = load_model(model)
    config = load_config(ROOT / "examples/digits_cnn/config.toml")
    table = Table(title=f"nnhdl benchmarks: digits CNN ({model})", title_justify="left")
    for col in ("io", "convert s", "cycles/image", "latency cycles", "adders", "register bits", "line buffers",
                "block-RAM bits", "reference images/s", "Amaranth sim images/s"):
        table.add_column(col, justify="left" if col == "io" else "right")
    totals = {}
    for io in ("parallel", "stream"):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            design = convert(graph, Path(tmp) / "rtl", config=config, io=io)
            seconds = time.perf_counter() - t0
            r = design.report
            x = random_inputs(design.graph, args.ref_images, seed=1).reshape((-1,) + tuple(design.graph.input.shape))
            t0 = time.perf_counter()
            evaluate(design.graph, x, raw=True)
            ref_rate = len(x) / (time.perf_counter() - t0)
            result = verify_design(design, x[:args.sim_images], seed=2)
            status = "" if result.passed else " (MISMATCH)"
            t = totals[io] = dict(r["totals"], cycles=r["cycles_per_inference"])
            buffers = ", ".join(f"{b['bits']} b {b['storage']}" for b in r["buffers"]) or "-"
            table.add_row(io, f"{seconds:.1f}", str(r["cycles_per_inference"]), str(r["latency_cycles"]),
                          str(t["adders"]), str(t["register_bits"]), buffers, str(t["memory_bits"]),
                          f"{ref_rate:,.0f}", f"{result.rate:.1f}{status}")
    console = Console(width=160)
    console.print(table)
    p, s = totals["parallel"], totals["stream"]
    console.print(f"parallel / stream: {p['adders'] / s['adders']:.1f}x the adders, "
                  f"{p['register_bits'] / s['register_bits']:.1f}x the register bits, "
                  f"{s['cycles'] / p['cycles']:.0f}x fewer cycles per image")
    console.print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                  f"Python {platform.python_version()}")


if __name__ == "__main__":
    main()
