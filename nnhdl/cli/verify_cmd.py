from pathlib import Path

import click

from .common import UserError, console, load_inputs, user_errors


@click.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("--inputs", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Float inputs (.npy); default: random vectors over the input format's whole range.")
@click.option("-n", "count", type=click.IntRange(min=1), default=None,
              help="Number of vectors (default: all inputs, or 1000 random ones).")
@click.option("--sim", type=click.Choice(["amaranth", "icarus", "verilator"]), default="amaranth",
              show_default=True,
              help="amaranth: the Amaranth design in Amaranth's simulator; icarus / verilator: the exported "
                   "Verilog under cocotb.")
@click.option("--waves", is_flag=True, help="Write a waveform (FST/VCD) into OUTDIR (icarus, verilator).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random inputs, gaps and stalls.")
@click.option("--gap", type=click.FloatRange(0, 0.95), default=0.2, show_default=True,
              help="Probability of an idle cycle before each input.")
@click.option("--stall", type=click.FloatRange(0, 0.95), default=0.2, show_default=True,
              help="Probability that the output is not ready in a cycle.")
@user_errors
def verify(outdir, inputs, count, sim, seed, gap, stall, waves):
    """Simulate the RTL of OUTDIR and compare every output with the bit-exact reference.

    Exit code 0 only if every output matches and the latency is exactly as reported;
    otherwise the first mismatches are printed and the exit code is 1."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rich.markup import escape

    from ..convert import load_design
    from ..fixed import quantize
    from ..verify import random_inputs, verify_design

    design = load_design(outdir)
    graph = design.graph
    if inputs is not None:
        x = quantize(load_inputs(inputs, graph), graph.input.fmt).reshape(-1, graph.input.size)
        source = str(inputs)
    else:
        x = random_inputs(graph, count or 1000, seed)
        source = "random inputs"
    if count is not None:
        x = x[:count]
    if sim == "amaranth":
        with Progress(TextColumn("simulating ({task.fields[sim]})"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task("sim", total=len(x), sim=sim)
            result = verify_design(design, x, simulator=sim, seed=seed, gap=gap, stall=stall,
                                   progress=lambda k: progress.update(task, completed=k))
    else:
        from ..sim.cocotb_runner import SimulatorMissing
        try:
            with console.status(f"building and simulating {design.report['files']['verilog']} with {sim} "
                                "under cocotb (the build is reused while the Verilog is unchanged)"):
                result = verify_design(design, x, simulator=sim, seed=seed, gap=gap, stall=stall, waves=waves)
        except SimulatorMissing as e:
            raise UserError(str(e)) from None
        except RuntimeError as e:
            console.print(escape(f"{sim} failed: {e}"))
            raise SystemExit(1) from None
    top = design.top
    what = "the Amaranth design" if sim == "amaranth" else f"{design.report['files']['verilog']} (cocotb)"
    if result.passed:
        console.print(f"[green]PASS[/] {top}: {result.n} outputs of {what} ({source}) equal the reference bit for "
                      f"bit; latency {result.latency} cycles and {result.interval} cycle(s) per inference as "
                      f"reported; {result.rate:.0f} inferences/s "
                      f"in {sim} (gap {gap}, stall {stall}, seed {seed})")
        if waves:
            console.print(f"waveforms: {', '.join(str(p) for p in sorted(outdir.glob(f'{top}-{sim}.*')))}")
        return
    if result.mismatches:
        console.print(f"[red]FAIL[/] {top}: {result.mismatch_count} of {result.n} outputs differ from the reference")
        for k, want, got, cycle in result.mismatches:
            console.print(escape(f"  input {k} (output at cycle {cycle}): expected {want}, got {got}"))
    if not result.latency_ok:
        console.print(f"[red]FAIL[/] {top}: measured latency {sorted(result.latencies)} cycles, "
                      f"reported {result.latency}; measured {sorted(result.intervals)} cycles per inference, "
                      f"reported {result.interval}")
    raise SystemExit(1)
