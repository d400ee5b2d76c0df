"""Reuse factors chosen to fit a board (``nnhdl convert --fit BOARD``, ``reuse = "auto"``).

:func:`fit_reuse` starts from every Dense and convolution layer fully parallel (R = 1, or the R
its configuration sets) and, while the estimate (:mod:`nnhdl.estimate`: LUTs and flip-flops;
hardware multipliers and memories counted) exceeds the board's resources with a safety margin,
doubles the reuse factor of the layer whose estimate is largest, until everything fits. When DSP blocks are
short, the table softmax's products (two variables) are built from adders instead. When only the DSP
blocks are short once every layer is folded as far as it goes (each folded layer needs at least
one multiplier), the smallest layers go back to fully parallel shift-and-add logic (no DSP) while
the logic still fits. With ``io = stream``, when the LUTs or flip-flops are short, the line buffers
go to block RAM first (they cost no throughput there). Each layer is built
and estimated on its own, once per reuse factor tried. The choice is only as good as the estimate:
``nnhdl build`` checks it after synthesis (and says what does not fit).
"""

import math
from dataclasses import dataclass, field

from .estimate import ROM_LUT_DEPTH, estimate_layer
from .hardware import build_component, lower_hardware
from .ir import Dense, Softmax
from .layers.folded import link_folded
from .layers.folded_conv import largest_reuse

__all__ = ["fit_reuse", "FitError", "FitResult", "MARGIN"]

#: The share of the board's LUTs and flip-flops the estimate may use (routing, control, the
#: on-board harness and the estimate's error take the rest).
MARGIN = 0.8

#: Families whose logic cells each hold one LUT and one flip-flop (iCE40 ``ICESTORM_LC``). A
#: flip-flop fed straight from another register (a copy, a shift register: much of a folded
#: design's storage) takes a cell of its own, so the fit budgets ``LUT + FF`` cells: measured
#: 2026-12-01, the digits CNN folded for the iCEBreaker packed into 6,472 cells from 2,485 LUTs
#: and 3,960 flip-flops.
PACKED_CELLS = ("ice40",)

#: Logic sites (``TRELLIS_COMB``) nextpnr-ecp5 uses per carry chain beyond its CCU2Cs (Yosys's
#: count, which the estimate follows, does not show them): measured 2026-12-01 on the 8-bit jet
#: tagger's logits (4,712 adders, each its own chain): 61,034 LUT4s' worth after Yosys (LUT4 +
#: 2 per CCU2C) became 79,844 TRELLIS_COMB after packing, 4.0 per adder (95 % of the ECP5-85F,
#: which nextpnr's placer could not legalise).
ECP5_SITES_PER_CHAIN = 4


class FitError(ValueError):
    """No reuse factors make the network fit the board (names what does not fit and what to try)."""


@dataclass
class FitResult:
    layer_reuse: dict                  # Dense or convolution layer name -> R
    needed: dict                       # LUT, FF, DSP, BRAM (and LC on iCE40: LUT + FF), estimated
    available: dict                    # the board's
    steps: list = field(default_factory=list)  # (layer, R) in the order they were folded
    logic_multipliers: tuple = ()      # layers whose variable products went from DSPs to logic
    margin: float = MARGIN             # the share of the LUTs and flip-flops the estimate may use
    memory_bits: int = None            # line buffers at least this large in block RAM (None: as given)


def _needs(figures, family, bram_bits):
    est = estimate_layer(figures, family)
    blocks = 0
    rom = figures.get("rom_bits", 0)
    if family in ROM_LUT_DEPTH:  # a folded layer's weight ROM is LUTs there (counted in est)
        rom -= (figures.get("folding") or {}).get("weight_rom_bits", 0)
    if rom >= 1024:  # tables this large go to block RAM
        blocks += math.ceil(rom / bram_bits)
    if figures.get("memory_bits", 0):  # line buffers and links are block RAM whatever their size
        blocks += math.ceil(figures["memory_bits"] / bram_bits)
    needs = {"LUT": est["LUT"], "FF": est["FF"], "DSP": est["DSP"], "BRAM": blocks}
    if family == "ecp5":  # the logic sites nextpnr packs the carry chains into
        needs["LUT"] += ECP5_SITES_PER_CHAIN * figures.get("adders", 0)
    if family in PACKED_CELLS:  # a logic cell holds a LUT and a flip-flop, often not both of one design
        needs["LC"] = est["LUT"] + est["FF"]
    return needs


def _discarded(component):
    """``component``, marked as built only to be measured (Amaranth then does not warn that it
    was never elaborated; nor its parts: link memories, a folded stream convolution's window
    and products)."""
    for obj in (component, getattr(component, "_sink", None), getattr(component, "_source", None),
                getattr(component, "front", None), getattr(component, "engine", None)):
        if obj is not None:
            target = getattr(obj, "memory", obj)
            target._MustUse__silence = True
            obj._MustUse__silence = True
    return component


def fit_reuse(graph, options, target, fixed=None, progress=None):
    """The :class:`FitResult` for quantized ``graph`` built with ``options`` on ``target`` (a
    :class:`nnhdl.boards.targets.Target`). ``fixed``: ``{layer: R}`` the configuration sets
    (kept as they are). ``progress(text)`` is told each step. Raises :class:`FitError` when even
    the largest reuse factors do not fit."""
    fixed = dict(fixed or {})
    res = target.resources
    bram_bits = res["BRAM_bits"] // max(res["BRAM"], 1)
    limit = {"LUT": int(res["LUT"] * MARGIN), "FF": int(res["FF"] * MARGIN), "DSP": res["DSP"], "BRAM": res["BRAM"]}
    res = dict(res)
    if target.family in PACKED_CELLS:
        res["LC"] = res["LUT"]
        limit["LC"] = int(res["LC"] * MARGIN)
    dense = [op for op in graph.ops if isinstance(op, Dense)]  # convolutions too
    streamed = {stage.name for stage in lower_hardware(graph, options).stages if stage.image is not None}
    top = {op.name: largest_reuse(op, op.name in streamed) for op in dense}
    reuse = {op.name: fixed.get(op.name, fixed.get(op.origin, 1)) for op in dense}
    free = [op for op in dense if op.name not in fixed and op.origin not in fixed]
    cache, steps, logic = {}, [], list(options.logic_multipliers)
    memory_bits, moved = options.memory_bits, False  # moved: line buffers to block RAM tried
    softmaxes = [op.name for op in graph.ops if isinstance(op, Softmax) and op.implementation == "table"]

    def estimate():
        """Per stage and in total; folded layers are built afresh and linked as the Network links
        them (a link depends on both neighbours), the others once."""
        opts = options.replace(layer_reuse=tuple(reuse.items()), logic_multipliers=tuple(logic),
                               memory_bits=memory_bits)
        stages = lower_hardware(graph, opts).stages
        folded = {stage.name: build_component(stage, opts) for stage in stages if stage.params.get("reuse", 1) > 1}
        link_folded([folded.get(stage.name) for stage in stages])
        per = {}
        for stage in stages:
            if stage.name in folded:
                per[stage.name] = _needs(_discarded(folded[stage.name]).figures(), target.family, bram_bits)
                continue
            key = (stage.name, stage.params.get("reuse"), stage.name in logic, memory_bits)
            if key not in cache:
                cache[key] = _needs(_discarded(build_component(stage, opts)).figures(), target.family, bram_bits)
            per[stage.name] = cache[key]
        total = {k: sum(p[k] for p in per.values()) for k in limit}
        return per, total

    def result():
        return FitResult(dict(reuse), total, dict(res), steps, tuple(logic),
                         memory_bits=None if memory_bits == options.memory_bits else memory_bits)

    while True:
        per, total = estimate()
        over = [k for k in limit if total[k] > limit[k]]
        if progress is not None:
            progress(f"reuse {dict(reuse)}: estimated " + ", ".join(f"{total[k]:,} {k}" for k in limit))
        if not over:
            return result()
        if streamed and not moved and memory_bits > 1 and {"LUT", "FF", "LC"} & set(over):
            # line buffers in block RAM instead of registers: fewer flip-flops, no slower
            before, memory_bits, moved = memory_bits, 1, True
            _, trial = estimate()
            if trial["FF"] < total["FF"] and trial["BRAM"] <= limit["BRAM"]:
                steps.append(("line buffers in block RAM", 0))
                continue
            memory_bits = before
        growable = [op for op in free if reuse[op.name] < top[op.name]]
        if "DSP" in over and any(name not in logic for name in softmaxes):  # the softmax's products in logic
            logic += [name for name in softmaxes if name not in logic]
            steps.append(("softmax products in logic", 0))
            continue
        if not growable and over == ["DSP"]:  # out of multipliers only: unfold small layers into logic
            for op in sorted(free, key=lambda op: top[op.name]):
                if reuse[op.name] == 1:
                    continue
                before = reuse[op.name]
                reuse[op.name] = 1
                _, trial = estimate()
                if all(trial[k] <= limit[k] for k in limit if k != "DSP"):
                    steps.append((op.name, 1))
                    if trial["DSP"] <= limit["DSP"]:
                        break
                else:
                    reuse[op.name] = before
            else:
                growable = []
            per, total = estimate()
            if all(total[k] <= limit[k] for k in limit):
                return result()
            over = [k for k in limit if total[k] > limit[k]]
        if not growable:
            parts = "; ".join(f"{k}: {total[k]:,} estimated, {limit[k]:,} usable of {res[k]:,}" for k in over)
            raise FitError(
                f"the network does not fit {target.name} at any reuse factor ({parts}; every Dense and convolution layer is "
                f"folded as far as it goes). Try narrower formats (nnhdl config / --precision), fewer weights, "
                f"or a larger board (nnhdl boards)")
        # the largest layer (by what is over) is folded further
        worst = max(growable, key=lambda op: sum(per[op.name][k] / max(limit[k], 1) for k in over))
        reuse[worst.name] = min(reuse[worst.name] * 2, top[worst.name])
        steps.append((worst.name, reuse[worst.name]))
