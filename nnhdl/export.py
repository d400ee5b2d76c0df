"""Verilog and RTLIL export of a Network (or any stream component).

Amaranth builds the netlist and writes RTLIL; the Verilog is Yosys's ``write_verilog`` of that
RTLIL text (:func:`rtlil_to_verilog`), so both files describe the same netlist.

A :class:`~nnhdl.layers.Network` whose layers are separable (see
:attr:`~nnhdl.layers.Network.separable`) is converted one layer at a time: each layer becomes the
module ``<top>.<layer>`` (the name Amaranth gives it inside the whole network too), converted on
its own, and the top module is the network with each layer an instance of its module
(:meth:`~nnhdl.layers.Network.shell`). The layers are built, converted and written as Verilog in
two groups, on two processes when the machine has two cores (:mod:`nnhdl.parallel`; see
:func:`_by_layer_now`). The texts are the same whatever the number of cores. Other components
are converted whole. Python's garbage collector is paused meanwhile (:mod:`nnhdl.gcpause`) and
Amaranth's netlist built with :func:`nnhdl.fast_netlist.fast_netlist`.
"""

import os
import re
from functools import partial

import numpy as np

from amaranth.back import rtlil, verilog
from amaranth.hdl import Fragment, Value

from .fast_netlist import fast_netlist
from .gcpause import paused_gc
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
        return _by_layer(component, top, jobs, verilog=False)[0]
    with paused_gc():
        return _convert(component, top)


def _convert(component, name):
    with fast_netlist():
        return rtlil.convert(component, name=name, emit_src=False)


def _by_layer(network, top, jobs, verilog):
    with paused_gc():  # (the children inherit it)
        return _by_layer_now(network, top, jobs, verilog)


def _by_layer_now(network, top, jobs, verilog):
    """``(RTLIL, Verilog or None)`` of a separable network: one module per layer and the top
    instantiating them.

    The layers are built (if they are not yet) and converted in two groups, in two processes
    when there are two cores: each group's layers are built there (their ``cse`` graphs are
    handed back, so this process builds the other group's layers without searching again),
    converted, and their Verilog written by one Yosys run; the first group also converts the top.
    The groups depend on the layers' weights and sizes only (:func:`_estimated_cost`), so the
    texts are the same on every machine, built beforehand or not."""
    from .layers.dense import remember_graphs

    layers = network.layers
    names = [f"{top}.{name}" for name, _ in layers]
    members = [_member_ports(layer) for _, layer in layers]
    # every layer with logic has a clock and a reset: the ports are known before converting
    guess = {name: (module, ports | {"clk", "rst"}) for (name, _), module, ports in zip(layers, names, members)}
    costs = [_estimated_cost(layer) for _, layer in layers]
    groups = _groups(costs)
    texts, verilogs = [None] * len(layers), []
    results = run_jobs([partial(_convert_group, [(layers[k][1], names[k]) for k in group],
                                (network, guess) if n == 0 else None, top, verilog)
                        for n, group in enumerate(groups)], [sum(costs[k] for k in g) for g in groups], jobs)
    for group, (shell, parts, text, graphs, pid) in zip(groups, results):
        remember_graphs(graphs)
        for k, part in zip(group, parts):
            texts[k] = part
            if pid != os.getpid():  # elaborated in another process: here too (its logic is built
                Fragment.get(layers[k][1], None)  # here, and Amaranth would warn it was never used)
        verilogs.append(text)
        if shell is not None:
            shell_text = shell
    network.timing  # noqa: B018  (every layer is built now: a network with impossible timing is refused)
    network._MustUse__used = True  # (its shell was elaborated instead)
    actual = {name: (module, _ports(text, module)) for (name, _), module, text in zip(layers, names, texts)}
    if actual != guess:  # a layer without a clock or reset: the top again, and one Verilog of all
        shell_text = _convert(network.shell(actual), top)
        whole = shell_text + "".join(texts)
        return whole, (_yosys_verilog(whole) if verilog else None)
    whole = shell_text + "".join(texts)
    if not verilog:
        return whole, None
    first, *others = verilogs
    return whole, first + "".join(_without_header(text) for text in others)


def _convert_group(items, shell, top, verilog):
    """``(shell RTLIL or None, [layer RTLIL], Verilog of them all or None, cse graphs computed,
    process id)`` for ``items`` = ``[(layer, module name)]`` (the layers' top attributes removed:
    only the network is a top); ``shell``: ``(network, ports)`` for the top, or None."""
    from .layers.dense import computed_graphs

    with computed_graphs() as graphs:
        for layer, _ in items:
            layer.latency  # noqa: B018  (builds it, unless it is built)
    shell_text = _convert(shell[0].shell(shell[1]), top) if shell is not None else None
    parts = [_not_top(_convert(layer, module), module) for layer, module in items]
    text = _yosys_verilog((shell_text or "") + "".join(parts)) if verilog else None
    return shell_text, parts, text, graphs, os.getpid()


def _groups(costs):
    """Two groups of layers of about equal cost (longest first, each to the lighter group); one
    if there is one layer."""
    groups, loads = [[], []], [0, 0]
    for k in sorted(range(len(costs)), key=lambda k: -costs[k]):
        g = 0 if loads[0] <= loads[1] else 1
        groups[g].append(k)
        loads[g] += costs[k]
    return [sorted(g) for g in groups if g]


def _member_ports(layer):
    """The port names Amaranth gives a layer's stream members on a top-level module."""
    return {"__".join(str(p) for p in path) for path, _, _ in layer.signature.flatten(layer.signature.create())}


def _not_top(text, module):
    start = text.index(f"module \\{module}\n")
    attribute = text.rfind(_TOP_ATTRIBUTE, 0, start)
    if attribute >= 0:
        text = text[:attribute] + text[attribute + len(_TOP_ATTRIBUTE):]
    return text


def _without_header(verilog):
    """Yosys's Verilog without its leading ``/* Generated by ... */`` comment."""
    if verilog.startswith("/*"):
        verilog = verilog[verilog.index("*/") + 2:].lstrip("\n")
    return verilog


def _ports(text, module):
    """The port names of ``module`` in RTLIL ``text``."""
    start = text.index(f"module \\{module}\n")
    end = text.index("\nend\n", start)
    return set(_PORT.findall(text, start, end))


def _estimated_cost(layer):
    """A layer's share of the building and conversion work, known before it is built: the bits of
    its non-zero weights (times its windows, for a convolution on whole images), else of its
    input and output words."""
    op = getattr(layer, "op", None)
    weight = getattr(op, "weight", None)
    words = sum(len(Value.cast(port.payload)) for port in (layer.i, layer.o))
    if weight is None:
        return 1 + 4 * words
    from .layers.conv import Conv
    fmt = getattr(op, "weight_fmt", None)
    windows = op.size // max(op.n_out, 1) if isinstance(layer, Conv) else 1  # (every output pixel's window)
    return 1 + 4 * words + int(np.count_nonzero(np.asarray(weight))) * (fmt.width if fmt else 8) * max(windows, 1)


def _yosys_verilog(text):
    """Yosys's Verilog of RTLIL ``text`` (Amaranth's own ``write_verilog`` script)."""
    return verilog._convert_rtlil_text(text)


def to_verilog(component, top):
    """Verilog text, same module and ports as :func:`to_rtlil`."""
    return to_rtlil_and_verilog(component, top)[1]


def rtlil_to_verilog(text, component, top):
    """The Verilog of RTLIL ``text`` (from :func:`to_rtlil` of ``component`` with top module
    ``top``), written by Yosys without elaborating ``component`` again; an Amaranth without that
    helper elaborates ``component`` a second time instead."""
    from_rtlil = getattr(verilog, "_convert_rtlil_text", None)
    if from_rtlil is None:  # a future Amaranth without the helper: elaborate again
        with fast_netlist():
            return verilog.convert(component, name=verilog_name(top), emit_src=False)
    return from_rtlil(text)


def to_rtlil_and_verilog(component, top, jobs=None):
    """Both texts from one elaboration (Amaranth's netlist is built once; Yosys writes the Verilog)."""
    if getattr(component, "separable", False) and getattr(verilog, "_convert_rtlil_text", None) is not None:
        return _by_layer(component, verilog_name(top), jobs, verilog=True)
    text = to_rtlil(component, top, jobs)
    with paused_gc():
        return text, rtlil_to_verilog(text, component, top)
