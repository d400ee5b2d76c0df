"""The 8-bit jet tagger (logits, as in benchmarks/vs_da4ml.py) placed and routed on a board.

Converts the tagger's logits (weights fixed<8,1,RND>, biases fixed<8,3,RND>, input fixed<8,3>,
ReLU results ufixed<8,3>, logits fixed<16,6>; the softmax is left out, as in the da4ml
comparison) with the ``cse`` multiplier and registers placed by the family's delay model for
``--clock`` MHz, then builds it with ``nnhdl build OUT --board BOARD`` (timing harness, YoWASP
Yosys + nextpnr, nextpnr's timing target = the conversion clock) and prints one table row:
LUT, FF, DSP, Fmax, latency in cycles and ns, conversion and build time. It measures and
prints; it asserts nothing.

Measured 2026-12-01 (YoWASP Yosys 0.70 dev, nextpnr-ecp5 0.11 dev, the 2-core machine): the
whole 8-bit tagger does not fit the ECP5-85F: at 100 MHz Yosys needs 85,664 LUT (102 %); at
125 MHz the estimate fits (81,125) but nextpnr packs it into 93,267 TRELLIS_COMB (111 %); at
150 MHz Yosys 0.70's ABC9 reintegration fails an assertion. ``--layers 2`` (81 % of the slices)
places in ~20 min, but nextpnr's router had routed only 10k of 217k arcs after 13 min (stopped);
``--layers 1`` (16-64, 27 % of the slices) completes in 20 min: 55.0 MHz for a 100 MHz target;
converted again for 55 MHz (one register stage fewer) it reaches 41.6 MHz. With the adders kept
as carry chains (later the same day) Yosys needs 62,235 LUTs' worth at 100 MHz (1,283 LUT4 +
30,476 CCU2C, 74 %) and 34,239 FF, but nextpnr's placer cannot legalise that many carry chains
("Unable to find legal placement" for a CCU2C after 52 M attempts, 4 min). With the weight ROMs
sliced and nextpnr's static placer (13:25 UTC), the whole tagger routes: ``--layer-reuse
fc2=16,fc3=64`` 30,469 LUT, 12,294 FF, 144 DSP, 66.7 MHz, 94 cycles = 1.41 us, 10.1 min;
``--layer-reuse fc1=16,fc2=32,fc3=64`` 13,742 LUT, 8,527 FF, 79.4 MHz, 127 cycles = 1.60 us, 2.7 min.

Usage: python benchmarks/jet_board.py [--clock 100] [--board ulx3s-85f] [--out build/jet8-ecp5-100]
       [--precision 8|16] [--layers N] [--fit] [--layer-reuse fc2=16,fc3=64] [--convert-only]
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from jet_model import ensure_model  # noqa: E402  (benchmarks/jet_model.py)
from vs_da4ml import eight_bit_config, logits_graph, precision_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def first_layers(graph, n):
    """The graph cut after its ``n``-th Dense layer (its output); ``None``: the whole graph."""
    from nnhdl.ir import Dense, Graph
    if n is None:
        return graph
    ops = list(graph.ops)
    dense = [k for k, op in enumerate(ops) if isinstance(op, Dense)]
    if not 1 <= n <= len(dense):
        raise SystemExit(f"--layers must be 1..{len(dense)}")
    ops = ops[:dense[n - 1] + 1]
    return Graph(tuple(ops), (ops[-1].name,), name=graph.name)


def convert_tagger(model, out, precision, family, clock_mhz, layers=None, fit=None, layer_reuse=None,
                   flow_control=None):
    """Convert the tagger's logits (or its first ``layers`` Dense layers) into ``out`` (``fit``: a
    board whose resources choose the reuse factors; ``layer_reuse``: ``{layer: R}`` set by hand);
    returns (report, seconds)."""
    from nnhdl.convert import convert, load_model
    graph = first_layers(logits_graph(load_model(ensure_model(model))), layers)
    config = precision_config(precision)
    if layers is not None or layer_reuse:  # the 8-bit formats of the layers kept, the reuse factors
        if precision != 8:
            raise SystemExit("--layers and --layer-reuse need --precision 8")
        config = eight_bit_config({op.name for op in graph.ops}, layer_reuse)
    t0 = time.perf_counter()
    design = convert(graph, out, config=config, multiplier="cse", family=family, clock_mhz=clock_mhz, fit=fit,
                     flow_control=flow_control, force=True)
    return design.report, time.perf_counter() - t0


def build_with_cli(out, board, clock_mhz):
    """``nnhdl build OUT --board BOARD --clock HZ --allow-timing-fail`` (this tree's nnhdl, its
    output streamed); returns (exit code, seconds)."""
    import os
    import subprocess
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-c", "from nnhdl.cli import main; main()", "build", str(out), "--board", board,
           "--clock", str(clock_mhz * 1e6), "--allow-timing-fail"]
    t0 = time.perf_counter()
    code = subprocess.run(cmd, env=env).returncode
    return code, time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "build/jet_tagger/jet_tagger.keras"))
    parser.add_argument("--precision", type=int, choices=[8, 16], default=8)
    parser.add_argument("--board", default="ulx3s-85f")
    parser.add_argument("--clock", type=float, default=100.0, help="conversion and nextpnr target clock (MHz)")
    parser.add_argument("--out", default=None, help="design folder (default build/jet<precision>-<family>-<clock>)")
    parser.add_argument("--layers", type=int, default=None,
                        help="only the first N Dense layers (e.g. 2: 16-64-32), for devices the whole tagger overfills")
    parser.add_argument("--fit", action="store_true",
                        help="reuse factors chosen to fit the board (nnhdl convert --fit), else fully parallel")
    parser.add_argument("--layer-reuse", default="", help="reuse factors by hand, e.g. fc2=16,fc3=64")
    parser.add_argument("--flow-control", choices=["credit", "stall"], default=None,
                        help="nnhdl convert --flow-control (default: stall)")
    parser.add_argument("--convert-only", action="store_true")
    args = parser.parse_args()

    from nnhdl.boards.targets import get_target
    target = get_target(args.board)
    layer_reuse = {k: int(v) for k, v in (kv.split("=") for kv in args.layer_reuse.split(",") if kv)}
    part = (f"-{args.layers}layers" if args.layers else "") + ("-fit" if args.fit else "") + \
        "".join(f"-{k}r{v}" for k, v in layer_reuse.items()) + (f"-{args.flow_control}" if args.flow_control else "")
    out = Path(args.out or ROOT / f"build/jet{args.precision}{part}-{target.family}-{args.clock:g}")
    report, convert_s = convert_tagger(args.model, out, args.precision, target.family, args.clock, args.layers,
                                       target.name if args.fit else None, layer_reuse, args.flow_control)
    t = report["totals"]
    if args.fit:
        print(f"fitted: {report['fit']['layer_reuse']}, estimated {report['fit']['estimated']}", flush=True)
    print(f"converted in {convert_s:.1f} s: {report['latency_cycles']} cycles, {t['adders']:,} adders, "
          f"{t['register_bits']:,} register bits -> {out}", flush=True)
    if args.convert_only:
        return
    code, build_s = build_with_cli(out, target.name, args.clock)
    path = out / "build" / f"{target.name}-timing" / "build-report.json"
    if not path.exists():
        sys.exit(f"nnhdl build exited {code} without a report")
    r = json.loads(path.read_text())
    res = r["resources"]
    used = lambda k: f"{res[k]['used']:,}" if k in res else "-"  # noqa: E731
    print("| design | board | LUT | FF | DSP | Fmax | latency | build | date, machine |")
    what = f"first {args.layers} Dense layers" if args.layers else "logits"
    if args.fit:
        what += f", `--fit` R = {report['fit']['layer_reuse']}"
    if layer_reuse:
        what += f", R = {layer_reuse}"
    what += f", {report['flow_control']} flow control"
    print(f"| jet tagger {args.precision}-bit {what}, cse, `--family {target.family} --clock {args.clock:g}` | "
          f"{target.name} | "
          f"{used('LUT')} | {used('FF')} | {used('DSP')} | {r['fmax_mhz']:.1f} MHz | {r['latency_cycles']} cycles = "
          f"{r['latency_ns_at_fmax']:.1f} ns | {build_s / 60:.1f} min (Yosys {r['seconds']['synthesize'] / 60:.1f}, "
          f"nextpnr {r['seconds']['place_and_route'] / 60:.1f}) | {time.strftime('%Y-%m-%d')}, "
          f"{platform.machine()} {platform.python_version()} |")
    print(json.dumps({"convert_s": round(convert_s, 1), "build_s": round(build_s, 1), "exit": code,
                      "report": {k: r[k] for k in ("fmax_mhz", "timing_passed", "latency_cycles", "resources",
                                                    "synthesis_estimate", "seconds", "clock_target_mhz")}}))


if __name__ == "__main__":
    main()
