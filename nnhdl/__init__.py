"""nnhdl: trained neural networks to verified, fully pipelined fixed-point Amaranth RTL.

The flow (each step a plain function)::

    graph = nnhdl.convert.load_model("model.keras")         # float IR (imports Keras lazily)
    qgraph = nnhdl.convert.compile_model(graph, config)      # quantized IR
    y = nnhdl.reference.evaluate(qgraph, x)                  # bit-exact reference (raw ints)
    net = nnhdl.layers.Network(qgraph)                       # Amaranth component, net.latency

``import nnhdl`` is light: it imports neither TensorFlow nor Amaranth.
"""

__version__ = "0.1.0"

from .fixed import FixedFormat, Overflow, Rounding, quantize, requantize  # noqa: E402

__all__ = ["FixedFormat", "Overflow", "Rounding", "quantize", "requantize", "__version__"]
