"""Train the jet tagger quantization-aware with HGQ2, with every weight and activation element
learning its own bit width, next to the same network in float.

Same synthetic data and architecture as ``examples/jet_tagger/train.py`` (16 -> 64 -> 32 -> 32 ->
5, ReLU), but every Dense is an HGQ2 ``QDense`` whose input quantizer, kernel and bias have
per-element bit widths trained with HGQ2's EBOPs resource penalty (``beta``): bits that do not
help the loss shrink, many weights end at 0 bits (pruned away) or 1-3 bits. The output layer
gives logits (the softmax is left to the host: argmax of the logits is the class). After
training, ``hgq.utils.trace_minmax`` sets the integer bits of the WRAP activation quantizers
from the training data (HGQ2's required calibration step).

Usage::

    python examples/jet_tagger_hgq/train.py --out DIR [--epochs 30] [--beta 1e-5] [--seed 0]

writes ``DIR/jet_tagger_hgq.keras`` (the HGQ2 model: convert it with no configuration),
``DIR/jet_tagger_float.keras``, ``DIR/X_test.npy``, ``DIR/y_test.npy`` and prints both test
accuracies and how many weights HGQ2 pruned.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from nnhdl.frontend.hgq import weight_bit_histogram

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jet_tagger"))
from train import CLASSES, N_FEATURES, N_TEST, standardized_split, train_float  # noqa: E402


def build_hgq_model(keras, beta):
    """The jet tagger with HGQ2 layers: kernels and biases KBI (SAT_SYM), activations KIF (WRAP),
    heterogeneous (one format per weight / per activation element)."""
    from hgq.config import LayerConfigScope, QuantizerConfigScope
    from hgq.layers import QDense

    with QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"), \
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP"), \
            LayerConfigScope(enable_ebops=True, beta0=beta):
        return keras.Sequential([
            keras.Input((N_FEATURES,), name="input"),
            QDense(64, activation="relu", name="fc1"),
            QDense(32, activation="relu", name="fc2"),
            QDense(32, activation="relu", name="fc3"),
            QDense(len(CLASSES), name="output"),
        ], name="jet_tagger_hgq")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    parser.add_argument("--beta", type=float, default=1e-5, help="HGQ2's EBOPs penalty (default 1e-5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for data and training (default 0)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from hgq.utils import trace_minmax

    start = time.monotonic()
    X_train, y_train, X_test, y_test = standardized_split(args.seed)

    floating = train_float(keras, X_train, y_train, args.epochs, args.seed)
    float_acc = float(np.mean(floating.predict(X_test, verbose=0).argmax(axis=1) == y_test))

    keras.utils.set_random_seed(args.seed)
    model = build_hgq_model(keras, args.beta)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(X_train, y_train, batch_size=256, epochs=args.epochs, validation_split=0.1, verbose=0)
    trace_minmax(model, X_train, batch_size=4096)
    hgq_acc = float(np.mean(np.asarray(model(X_test, training=False)).argmax(axis=1) == y_test))

    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "jet_tagger_hgq.keras")
    floating.save(args.out / "jet_tagger_float.keras")
    np.save(args.out / "X_test.npy", X_test)
    np.save(args.out / "y_test.npy", y_test)
    hist = weight_bit_histogram(model)
    total = sum(hist.values())
    print(f"jet_tagger_hgq: {args.epochs} epochs, beta {args.beta:g}, seed {args.seed}: float test accuracy "
          f"{float_acc:.4f}, HGQ2 {hgq_acc:.4f} on {N_TEST} jets; kernel bits "
          f"{', '.join(f'{b}: {n}' for b, n in hist.items())} ({hist.get(0, 0) / total:.0%} pruned) "
          f"({time.monotonic() - start:.1f} s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
