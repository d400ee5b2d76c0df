"""Magnitude pruning in Keras 3 and what it saves in hardware: the jet tagger trained at several
sparsities, each converted with the same precision configuration.

``tensorflow-model-optimization`` (the usual pruning tool) works with Keras 2 only, so the
pruning here is the small :class:`MagnitudePruning` callback below: during training it zeroes
each Dense kernel's smallest-magnitude weights, the pruned fraction ramping up to the target
sparsity, and keeps them at zero after every batch. nnhdl's shift-and-add arithmetic spends
nothing on a zero weight, so adders (and LUTs) fall as sparsity grows.

Usage::

    python examples/pruning/prune.py --out DIR [--sparsities 0 0.5 0.75 0.9] [--epochs 20]

prints, for every sparsity: non-zero weights, fixed-point test accuracy (nnhdl's bit-exact
reference), adders, register bits and latency of the converted design.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jet_tagger"))
from train import N_TEST, N_TRAIN, build_model, make_dataset  # noqa: E402


def magnitude_pruning(keras):
    """The :class:`MagnitudePruning` callback class (Keras is imported by the caller)."""

    class MagnitudePruning(keras.callbacks.Callback):
        """Zero the smallest-magnitude fraction of every kernel: ``sparsity`` ramps linearly from
        0 at epoch ``begin`` to ``target`` at epoch ``end`` (masks recomputed at each epoch
        start, from the weights' magnitudes), and pruned weights are reset to zero after every
        training batch, so they are exactly zero in the saved model."""

        def __init__(self, target, begin=0, end=None):
            super().__init__()
            self.target, self.begin, self.end = float(target), int(begin), end
            self.masks = {}

        def sparsity(self, epoch):
            end = self.end if self.end is not None else max(self.params.get("epochs", 1) - 2, self.begin + 1)
            t = min(max((epoch - self.begin) / max(end - self.begin, 1), 0.0), 1.0)
            return self.target * t

        def kernels(self):
            return [layer.kernel for layer in self.model.layers if getattr(layer, "kernel", None) is not None]

        def on_epoch_begin(self, epoch, logs=None):
            s = self.sparsity(epoch)
            for kernel in self.kernels():
                w = np.abs(kernel.numpy())
                k = int(round(s * w.size))
                mask = np.ones(w.shape, np.float32)
                if k:
                    mask.flat[np.argsort(w, axis=None)[:k]] = 0.0
                self.masks[kernel.path] = mask
            self.apply()

        def on_train_batch_end(self, batch, logs=None):
            self.apply()

        def on_train_end(self, logs=None):
            self.apply()

        def apply(self):
            for kernel in self.kernels():
                mask = self.masks.get(kernel.path)
                if mask is not None:
                    kernel.assign(kernel.numpy() * mask)

    return MagnitudePruning


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.5, 0.75, 0.9])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", type=Path,
                        default=Path(__file__).resolve().parents[1] / "jet_tagger" / "config.toml")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from nnhdl.convert import convert, load_config
    from nnhdl.reference import evaluate

    X, y = make_dataset(N_TRAIN + N_TEST, args.seed)
    X_train, y_train, X_test, y_test = X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    X_train = ((X_train - mean) / std).astype(np.float32)
    X_test = ((X_test - mean) / std).astype(np.float32)
    pruning = magnitude_pruning(keras)
    config = load_config(args.config)

    print(f"{'sparsity':>8}  {'non-zero weights':>16}  {'fixed acc':>9}  {'adders':>6}  {'reg bits':>8}  latency")
    for sparsity in args.sparsities:
        keras.utils.set_random_seed(args.seed)
        model = build_model(keras)
        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
        model.fit(X_train, y_train, batch_size=256, epochs=args.epochs, verbose=0,
                  callbacks=[pruning(sparsity)] if sparsity > 0 else [])
        out = args.out / f"sparsity_{sparsity:g}"
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "jet_tagger.keras")
        design = convert(out / "jet_tagger.keras", out / "rtl", config=config, force=True)
        raw = np.asarray(evaluate(design.graph, X_test))
        acc = float(np.mean(raw.argmax(axis=1) == y_test))
        nonzero = sum(int(np.count_nonzero(op.weight)) for op in design.graph.ops if getattr(op, "weight", None)
                      is not None)
        totals = design.report["totals"]
        print(f"{sparsity:8.2f}  {nonzero:16d}  {acc:9.4f}  {totals['adders']:6d}  {totals['register_bits']:8d}  "
              f"{design.report['latency_cycles']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
