"""The HGQ2 jet tagger: HGQ2's own quantized forward pass, nnhdl's bit-exact reference (which the
RTL was verified against) and the float model, on the test set.

Usage: python examples/jet_tagger_hgq/accuracy.py DIR   (DIR from train.py, with DIR/rtl converted
from DIR/jet_tagger_hgq.keras)

Prints the three accuracies and checks that nnhdl's outputs equal HGQ2's bit for bit.
"""

import os
import sys
from pathlib import Path

import numpy as np

from nnhdl.convert import load_design
from nnhdl.frontend.keras import keras_predict
from nnhdl.reference import evaluate


def main(directory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import hgq  # noqa: F401  (registers HGQ2's layers)
    import keras

    d = Path(directory)
    x, y = np.load(d / "X_test.npy"), np.load(d / "y_test.npy")
    design = load_design(d / "rtl", build=False)
    raw = np.asarray(evaluate(design.graph, x))
    frac = design.graph.output.fmt.frac_bits
    model = keras.models.load_model(d / "jet_tagger_hgq.keras", compile=False)
    hgq_out = np.asarray(model(x, training=False), dtype=np.float64)
    same = np.all(np.ldexp(hgq_out, frac).astype(object) == raw.astype(object), axis=1)
    floating = keras_predict(d / "jet_tagger_float.keras", x)
    print(f"test jets: {len(x)}")
    print(f"float Keras accuracy:          {np.mean(floating.argmax(axis=1) == y):.4f}")
    print(f"HGQ2 (its own forward pass):   {np.mean(hgq_out.argmax(axis=1) == y):.4f}")
    print(f"nnhdl fixed point (reference): {np.mean(raw.argmax(axis=1) == y):.4f}   "
          f"(latency {design.report['latency_cycles']} cycles, {design.report['totals']['adders']} adders, "
          f"{design.report['totals']['multipliers']} multipliers)")
    print(f"nnhdl outputs equal to HGQ2's, bit for bit: {int(same.sum())} of {len(x)}")
    return 0 if same.all() else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
