"""Area, Fmax, latency and build time on real FPGA targets (iCE40UP5K on the iCEBreaker, ECP5-85F
on the ULX3S), with and without DSP mapping, built with the YoWASP Yosys/nextpnr (timing harness:
LFSR inputs, outputs folded to an LED, so nothing is optimised away).

Networks: a 16-12-10 MLP trained here on scikit-learn's 8x8 digits (averaged to 4x4), and the
6-4-argmax classifier of examples/custom_design; and, synthesis only, the jet tagger at two
precisions (it does not fit these devices fully parallel at 16 bits). It measures and prints;
it asserts nothing.

Usage: python benchmarks/boards.py [--quick]
"""

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples/custom_design"))


def digits_mlp():
    import keras
    from sklearn.datasets import load_digits

    from nnhdl.config import PrecisionConfig
    from nnhdl.convert import compile_model, load_model

    keras.utils.set_random_seed(1)
    d = load_digits()
    x = (d.images.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16) / 16.0).astype("float32")
    model = keras.Sequential([keras.Input((16,), name="pixels"), keras.layers.Dense(12, activation="relu", name="fc1"),
                              keras.layers.Dense(10, name="fc2")], name="digits_mlp")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, d.target, epochs=30, verbose=0)
    config = PrecisionConfig.from_dict({"precision": "fixed<8,3,RND,SAT>", "softmax": "argmax",
                                        "layer": {"pixels": {"result": "ufixed<6,0,RND,SAT>"},
                                                  "fc1": {"weight": "fixed<6,2,RND,SAT>"},
                                                  "fc2": {"weight": "fixed<6,2,RND,SAT>"}}})
    return compile_model(load_model(model), config)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the custom-design classifier")
    args = parser.parse_args()

    from dense_in_my_design import make_graph

    from nnhdl.boards.build import build_bitstream, synthesize
    from nnhdl.boards.targets import get_target
    from nnhdl.config import PrecisionConfig
    from nnhdl.convert import convert, load_design, load_model

    networks = [("classifier 6-4-argmax", make_graph())]
    if not args.quick:
        networks.insert(0, ("digits MLP 16-12-10", digits_mlp()))
    variants = [("csd", True), ("dsp", True), ("dsp", False)]
    boards = ["icebreaker", "ulx3s-85f"]

    table = Table(title="nnhdl on FPGAs (timing harness, YoWASP Yosys + nextpnr)", title_justify="left")
    for col in ("network", "multiplier", "DSP mapping", "target", "LUT", "FF", "DSP", "BRAM", "Fmax MHz",
                "latency", "latency ns", "build s"):
        table.add_column(col, justify="left" if col in ("network", "multiplier", "DSP mapping", "target") else "right")
    with tempfile.TemporaryDirectory(dir=ROOT / "build" if (ROOT / "build").exists() else None) as tmp:
        for label, graph in networks:
            for multiplier, dsp in variants:
                out = Path(tmp) / f"{graph.name}-{multiplier}"
                if not (out / "graph.json").exists():
                    convert(graph, out, multiplier=multiplier)
                design = load_design(out)
                for board in boards:
                    target = get_target(board)
                    t0 = time.perf_counter()
                    try:
                        r = build_bitstream(design, target, out / f"build-{board}-{dsp}", dsp=dsp,
                                            allow_timing_fail=True).report
                    except ValueError as e:
                        table.add_row(label, multiplier, "yes" if dsp else "no", board, "-", "-", "-", "-", "-", "-",
                                      "-", f"{time.perf_counter() - t0:.0f}")
                        print(f"{label} on {board}: {e}", file=sys.stderr)
                        continue
                    res = r["resources"]
                    cell = lambda k: f"{res[k]['used']:,}/{res[k]['available']:,}" if k in res else "-"  # noqa
                    table.add_row(label, multiplier, "yes" if dsp else "no", board, cell("LUT"), cell("FF"),
                                  cell("DSP"), cell("BRAM"), f"{r['fmax_mhz']:.1f}", str(r["latency_cycles"]),
                                  f"{r['latency_ns_at_fmax']:.1f}", f"{time.perf_counter() - t0:.0f}")
        if not args.quick:
            jet = ROOT / "build/jet_tagger/jet_tagger.keras"
            if jet.exists():
                for precision in ("fixed<8,3,RND,SAT>", "fixed<6,2,RND,SAT>"):
                    out = Path(tmp) / f"jet-{precision[6:9]}"
                    convert(load_model(jet), out, config=PrecisionConfig.from_dict({"precision": precision}))
                    design = load_design(out, build=False)
                    t0 = time.perf_counter()
                    _, need = synthesize(out / design.report["files"]["verilog"], design.top, "ecp5", out / "synth")
                    have = get_target("ecp5-85k").resources
                    table.add_row(f"jet tagger {precision}", "csd", "yes", "ecp5-85k (synthesis only)",
                                  f"{need['LUT']:,}/{have['LUT']:,}", f"{need['FF']:,}/{have['FF']:,}",
                                  f"{need['DSP']}", f"{need['BRAM']}", "-", str(design.report["latency_cycles"]), "-",
                                  f"{time.perf_counter() - t0:.0f}")
    Console(width=220).print(table)
    print(f"Machine: {platform.machine()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}. "
          "Fmax from nextpnr (speed grade 6 for ECP5); latency ns = cycles / Fmax; LUT = logic cells (iCE40) or "
          "TRELLIS_COMB (ECP5); iCE40 FF from synthesis.")


if __name__ == "__main__":
    main()
