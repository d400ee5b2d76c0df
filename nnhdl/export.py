"""Verilog and RTLIL export of a Network (or any stream component).

Amaranth builds the netlist and writes RTLIL; the Verilog is Yosys's ``write_verilog`` of that
RTLIL text (:func:`rtlil_to_verilog`), so both files describe the same netlist.

A :class:`~nnhdl.layers.Network` whose layers are separable (see
:attr:`~nnhdl.layers.Network.separable`) is converted one layer at a time: each layer becomes the
module ``<top>.<layer>`` (the name Amaranth gives it inside the whole network too), converted on
its own, the layers spread over the machine's cores (:mod:`nnhdl.parallel`); the top module is the
network with each layer an instance of its module (:meth:`~nnhdl.layers.Network.shell`). The
text is the same whatever the number of cores. Other components are converted whole.
"""

import re

from amaranth.back import rtlil, verilog

from .cycle_check import fast_cycle_check
from .names import verilog_name
from .parallel import run_jobs

__all__ = ["to_verilog", "to_rtlil", "to_rtlil_and_verilog", "rtlil_to_verilog", "verilog_name"]

# a top-level port as Amaranth writes it: "  wire width 8 input 3 signed \name"
_PORT = re.compile(r"^\s*wire\s+width\s+\d+\s+(?:input|output|inout)\s+\d+\s+(?:signed\s+)?\\(\S+)\s*$", re.M)
_TOP_ATTRIBUTE = "attribute \\top 1\n"


def to_rtlil(component, top, jobs=None):
    """RTLIL text with top module ``top``; ports ``clk``, ``rst`` and the component's stream
    members (``i__payload``, ``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``).
    ``jobs``: processes for a network's layers (default: the cores, see :mod:`nnhdl.parallel`)."""
    top = verilog_name(top)
    if getattr(component, "separable", False):
        return _by_layer(component, top, jobs)
    return _convert(component, top)


def _convert(component, name):
    with fast_cycle_check():
        return rtlil.convert(component, name=name, emit_src=False)


def _by_layer(network, top, jobs):
    """The RTLIL of a separable network: one module per layer, converted in parallel, and the top
    instantiating them."""
    layers = network.layers
    names = [f"{top}.{name}" for name, _ in layers]
    costs = [_cost(layer) for _, layer in layers]
    texts = run_jobs([lambda layer=layer, name=name: _convert(layer, name)
                      for (_, layer), name in zip(layers, names)], costs, jobs)
    modules = {}
    for (name, layer), module, text in zip(layers, names, texts):
        modules[name] = (module, _ports(text, module))
        layer._MustUse__used = True  # (elaborated, maybe in another process: no "never used" warning)
    network._MustUse__used = True
    parts = [_convert(network.shell(modules), top)]
    for module, text in zip(names, texts):
        start = text.index(f"module \\{module}\n")
        attribute = text.rfind(_TOP_ATTRIBUTE, 0, start)  # only the network's module is the top
        if attribute >= 0:
            text = text[:attribute] + text[attribute + len(_TOP_ATTRIBUTE):]
        parts.append(text)
    return "".join(parts)


def _ports(text, module):
    """The port names of ``module`` in RTLIL ``text``."""
    start = text.index(f"module \\{module}\n")
    end = text.index("\nend\n", start)
    return set(_PORT.findall(text, start, end))


def _cost(layer):
    """A layer's share of the conversion work (its logic and register bits)."""
    logic = getattr(layer, "logic_bits", None) or {}
    return 1 + getattr(layer, "register_bits", 0) + sum(logic.values())


def to_verilog(component, top):
    """Verilog text, same module and ports as :func:`to_rtlil`."""
    return to_rtlil_and_verilog(component, top)[1]


def rtlil_to_verilog(text, component, top):
    """The Verilog of RTLIL ``text`` (from :func:`to_rtlil` of ``component`` with top module
    ``top``), written by Yosys without elaborating ``component`` again; an Amaranth without that
    helper elaborates ``component`` a second time instead."""
    from_rtlil = getattr(verilog, "_convert_rtlil_text", None)
    if from_rtlil is None:  # a future Amaranth without the helper: elaborate again
        with fast_cycle_check():
            return verilog.convert(component, name=verilog_name(top), emit_src=False)
    return from_rtlil(text)


def to_rtlil_and_verilog(component, top):
    """Both texts from one elaboration (Amaranth's netlist is built once; Yosys writes the Verilog)."""
    text = to_rtlil(component, top)
    return text, rtlil_to_verilog(text, component, top)
