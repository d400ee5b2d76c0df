"""Float Keras versus bit-exact fixed point on the jet tagger's test set.

Usage: python examples/jet_tagger/accuracy.py DIR   (DIR from train.py, with DIR/rtl converted)

Prints the float model's test accuracy, the fixed-point design's (from the reference model that
the RTL was verified against), and how often the two agree on the predicted class.
"""

import sys
from pathlib import Path

import numpy as np

from nnhdl.convert import load_design
from nnhdl.frontend.keras import keras_predict
from nnhdl.reference import evaluate, to_real


def main(directory):
    d = Path(directory)
    x, y = np.load(d / "X_test.npy"), np.load(d / "y_test.npy")
    design = load_design(d / "rtl", build=False)
    fixed = to_real(design.graph, evaluate(design.graph, x))
    floating = keras_predict(d / "jet_tagger.keras", x)
    fixed_class = fixed.argmax(axis=1) if fixed.shape[1] > 1 else fixed[:, 0]
    float_class = floating.argmax(axis=1)
    print(f"test jets: {len(x)}")
    print(f"float Keras accuracy:       {np.mean(float_class == y):.4f}")
    print(f"fixed-point accuracy:       {np.mean(fixed_class == y):.4f}   ({design.graph.output.fmt} outputs, "
          f"latency {design.report['latency_cycles']} cycles)")
    print(f"same class as float Keras:  {np.mean(fixed_class == float_class):.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
