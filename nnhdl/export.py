"""Verilog and RTLIL export of a Network (or any stream component)."""

import re

from amaranth.back import rtlil, verilog

__all__ = ["to_verilog", "to_rtlil", "verilog_name"]

_IDENT = re.compile(r"[^A-Za-z0-9_]")


def verilog_name(name):
    """``name`` made into a Verilog identifier (``jet-tagger.v2`` -> ``jet_tagger_v2``)."""
    ident = _IDENT.sub("_", str(name)) or "network"
    return ident if not ident[0].isdigit() else "n_" + ident


def to_verilog(component, top):
    """Verilog text with top module ``top`` and ports ``clk``, ``rst``, ``i__payload``, ``i__valid``,
    ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``."""
    return verilog.convert(component, name=verilog_name(top), emit_src=False)


def to_rtlil(component, top):
    return rtlil.convert(component, name=verilog_name(top), emit_src=False)
