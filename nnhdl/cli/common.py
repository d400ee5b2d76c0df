"""What the commands share: error translation, options, input loading, console."""

import contextlib
import functools
import warnings
from pathlib import Path

import click
import numpy as np
from rich.console import Console

__all__ = ["UserError", "user_errors", "console", "precision_options", "load_inputs", "per_second", "printed_warnings"]

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


@contextlib.contextmanager
def printed_warnings():
    """Print the :class:`nnhdl.passes.PrecisionWarning` s raised in the block as one-line
    ``warning:`` messages (also when the block fails); other warnings pass through unchanged."""
    from rich.markup import escape

    from ..passes import PrecisionWarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PrecisionWarning)
        try:
            yield
        finally:
            others = [w for w in caught if not issubclass(w.category, PrecisionWarning)]
            ours = [w for w in caught if issubclass(w.category, PrecisionWarning)]
    for w in ours:
        console.print(f"[yellow]warning:[/] {escape(str(w.message))}")
    for w in others:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _read_array(path, what):
    """The one array in a .npy file (or a .npz archive holding exactly one)."""
    from ..convert import ConvertError
    how = "save them with numpy.save('x.npy', X), X a real numeric array shaped (N, *input shape)"
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConvertError(f"{path}: no such file; give the {what} as a .npy file") from None
    except IsADirectoryError:
        raise ConvertError(f"{path}: is a folder; give the {what} as a .npy file") from None
    except (OSError, ValueError, EOFError) as e:
        raise ConvertError(f"{path}: not a readable .npy array ({' '.join(str(e).split())}); {how}") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            names = list(data.files)
            if len(names) != 1:
                raise ConvertError(f"{path}: a .npz archive with {len(names)} arrays "
                                   f"({', '.join(names[:5]) or 'none'}); nnhdl reads one array: {how} "
                                   "(or numpy.savez('x.npz', X) with X alone)")
            try:
                return data[names[0]]
            except (OSError, ValueError) as e:
                raise ConvertError(f"{path}: array {names[0]!r} cannot be read ({e}); {how}") from None
    if not isinstance(data, np.ndarray):  # pragma: no cover - np.load returns arrays or archives
        raise ConvertError(f"{path}: not a .npy array; {how}")
    return data


def load_inputs(path, graph, what="inputs"):
    """Float inputs from a .npy file (or a .npz archive with exactly one array), shaped
    (N, *input shape) with N >= 1 (one sample may omit N). Refuses complex, non-numeric, NaN or
    infinite values and empty arrays with a message naming the file and the fix."""
    from ..convert import ConvertError
    path = Path(path)
    x = _read_array(path, what)
    if np.iscomplexobj(x):
        raise ConvertError(f"{path}: the {what} are complex numbers ({x.dtype}); nnhdl networks take real numbers: "
                           "save the part you mean, e.g. X.real or np.abs(X)")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ConvertError(f"{path}: the {what} must be numbers (integer or float), not {x.dtype}; "
                           "save them with X.astype(float)")
    shape = tuple(graph.input.shape)
    if x.shape == shape:
        x = x[None]
    if x.ndim >= 1 and x.shape[0] == 0 or x.size == 0:
        raise ConvertError(f"{path}: holds no {what} (shape {tuple(x.shape)}); give at least one, shaped "
                           f"(N, {', '.join(map(str, shape))})")
    if x.ndim < 1 or tuple(x.shape[1:]) != shape:
        raise ConvertError(f"{path}: {what} must have shape (N, {', '.join(map(str, shape))}) for input "
                           f"'{graph.input.name}', not {tuple(x.shape)}")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ConvertError(f"{path}: {int(bad.sum())} of the {what}' values are NaN or infinite (the first at index "
                           f"{first}); remove or replace them")
    return x


def per_second(rate):
    """A rate for people: ``12,345``, ``42.5``, ``3.1``, ``0.31`` (never "0" or "1" for a slow rate)."""
    if rate == float("inf"):
        return "inf"
    if rate >= 100:
        return f"{rate:,.0f}"
    if rate >= 10:
        return f"{rate:.1f}"
    return f"{rate:.2g}"
