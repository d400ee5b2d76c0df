"""Train a small CNN on scikit-learn's 8x8 handwritten digits: input 8x8x1 -> Conv2D 8 3x3 same
ReLU -> MaxPool 2x2 -> Conv2D 16 3x3 valid ReLU -> Flatten -> Dense 10 logits (Keras layers
``conv1``, ``pool1``, ``conv2``, ``flatten``, ``logits``; model ``digits_cnn``).

The data are ``sklearn.datasets.load_digits`` (1797 images bundled with scikit-learn, no
download): pixel values 0..16 are divided by 16 and clipped to at most 15/16 = 0.9375, so every
input is exactly representable in ``ufixed<8,0>`` (in fact in 4 fractional bits). The split is
75 % training / 25 % test, stratified by class. The network is kept tiny (under 2000
parameters) because it is meant to become fully parallel hardware; it has no softmax, the
predicted class is the arg-max of the logits. Everything is deterministic for a given
``--seed`` (the split and ``keras.utils.set_random_seed``).

Usage::

    python examples/digits_cnn/train.py --out DIR [--epochs 60] [--seed 0]

writes ``DIR/digits_cnn.keras``, ``DIR/X_test.npy`` (float32, shape (450, 8, 8, 1)),
``DIR/y_test.npy`` (int64 labels 0..9), ``DIR/X_train_sample.npy`` (the first 500 training
inputs, for calibrating value ranges) and prints the float test accuracy.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

N_CLASSES = 10
N_CALIBRATION = 500
MAX_PIXEL = 15 / 16  # largest value of ufixed<8,0> that is also a multiple of 1/16


def load_dataset(seed):
    """``(X_train, y_train, X_test, y_test)``: images (N, 8, 8, 1) float32 in [0, 0.9375]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = np.minimum(digits.images / 16.0, MAX_PIXEL).astype(np.float32)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed,
                                                        stratify=y)
    return X_train, y_train, X_test, y_test


def build_model(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 1), name="input"),
        L.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        L.MaxPooling2D(2, name="pool1"),
        L.Conv2D(16, 3, padding="valid", activation="relu", name="conv2"),
        L.Flatten(name="flatten"),
        L.Dense(N_CLASSES, name="logits"),
    ], name="digits_cnn")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for split and training (default 0)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    start = time.monotonic()
    X_train, y_train, X_test, y_test = load_dataset(args.seed)

    keras.utils.set_random_seed(args.seed)
    model = build_model(keras)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(X_train, y_train, batch_size=32, epochs=args.epochs, shuffle=True, verbose=0)
    logits = model.predict(X_test, batch_size=512, verbose=0)
    accuracy = float(np.mean(logits.argmax(axis=1) == y_test))

    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "digits_cnn.keras")
    np.save(args.out / "X_test.npy", X_test)
    np.save(args.out / "y_test.npy", y_test)
    np.save(args.out / "X_train_sample.npy", X_train[:N_CALIBRATION])
    print(f"digits_cnn: {args.epochs} epochs, seed {args.seed}, {len(X_train)} training images, "
          f"{model.count_params()} parameters, float test accuracy {accuracy:.4f} on {len(X_test)} "
          f"images ({time.monotonic() - start:.1f} s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
