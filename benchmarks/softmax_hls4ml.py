"""The jet tagger (16-64-32-32-5) through hls4ml 1.3.0 and through nnhdl, layer by layer.

Converts the trained jet tagger with hls4ml 1.3.0 (Vivado backend, io_parallel, Latency,
``stable`` softmax; its C++ simulation compiled with g++) and with nnhdl under the same per-layer
types (examples/jet_tagger/config.toml; the softmax settings below), runs the test inputs
through both and prints, per softmax setting, how many rows (samples) and values are identical
in the layers before the softmax and in the softmax, and how many softmax rows the hls4ml 0.8
softmax nnhdl used before would have got identical. It measures and prints; it asserts nothing.

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

from jet_model import ensure_model  # noqa: E402  (benchmarks/jet_model.py)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = [
    # label, softmax keys of the output layer
    ("default (1024, fixed<18,8,RND,SAT>)", {}),
    ("table_size 256", {"table_size": 256}),
    ("table_size 4096", {"table_size": 4096}),
    ("all four types fixed<12,4,RND,SAT>",
     {"exp_table": "fixed<12,4,RND,SAT>", "inv_table": "fixed<12,4,RND,SAT>", "exp_accum": "fixed<12,4,RND,SAT>",
      "inv_input": "fixed<12,4,RND,SAT>"}),
]


def renamed_input(keras, model):
    """The same model with its input layer named ``in`` (hls4ml reserves the name ``input``)."""
    layers = [type(layer).from_config(layer.get_config()) for layer in model.layers]
    new = keras.Sequential([keras.Input(model.input_shape[1:], name="in"), *layers], name=model.name)
    for mine, theirs in zip(new.layers, model.layers):
        mine.set_weights(theirs.get_weights())
    return new


def softmax_hls4ml_08(x, in_fmt, op):
    """The softmax nnhdl had before it followed hls4ml 1.3: hls4ml 0.8's ``softmax_stable`` (raw
    logits ``x`` -> raw outputs). ``x - max`` saturated to the input's width, the exp table indexed
    by the top bits of that signed word, sums and the inverse table's index in ``exp_table_t``."""
    from nnhdl.fixed import FixedFormat, Overflow, Rounding, apply_overflow, requantize
    from nnhdl.softmax import _exp_float32, _float32_to_fixed, _top_bits, _value_with_top_bits, table_index_bits, \
        tree_sum

    size = min(op.table_size, 1 << in_fmt.width, 1 << op.exp_fmt.width)
    n = table_index_bits(size)
    xs = np.array([_value_with_top_bits(k, in_fmt, n) for k in range(size)], dtype=np.float32)
    exp_table = _float32_to_fixed(_exp_float32(xs), op.exp_fmt)
    with np.errstate(divide="ignore"):
        ys = np.array([_value_with_top_bits(k, op.exp_fmt, n) for k in range(size)], dtype=np.float32)
        inv_table = _float32_to_fixed(np.float32(1.0) / ys, op.inv_fmt)
    diff_fmt = FixedFormat(in_fmt.width, in_fmt.int_bits, True, Rounding.RND, Overflow.SAT)
    d = apply_overflow(x - x.max(axis=-1, keepdims=True), diff_fmt)
    e = exp_table[_top_bits(d, in_fmt, n)]
    r = inv_table[_top_bits(tree_sum(e, op.exp_fmt), op.exp_fmt, n)]
    return requantize(e * r[..., None], op.exp_fmt.frac_bits + op.inv_fmt.frac_bits, op.fmt)


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
                "max |diff| (LSB)", "former (0.8) softmax: rows / values identical", "hls4ml compile+run"):
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
            softmax, logits = cmp.layers[-1], cmp.layers[-2]
            diff = cmp.differences(softmax.name)
            old = softmax_hls4ml_08(cmp.nnhdl[logits.name], logits.fmt, softmax)
            old_same = cmp.hls4ml[softmax.name] == old.astype(np.float64)
            table.add_row(label, fraction(int(rows_before.sum()), len(x)),
                          fraction(int(np.all(diff == 0, axis=1).sum()), len(x)),
                          fraction(int((diff == 0).sum()), diff.size), f"{np.abs(diff).max():g}",
                          f"{fraction(int(old_same.all(axis=1).sum()), len(x))} / "
                          f"{fraction(int(old_same.sum()), old_same.size)}", f"{seconds:.0f} s")
    Console(width=240).print(table)


if __name__ == "__main__":
    main()
