"""The area-throughput curve of the reuse factor on the jet tagger (16-64-32-32-5).

For each reuse factor R (``nnhdl convert --reuse R``: every Dense folded onto about
``n_in * n_out / R`` multipliers), converts the trained jet tagger with
``examples/jet_tagger/config.toml`` and prints: cycles per inference (II), latency, the
generator's multiplier / ROM-bit / link-memory counts, and Yosys ``synth_ecp5`` cells as LUT / FF /
DSP (MULT18X18D) / BRAM (DP16KD) — the estimate ``nnhdl synth`` makes, before place and route
(``--family ice40``: ``synth_ice40`` cells instead).

Consecutive folded layers are linked through block RAM (:func:`nnhdl.layers.folded.link_folded`;
``--no-link``: each keeps its register copy of the vector), so the Verilog synthesised is written
here from the linked network (the same handshakes, latency and II as ``nnhdl convert``'s).

``--build BOARD`` (e.g. ``icebreaker``) also places and routes each design on the board with
nextpnr (timing harness, as ``nnhdl build``; one at a time) and prints logic cells, DSP, BRAM,
Fmax, and the latency and inferences per second at Fmax and at the board's clock.
With ``--plot FILE.png`` (needs matplotlib) it also draws LUTs and DSPs against II. It measures
and prints; it asserts nothing.

Usage: python benchmarks/reuse.py [--model build/jet_tagger/jet_tagger.keras] [--reuse 1 2 4 8 16 64]
[--precision "fixed<16,6>"] [--softmax table|argmax] [--family ecp5|ice40] [--no-dsp] [--no-link]
[--build icebreaker] [--plot build/reuse.png]
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


def measure(graph, config, reuse, multiplier, workdir, family="ecp5", *, link=True, dsp=True, board=None):
    """One conversion and synthesis (and, with ``board``, place and route): a dict of the
    numbers printed."""
    from nnhdl.boards.build import synthesize
    from nnhdl.convert import convert
    from nnhdl.export import to_verilog
    from nnhdl.layers.folded import link_folded

    workdir = Path(workdir)
    t0 = time.perf_counter()
    design = convert(graph, workdir / "rtl", config=config, reuse=reuse, multiplier=multiplier, rtlil=False,
                     verilog=False)
    layers = [layer for _, layer in design.network.layers]
    links = link_folded(layers) if link else 0
    verilog = workdir / "rtl" / f"{design.top}.v"
    verilog.write_text(to_verilog(design.network, design.top))
    convert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, est = synthesize(verilog, design.top, family, workdir / "synth", dsp=dsp)
    synth_s = time.perf_counter() - t0
    report, totals = design.report, design.report["totals"]
    row = {"R": reuse, "II": report["initiation_interval"], "latency": report["latency_cycles"],
           "multipliers": totals["multipliers"], "rom_bits": totals["rom_bits"], "links": links,
           "link_bits": sum(getattr(layer, "memory_bits", 0) for layer in layers),
           "register_bits": sum(getattr(layer, "register_bits", 0) for layer in layers),
           "LUT": est["LUT"], "FF": est["FF"], "DSP": est["DSP"], "BRAM": est["BRAM"], "convert_s": convert_s,
           "synth_s": synth_s}
    if board:
        row.update(place_and_route(design, board, workdir / "build", dsp))
    return row


def place_and_route(design, board, folder, dsp):
    """nextpnr on ``board`` (timing harness): the build report's numbers."""
    from nnhdl.boards.build import build_bitstream
    from nnhdl.boards.targets import get_target

    t0 = time.perf_counter()
    r = build_bitstream(design, get_target(board), folder, dsp=dsp, allow_timing_fail=True).report
    res = r["resources"]
    fmax, clock = r["fmax_mhz"], r["clock_target_mhz"]
    return {"LC": res["LUT"]["used"], "pnr_DSP": res.get("DSP", {}).get("used", 0),
            "pnr_BRAM": res.get("BRAM", {}).get("used", 0), "fmax": fmax, "clock": clock,
            "timing_passed": r["timing_passed"], "latency_us_fmax": r["latency_cycles"] / fmax,
            "latency_us_clock": r["latency_cycles"] / clock, "inf_s_fmax": fmax * 1e6 / r["cycles_per_inference"],
            "inf_s_clock": clock * 1e6 / r["cycles_per_inference"], "build_s": time.perf_counter() - t0}


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ii = [r["II"] for r in rows]
    ax.loglog(ii, [r["LUT"] for r in rows], "o-", label="LUT")
    ax.loglog(ii, [max(r["FF"], 1) for r in rows], "s-", label="FF")
    ax.loglog(ii, [max(r["DSP"], 0.5) for r in rows], "^-", label="DSP")
    for r in rows:
        ax.annotate(f"R={r['R']}", (r["II"], r["LUT"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("cycles per inference (II)")
    ax.set_ylabel("cells (Yosys)")
    ax.set_title("jet tagger: reuse factor, area vs throughput")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    from jet_model import ensure_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "build/jet_tagger/jet_tagger.keras"))
    parser.add_argument("--config", default=str(ROOT / "examples/jet_tagger/config.toml"))
    parser.add_argument("--precision", default=None, help="override the config's default precision")
    parser.add_argument("--softmax", choices=["table", "argmax"], default=None, help="override the config's softmax")
    parser.add_argument("--reuse", type=int, nargs="+", default=[1, 2, 4, 8, 16, 64])
    parser.add_argument("--multiplier", choices=["csd", "cse", "dsp"], default="csd",
                        help="constant multiplication of the unfolded (R = 1) layers")
    parser.add_argument("--family", choices=["ecp5", "ice40"], default="ecp5",
                        help="Yosys synth_ecp5 (LUT4, TRELLIS_FF, MULT18X18D, DP16KD) or synth_ice40 (SB_LUT4, SB_DFF, "
                             "SB_MAC16, SB_RAM40_4K)")
    parser.add_argument("--no-dsp", action="store_true", help="multipliers in logic, not DSP blocks")
    parser.add_argument("--no-link", action="store_true",
                        help="do not link folded layers through block RAM (each keeps a register copy of its input)")
    parser.add_argument("--build", metavar="BOARD", default=None,
                        help="also place and route on this board with nextpnr (e.g. icebreaker; implies its family)")
    parser.add_argument("--plot", default=None, help="save a PNG plot here (needs matplotlib)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from nnhdl.boards.targets import get_target
    from nnhdl.convert import load_config, load_model

    family = get_target(args.build).family if args.build else args.family
    graph = load_model(ensure_model(args.model))
    config = load_config(args.config, args.precision, args.softmax)
    title = (f"jet tagger 16-64-32-32-5, {config.default}, softmax {config.softmax}: reuse factor "
             f"(Yosys synth_{family} cells{'' if args.no_link else ', folded layers linked'}"
             f"{', no DSP' if args.no_dsp else ''}{f'; nextpnr on {args.build}' if args.build else ''})")
    table = Table(title=title, title_justify="left")
    cols = ["R", "II", "latency", "multipliers", "ROM bits", "link bits", "register bits", "LUT", "FF", "DSP", "BRAM"]
    if args.build:
        cols += ["LC", "Fmax MHz", "latency µs @Fmax", "inf/s @Fmax", "latency µs @clock", "inf/s @clock"]
    for col in cols + ["convert s", "synth s"]:
        table.add_column(col, justify="right")
    console = Console(width=200)
    rows = []
    for reuse in args.reuse:
        with tempfile.TemporaryDirectory() as tmp:
            row = measure(graph, config, reuse, args.multiplier, tmp, family, link=not args.no_link,
                          dsp=not args.no_dsp, board=args.build)
        rows.append(row)
        cells = [f"{row[k]:,}" for k in ("R", "II", "latency", "multipliers", "rom_bits", "link_bits", "register_bits",
                                         "LUT", "FF", "DSP", "BRAM")]
        if args.build:
            fmax = f"{row['fmax']:.1f}" + ("" if row["timing_passed"] else " (fail)")
            cells += [f"{row['LC']:,}", fmax, f"{row['latency_us_fmax']:.1f}", f"{row['inf_s_fmax']:,.0f}",
                      f"{row['latency_us_clock']:.1f}", f"{row['inf_s_clock']:,.0f}"]
        table.add_row(*cells, f"{row['convert_s']:.1f}", f"{row['synth_s']:.0f}")
        console.print(f"R = {reuse}: II {row['II']}, {row['LUT']:,} LUT, {row['FF']:,} FF, {row['DSP']} DSP, "
                      f"{row['BRAM']} BRAM (synthesis {row['synth_s']:.0f} s)"
                      + (f"; {row['LC']:,} LC, Fmax {row['fmax']:.1f} MHz" if args.build else ""))
    console.print(table)
    if args.plot:
        try:
            plot(rows, args.plot)
            console.print(f"plot: {args.plot}")
        except ImportError:
            console.print("no matplotlib: pip install matplotlib for --plot")


if __name__ == "__main__":
    main()
