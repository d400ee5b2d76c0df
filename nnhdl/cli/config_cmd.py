from pathlib import Path

import click

from .common import console, precision_options, user_errors


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the TOML configuration.")
@precision_options
@user_errors
def config(model, output, config_path, precision, softmax):
    """Write the editable default precision configuration of MODEL, every layer listed."""
    from ..config_template import config_template
    from ..convert import load_config, load_model
    from ..outputs import write_atomic

    cfg = load_config(config_path, precision, softmax)
    graph = load_model(model)
    if graph.is_quantized:
        from ..convert import ConvertError
        raise ConvertError(f"{model}: carries its own fixed-point formats (a quantization-aware model): it takes no "
                           f"precision configuration; convert it directly: nnhdl convert {model} -o OUTDIR")
    text = config_template(graph, cfg)
    write_atomic(output, lambda tmp: tmp.write_text(text))
    console.print(f"wrote [bold]{output}[/] ({len(graph.ops)} layers). Edit it, then: "
                  f"nnhdl convert {model} -c {output} -o OUTDIR")
