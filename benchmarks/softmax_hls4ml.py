"""The jet tagger (16-64-32-32-5) through hls4ml 1.3.0 and through nnhdl, layer by layer.

Converts the trained jet tagger with hls4ml 1.3.0 (Vivado backend, io_parallel, Latency,
``stable`` softmax; its C++ simulation compiled with g++) and with nnhdl under the same per-layer
types (examples/jet_tagger/config.toml; the softmax settings below), runs the test inputs
through both and prints, per softmax setting, how many rows (samples) and values are identical
in the layers before the softmax and in the softmax. It measures and prints; it asserts nothing.

Usage: python benchmarks/softmax_hls4ml.py [--model build/jet_tagger/jet_tagger.keras] [-n 2000]
(the model is trained with examples/jet_tagger/train.py first if it does not exist; needs
``pip install -e '.[keras,compare]'`` and g++).
"""

import argparse
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = [
    # label, softmax keys of the output layer
    ("default: 1024 entries, tables fixed<18,8,RND,SAT>", {}),
    ("table_size 256", {"table_size": 256}),
    ("table_size 4096", {"table_size": 4096}),
    ("exp/inv tables fixed<12,4,RND,SAT>, sum fixed<12,4,RND,SAT>",
     {"exp_table": "fixed<12,4,RND,SAT>", "inv_table": "fixed<12,4,RND,SAT>", "exp_accum": "fixed<12,4,RND,SAT>",
      "inv_input": "fixed<12,4,RND,SAT>"}),
]


def ensure_model(path):
    import subprocess
    path = Path(path)
    if not path.exists():
        print(f"training the jet tagger into {path.parent} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "examples/jet_tagger/train.py"), "--out", str(path.parent)],
                       check=True)
    return path


def renamed_input(keras, model):
    """The same model with its input layer named ``in`` (hls4ml reserves the name ``input``)."""
    x = keras.Input(model.input_shape[1:], name="in")
    y = x
    for layer in model.layers:
        y = layer(y)
    return keras.Model(x, y, name=model.name)


def fraction(n, total):
    return f"{n}/{total} ({100.0 * n / total:.1f} %)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "build/jet_tagger/jet_tagger.keras")
    parser.add_argument("-n", type=int, default=2000, help="test inputs (default 2000, X_test.npy's size)")
    args = parser.parse_args(argv)

    import hls4ml
    import keras

    from tests.compare.harness import Comparison

    model_path = ensure_model(args.model)
    model = renamed_input(keras, keras.models.load_model(model_path))
    x = np.load(model_path.parent / "X_test.npy")[: args.n].astype(np.float32)
    base = tomllib.loads((ROOT / "examples/jet_tagger/config.toml").read_text())
    if "input" in base.get("layer", {}):
        base["layer"]["in"] = base["layer"].pop("input")

    table = Table(title=f"jet tagger, {len(x)} inputs: hls4ml {hls4ml.__version__} vs nnhdl (values identical "
                        "bit for bit)")
    for col in ("softmax setting", "fc1..output rows", "softmax rows identical", "softmax values identical",
                "max |diff| (LSB)", "hls4ml compile+run"):
        table.add_column(col)
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, keys) in enumerate(SETTINGS):
            cfg = {**base, "layer": {name: dict(v) for name, v in base.get("layer", {}).items()}}
            cfg["layer"].setdefault("output", {}).update(keys)
            t0 = time.perf_counter()
            cmp = Comparison(hls4ml, model, cfg, x, Path(tmp) / f"s{k}")
            seconds = time.perf_counter() - t0
            before = [op.name for op in cmp.layers[:-1]]
            rows_before = np.all([np.all(cmp.differences(n) == 0, axis=1) for n in before], axis=0)
            diff = cmp.differences(cmp.layers[-1].name)
            table.add_row(label, fraction(int(rows_before.sum()), len(x)),
                          fraction(int(np.all(diff == 0, axis=1).sum()), len(x)),
                          fraction(int((diff == 0).sum()), diff.size), f"{np.abs(diff).max():g}", f"{seconds:.0f} s")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
