"""The ``nnhdl`` command line: one module per command; heavy imports happen inside them."""

import click

from .. import __version__
from .boards_cmd import boards, build, run, synth
from .config_cmd import config
from .convert_cmd import convert
from .predict_cmd import predict
from .report_cmd import report
from .testbench_cmd import testbench
from .verify_cmd import verify

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nnhdl")
def main():
    """nnhdl: trained neural networks to verified, fully pipelined fixed-point RTL.

    \b
    Typical flow:
      nnhdl config  model.keras -o config.toml      # editable precision config
      nnhdl convert model.keras -c config.toml -o out/
      nnhdl verify  out/                            # files as converted; RTL vs bit-exact reference
      nnhdl testbench out/ -o tb/                   # standalone cocotb testbench
      nnhdl synth out/ --family ecp5                # resources, no place-and-route
      nnhdl build out/ --board ulx3s-85f            # bitstream, Fmax, latency in ns
      nnhdl report  out/
      nnhdl predict out/ --inputs X.npy -o Y.npy    # bit-exact outputs
    """


for command in (config, convert, predict, verify, report, testbench, boards, synth, build, run):
    main.add_command(command)
