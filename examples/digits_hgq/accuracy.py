"""The HGQ2 digits CNN: HGQ2's own quantized forward pass against nnhdl's bit-exact reference (which
the RTL is verified against), on all 1,797 digits images, and both accuracies on the test set.

Usage: python examples/digits_hgq/accuracy.py DIR   (DIR from train.py, with DIR/rtl converted
from DIR/digits_hgq.keras: nnhdl convert DIR/digits_hgq.keras -o DIR/rtl)

Prints the accuracies, the design's latency and size, and how many of the 1,797 images give
nnhdl outputs equal to HGQ2's bit for bit; exits 1 unless all of them do.
"""

import os
import sys
from pathlib import Path

import numpy as np

from nnhdl.convert import load_design
from nnhdl.reference import evaluate


def equal_to_hgq(model, graph, x):
    """Per input, whether nnhdl's raw output integers equal HGQ2's float outputs times 2**frac."""
    expected = np.asarray(model(x, training=False), dtype=np.float64)
    raw = np.asarray(evaluate(graph, x))
    scaled = np.ldexp(expected, graph.output.fmt.frac_bits)
    return np.all(scaled.astype(object) == raw.astype(object), axis=1), expected, raw


def main(directory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import hgq  # noqa: F401  (registers HGQ2's layers)
    import keras

    d = Path(directory)
    design = load_design(d / "rtl", build=False)
    model = keras.models.load_model(d / "digits_hgq.keras", compile=False)
    x_all = np.load(d / "X_all.npy")
    same, _, _ = equal_to_hgq(model, design.graph, x_all)
    x, y = np.load(d / "X_test.npy"), np.load(d / "y_test.npy")
    _, hgq_out, raw = equal_to_hgq(model, design.graph, x)
    totals = design.report["totals"]
    io = design.report.get("options", {}).get("io", "parallel")
    print(f"test images: {len(x)}")
    print(f"HGQ2 (its own forward pass):   {np.mean(hgq_out.argmax(axis=1) == y):.4f}")
    print(f"nnhdl fixed point (reference): {np.mean(raw.argmax(axis=1) == y):.4f}   "
          f"({io} I/O, latency {design.report['latency_cycles']} cycles, "
          f"{totals['adders']} adders, {totals['multipliers']} multipliers, {totals['register_bits']} register bits)")
    print(f"nnhdl outputs equal to HGQ2's, bit for bit: {int(same.sum())} of {len(x_all)} images")
    return 0 if same.all() else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
