from pathlib import Path

import click

from ..options import Family, FlowControl, IOStyle, Multiplier
from .common import console, load_inputs, precision_options, printed_warnings, user_errors
from .progress import stage_progress


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: new, empty, or one nnhdl wrote (its previous nnhdl contents are replaced, only "
                   "when everything succeeded).")
@click.option("--force", is_flag=True,
              help="Write into an output folder that also holds other files (they are kept).")
@precision_options
@click.option("--top", default=None, help="Name of the top Verilog module (default: the model's name).")
@click.option("--multiplier", type=click.Choice([m.value for m in Multiplier]), default="cse", show_default=True,
              help="Constant multiplication: cse = shift-and-add with subexpressions shared across the whole "
                   "weight matrix; csd = each weight's canonical signed digits on its own; dsp = '*' for DSP blocks.")
@click.option("--levels-per-stage", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Adder levels between pipeline registers (fewer: more registers, higher Fmax).")
@click.option("--family", type=click.Choice([f.value for f in Family]), default=None,
              help="Place registers by this FPGA family's estimated delays (carry chains, LUT levels) for the "
                   "target --clock, instead of every --levels-per-stage adder levels.")
@click.option("--clock", "clock_mhz", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Target clock in MHz for --family (default per family: ice40 24, ecp5 100, xc7 200).")
@click.option("--io", "io", type=click.Choice([s.value for s in IOStyle]), default=None,
              help="parallel: the whole input tensor per cycle; stream: images one pixel (all channels) per "
                   "cycle through line buffers. Default: the config's io, else parallel.")
@click.option("--line-buffer-ram-bits", "memory_bits", type=click.IntRange(1), default=None,
              help="With --io stream: line buffers of at least this many bits are block RAM (lib.memory), "
                   "smaller ones registers.  [default: 1024]")
@click.option("--flow-control", "flow_control", type=click.Choice([f.value for f in FlowControl]), default=None,
              help="stall: every layer holds while the next is not ready (o__ready reaches every register's "
                   "enable). credit (--io parallel): the layers never wait; results the consumer does not take at "
                   "once wait in a small output queue, so o__ready reaches only that queue.  [default: stall]")
@click.option("--reuse", type=click.IntRange(1), default=1, show_default=True,
              help="Reuse factor of every Dense and convolution layer (a config's [layer.NAME] reuse = R wins): "
                   "each hardware multiplier used up to R times, one inference (a window, for --io stream "
                   "convolutions) every R cycles at most; 1 = fully parallel.")
@click.option("--fit", "fit", metavar="BOARD", default=None,
              help="Choose the reuse factor of every Dense and convolution layer whose config does not set one (or sets "
                   "reuse = \"auto\") so that the estimated LUTs, flip-flops, DSPs and block RAM fit BOARD "
                   "(nnhdl boards lists them); nnhdl build checks it after synthesis.")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Float inputs (.npy) used to size 'auto' result formats.")
@user_errors
def convert(model, outdir, force, config_path, precision, softmax, top, multiplier, levels_per_stage, family, clock_mhz,
            io, memory_bits, flow_control, reuse, fit, calibration):
    """Convert a trained MODEL (.keras or .h5) into pipelined fixed-point RTL in OUTDIR:
    <top>.v (Verilog), <top>.il (RTLIL), graph.json/.npz (quantized IR) and report.json."""
    from ..convert import convert as run_convert, load_config, load_model
    from .report_cmd import print_report

    cfg = load_config(config_path, precision, softmax)
    with printed_warnings(), stage_progress("convert", "load model") as progress:
        graph = load_model(model)
        calib = load_inputs(calibration, graph, "calibration inputs") if calibration else None
        design = run_convert(graph, outdir, config=cfg, multiplier=multiplier, levels_per_stage=levels_per_stage,
                             top=top, calibration=calib, io=io, memory_bits=memory_bits, force=force,
                             family=family, clock_mhz=clock_mhz, reuse=reuse, fit=fit, flow_control=flow_control,
                             step=progress.stage)
    print_report(design.report, outdir)
    console.print(f"[green]done:[/] {outdir}. Next: nnhdl verify {outdir}")
