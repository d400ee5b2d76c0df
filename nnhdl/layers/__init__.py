"""Amaranth components for network layers.

Each layer is a :class:`amaranth.lib.wiring.Component` with stream ports ``i`` and ``o``
(payload: an array of fixed-point words, element 0 in the low bits) and a ``latency``
attribute; II = 1 and a low ``o.ready`` holds the whole pipeline.
"""

from .activation import Activation
from .base import PipelinedLayer, stream_signature, word_shape
from .dense import Dense
from .network import Network, NetworkError
from .softmax import Argmax, Softmax

__all__ = ["Activation", "Argmax", "Dense", "Network", "NetworkError", "PipelinedLayer", "Softmax",
           "stream_signature", "word_shape"]
