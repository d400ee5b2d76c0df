"""Train a tiny 1-D CNN to classify synthetic waveforms: 64 samples x 1 channel -> Conv1D 4 k5
valid ReLU -> MaxPool 4 -> Conv1D 8 k3 same ReLU -> global average pool -> Dense 3 logits (Keras
layers ``conv1``, ``pool1``, ``conv2``, ``gap``, ``logits``; model ``waveform_cnn``).

The waveforms are generated here with numpy, like short digitizer traces: class 0 is a damped
sine pulse (random frequency, decay time, phase, start and amplitude), class 1 a square-ish pulse
of random sign, width, start and amplitude with soft edges, class 2 only noise. Every trace gets
a small random baseline and Gaussian noise and is clipped to [-4, 4 - 1/32], so the inputs fit
``fixed<8,3>`` without overflow. The network has no softmax; the predicted class is the arg-max
of the logits. Everything is deterministic for a given ``--seed`` (the generator and
``keras.utils.set_random_seed``).

Usage::

    python examples/waveform_1d/train.py --out DIR [--epochs 40] [--seed 0]

writes ``DIR/waveform_cnn.keras``, ``DIR/X_test.npy`` (float32, shape (1000, 64, 1)),
``DIR/y_test.npy`` (int64 labels 0..2), ``DIR/X_train_sample.npy`` (the first 500 training
inputs, for calibrating value ranges) and prints the float test accuracy.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

CLASSES = ("damped_sine", "square_pulse", "noise")
N_SAMPLES = 64
N_TRAIN = 4000
N_TEST = 1000
N_CALIBRATION = 500
X_MIN, X_MAX = -4.0, 4.0 - 1 / 32  # the range of fixed<8,3>


def make_dataset(n, seed):
    """``(X, y)``: ``n`` traces of shape (64, 1), balanced classes in random order."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    t = np.arange(N_SAMPLES, dtype=np.float64)[None, :]
    u = lambda lo, hi: rng.uniform(lo, hi, (n, 1))
    amp, start = u(1.0, 3.0), u(4.0, 36.0)
    dt = t - start
    # Class 0: a sine switched on at ``start``, decaying with time constant ``tau`` samples.
    tau, freq, phase = u(6.0, 16.0), u(0.08, 0.2), u(0.0, 2 * np.pi)
    sine = np.where(dt >= 0, np.exp(-np.maximum(dt, 0) / tau) * np.sin(2 * np.pi * freq * dt + phase), 0.0)
    # Class 1: a box of random sign and width whose edges rise over about a sample.
    width = u(8.0, 24.0)
    box = rng.choice([-1.0, 1.0], (n, 1)) * 0.5 * (np.tanh(dt / 0.8) - np.tanh((dt - width) / 0.8))
    shape = np.select([labels[:, None] == 0, labels[:, None] == 1], [sine, box], 0.0)
    X = amp * shape + u(-0.2, 0.2) + rng.normal(0.0, 0.3, (n, N_SAMPLES))
    X = np.clip(X, X_MIN, X_MAX).astype(np.float32)[..., np.newaxis]
    return X, labels.astype(np.int64)


def build_model(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((N_SAMPLES, 1), name="input"),
        L.Conv1D(4, 5, strides=1, padding="valid", activation="relu", name="conv1"),
        L.MaxPooling1D(4, name="pool1"),
        L.Conv1D(8, 3, padding="same", activation="relu", name="conv2"),
        L.GlobalAveragePooling1D(name="gap"),
        L.Dense(len(CLASSES), name="logits"),
    ], name="waveform_cnn")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for data and training (default 0)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    start = time.monotonic()
    X, y = make_dataset(N_TRAIN + N_TEST, args.seed)
    X_train, y_train, X_test, y_test = X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]

    keras.utils.set_random_seed(args.seed)
    model = build_model(keras)
    # Weight decay keeps the weights, and with them the activations and logits, small, so that
    # narrow fixed-point formats suffice (without it, conv2's outputs and the logits come out
    # two to three times bigger).
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-2, weight_decay=0.2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(X_train, y_train, batch_size=64, epochs=args.epochs, shuffle=True, verbose=0)
    logits = model.predict(X_test, batch_size=1000, verbose=0)
    accuracy = float(np.mean(logits.argmax(axis=1) == y_test))

    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "waveform_cnn.keras")
    np.save(args.out / "X_test.npy", X_test)
    np.save(args.out / "y_test.npy", y_test)
    np.save(args.out / "X_train_sample.npy", X_train[:N_CALIBRATION])
    print(f"waveform_cnn: {args.epochs} epochs, seed {args.seed}, {N_TRAIN} synthetic training traces, "
          f"{model.count_params()} parameters, float test accuracy {accuracy:.4f} on {N_TEST} "
          f"traces ({time.monotonic() - start:.1f} s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
