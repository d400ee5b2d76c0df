from pathlib import Path

import click

from .common import console, load_inputs, precision_options, printed_warnings, user_errors


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--inputs", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Float inputs (.npy), shaped (N, *input shape).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the outputs (.npy, float64 values of the output format).")
@precision_options
@click.option("--trace", "trace_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write every layer's output (<layer>.npy) into this folder.")
@user_errors
def predict(source, inputs, output, config_path, precision, softmax, trace_dir):
    """Bit-exact fixed-point outputs of SOURCE (a model file, or an OUTDIR from 'nnhdl convert')
    for the inputs, from the reference model the RTL is verified against."""
    import numpy as np

    from ..convert import ConvertError, compile_model, is_design_dir, load_config, load_design, load_model
    from ..outputs import staged_outputs, write_atomic
    from ..passes import warn_inputs_outside
    from ..reference import to_real, trace

    if source.is_dir() and not is_design_dir(source):
        raise ConvertError(f"{source} is a folder without graph.json: not written by 'nnhdl convert'; give a folder "
                           "from 'nnhdl convert' or a .keras/.h5 model file")
    if is_design_dir(source):
        if config_path or precision or softmax:
            raise ConvertError(f"{source} is already converted: its precision is fixed; "
                               "drop -c/--precision/--softmax or predict from the model file")
        graph = load_design(source, build=False).graph
    else:
        with printed_warnings():
            graph = compile_model(load_model(source), load_config(config_path, precision, softmax))
    x = load_inputs(inputs, graph)
    with printed_warnings():
        warn_inputs_outside(graph, x, str(inputs))
    values = trace(graph, x)
    out = graph.outputs[0]
    y = to_real(graph, values[out]).reshape((len(x),) + tuple(graph.output.shape))
    write_atomic(output, lambda tmp: np.save(open(tmp, "wb"), y))
    if trace_dir is not None:
        with staged_outputs(trace_dir) as tmp:
            for name, raw in values.items():
                np.save(tmp / f"{name}.npy", to_real(graph, raw, name))
    console.print(f"wrote [bold]{output}[/]: {len(x)} outputs of shape {tuple(graph.output.shape)} in "
                  f"{graph.output.fmt}" + (f"; every layer's output in {trace_dir}/" if trace_dir else ""))
