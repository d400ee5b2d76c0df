"""The delay model against nextpnr: how fast do designs converted with ``--family F --clock C`` run?

For each (board, clock), converts a small dense MLP (12-bit data, dense 12-bit weights: adder
trees several levels deep) with registers placed by :class:`nnhdl.layers.pipeline.DelayModel` for
C MHz, builds it with ``nnhdl build`` (timing harness, nextpnr's target = C) and prints: latency,
nextpnr's Fmax, Fmax / C, and nextpnr's critical path split into clock-to-out, logic and routing
with the number of adders (carry-chain sums) and LUT / mux levels on it. The ratio says how far
the model's estimate is from placed-and-routed timing; the split says which of its constants
(``lut``: a LUT level with its routing, ``carry``: per carry bit, ``register``: overhead) is off.
It measures and prints; it asserts nothing. Each build takes one to a few minutes.

Usage: python benchmarks/delay_calibration.py [--case ulx3s-85f:100 --case icebreaker:24 ...] [--keep DIR]
"""

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_CASES = ["ulx3s-85f:100", "ulx3s-85f:150", "icebreaker:24"]
SIZES = {"ecp5": (12, 8, 4), "ice40": (8, 6, 3)}  # as large as fits the board with the harness

_STEP = re.compile(r"^Info:\s+(clk-to-q|logic|routing|setup)\s+([\d.]+)\s+([\d.]+)\s+(\S+)\s+(\S+)", re.M)


def critical_path(log_text):
    """nextpnr's first clock critical path: ``{"clk_to_q", "logic", "routing", "total"}`` in ns,
    ``"adders"`` (carry-chain sum outputs) and ``"luts"`` (LUT / mux outputs) on it."""
    start = log_text.find("Critical path report for clock")
    end = log_text.find("Critical path report for cross-domain", start)
    block = log_text[start:end if end > 0 else None]
    split = {"clk_to_q": 0.0, "logic": 0.0, "routing": 0.0, "setup": 0.0}
    adders = luts = 0
    after_carry = False
    for kind, delay, _, _, name in _STEP.findall(block):
        split[kind.replace("-", "_")] += float(delay)
        if kind != "logic":
            continue
        pin = name.rsplit(".", 1)[-1]
        if pin in ("FCO", "COUT"):  # inside a carry chain
            after_carry = True
            continue
        if "$CCU2_COMB" in name or after_carry:  # a sum output leaving a carry chain
            adders += 1
        else:
            luts += 1
        after_carry = False
    split["total"] = round(sum(split.values()), 2)
    return {**{k: round(v, 2) for k, v in split.items()}, "adders": adders, "luts": luts}


def run_case(board, clock_mhz, folder):
    import numpy as np
    from click.testing import CliRunner

    from nnhdl.boards.targets import get_target
    from nnhdl.cli import main
    from nnhdl.convert import convert
    from nnhdl.layers.pipeline import DelayModel
    from tests.conftest import make_mlp

    family = get_target(board).family
    graph = make_mlp(np.random.default_rng(7), SIZES[family], ["relu"], {"precision": "fixed<12,4,RND,SAT>"},
                     zero_fraction=0.0)
    out = folder / f"{board}-{clock_mhz:g}"
    design = convert(graph, out, family=family, clock_mhz=clock_mhz)
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, ["build", str(out), "--board", board, "--clock", str(clock_mhz * 1e6),
                                       "--allow-timing-fail"])
    seconds = time.perf_counter() - t0
    build = out / "build" / f"{board}-timing"
    if not (build / "build-report.json").exists():
        return {"board": board, "clock": clock_mhz, "error": result.output.strip().splitlines()[-1:]}
    report = json.loads((build / "build-report.json").read_text())
    return {"board": board, "family": family, "clock": clock_mhz, "budget_ps": DelayModel(family, clock_mhz).budget,
            "latency": design.report["latency_cycles"], "fmax": report["fmax_mhz"],
            "lut": report["resources"].get("LUT", {}).get("used"),
            "path": critical_path((build / "top.tim").read_text()), "build_s": round(seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", help="BOARD:MHZ (default: %s)" % " ".join(DEFAULT_CASES))
    parser.add_argument("--keep", default=None, help="keep the designs and builds here")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="delay_cal_", dir=ROOT / "build"))
    print("| board | target MHz | model budget ps | latency | LUT | nextpnr Fmax MHz | Fmax / target | "
          "critical path ns (clk-to-q + logic + routing) | adders, LUT levels on it | build s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in args.case or DEFAULT_CASES:
        board, mhz = case.split(":")
        r = run_case(board, float(mhz), folder)
        if "error" in r:
            print(f"| {board} | {mhz} | failed: {r['error']} |", flush=True)
            continue
        p = r["path"]
        print(f"| {board} | {r['clock']:g} | {r['budget_ps']:,} | {r['latency']} | {r['lut']:,} | {r['fmax']:.1f} | "
              f"{r['fmax'] / r['clock']:.2f} | {p['total']} ({p['clk_to_q']} + {p['logic']} + {p['routing']}) | "
              f"{p['adders']}, {p['luts']} | {r['build_s']} |", flush=True)
    print(f"designs and logs in {folder}")


if __name__ == "__main__":
    main()
