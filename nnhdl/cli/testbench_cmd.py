from pathlib import Path

import click

from .common import console, load_inputs, user_errors


@click.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("-o", "--output", "tbdir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The testbench folder to write.")
@click.option("--inputs", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Float inputs (.npy); default: random vectors over the input format's whole range.")
@click.option("-n", "count", type=click.IntRange(min=1), default=None, help="Number of vectors (default 1000).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed (>= 0) for random inputs, gaps and stalls.")
@click.option("--gap", type=click.FloatRange(0, 0.95), default=0.2, show_default=True)
@click.option("--stall", type=click.FloatRange(0, 0.95), default=0.2, show_default=True)
@user_errors
def testbench(outdir, tbdir, inputs, count, seed, gap, stall):
    """Write a standalone cocotb testbench for OUTDIR into TBDIR: the Verilog, the testbench parts,
    input vectors and expected outputs, and run.py. It runs with only cocotb, numpy and a simulator."""
    from ..convert import load_design
    from ..fixed import quantize
    from ..testbench import write_testbench
    from ..verify import random_inputs

    design = load_design(outdir, build=False)
    graph = design.graph
    if inputs is not None:
        x = quantize(load_inputs(inputs, graph), graph.input.fmt).reshape(-1, graph.input.size)[:count]
    else:
        x = random_inputs(graph, count or 1000, seed)
    write_testbench(design, tbdir, x, gap=gap, stall=stall, seed=seed)
    console.print(f"wrote [bold]{tbdir}[/]: {design.report['files']['verilog']}, cocotb_bench.py, {len(x)} vectors. "
                  f"Run it: cd {tbdir} && python run.py --sim icarus   (or --sim verilator)")
