from pathlib import Path

import click

from .common import user_errors


def print_report(report, outdir=None):
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from ..report import layer_rows

    out = Console(highlight=False)
    if not out.is_terminal:  # a log: wide enough that no format is broken across lines
        out = Console(highlight=False, width=240)
    table = Table(title=f"{report['top']}: {report.get('model') or ''}", title_justify="left", box=box.SIMPLE_HEAD)
    rows = layer_rows(report)
    folded = any(row[10] not in ("", "1") for row in rows)  # reuse columns only when some layer is folded
    cols = ("layer", "kind", "shape", "weight", "accum", "result", "cycles", "adders+mul", "reg bits")
    cols += ("R", "II", "mul", "DSP iCE40/ECP5", "ROM bits") if folded else ()
    numeric = ("cycles", "adders+mul", "reg bits", "R", "II", "mul", "DSP iCE40/ECP5", "ROM bits")
    for col in cols:
        table.add_column(col, justify="right" if col in numeric else "left",
                         no_wrap=col in ("weight", "accum", "result"), overflow="fold")
    for row in rows:
        table.add_row(*row[:3], *row[4:10], *(row[10:] if folded else ()))
    out.print(table)
    t = report["totals"]
    io = report.get("io", "parallel")
    out.print(f"io {io}: latency [bold]{report['latency_cycles']}[/] cycles (first input to last output), "
              f"{report['initiation_interval']} cycle(s) per inference; "
              f"{t['adders']} adders, {t['multipliers']} multipliers, {t['register_bits']} register bits, "
              f"{t['rom_bits']} ROM bits, {t.get('memory_bits', 0)} block-RAM bits; "
              f"{t['nonzero_weights']} of {t['weights']} weights non-zero")
    estimates = report.get("estimates")
    if estimates:
        out.print("estimated before synthesis: " + "; ".join(
            f"{family} {e['LUT']:,} LUT, {e['FF']:,} FF" + (f", {e['DSP']:,} DSP" if e.get("DSP") else "")
            for family, e in estimates.items())
            + " (Yosys's count: nnhdl synth OUTDIR --family ice40|ecp5)")
    fit = report.get("fit")
    if fit:
        est, have = fit["estimated"], fit["available"]
        out.print(f"fitted to {fit['board']}: reuse " + ", ".join(f"{k} R={v}" for k, v in fit["layer_reuse"].items())
                  + "; estimated " + ", ".join(f"{est[k]:,}/{have[k]:,} {k}" for k in ("LUT", "FF", "LC", "DSP", "BRAM")
                                if k in est and k in have))
    queue = report.get("output_queue")
    if queue:
        out.print(f"credit flow control: the layers never wait for o__ready; an output queue of {queue['depth']} "
                  f"results ({queue['bits']:,} bits) holds what the consumer does not take at once")
    elif report.get("flow_control") == "stall":
        out.print("stall flow control: o__ready low holds every layer (o__ready reaches every register's enable)")
    for b in report.get("buffers", []):
        out.print(f"line buffer of {b['layer']}: {b['bits']} bits in {b['storage']}")
    i, o = report["input"], report["output"]

    def port(name, p):
        beats = p.get("transfers_per_inference", 1)
        per = f" ({beats} transfers of {p['words_per_transfer']} words per inference)" if beats > 1 else ""
        return f"{name}[{p['width_bits']}] = {p['shape']} x {p['format']}{per}"

    out.print(f"ports: {port('i__payload', i)}, {port('o__payload', o)}"
              + (" (argmax index)" if o.get("kind") == "argmax index" else ""))
    if outdir is not None and report.get("files"):
        names = list(report["files"].values()) + ["report.json"]
        files = ", ".join(str(Path(outdir) / f) for f in names)
        out.print(f"files: {files}")


@click.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@user_errors
def report(outdir):
    """Show the report of a converted network (OUTDIR from 'nnhdl convert') as a table."""
    from ..convert import load_design
    design = load_design(outdir, build=False)
    if not design.report:
        from ..convert import ConvertError
        raise ConvertError(f"{outdir}/report.json is missing; convert the model again")
    print_report(design.report, outdir)
