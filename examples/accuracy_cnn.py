"""Float Keras versus bit-exact fixed point on a CNN example's test set, and the two I/O styles
of the RTL against each other.

Usage: python examples/accuracy_cnn.py DIR [--sim N]
(DIR from examples/digits_cnn/train.py or examples/waveform_1d/train.py: the one ``.keras``
model, ``X_test.npy``, ``y_test.npy``, and DIR/rtl_parallel and DIR/rtl_stream converted by
``nnhdl convert --io parallel`` / ``--io stream``).

Prints the float model's test accuracy, the fixed-point design's (from the reference model the
RTL is verified against), how often the two agree, and simulates the first N test images
(default 50) through both RTL designs in Amaranth's simulator: their outputs must be identical
(and equal to the reference). Exit code 1 if they are not.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from nnhdl.convert import load_design
from nnhdl.frontend.keras import keras_predict
from nnhdl.reference import evaluate, quantize_inputs, to_real
from nnhdl.sim.amaranth_sim import run_stream


def simulate(design, raw):
    """The RTL's outputs for raw inputs (one row per image), fed at full rate."""
    net = design.network
    beats = raw.reshape(len(raw) * net.in_beats, net.in_words)
    run = run_stream(net, beats, in_fmt=net.in_fmt, out_fmt=net.out_fmt, n_out=net.out_words,
                     transfers_out=len(raw) * net.out_beats)
    return run.outputs.reshape(len(raw), -1), run.cycles


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--sim", type=int, default=50, help="test inputs to simulate in both RTL designs")
    args = parser.parse_args()
    d = Path(args.directory)
    x, y = np.load(d / "X_test.npy"), np.load(d / "y_test.npy")
    designs = {io: load_design(d / f"rtl_{io}") for io in ("parallel", "stream")}
    graph = designs["parallel"].graph
    fixed = to_real(graph, evaluate(graph, x))
    (model,) = d.glob("*.keras")
    floating = keras_predict(model, x)
    fixed_class, float_class = fixed.argmax(axis=1), floating.argmax(axis=1)
    float_acc, fixed_acc = np.mean(float_class == y), np.mean(fixed_class == y)
    print(f"{model.name}: {len(x)} test inputs")
    print(f"float Keras accuracy:       {float_acc:.4f}")
    print(f"fixed-point accuracy:       {fixed_acc:.4f}   ({graph.input.fmt} inputs, {graph.output.fmt} logits; "
          f"{100 * (fixed_acc - float_acc):+.2f} points)")
    print(f"same class as float Keras:  {np.mean(fixed_class == float_class):.4f}")

    n = min(args.sim, len(x))
    raw = quantize_inputs(graph, x[:n])
    expected = evaluate(graph, raw, raw=True).reshape(n, -1)
    outputs = {}
    for io, design in designs.items():
        outputs[io], cycles = simulate(design, raw)
        r = design.report
        print(f"RTL io={io:8s} latency {r['latency_cycles']:4d} cycles, {r['cycles_per_inference']:4d} cycle(s) "
              f"per inference; {n} inputs simulated in {cycles} cycles: "
              f"{'equal to the reference' if np.array_equal(outputs[io], expected) else 'DIFFERENT from the reference'}")
    same = np.array_equal(outputs["parallel"], outputs["stream"])
    print(f"parallel and stream RTL outputs identical on {n} inputs: {'yes' if same else 'NO'}")
    if not same or not np.array_equal(outputs["parallel"], expected):
        sys.exit(1)


if __name__ == "__main__":
    main()
