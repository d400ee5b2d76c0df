"""Resource estimates before synthesis: LUTs and flip-flops per FPGA family, from the counts the
datapath scheduler keeps (``logic_bits``: bits of adders, comparators and multiplexers; exact
register bits; ROM bits; hardware multipliers).

``LUT ≈ a·adder bits + c·comparator bits + m·multiplexer bits`` per family (an adder's bits are
those with logic: the low bits of ``x + (y << d)`` are ``x``'s own), with the coefficients fitted to
Yosys on a set of MLPs and CNNs by ``benchmarks/estimate.py``, which prints the estimate next to
Yosys for every design and the error: a rough guide (about ±25 % today), not a promise. Flip-flops are the register bits (every register exactly as wide as its interval; Yosys
removes the few whose bits are constant). Hardware multipliers and block RAM are counted, not
estimated (DSP blocks, ROMs read synchronously). Folded layers count only their output
datapath (their lanes and accumulators are not modelled yet).
"""

__all__ = ["COEFFICIENTS", "estimate_layer", "estimate_totals", "FAMILIES"]

#: Per family: LUTs per adder bit, per comparator bit, per multiplexer bit, per layer (control).
#: ice40 and ecp5 (LUT4, ECP5 carries as 2 LUTs per CCU2C): fitted 2026-12-01 to Yosys on the 9
#: designs of benchmarks/estimate.py (root-mean-square error about 20 %); xc7: not calibrated.
COEFFICIENTS = {
    "ice40": {"add": 1.1, "compare": 1.0, "mux": 1.0, "layer": 0.0},
    "ecp5": {"add": 1.1, "compare": 1.0, "mux": 1.0, "layer": 0.0},
    "xc7": {"add": 1.0, "compare": 0.5, "mux": 0.5, "layer": 0.0},
}
FAMILIES = tuple(COEFFICIENTS)


def estimate_layer(entry, family):
    """``{"LUT": n, "FF": n}`` of one ``report.json`` layer entry (one with hardware figures)."""
    c = COEFFICIENTS[family]
    bits = entry.get("logic_bits") or {}
    luts = sum(c[k] * bits.get(k, 0) for k in ("add", "compare", "mux")) + c["layer"]
    return {"LUT": int(round(luts)), "FF": int(entry.get("register_bits", 0))}


def estimate_totals(layers):
    """``{family: {"LUT": n, "FF": n}}`` summed over the layer entries with hardware figures."""
    out = {}
    for family in FAMILIES:
        per = [estimate_layer(e, family) for e in layers if "latency_cycles" in e]
        out[family] = {"LUT": sum(p["LUT"] for p in per), "FF": sum(p["FF"] for p in per)}
    return out
