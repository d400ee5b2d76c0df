"""The area-throughput curve of the reuse factor on the jet tagger (16-64-32-32-5).

For each reuse factor R (``nnhdl convert --reuse R``: every Dense folded onto about
``n_in * n_out / R`` multipliers), converts the trained jet tagger with
``examples/jet_tagger/config.toml`` and prints: cycles per inference (II), latency, the
generator's multiplier / ROM-bit counts, and Yosys ``synth_ecp5`` cells as LUT / FF / DSP
(MULT18X18D) / BRAM (DP16KD) — the estimate ``nnhdl synth`` makes, before place and route
(``--family ice40``: ``synth_ice40`` cells instead).
With ``--plot FILE.png`` (needs matplotlib) it also draws LUTs and DSPs against II. It measures
and prints; it asserts nothing.

Usage: python benchmarks/reuse.py [--model build/jet_tagger/jet_tagger.keras] [--reuse 1 2 4 8 16 64]
[--precision "fixed<16,6>"] [--family ecp5|ice40] [--plot build/reuse.png]
(the model is trained with examples/jet_tagger/train.py first if it does not exist; R = 1 is the
fully parallel design, whose synthesis takes many minutes).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def measure(graph, config, reuse, multiplier, workdir, family="ecp5"):
    """One conversion and synthesis: a dict of the numbers printed."""
    from nnhdl.boards.build import synthesize
    from nnhdl.convert import convert

    t0 = time.perf_counter()
    design = convert(graph, Path(workdir) / "rtl", config=config, reuse=reuse, multiplier=multiplier, rtlil=False)
    convert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, est = synthesize(design.outdir / design.report["files"]["verilog"], design.top, family,
                        Path(workdir) / "synth")
    synth_s = time.perf_counter() - t0
    report, totals = design.report, design.report["totals"]
    return {"R": reuse, "II": report["initiation_interval"], "latency": report["latency_cycles"],
            "multipliers": totals["multipliers"], "rom_bits": totals["rom_bits"], "LUT": est["LUT"], "FF": est["FF"],
            "DSP": est["DSP"], "BRAM": est["BRAM"], "convert_s": convert_s, "synth_s": synth_s}


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ii = [r["II"] for r in rows]
    ax.loglog(ii, [r["LUT"] for r in rows], "o-", label="LUT")
    ax.loglog(ii, [max(r["FF"], 1) for r in rows], "s-", label="FF")
    ax.loglog(ii, [max(r["DSP"], 0.5) for r in rows], "^-", label="DSP (MULT18X18D)")
    for r in rows:
        ax.annotate(f"R={r['R']}", (r["II"], r["LUT"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("cycles per inference (II)")
    ax.set_ylabel("cells (Yosys synth_ecp5)")
    ax.set_title("jet tagger: reuse factor, area vs throughput")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    from convert import ensure_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "build/jet_tagger/jet_tagger.keras"))
    parser.add_argument("--config", default=str(ROOT / "examples/jet_tagger/config.toml"))
    parser.add_argument("--precision", default=None, help="override the config's default precision")
    parser.add_argument("--reuse", type=int, nargs="+", default=[1, 2, 4, 8, 16, 64])
    parser.add_argument("--multiplier", choices=["csd", "dsp"], default="csd",
                        help="constant multiplication of the unfolded (R = 1) layers")
    parser.add_argument("--family", choices=["ecp5", "ice40"], default="ecp5",
                        help="Yosys synth_ecp5 (LUT4, TRELLIS_FF, MULT18X18D, DP16KD) or synth_ice40 (SB_LUT4, SB_DFF, "
                             "SB_MAC16, SB_RAM40_4K)")
    parser.add_argument("--plot", default=None, help="save a PNG plot here (needs matplotlib)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from nnhdl.convert import load_config, load_model

    graph = load_model(ensure_model(args.model))
    config = load_config(args.config, args.precision)
    table = Table(title=f"jet tagger 16-64-32-32-5, {config.default}: reuse factor (Yosys synth_{args.family} cells)",
                  title_justify="left")
    for col in ("R", "II", "latency", "multipliers", "ROM bits", "LUT", "FF", "DSP", "BRAM", "convert s",
                "synth s"):
        table.add_column(col, justify="right")
    console = Console(width=160)
    rows = []
    for reuse in args.reuse:
        with tempfile.TemporaryDirectory() as tmp:
            row = measure(graph, config, reuse, args.multiplier, tmp, args.family)
        rows.append(row)
        table.add_row(*(f"{row[k]:,}" for k in ("R", "II", "latency", "multipliers", "rom_bits", "LUT", "FF", "DSP",
                                                   "BRAM")), f"{row['convert_s']:.1f}", f"{row['synth_s']:.0f}")
        console.print(f"R = {reuse}: II {row['II']}, {row['LUT']:,} LUT, {row['FF']:,} FF, {row['DSP']} DSP, "
                      f"{row['BRAM']} BRAM (synthesis {row['synth_s']:.0f} s)")
    console.print(table)
    if args.plot:
        try:
            plot(rows, args.plot)
            console.print(f"plot: {args.plot}")
        except ImportError:
            console.print("no matplotlib: pip install matplotlib for --plot")


if __name__ == "__main__":
    main()
