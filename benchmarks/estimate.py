"""Resource estimates (nnhdl.estimate) against Yosys: fit and check.

Converts a set of networks (Keras MLPs and CNNs with Glorot-initialised weights at several widths,
multiplier styles, activations and accumulators, plus the trained jet tagger), synthesises each
with Yosys (synth_ice40 and synth_ecp5, as `nnhdl synth` does) and prints, per design and
family, the logic bits nnhdl counts, the estimated and the synthesised LUTs and flip-flops, and the
error. With --fit it also fits the per-family coefficients (least squares on the designs marked
"fit", checked on the others) and prints them for nnhdl/estimate.py. It measures and prints; it
asserts nothing.

Usage: python benchmarks/estimate.py [--fit] [--families ice40 ecp5] [--quick]
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from jet_model import ensure_model  # noqa: E402  (benchmarks/jet_model.py)

ROOT = Path(__file__).resolve().parents[1]


def _mlp(keras, sizes, activation, seed):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((sizes[0],))]
    for k, n in enumerate(sizes[1:]):
        last = k == len(sizes) - 2
        layers.append(keras.layers.Dense(n, activation="linear" if last else activation, name=f"fc{k + 1}"))
    return keras.Sequential(layers)


def _cnn(keras, seed):
    keras.utils.set_random_seed(seed)
    L = keras.layers
    return keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu", name="conv1"),
                             L.MaxPooling2D(2, name="pool1"), L.Flatten(name="flat"), L.Dense(10, name="fc1")])


def designs(keras, quick=False):
    """(label, role, model, config, options) — role "fit" or "check"."""
    out = [
        ("MLP 16-8 fixed<8,3> relu cse", "fit", _mlp(keras, [16, 8], "relu", 1), {"precision": "fixed<8,3>"}, {}),
        ("MLP 16-16-4 fixed<10,4> relu cse", "fit", _mlp(keras, [16, 16, 4], "relu", 2), {"precision": "fixed<10,4>"}, {}),
        ("MLP 16-16-4 fixed<10,4> relu csd", "fit", _mlp(keras, [16, 16, 4], "relu", 2), {"precision": "fixed<10,4>"},
         {"multiplier": "csd"}),
        ("MLP 8-24-8 fixed<6,2,RND,SAT> relu", "fit", _mlp(keras, [8, 24, 8], "relu", 3),
         {"precision": "fixed<6,2,RND,SAT>"}, {}),
        ("MLP 12-12-3 fixed<12,4> accum fixed<16,6,RND,SAT>", "fit", _mlp(keras, [12, 12, 3], "relu", 4),
         {"precision": "fixed<12,4>", "layer": {"fc1": {"accum": "fixed<16,6,RND,SAT>"},
                                               "fc2": {"accum": "fixed<16,6,RND,SAT>"}}}, {}),
        ("MLP 10-10-5 fixed<8,3> argmax", "fit", _mlp(keras, [10, 10, 5], "relu", 5),
         {"precision": "fixed<8,3>", "softmax": "argmax"}, {}),
        ("CNN 8x8 conv3x3x4 pool fc10 fixed<8,3> stream", "check", _cnn(keras, 6), {"precision": "fixed<8,3>"},
         {"io": "stream"}),
        ("MLP 32-16-8 fixed<7,3> relu, --family ecp5", "check", _mlp(keras, [32, 16, 8], "relu", 7),
         {"precision": "fixed<7,3>"}, {"family": "ecp5", "clock_mhz": 100.0}),
        # folded layers (reuse factor): lanes, multiplexers and DSP-absorbed product registers
        ("MLP 16-16-4 fixed<8,3> --reuse 4", "check", _mlp(keras, [16, 16, 4], "relu", 8),
         {"precision": "fixed<8,3>"}, {"reuse": 4}),
        ("MLP 32-16-8 fixed<8,3> --reuse 64", "check", _mlp(keras, [32, 16, 8], "relu", 9),
         {"precision": "fixed<8,3>"}, {"reuse": 64}),
        ("CNN 8x8 conv3x3x4 pool fc10 fixed<8,3> stream --reuse 8", "check", _cnn(keras, 10),
         {"precision": "fixed<8,3>"}, {"io": "stream", "reuse": 8}),
    ]
    if not quick:
        jet = ensure_model(str(ROOT / "build/jet_tagger/jet_tagger.keras"))
        out.append(("jet tagger 16-64-32-32-5 fixed<6,2,RND,SAT>", "check", jet,
                    {"precision": "fixed<6,2,RND,SAT>"}, {}))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="fit the coefficients and print them")
    parser.add_argument("--families", nargs="+", default=["ice40", "ecp5"])
    parser.add_argument("--quick", action="store_true", help="leave out the jet tagger")
    args = parser.parse_args()

    import keras

    from nnhdl.boards.build import BuildError, synthesize
    from nnhdl.config import PrecisionConfig
    from nnhdl.convert import convert, load_model
    from nnhdl.estimate import COEFFICIENTS, estimate_layer, estimate_queue, rom_luts

    rows = []
    console = Console()
    for label, role, model, config, options in designs(keras, args.quick):
        with tempfile.TemporaryDirectory() as tmp:
            design = convert(load_model(model), Path(tmp) / "o", config=PrecisionConfig.from_dict(config), **options)
            layers = [e for e in design.report["layers"] if "latency_cycles" in e]
            bits = {k: sum(e["logic_bits"][k] for e in layers) for k in ("add", "compare", "mux")}
            regs = sum(e["register_bits"] for e in layers)
            adders = sum(e.get("adders", 0) for e in layers)
            for family in args.families:
                t0 = time.perf_counter()
                work = ROOT / "build" / "estimate" / f"{len(rows):02d}-{family}"
                try:
                    cells, used = synthesize(Path(tmp) / "o" / design.report["files"]["verilog"], design.top, family,
                                             work)
                except BuildError as e:
                    console.print(f"{label} [{family}]: {e}")
                    continue
                est = [estimate_layer(e, family) for e in layers]
                est.append(estimate_queue(design.report.get("output_queue"), family))  # credit flow control
                # (beyond the coefficients: the folded layers' weight ROMs and the output queue)
                extra = sum(rom_luts(e, family) for e in layers) + est[-1]["LUT"]
                rows.append(dict(label=label, role=role, family=family, bits=bits, adders=adders, regs=regs, extra=extra,
                                 lut=used["LUT"], ff=used["FF"], est_lut=sum(p["LUT"] for p in est),
                                 est_ff=sum(p["FF"] for p in est), seconds=time.perf_counter() - t0))
                console.print(f"{label} [{family}]: Yosys {used['LUT']} LUT {used['FF']} FF; estimate "
                              f"{rows[-1]['est_lut']} LUT {rows[-1]['est_ff']} FF ({rows[-1]['seconds']:.0f} s)")
    coefficients = COEFFICIENTS
    if args.fit:
        coefficients = {}
        for family in args.families:
            fit = [r for r in rows if r["family"] == family and r["role"] == "fit"]
            a = np.array([[r["bits"]["add"], r["bits"]["compare"], r["bits"]["mux"], r["adders"]] for r in fit], float)
            b = np.array([r["lut"] - r["extra"] for r in fit], float)
            x, *_ = np.linalg.lstsq(a, b, rcond=None)
            x = np.clip(x, 0, None)
            coefficients[family] = dict(zip(("add", "compare", "mux", "adder"), (round(float(v), 3) for v in x)))
        console.print(f"fitted coefficients: {coefficients}")
    console = Console(width=200)
    table = Table(title=f"nnhdl estimates vs Yosys ({platform.node()}, {time.strftime('%Y-%m-%d')})",
                  title_justify="left")
    for col in ("design", "fit/check", "family", "adder/cmp/mux bits", "Yosys LUT", "estimate LUT", "error",
                "Yosys FF", "estimate FF", "error"):
        table.add_column(col, justify="left" if col in ("design", "family", "fit/check") else "right")
    for r in rows:
        c = coefficients[r["family"]]
        est = sum(c[k] * r["bits"][k] for k in ("add", "compare", "mux")) + c["adder"] * r["adders"] + r["extra"]
        table.add_row(r["label"], r["role"], r["family"], "/".join(str(r["bits"][k]) for k in ("add", "compare", "mux")),
                      f"{r['lut']:,}", f"{est:,.0f}", f"{est / max(r['lut'], 1) - 1:+.0%}", f"{r['ff']:,}",
                      f"{r['est_ff']:,}", f"{r['est_ff'] / max(r['ff'], 1) - 1:+.0%}")
    console.print(table)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
