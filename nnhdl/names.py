"""Verilog identifiers from model and layer names: the one sanitiser (used for the graph's name by
the frontends and for the top module by the export)."""

import re

__all__ = ["verilog_name", "VERILOG_KEYWORDS"]

#: Verilog-2005 and SystemVerilog keywords a module may not be named.
VERILOG_KEYWORDS = frozenset("""
    always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
    default defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule
    endprimitive endspecify endtable endtask event for force forever fork function generate genvar
    highz0 highz1 if ifnone incdir include initial inout input instance integer join large liblist
    library localparam macromodule medium module nand negedge nmos nor noshowcancelled not notif0
    notif1 or output parameter pmos posedge primitive pull0 pull1 pulldown pullup pulsestyle_onevent
    pulsestyle_ondetect rcmos real realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1
    scalared showcancelled signed small specify specparam strong0 strong1 supply0 supply1 table task
    time tran tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand
    weak0 weak1 while wire wor xnor xor logic bit byte int shortint longint
""".split())


def verilog_name(name):
    """A Verilog identifier ``[A-Za-z_][A-Za-z0-9_]*`` (not a keyword) from ``name``: runs of other
    characters become ``_`` (``jet-tagger.v2`` -> ``jet_tagger_v2``), a leading digit gets ``n_``
    in front, a keyword ``_net`` after it; nothing usable gives ``network``."""
    name = str(name)
    ident = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    if not ident:
        return "network"
    if name.startswith("_"):
        ident = "_" + ident
    if ident[0].isdigit():
        ident = "n_" + ident
    if ident in VERILOG_KEYWORDS:
        ident += "_net"
    return ident
