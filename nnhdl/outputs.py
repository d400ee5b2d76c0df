"""Writing results all at once: into a temporary folder, then moved into place."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["OutputError", "staged_outputs", "write_atomic"]


class OutputError(OSError):
    """An output location cannot be written."""


@contextlib.contextmanager
def staged_outputs(outdir):
    """Yield a temporary folder beside ``outdir``; when the block succeeds, move every file in it
    into ``outdir`` (created if needed, other files there are left alone); when it fails, delete
    it, leaving ``outdir`` exactly as it was."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir} exists and is not a folder; choose another output folder")
    parent = outdir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", suffix=".tmp", dir=parent))
    except OSError as e:
        raise OutputError(f"cannot write to {outdir}: {e.strerror or e}; choose a folder you can write to") from None
    try:
        yield tmp
        try:
            outdir.mkdir(exist_ok=True)
            if not os.access(outdir, os.W_OK):
                raise PermissionError(13, "Permission denied")
            for item in sorted(tmp.rglob("*")):
                dest = outdir / item.relative_to(tmp)
                if item.is_dir():
                    dest.mkdir(exist_ok=True)
                else:
                    os.replace(item, dest)
        except OSError as e:
            raise OutputError(f"cannot write to {outdir}: {e.strerror or e}; choose a folder you can write to") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_atomic(path, write):
    """Create ``path`` all at once: ``write(tmp_path)`` writes a temporary file beside it, which
    then replaces ``path``. On failure nothing is left behind."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    try:
        path.absolute().parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.absolute().parent)
        os.close(fd)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; choose a location you can write to") from None
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
