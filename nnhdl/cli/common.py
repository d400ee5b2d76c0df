"""What the commands share: error translation, options, input loading, console."""

import functools
from pathlib import Path

import click
import numpy as np
from rich.console import Console

__all__ = ["UserError", "user_errors", "console", "precision_options", "load_inputs"]

console = Console(stderr=True, highlight=False, soft_wrap=True)


class UserError(click.ClickException):
    """Bad input from the user: message on stderr, exit code 2."""
    exit_code = 2

    def show(self, file=None):
        from rich.markup import escape
        console.print(f"[bold red]error:[/] {escape(self.format_message())}")


def _user_error_types():
    from ..config import ConfigError
    from ..convert import ConvertError
    from ..fixed import FormatError
    from ..frontend.keras import FrontendError
    from ..ir import IRError
    from ..layers.network import NetworkError
    from ..outputs import OutputError
    from ..reference import ReferenceError
    return (ConfigError, ConvertError, FormatError, FrontendError, IRError, NetworkError, OutputError,
            ReferenceError)


def user_errors(fn):
    """Turn the library's user-facing errors into a clean message and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _user_error_types() as e:
            raise UserError(str(e)) from None
    return wrapper


def precision_options(fn):
    """-c/--config, --precision, --softmax."""
    fn = click.option("--softmax", type=click.Choice(["table", "argmax"]), default=None,
                      help="Softmax as hls4ml 1.3's table-based 'stable' softmax, or the index of the largest "
                           "logit (overrides the config file).")(fn)
    fn = click.option("--precision", metavar="FORMAT", default=None,
                      help="Default precision, e.g. 'fixed<16,6>' (overrides the config file).")(fn)
    fn = click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                      default=None, help="Precision configuration (TOML), e.g. from 'nnhdl config'.")(fn)
    return fn


def load_inputs(path, graph):
    """Float inputs from a .npy file, shaped (N, *input shape) (one sample may omit N)."""
    path = Path(path)
    from ..convert import ConvertError
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConvertError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise ConvertError(f"{path}: not a readable .npy array ({e}); save inputs with numpy.save") from None
    shape = tuple(graph.input.shape)
    if x.shape == shape:
        x = x[None]
    if x.ndim < 1 or tuple(x.shape[1:]) != shape:
        raise ConvertError(f"{path}: inputs must have shape (N, {', '.join(map(str, shape))}) for input "
                           f"'{graph.input.name}', not {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.number):
        raise ConvertError(f"{path}: inputs must be numbers, not {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ConvertError(f"{path}: inputs contain NaN or infinity")
    return x.astype(np.float64)
