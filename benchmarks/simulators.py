"""Verified inferences per second on the jet tagger: Amaranth simulator, Icarus Verilog and
Verilator (both under cocotb), side by side from one run.

Every rate counts only simulation with every output checked against the bit-exact reference,
with 20 % input gaps and 20 % output stalls; build times (Icarus compile, Verilator C++ build)
are printed separately. It measures and prints; it asserts nothing.

Usage: python benchmarks/simulators.py [--model build/jet_tagger/jet_tagger.keras]
          [--precision 'fixed<16,6>'] [--vectors amaranth=200,icarus=50,verilator=5000]
"""

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert import ensure_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "build/jet_tagger/jet_tagger.keras"))
    parser.add_argument("--precision", default="fixed<16,6>")
    parser.add_argument("--vectors", default="amaranth=200,icarus=40,verilator=5000")
    parser.add_argument("--keep", default=None, help="keep the converted design (and simulator builds) here")
    args = parser.parse_args()
    counts = {k: int(v) for k, v in (item.split("=") for item in args.vectors.split(","))}

    from nnhdl.config import PrecisionConfig
    from nnhdl.convert import convert, load_design, load_model
    from nnhdl.verify import random_inputs, verify_design

    model = ensure_model(args.model)
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nnhdl-bench-"))
    out = tmp / "rtl"
    if not (out / "graph.json").exists():
        convert(load_model(model), out, config=PrecisionConfig.from_dict({"precision": args.precision}))
    design = load_design(out)
    x = random_inputs(design.graph, max(counts.values()), seed=1)

    rows = []
    for sim, n in counts.items():
        build_s = 0.0
        if sim != "amaranth":
            # first a tiny run: builds the simulator (timed separately), then the measured run
            t0 = time.perf_counter()
            verify_design(design, x[:2], simulator=sim, gap=0, stall=0)
            build_s = time.perf_counter() - t0
        result = verify_design(design, x[:n], simulator=sim, gap=0.2, stall=0.2, seed=3)
        rows.append((sim, n, build_s, result))
    base = next(r.rate for s, _, _, r in rows if s == "amaranth")

    table = Table(title=f"verified inferences/s, jet tagger 16-64-32-32-5 at {args.precision} "
                        f"(latency {design.report['latency_cycles']} cycles)", title_justify="left")
    for col in ("simulator", "vectors", "build + first run s", "inferences/s", "x Amaranth", "result"):
        table.add_column(col, justify="left" if col == "simulator" else "right")
    for sim, n, build_s, r in rows:
        table.add_row(sim, str(n), f"{build_s:.1f}" if build_s else "-", f"{r.rate:,.1f}", f"{r.rate / base:.1f}",
                      "PASS" if r.passed else f"FAIL ({r.mismatch_count} mismatches)")
    Console(width=160).print(table)
    print(f"Machine: {platform.machine()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}; "
          f"gaps 20 %, stalls 20 %, every output checked.")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
