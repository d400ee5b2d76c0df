"""Resource estimates before synthesis: LUTs and flip-flops per FPGA family, from the counts the
datapath scheduler keeps (``logic_bits``: bits of adders, comparators and multiplexers; adders;
exact register bits; ROM bits; hardware multipliers).

``LUT ≈ a·adder bits + c·comparator bits + m·multiplexer bits + k·adders`` per family (an adder's
bits are those with logic: the low bits of ``x + (y << d)`` are ``x``'s own; every adder is its
own carry chain, see :mod:`nnhdl.layers.pipeline`), with the coefficients set from Yosys on a set
of MLPs and CNNs by ``benchmarks/estimate.py``, which prints the estimate next to Yosys for every
design and the error: a guide (fully parallel ``cse`` designs within about -15 ... +17 %; folded
layers on the ECP5 about a fifth to a third low, their multi-operand accumulators built from LUT
full adders; their weight ROMs, LUTs there, are counted: :func:`rom_luts`), not a promise.
Flip-flops are the register bits (every register exactly as wide as its interval; Yosys removes
the few whose bits are constant; on the iCE40 a folded layer's product registers go into
the DSP blocks and are not counted: ``dsp_register_bits``). DSP blocks are counted per multiplier
from its operand widths as Yosys splits it (:func:`dsp_blocks`); block RAM is counted, not
estimated (ROMs read synchronously). Folded layers count their lanes' multiplexers, accumulators
and control too (:attr:`nnhdl.layers.FoldedDense.logic_bits`); a network with credit flow
control, its output queue (:func:`estimate_queue`).
"""

__all__ = ["COEFFICIENTS", "DSP_GEOMETRY", "ROM_LUT_DEPTH", "dsp_blocks", "dsp_count", "estimate_layer",
           "estimate_queue", "estimate_totals", "rom_luts", "FAMILIES"]

#: Per family, how Yosys maps a ``*`` of two variables onto DSP blocks: the widest signed operands
#: one block multiplies, the narrowest piece it puts in one, the narrowest product it does
#: (``(a, b, min_operand, min_product)``). ice40 ``SB_MAC16`` 16x16 and ecp5 ``MULT18X18D`` 18x18:
#: measured 2026-12-01 with YoWASP Yosys 0.70 (``synth_ice40 -dsp``, ``synth_ecp5``) on 17
#: signed multipliers from 4x4 to 36x36, every count matched; xc7 ``DSP48E1`` 25x18: from its
#: data sheet, not measured.
DSP_GEOMETRY = {"ice40": (16, 16, 2, 11), "ecp5": (18, 18, 2, 2), "xc7": (25, 18, 2, 2)}

#: Families whose DSP blocks take in the product registers of a folded layer (Yosys packs them into
#: iCE40 ``SB_MAC16``; measured 2026-12-01: ECP5 ``MULT18X18D`` keeps them in flip-flops).
ABSORBS_PRODUCT_REGISTERS = ("ice40",)

#: Per family: LUTs per adder bit, per comparator bit, per multiplexer bit, and per adder (the LUTs
#: at a carry chain's ends). ice40 and ecp5 (LUT4, ECP5 carries as 2 LUTs per CCU2C): set
#: 2026-12-01 from Yosys 0.70 on the designs of benchmarks/estimate.py once adders stay carry
#: chains (an ECP5 adder bit is half a CCU2C; an iCE40 one a LUT beside its SB_CARRY, plus about
#: three LUTs per chain); xc7: not calibrated.
COEFFICIENTS = {
    "ice40": {"add": 1.0, "compare": 1.0, "mux": 1.0, "adder": 3.0},
    "ecp5": {"add": 1.0, "compare": 1.0, "mux": 1.0, "adder": 0.0},
    "xc7": {"add": 1.0, "compare": 0.5, "mux": 0.5, "adder": 0.0},
}
FAMILIES = tuple(COEFFICIENTS)

#: Families on which Yosys builds a folded layer's weight ROM (its depth is the layer's interval)
#: from LUTs, and how deep a table one LUT holds: each ROM output bit takes ``ceil(depth / n)``
#: LUTs (the wider multiplexers between them are free: ECP5 PFUMX/L6MUX, 7-series MUXF7/8).
#: Measured 2026-12-01 (Yosys 0.70, ``synth_ecp5``) on an MLP 32-16-8 folded by 4, 16 and 64: no
#: ROM went to block or distributed RAM. On the iCE40 shallow ROMs are LUTs too, but its other
#: terms already run high on folded layers (see ``benchmarks/estimate.py``): not counted there.
ROM_LUT_DEPTH = {"ecp5": 16, "xc7": 64}


def dsp_blocks(a, b, family):
    """DSP blocks of ``family`` that Yosys uses for one signed ``a``-bit by ``b``-bit multiplier:
    each operand is cut into pieces as wide as the block's inputs (the rest last); a piece pair
    takes a block when both pieces are at least ``min_operand`` bits and the product at least
    ``min_product`` (smaller pieces are built from logic)."""
    wa, wb, min_operand, min_product = DSP_GEOMETRY[family]
    if a < b:
        a, b = b, a
    pieces = lambda n, w: [w] * (n // w) + ([n % w] if n % w else [])  # noqa: E731
    return sum(1 for x in pieces(a, wa) for y in pieces(b, wb)
               if x >= min_operand and y >= min_operand and x + y >= min_product)


def _widths(key):
    """``(a, b)`` of a ``multiplier_shapes`` key ``"AxB"``."""
    a, b = key.split("x")
    return int(a), int(b)


def dsp_count(entry, family):
    """DSP blocks of ``family`` for one report layer entry's multipliers (:func:`dsp_blocks` of each
    ``multiplier_shapes`` entry; a report without shapes: one block per multiplier)."""
    shapes = entry.get("multiplier_shapes")
    if shapes is None:  # a report written before shapes were recorded: one block per multiplier
        return int(entry.get("multipliers", 0))
    return sum(count * dsp_blocks(*_widths(key), family) for key, count in shapes.items())


def estimate_layer(entry, family):
    """``{"LUT": n, "FF": n, "DSP": n}`` of one ``report.json`` layer entry (one with hardware
    figures)."""
    c = COEFFICIENTS[family]
    bits = entry.get("logic_bits") or {}
    luts = sum(c[k] * bits.get(k, 0) for k in ("add", "compare", "mux"))
    luts += c["adder"] * entry.get("adders", 0)
    luts += rom_luts(entry, family)
    absorbed = 0
    if family in ABSORBS_PRODUCT_REGISTERS:
        absorbed = sum(n for key, n in (entry.get("dsp_register_bits") or {}).items() if dsp_blocks(*_widths(key), family))
    return {"LUT": int(round(luts)), "FF": int(entry.get("register_bits", 0)) - absorbed, "DSP": dsp_count(entry, family)}


def rom_luts(entry, family):
    """LUTs of a folded layer's weight ROM on ``family`` (see :data:`ROM_LUT_DEPTH`)."""
    bits = (entry.get("folding") or {}).get("weight_rom_bits", 0)
    depth = entry.get("interval_cycles", 1)
    if not bits or family not in ROM_LUT_DEPTH or depth < 1:
        return 0
    return (bits // depth) * -(-depth // ROM_LUT_DEPTH[family])


def estimate_totals(layers, queue=None):
    """``{family: {"LUT": n, "FF": n, "DSP": n}}`` summed over the layer entries with hardware
    figures, and the output ``queue`` if there is one (:func:`estimate_queue`)."""
    out = {}
    for family in FAMILIES:
        per = [estimate_layer(e, family) for e in layers if "latency_cycles" in e] + [estimate_queue(queue, family)]
        out[family] = {k: sum(p.get(k, 0) for p in per) for k in ("LUT", "FF", "DSP")}
    return out


def estimate_queue(queue, family):
    """``{"LUT": n, "FF": n}`` of a network's output queue (credit flow control; a report's
    ``output_queue``: ``depth`` results of ``bits / depth`` bits). Measured 2026-12-01 with Yosys
    0.70 on a 16-32-10 MLP (80-bit results, depth 7-9): the memory becomes distributed RAM on the
    ECP5 and 7-series, about two LUTs per result bit with the output multiplexer, and one output
    register; block RAM on the iCE40 (one block per 16 bits of width) beside about 2.4 LUTs and two
    registers per bit."""
    if not queue:
        return {"LUT": 0, "FF": 0}
    width = queue["bits"] // queue["depth"]
    count = 2 * queue["depth"].bit_length() + 4  # the credit count and the queue's pointers and level
    if family == "ice40":
        return {"LUT": int(2.4 * width) + count, "FF": 2 * width + count}
    return {"LUT": 2 * width + count, "FF": width + count}
