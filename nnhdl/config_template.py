"""The editable default precision configuration of a model (``nnhdl config MODEL``): every layer
listed with the formats it would get. Each op kind writes its own table
(``OpKind.config_entry``, :mod:`nnhdl.ops`); this module writes the header and asks them."""

import json
import re

from .config import PrecisionConfig
from .fixed import FixedFormat
from .ops.registry import kind_of
from .passes import PassError, drop_dropout, fold_batchnorm

__all__ = ["config_template", "TemplateContext"]


def _toml_key(name):
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


class TemplateContext:
    """What an op kind's ``config_entry`` may ask about the layer ``origin`` (whose ops are
    ``ops``): the configuration, the graph after Dropout is dropped and BatchNormalization folded
    (``folded``: what a layer feeds), and the lines of its keys."""

    def __init__(self, config, folded, origin, ops):
        self.config, self.folded, self.origin, self.ops = config, folded, origin, ops
        self.default = str(config.default)

    def value(self, key, fallback=None):
        v, _ = self.config.get(self.origin, key, fallback)
        return v if isinstance(v, (int, str)) and not isinstance(v, FixedFormat) else str(v)

    def line(self, key, pad=None):
        """``key = "value"`` (``pad`` replaces the key's spelling, to align the ``=``)."""
        return f"{pad or key} = \"{self.value(key)}\""

    def accum_line(self):
        acc = self.config.get(self.origin, "accum")[0]
        return f"accum  = \"{acc}\"" if acc is not None else "# accum = \"fixed<32,12>\"   # unset: exact"

    def result_lines(self, layer, fused_into=None):
        """The ``result`` line of ``layer``; commented out when the value feeds a fused activation."""
        value, explicit = self.config.get(layer, "result")
        if fused_into and not explicit:
            return [f"# result = \"{self.default}\"   # unset: the sum stays exact into '{fused_into}', which is "
                    "fused into this layer"]
        return [f"result = \"{value}\""]


def config_template(graph, config=None):
    """The editable default configuration for a float graph: every layer listed with the formats
    it would get (exact accumulators and values feeding a fused activation left commented out)."""
    config = config or PrecisionConfig()
    try:  # what a Dense feeds once Dropout is dropped and BatchNormalization folded
        folded = fold_batchnorm(drop_dropout(graph), config)
    except PassError:
        folded = drop_dropout(graph)
    lines = [
        f"# nnhdl precision configuration for {graph.meta.get('source') or graph.name}",
        "# Formats: fixed<W,I[,Q[,O]]> or ufixed<...> (also ap_fixed<W,I,AP_Q,AP_O>): W bits in all, I of them",
        "# integer bits including the sign. Q (rounding): TRN (default), TRN_ZERO, RND, RND_ZERO, RND_INF,",
        "# RND_MIN_INF, RND_CONV. O (overflow): WRAP (default), SAT, SAT_ZERO, SAT_SYM.",
        "# \"auto\": integer bits from the constants' or the values' range, at the default width.",
        "# accum (hls4ml's accum_t): unset = exact; set, products and the running sum are cast to it.",
        f"precision = \"{config.default}\"",
        f"softmax = \"{config.softmax}\"   # \"table\" (hls4ml 1.3's stable softmax) or \"argmax\" "
        "(index of the largest)",
        f"io = \"{config.io or 'parallel'}\"   # \"parallel\" (whole tensor per cycle) or \"stream\" (images one pixel per cycle)",
    ]
    by_origin = {}
    for op in graph.ops:
        by_origin.setdefault(op.origin or op.name, []).append(op)
    for origin, ops in by_origin.items():
        ctx = TemplateContext(config, folded, origin, ops)
        desc, body = kind_of(ops[0]).config_entry(ops[0], ctx)
        for op in ops[1:]:  # one Keras layer may be several ops (a Dense and its softmax)
            if kind_of(op).joins_layer_entry:
                body = body + kind_of(op).config_entry(op, ctx)[1]
        lines.append("")
        lines.append(f"[layer.{_toml_key(origin)}]   # {desc}" if body else f"# [layer.{_toml_key(origin)}]   # {desc}")
        lines += body
    return "\n".join(lines) + "\n"
