from pathlib import Path

import click

from .common import UserError, console, load_inputs, user_errors
from .progress import stage_progress


def _board_errors(fn):
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..boards.build import BuildError, DesignTooBig, ToolMissing
        from ..boards.targets import TargetError
        try:
            return fn(*args, **kwargs)
        except (DesignTooBig, ToolMissing, TargetError, ValueError) as e:
            raise UserError(str(e)) from None
        except BuildError as e:
            from rich.markup import escape
            console.print(f"[red]build failed:[/] {escape(str(e))}")
            raise SystemExit(1) from None
    return wrapper


@click.command()
def boards():
    """List the boards and FPGA families nnhdl builds for, with their resources."""
    from rich.console import Console
    from rich.table import Table

    from ..boards.targets import TARGETS

    table = Table(title="targets (nnhdl build --board NAME; nnhdl synth --family ice40|ecp5 --target NAME)",
                  title_justify="left")
    for col in ("name", "kind", "device", "LUT", "FF", "DSP", "BRAM", "clock", "UART", "description"):
        table.add_column(col, justify="right" if col in ("LUT", "FF", "DSP", "BRAM") else "left")
    for t in TARGETS.values():
        r = t.resources
        table.add_row(t.name, "board" if t.is_board else "family", f"{t.device} {t.package}", f"{r['LUT']:,}",
                      f"{r['FF']:,}", str(r["DSP"]), f"{r['BRAM']} ({r['BRAM_bits'] // 1024} kbit)",
                      f"{t.clock_hz / 1e6:g} MHz" if t.clock_hz else "-", "yes" if t.uart else "-", t.description)
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=160)
    out.print(table)


def _keep_logs(message, tmp, dest):
    """Copy the failed build's logs to ``<dest>.failed-logs`` and point ``message`` at them."""
    import shutil
    logs = dest.with_name(dest.name + ".failed-logs")
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    for path in Path(tmp).rglob("*"):
        if path.is_file() and path.suffix in (".out", ".tim", ".log", ".rpt"):
            shutil.copy(path, logs / path.name)
    return message.replace(str(tmp), str(logs)) + f"\n(tool logs kept in {logs})"


def _resource_table(title, rows):
    from rich.table import Table
    table = Table(title=title, title_justify="left")
    for col in ("resource", "used", "available", "%"):
        table.add_column(col, justify="left" if col == "resource" else "right")
    for name, used, avail in rows:
        table.add_row(name, f"{used:,}", f"{avail:,}" if avail else "-", f"{100 * used / avail:.1f}" if avail else "-")
    return table


@click.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("--board", required=True, help="Board name (see 'nnhdl boards').")
@click.option("--harness", type=click.Choice(["timing", "uart"]), default="timing", show_default=True,
              help="timing: LFSR inputs, outputs folded to an LED (honest area/Fmax); uart: inference over "
                   "the board's USB-serial port (see 'nnhdl run').")
@click.option("--clock", "clock_hz", type=float, default=None,
              help="Timing target in Hz (default: the board's oscillator).")
@click.option("--dsp/--no-dsp", default=True, show_default=True, help="Let synthesis map multipliers to DSP blocks.")
@click.option("--allow-timing-fail", is_flag=True, help="Keep the bitstream even if timing is not met.")
@click.option("--baud", type=int, default=115200, show_default=True, help="UART harness baud rate.")
@user_errors
@_board_errors
def build(outdir, board, harness, clock_hz, dsp, allow_timing_fail, baud):
    """Build a bitstream for the converted network in OUTDIR on a board, with Yosys and nextpnr
    (YoWASP builds, no vendor tools), and report resources, Fmax and latency in ns."""
    from ..boards.build import BuildError, build_bitstream, timing_message
    from ..boards.targets import get_target
    from ..convert import load_design
    from ..outputs import staged_outputs

    target = get_target(board)
    design = load_design(outdir)
    dest = Path(outdir) / "build" / f"{target.name}-{harness}"
    with stage_progress(f"build {target.name}", "start") as progress:
        with staged_outputs(dest) as tmp:
            try:
                result = build_bitstream(design, target, tmp, harness=harness, clock_hz=clock_hz, dsp=dsp,
                                         allow_timing_fail=allow_timing_fail, baud=baud, step=progress.stage,
                                         status=progress.status)
            except BuildError as e:  # a tool failed; the staging folder goes away, its logs stay
                raise BuildError(_keep_logs(str(e), tmp, dest)) from None
    r = result.report
    from rich.console import Console
    out = Console(highlight=False)
    rows = [(k, v["used"], v["available"]) for k, v in r["resources"].items()]
    out.print(_resource_table(f"{design.top} on {target.name} ({target.device}), {harness} harness", rows))
    for name, c in r["clocks"].items():
        out.print(f"clock {name}: Fmax {c['fmax_mhz']:.1f} MHz, target {c['target_mhz']:.1f} MHz: "
                  f"{'[green]met[/]' if c['passed'] else '[red]NOT met[/]'}")
    if r["fmax_mhz"]:
        out.print(f"latency {r['latency_cycles']} cycles = {r['latency_ns_at_fmax']:.1f} ns at Fmax "
                  f"({r['latency_ns_at_target']:.1f} ns at {r['clock_target_mhz']:.1f} MHz); "
                  f"{r['inferences_per_s_at_fmax'] / 1e6:.2f} M inferences/s at Fmax "
                  f"(II = {r.get('cycles_per_inference', 1)} cycle(s) per inference)")
    failure = timing_message(result, dest)
    if r["bitstream"]:
        out.print(f"bitstream: {dest / r['bitstream']}; report: {dest / 'build-report.json'}; "
                  f"build {sum(r['seconds'].values()):.1f} s")
    if failure:
        from rich.markup import escape
        console.print(f"[red]timing failed:[/] {escape(failure)}")
        raise SystemExit(1)
    if harness == "uart":
        out.print(f"next: program the board, then nnhdl run {outdir} --board {target.name} --port /dev/ttyUSB0 "
                  "--inputs X.npy -o Y.npy")


@click.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("--family", type=click.Choice(["ice40", "ecp5"]), required=True)
@click.option("--target", "target_name", default=None,
              help="Device to compare with (default: ice40-up5k or ecp5-85k).")
@click.option("--dsp/--no-dsp", default=True, show_default=True)
@user_errors
@_board_errors
def synth(outdir, family, target_name, dsp):
    """Synthesise the network in OUTDIR with Yosys for an FPGA family (no place-and-route) and show
    the resources it needs against a device."""
    import json

    from ..boards.build import check_fit, synthesize
    from ..boards.targets import get_target
    from ..convert import load_design
    from ..outputs import staged_outputs

    target = get_target(target_name or {"ice40": "ice40-up5k", "ecp5": "ecp5-85k"}[family])
    if target.family != family:
        raise UserError(f"{target.name} is an {target.family} device, not {family}")
    design = load_design(outdir, build=False)
    dest = Path(outdir) / f"synth-{family}"
    with stage_progress(f"synth {family}", f"Yosys synth_{family}"):
        with staged_outputs(dest) as tmp:
            cells, needed = synthesize(Path(outdir) / design.report["files"]["verilog"], design.top, family, tmp, dsp)
            (tmp / "synth-report.json").write_text(json.dumps({"family": family, "target": target.name,
                                                               "cells": cells, "estimate": needed}, indent=1))
    from rich.console import Console
    out = Console(highlight=False)
    rows = [(k, needed[k], target.resources.get(k)) for k in ("LUT", "FF", "DSP", "BRAM")]
    out.print(_resource_table(f"{design.top}: synthesis estimate for {target.name} ({target.device}), "
                              "before packing and place-and-route", rows))
    try:
        check_fit(target, needed)
        out.print(f"fits {target.name}. Next: nnhdl build {outdir} --board BOARD")
    except ValueError as e:
        out.print(f"[yellow]{e}[/]")
    out.print(f"details: {dest / 'synth-report.json'}")


@click.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("--board", required=True, help="The board running the UART harness (nnhdl build --harness uart).")
@click.option("--port", required=True, help="Serial port, e.g. /dev/ttyUSB0.")
@click.option("--inputs", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--baud", type=int, default=115200, show_default=True)
@user_errors
@_board_errors
def run(outdir, board, port, inputs, output, baud):
    """Run inference on a board: send the inputs over its UART, save the outputs (as values of the
    output format) and compare them with the bit-exact reference."""
    import numpy as np

    from ..boards.host import run_on_port
    from ..boards.targets import get_target
    from ..convert import load_design
    from ..fixed import quantize
    from ..outputs import write_atomic
    from ..reference import evaluate, to_real

    target = get_target(board)
    if not target.uart:
        raise UserError(f"{target.name} has no USB-serial UART harness")
    design = load_design(outdir, build=False)
    graph = design.graph
    x = quantize(load_inputs(inputs, graph), graph.input.fmt).reshape(-1, graph.input.size)
    try:
        got = run_on_port(port, design, x, baud=baud)
    except RuntimeError as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot open {port}: {e}") from None
    y = to_real(graph, got).reshape((len(x),) + tuple(graph.output.shape))
    write_atomic(output, lambda tmp: np.save(open(tmp, "wb"), y))
    want = np.asarray(evaluate(graph, x.reshape((len(x),) + tuple(graph.input.shape)), raw=True)).reshape(len(x), -1)
    bad = int(np.sum(np.any(got != want, axis=1)))
    console.print(f"wrote {output}: {len(x)} outputs from {target.name}; "
                  + ("all equal the reference" if not bad else f"[red]{bad} differ from the reference[/]"))
    if bad:
        raise SystemExit(1)
