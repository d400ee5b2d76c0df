"""Train the hls4ml-style jet tagger: 16 inputs -> Dense 64 ReLU -> Dense 32 ReLU -> Dense 32
ReLU -> Dense 5 softmax (Keras layers ``fc1``, ``fc2``, ``fc3``, ``output``; model ``jet_tagger``).

The public hls4ml jet data set (OpenML ``hls4ml_lhc_jets_hlf``) cannot be downloaded here, so
this script trains on a **synthetic** stand-in: five classes named after the real ones (gluon,
light quark, W, Z, top) and 16 features computed from a few hidden "jet" quantities (mass,
transverse momentum, 1/2/3-prong likeness, particle multiplicity, a pile-up-like nuisance) by
nonlinear, correlated functions plus noise. Its class overlaps mimic the real task (gluon vs
quark and W vs Z are hard to separate; a fraction of top jets look like W jets), so a float
network reaches roughly 75-80 % test accuracy rather than 100 %. The features are standardized
with the training set's mean and standard deviation. Everything is deterministic for a given
``--seed`` (the data generator and ``keras.utils.set_random_seed``). The numbers mean nothing
physically; the data only give the network realistic, non-trivial weights and activations.

Usage::

    python examples/jet_tagger/train.py --out DIR [--epochs 20] [--seed 0]

writes ``DIR/jet_tagger.keras``, ``DIR/X_test.npy`` (float32, shape (2000, 16)),
``DIR/y_test.npy`` (int64 labels 0..4) and prints the float test accuracy.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

CLASSES = ("g", "q", "W", "Z", "t")
N_FEATURES = 16
N_TRAIN = 40000
N_TEST = 2000


def _class_latents(rng, label, n):
    """Hidden jet quantities for ``n`` jets of class ``label``."""
    pt = rng.lognormal(np.log(900.0), 0.25, n)                      # GeV, shared by all classes
    pileup = rng.gamma(4.0, 0.5, n)                                  # nuisance, shifts mass and multiplicity
    if label in (0, 1):                                              # gluon, light quark: one prong
        mass = pt * rng.lognormal(np.log(0.045 if label == 0 else 0.03), 0.45, n)
        prongs = rng.normal(1.0, 0.35, n)
        mult = rng.poisson(42 if label == 0 else 27, n)
    elif label in (2, 3):                                            # W, Z: two prongs at 80 / 91 GeV
        peak = 80.4 if label == 2 else 91.2
        mass = rng.normal(peak, 9.0, n)
        lost = rng.random(n) < 0.15                                  # lost a prong: looks like a quark
        mass[lost] = pt[lost] * rng.lognormal(np.log(0.035), 0.4, lost.sum())
        prongs = np.where(lost, rng.normal(1.2, 0.4, n), rng.normal(2.0, 0.35, n))
        mult = rng.poisson(33 if label == 2 else 35, n)
    else:                                                            # top: three prongs at 173 GeV
        mass = rng.normal(173.0, 16.0, n)
        partial = rng.random(n) < 0.3                                # only the W inside the jet
        mass[partial] = rng.normal(82.0, 11.0, partial.sum())
        prongs = np.where(partial, rng.normal(2.1, 0.4, n), rng.normal(3.0, 0.4, n))
        mult = rng.poisson(50, n)
    mass = np.abs(mass) + 2.0 * pileup
    mult = mult + rng.poisson(2.0 * pileup)
    return pt, mass, prongs, mult.astype(np.float64), pileup


def _features(rng, pt, mass, prongs, mult, pileup):
    """16 correlated, nonlinear functions of the hidden quantities, with noise."""
    n = len(pt)
    noise = lambda s: rng.normal(0.0, s, n)  # noqa: E731
    rho = np.log(mass ** 2 / pt ** 2 + 1e-6)
    tau21 = np.clip(1.0 / (1.0 + np.exp(2.2 * (prongs - 1.5))) + noise(0.08), 0.01, 1.0)
    tau32 = np.clip(1.0 / (1.0 + np.exp(2.2 * (prongs - 2.5))) + noise(0.08), 0.01, 1.0)
    c2 = 0.1 + 0.25 * tau21 * np.exp(-mass / 150.0) + noise(0.02)
    d2 = c2 / np.clip(tau21, 0.05, None) ** 1.5 + noise(0.1)
    cols = [
        np.log(mass) + noise(0.05),
        mass / pt + noise(0.01),
        rho + noise(0.2),
        tau21,
        tau32,
        tau21 * tau32 + noise(0.03),
        c2,
        d2,
        np.sqrt(mult) + noise(0.3),
        mult / (1.0 + 0.02 * mass) + noise(1.0),
        np.log(pt) + noise(0.05),
        np.sin(0.04 * mass) + 0.3 * tau21 + noise(0.15),
        np.tanh((mass - 100.0) / 40.0) * (1.5 - tau32) + noise(0.1),
        pileup + 0.1 * mult / 10.0 + noise(0.5),
        np.log1p(mass * tau21) + noise(0.1),
        (prongs - 2.0) ** 2 + 0.5 * rho + noise(0.6),
    ]
    return np.stack(cols, axis=1)


def make_dataset(n, seed):
    """``(X, y)``: ``n`` jets (balanced classes, shuffled), raw (unstandardized) features."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), -(-n // len(CLASSES)))[:n]
    rng.shuffle(labels)
    X = np.empty((n, N_FEATURES))
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(labels == c)
        X[idx] = _features(rng, *_class_latents(rng, c, len(idx)))
    return X, labels.astype(np.int64)


def standardized_split(seed):
    """Training and test jets (``N_TRAIN``, ``N_TEST``), features standardised with the training
    set's mean and deviation, as float32."""
    X, y = make_dataset(N_TRAIN + N_TEST, seed)
    X_train, y_train, X_test, y_test = X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    return (((X_train - mean) / std).astype(np.float32), y_train,
            ((X_test - mean) / std).astype(np.float32), y_test)


def build_model(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((N_FEATURES,), name="input"),
        L.Dense(64, activation="relu", name="fc1"),
        L.Dense(32, activation="relu", name="fc2"),
        L.Dense(32, activation="relu", name="fc3"),
        L.Dense(len(CLASSES), activation="softmax", name="output"),
    ], name="jet_tagger")


def train_float(keras, X_train, y_train, epochs, seed):
    """The float jet tagger (:func:`build_model`) trained on standardised jets."""
    keras.utils.set_random_seed(seed)
    model = build_model(keras)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=2e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X_train, y_train, batch_size=256, epochs=epochs, validation_split=0.1, shuffle=True, verbose=0)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for data and training (default 0)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    start = time.monotonic()
    X_train, y_train, X_test, y_test = standardized_split(args.seed)

    model = train_float(keras, X_train, y_train, args.epochs, args.seed)
    probs = model.predict(X_test, batch_size=1024, verbose=0)
    accuracy = float(np.mean(probs.argmax(axis=1) == y_test))

    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "jet_tagger.keras")
    np.save(args.out / "X_test.npy", X_test)
    np.save(args.out / "y_test.npy", y_test)
    print(f"jet_tagger: {args.epochs} epochs, seed {args.seed}, {N_TRAIN} synthetic training jets, "
          f"float test accuracy {accuracy:.4f} on {N_TEST} jets ({time.monotonic() - start:.1f} s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
