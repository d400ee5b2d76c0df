"""Amaranth components for network layers.

Each layer is a :class:`amaranth.lib.wiring.Component` with stream ports ``i`` and ``o``
(payload: an array of fixed-point words, element 0 in the low bits) and a ``latency``
attribute; II = 1 (folded layers, :class:`FoldedDense`, :class:`FoldedConv` and
:class:`FoldedConvStream`: one input every ``interval`` cycles) and a low ``o.ready`` holds the whole pipeline.
"""

from .activation import Activation
from .base import PipelinedLayer, stream_signature, word_shape
from .conv import Conv
from .dense import Dense
from .folded import FoldedDense, FoldSchedule, fold_schedule, link_folded
from .folded_conv import FoldedConv, FoldedConvStream
from .network import IO_STYLES, Network, NetworkError
from .pad import Pad
from .pixels import Collect, GlobalPoolStream, PadStream
from .pool import Pool
from .softmax import Argmax, Softmax
from .window import ConvStream, PoolStream, WindowLayer

__all__ = ["Activation", "Argmax", "Collect", "Conv", "ConvStream", "Dense", "FoldSchedule", "FoldedConv", "FoldedConvStream", "FoldedDense", "GlobalPoolStream", "IO_STYLES",
           "Network", "NetworkError", "Pad", "PadStream", "PipelinedLayer", "Pool", "PoolStream", "Softmax",
           "WindowLayer", "fold_schedule", "link_folded", "stream_signature", "word_shape"]
