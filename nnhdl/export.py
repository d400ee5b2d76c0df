"""Verilog and RTLIL export of a Network (or any stream component).

Amaranth builds the netlist and writes RTLIL once; the Verilog is Yosys's ``write_verilog`` of that
RTLIL text (:func:`rtlil_to_verilog`), so both files describe the same netlist. Meanwhile Python's
garbage collector is paused (:mod:`nnhdl.gcpause`) and Amaranth's netlist is built with
:func:`nnhdl.fast_netlist.fast_netlist` (the same text, faster).

(A network exported one module per layer, the layers converted in two processes, was about 1 s
faster on the 16-bit jet tagger, but that netlist of the 8-bit tagger made Yosys 0.70's
``synth_xilinx -flatten -abc9`` fail an assertion, where the netlist Amaranth writes for the whole
network does not: the export stays whole.)
"""

from amaranth.back import rtlil, verilog

from .fast_netlist import fast_netlist
from .gcpause import paused_gc
from .names import verilog_name

__all__ = ["to_verilog", "to_rtlil", "to_rtlil_and_verilog", "rtlil_to_verilog", "verilog_name"]


def to_rtlil(component, top):
    """RTLIL text with top module ``top``; ports ``clk``, ``rst`` and the component's stream
    members (``i__payload``, ``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``)."""
    with paused_gc(), fast_netlist():
        return rtlil.convert(component, name=verilog_name(top), emit_src=False)


def to_verilog(component, top):
    """Verilog text, same module and ports as :func:`to_rtlil`."""
    return to_rtlil_and_verilog(component, top)[1]


def rtlil_to_verilog(text, component, top):
    """The Verilog of RTLIL ``text`` (from :func:`to_rtlil` of ``component`` with top module
    ``top``), written by Yosys without elaborating ``component`` again; an Amaranth without that
    helper elaborates ``component`` a second time instead."""
    from_rtlil = getattr(verilog, "_convert_rtlil_text", None)
    if from_rtlil is None:  # a future Amaranth without the helper: elaborate again
        with paused_gc(), fast_netlist():
            return verilog.convert(component, name=verilog_name(top), emit_src=False)
    return from_rtlil(text)


def to_rtlil_and_verilog(component, top):
    """Both texts from one elaboration (Amaranth's netlist is built once; Yosys writes the Verilog)."""
    text = to_rtlil(component, top)
    return text, rtlil_to_verilog(text, component, top)
