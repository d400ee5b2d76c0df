"""Verilog and RTLIL export of a Network (or any stream component).

Amaranth builds the netlist and writes RTLIL once; the Verilog is Yosys's ``write_verilog`` of that
RTLIL text (:func:`rtlil_to_verilog`), so both files describe the same netlist.
"""

from amaranth.back import rtlil, verilog

from .cycle_check import fast_cycle_check
from .names import verilog_name

__all__ = ["to_verilog", "to_rtlil", "to_rtlil_and_verilog", "rtlil_to_verilog", "verilog_name"]


def to_rtlil(component, top):
    """RTLIL text with top module ``top``; ports ``clk``, ``rst`` and the component's stream
    members (``i__payload``, ``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``)."""
    with fast_cycle_check():
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
        with fast_cycle_check():
            return verilog.convert(component, name=verilog_name(top), emit_src=False)
    return from_rtlil(text)


def to_rtlil_and_verilog(component, top):
    """Both texts from one elaboration (Amaranth's netlist is built once; Yosys writes the Verilog)."""
    text = to_rtlil(component, top)
    return text, rtlil_to_verilog(text, component, top)
