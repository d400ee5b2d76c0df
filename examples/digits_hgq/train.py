"""Train a small CNN on scikit-learn's 8x8 digits quantization-aware with HGQ2: every weight and
activation element learns its own bit width; nnhdl converts it with no precision configuration.

The network (Keras layers ``conv1``, ``pool1``, ``flatten``, ``logits``; model ``digits_hgq``):
input 8x8x1 -> HGQ2 ``QConv2D`` 8 filters 3x3 ``same`` ReLU -> HGQ2 ``QMaxPooling2D`` 2x2 ->
Flatten -> HGQ2 ``QDense`` 10 logits (no softmax: the class is the argmax). Each Q layer
quantizes its input with its own input quantizer (KIF, RND, WRAP); the kernels and biases are
KBI with SAT_SYM, every weight its own bit width, trained with HGQ2's EBOPs resource penalty
(``--beta``), so bits that do not help shrink and some weights end at 0 bits (pruned).
``hgq.utils.trace_minmax`` then sets the WRAP quantizers' integer bits from the training images
(HGQ2's required calibration).

``--activation-bits element`` (the default) gives every activation element its own format: the
converted design runs with ``--io parallel`` only (a pixel stream needs one format per channel).
``--activation-bits channel`` shares each channel's activation bits over the pixels
(``heterogeneous_axis=(-1,)``), which also converts with ``--io stream``.

The data and split are those of ``examples/digits_cnn/train.py`` (pixels 0, 1/16, ..., 15/16;
75 % / 25 % stratified); everything is deterministic for a given ``--seed``.

Usage::

    python examples/digits_hgq/train.py --out DIR [--epochs 40] [--beta 1e-5]
           [--activation-bits element|channel] [--seed 0]
    nnhdl convert DIR/digits_hgq.keras -o DIR/rtl          # formats from the model: no -c
    nnhdl verify DIR/rtl --sim amaranth --inputs DIR/X_test.npy -n 100
    python examples/digits_hgq/accuracy.py DIR             # nnhdl == HGQ2 on all 1,797 images

writes ``DIR/digits_hgq.keras``, ``DIR/X_test.npy``, ``DIR/y_test.npy``, ``DIR/X_all.npy`` and
``DIR/y_all.npy`` (all 1,797 images) and prints the test accuracy and the weights' bit widths.
"""

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

from nnhdl.frontend.hgq import weight_bit_histogram


def _digits_cnn():
    """examples/digits_cnn/train.py (its data loading), under its own module name."""
    path = Path(__file__).resolve().parents[1] / "digits_cnn" / "train.py"
    spec = importlib.util.spec_from_file_location("digits_cnn_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CNN = _digits_cnn()
N_CLASSES, load_dataset = _CNN.N_CLASSES, _CNN.load_dataset

ACTIVATION_BITS = ("element", "channel")


def build_hgq_model(keras, beta, activation_bits="element"):
    """The HGQ2 CNN; ``activation_bits``: ``"element"`` (one format per activation element) or
    ``"channel"`` (one per channel, shared by the pixels)."""
    from hgq.config import LayerConfigScope, QuantizerConfigScope
    from hgq.layers import QConv2D, QDense, QMaxPooling2D

    if activation_bits not in ACTIVATION_BITS:
        raise ValueError(f"activation_bits must be one of {ACTIVATION_BITS}, not {activation_bits!r}")
    axis = {"heterogeneous_axis": (-1,)} if activation_bits == "channel" else {}
    with QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"), \
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP", **axis), \
            LayerConfigScope(enable_ebops=True, beta0=beta):
        return keras.Sequential([
            keras.Input((8, 8, 1), name="input"),
            QConv2D(8, (3, 3), padding="same", activation="relu", name="conv1"),
            QMaxPooling2D((2, 2), name="pool1"),
            keras.layers.Flatten(name="flatten"),
            QDense(N_CLASSES, name="logits"),
        ], name="digits_hgq")


def train(keras, X_train, y_train, epochs, beta, activation_bits, seed):
    """The trained and calibrated HGQ2 model (deterministic for a given ``seed``)."""
    from hgq.utils import trace_minmax
    keras.utils.set_random_seed(seed)
    model = build_hgq_model(keras, beta, activation_bits)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(X_train, y_train, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    trace_minmax(model, X_train, batch_size=2048)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    parser.add_argument("--beta", type=float, default=1e-5, help="HGQ2's EBOPs penalty (default 1e-5)")
    parser.add_argument("--activation-bits", choices=ACTIVATION_BITS, default="element",
                        help="one activation format per element (default) or per channel (pixel streams)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for split and training (default 0)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    start = time.monotonic()
    X_train, y_train, X_test, y_test = load_dataset(args.seed)
    model = train(keras, X_train, y_train, args.epochs, args.beta, args.activation_bits, args.seed)
    accuracy = float(np.mean(np.asarray(model(X_test, training=False)).argmax(axis=1) == y_test))

    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "digits_hgq.keras")
    np.save(args.out / "X_test.npy", X_test)
    np.save(args.out / "y_test.npy", y_test)
    np.save(args.out / "X_all.npy", np.concatenate([X_train, X_test]))
    np.save(args.out / "y_all.npy", np.concatenate([y_train, y_test]))
    hist = weight_bit_histogram(model)
    total = sum(hist.values())
    print(f"digits_hgq: {args.epochs} epochs, beta {args.beta:g}, {args.activation_bits} activation bits, seed "
          f"{args.seed}: HGQ2 test accuracy {accuracy:.4f} on {len(X_test)} images; kernel bits "
          f"{', '.join(f'{b}: {n}' for b, n in hist.items())} ({hist.get(0, 0) / total:.0%} pruned) "
          f"({time.monotonic() - start:.1f} s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
