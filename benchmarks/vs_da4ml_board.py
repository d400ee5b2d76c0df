"""nnhdl against da4ml 0.6 on a board: the same layers placed and routed, Fmax and latency in ns.

`benchmarks/vs_da4ml.py` compares the two at the same clock target counted in adder levels per
stage (da4ml's unit). This script measures what that means in nanoseconds: it takes the last
``--layers`` Dense layers of the 8-bit jet tagger (default 2: 32 -> 32 -> 5; the whole tagger
does not place on the ECP5-85F), converts them with da4ml (``--da4ml-cutoff``), with nnhdl at the
same number of adder levels per stage, and with nnhdl's ECP5 delay model for ``--clock`` MHz,
and builds each inside the same timing harness (LFSR inputs every cycle, outputs folded into one
pin) on ``--board`` with YoWASP Yosys + nextpnr. Printed per design: latency in cycles, LUTs
(LUT4 + 2 CCU2C) and FF after nextpnr, Fmax, latency in ns at Fmax, build time. da4ml's outputs
are checked equal to nnhdl's reference on 1,000 inputs. It measures and prints; it asserts
nothing. Each build takes minutes.

Usage: python benchmarks/vs_da4ml_board.py [--layers 2] [--board ulx3s-85f] [--clock 100]
       [--da4ml-cutoff 5] [--out build/vs_da4ml_board] [--designs da4ml,levels,clock]
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from jet_model import ensure_model  # noqa: E402  (benchmarks/jet_model.py)
from vs_da4ml import check_equal, da4ml_design, eight_bit_config, logits_graph  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def last_layers(graph, n):
    """The float graph of the last ``n`` Dense layers, fed by an input named after the layer before
    them (so the 8-bit configuration's formats apply by name) and its config."""
    from nnhdl.ir import Dense, Graph, Input
    ops = list(graph.ops)
    dense = [k for k, op in enumerate(ops) if isinstance(op, Dense)]
    if not 1 <= n < len(dense):
        raise SystemExit(f"--layers must be 1..{len(dense) - 1}")
    first = ops[dense[-n]]
    feed = first.inputs[0]
    inp = Input(feed, (), (first.weight.shape[0],), origin=feed)
    kept = [inp] + ops[dense[-n]:]
    sub = Graph(tuple(kept), graph.outputs, name=graph.name)
    return sub, eight_bit_config({op.name for op in kept})


def da4ml_component(da, in_fmt, n_in, out_fmt, n_out):
    """da4ml's Verilog as a stream component (valid follows the input by its latency; it never
    stalls), so nnhdl's timing harness can drive it."""
    from amaranth.hdl import ClockSignal, Instance, Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from nnhdl.layers.base import stream_signature

    class Da4mlNetwork(wiring.Component):
        def __init__(self):
            super().__init__({"i": In(stream_signature(in_fmt, n_in)), "o": Out(stream_signature(out_fmt, n_out))})

        def elaborate(self, platform):
            m = Module()
            for src in da["sources"]:
                platform.add_file(Path(src).name, Path(src).read_text())
            m.submodules.da4ml = Instance(da["top"], i_clk=ClockSignal(), i_model_inp=self.i.payload.as_value(),
                                          o_model_out=self.o.payload.as_value())
            valid = Signal(da["latency"])
            m.d.sync += valid.eq(valid << 1 | self.i.valid)
            m.d.comb += [self.i.ready.eq(1), self.o.valid.eq(valid[-1])]
            return m

    return Da4mlNetwork()


def build(design, board, clock_mhz, folder):
    from nnhdl.boards.build import BuildError, DesignTooBig, build_bitstream
    from nnhdl.boards.targets import get_target
    t0 = time.perf_counter()
    try:
        result = build_bitstream(design, get_target(board), folder, clock_hz=clock_mhz * 1e6, allow_timing_fail=True)
    except (BuildError, DesignTooBig) as e:
        return {"error": str(e).splitlines()[0][:120], "seconds": time.perf_counter() - t0}
    return dict(result.report, seconds=time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "build/jet_tagger/jet_tagger.keras"))
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--board", default="ulx3s-85f")
    parser.add_argument("--clock", type=float, default=100.0)
    parser.add_argument("--da4ml-cutoff", type=float, default=5.0)
    parser.add_argument("--out", default=str(ROOT / "build/vs_da4ml_board"))
    parser.add_argument("--designs", default="da4ml,levels,clock",
                        help="which to build (comma-separated): da4ml, levels (nnhdl at the cutoff), clock (nnhdl "
                             "for --clock)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from nnhdl.convert import compile_model, convert, load_design, load_model

    graph, config = last_layers(logits_graph(load_model(ensure_model(args.model))), args.layers)
    qgraph = compile_model(graph, config)
    out = Path(args.out)
    levels = max(1, round(args.da4ml_cutoff))
    rows = []

    chosen = set(args.designs.split(","))
    if "da4ml" in chosen:
        da = da4ml_design(qgraph, out / "da4ml", args.da4ml_cutoff)
        ok, bad = check_equal(da, qgraph)
        net = da4ml_component(da, qgraph.input.fmt, qgraph.input.size, qgraph.output.fmt, qgraph.output.size)
        fake = SimpleNamespace(network=net, report={"latency_cycles": da["latency"], "top": da["top"]})
        print(f"da4ml: {da['latency']} cycles; outputs equal nnhdl's reference: {ok} ({bad} differ)", flush=True)
        rows.append((f"da4ml 0.6, cutoff {args.da4ml_cutoff:g}",
                     build(fake, args.board, args.clock, out / "build_da4ml")))

    nnhdl = [("levels", f"nnhdl cse, {levels} levels/stage", {"levels_per_stage": levels}),
             ("clock", f"nnhdl cse, ecp5 {args.clock:g} MHz", {"family": "ecp5", "clock_mhz": args.clock})]
    for name, kwargs in [(n, k) for key, n, k in nnhdl if key in chosen]:
        folder = out / name.split(",")[1].strip().replace(" ", "_").replace("/", "")
        convert(graph, folder, config=config, multiplier="cse", force=True, **kwargs)
        design = load_design(folder)
        print(f"{name}: {design.report['latency_cycles']} cycles; building…", flush=True)
        rows.append((name, build(design, args.board, args.clock, folder / "build")))

    table = Table(title=f"last {args.layers} layers of the 8-bit jet tagger on {args.board} (nextpnr target "
                        f"{args.clock:g} MHz)", title_justify="left")
    for c in ("design", "latency", "LUT", "FF", "Fmax MHz", "latency ns", "build s"):
        table.add_column(c, justify="left" if c == "design" else "right")
    for name, r in rows:
        if "error" in r:
            table.add_row(name, "-", "-", "-", r["error"], "-", f"{r['seconds']:.0f}")
            continue
        res = r["resources"]
        table.add_row(name, str(r["latency_cycles"]), f"{res['LUT']['used']:,}", f"{res['FF']['used']:,}",
                      f"{r['fmax_mhz']:.1f}", f"{r['latency_ns_at_fmax']:.1f}", f"{r['seconds']:.0f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
