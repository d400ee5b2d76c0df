"""Writing results all at once: into a temporary folder, then moved into place.

The temporary folder sits beside the output, named ``.<output>.nnhdl-<pid>-<random>.tmp``. It is
removed when the block fails, when it succeeds (after its files were moved), and when the process
gets SIGTERM (the handler raises ``SystemExit``, so ``finally`` runs; the previous handler is
restored afterwards). A SIGKILL cannot be caught: the next run beside the same output sweeps
temporary folders whose process is gone or that are older than :data:`STALE_SECONDS`.

A *design folder* (``nnhdl convert``'s output) is owned by nnhdl: :data:`MANIFEST` lists the files
``convert`` wrote. Converting into a folder that holds anything else is refused unless
``force=True`` (then the other files are left alone, and the manifest records them as not
nnhdl's, so a later convert never removes them); converting again replaces the previous
nnhdl contents wholly — the files of the last convert (a ``<top>.v`` of another ``--top`` too)
and everything the other commands derived from that design inside the folder (:func:`derived`:
``build/``, ``synth-*/``, ``.nnhdl-sim/``, waveforms ``<top>-<sim>.fst|vcd``).
"""

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["OutputError", "staged_outputs", "write_atomic", "check_design_folder", "MANIFEST", "STALE_SECONDS",
           "derived"]

#: The file in a design folder that lists what ``nnhdl convert`` wrote there.
MANIFEST = ".nnhdl-manifest.json"
#: Temporary folders older than this are swept even if their process id is in use again.
STALE_SECONDS = 6 * 3600

_DERIVED_DIRS = ("build", ".nnhdl-sim")
_DERIVED_RE = re.compile(r"synth-[A-Za-z0-9_]+|\..+\.nnhdl-\d+-[^.]*\.tmp|\..+\.[A-Za-z0-9_]{8}\.tmp"
                         r"|.+-(icarus|verilator)\.(fst|vcd)")
_TEMP_RE = re.compile(r"\.(?P<name>.+)\.nnhdl-(?P<pid>\d+)-[^.]*\.tmp")
_OLD_TEMP_RE = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp")  # mkdtemp names of earlier nnhdl versions


class OutputError(OSError):
    """An output location cannot be written."""


def _cannot_write(where, e):
    return OutputError(f"cannot write to {where}: {getattr(e, 'strerror', None) or e}; "
                       "choose a folder you can write to")


# -- SIGTERM -------------------------------------------------------------------------------------

@contextlib.contextmanager
def _sigterm_raises():
    """While the block runs (in the main thread), SIGTERM raises ``SystemExit(143)`` so that
    ``finally`` clauses clean up; the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except (ValueError, OSError):  # pragma: no cover - no signals here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# -- stale temporary folders ---------------------------------------------------------------------

def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: someone else's live process
        return True
    return True


def _is_stale(pid, age):
    """A temporary entry of process ``pid`` (``None``: an earlier nnhdl's, which did not record
    it), ``age`` seconds old, is left over: the process is gone, or it is older than
    :data:`STALE_SECONDS` (the id may be in use again), or (no id) older than an hour."""
    if pid is None:
        return age > 3600
    return age > STALE_SECONDS or (int(pid) != os.getpid() and not _pid_alive(int(pid)))


def _sweep_stale(parent, name):
    """Remove ``.<name>.*.tmp`` entries in ``parent`` left by a killed nnhdl: its process is gone,
    or the entry is older than :data:`STALE_SECONDS`."""
    now = time.time()
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return
    for entry in entries:
        m = _TEMP_RE.fullmatch(entry.name) or _OLD_TEMP_RE.fullmatch(entry.name)
        if not m or m["name"] != name:
            continue
        try:
            age = now - entry.lstat().st_mtime
        except OSError:
            continue
        if _is_stale(m.groupdict().get("pid"), age):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()


def _temp_prefix(name):
    return f".{name}.nnhdl-{os.getpid()}-"


# -- design folders ------------------------------------------------------------------------------

def _manifest(outdir):
    """What the last ``nnhdl convert`` recorded in ``outdir``: ``{"files": [...], "top": ...,
    "others": [...]}`` (the files it wrote, and the other entries that were there, kept with
    ``force``), from :data:`MANIFEST` or from the ``report.json`` of an nnhdl version without
    manifests; ``None`` when ``outdir`` is not a design folder."""
    try:
        data = json.loads((outdir / MANIFEST).read_text())
        if isinstance(data, dict) and isinstance(data.get("files"), list):
            return {"files": [str(f) for f in data["files"]], "top": str(data.get("top", "")),
                    "others": [str(f) for f in data.get("others", [])]}
    except (OSError, ValueError):
        pass
    try:  # a folder converted before manifests: its report lists the files
        report = json.loads((outdir / "report.json").read_text())
        if isinstance(report, dict) and "nnhdl_version" in report and isinstance(report.get("files"), dict):
            return {"files": ["report.json"] + [str(f) for f in report["files"].values()],
                    "top": str(report.get("top", "")), "others": []}
    except (OSError, ValueError):
        pass
    return None


def derived(name):
    """Whether a top-level entry ``name`` of a design folder is something nnhdl commands write
    there from the design (``build/``, ``synth-*/``, ``.nnhdl-sim/``, waveforms, temporary folders)."""
    return name in _DERIVED_DIRS or bool(_DERIVED_RE.fullmatch(name))


def _classify(outdir):
    """``(ours, foreign)``: top-level entry names of ``outdir`` nnhdl wrote, and the others."""
    if not outdir.is_dir():
        return [], []
    names = sorted(p.name for p in outdir.iterdir())
    listed = _manifest(outdir)
    if listed is None:
        return [], names
    files, others = set(listed["files"]) | {MANIFEST}, set(listed["others"])
    ours = [n for n in names if n in files or (derived(n) and n not in others)]
    return ours, [n for n in names if n not in ours]


def check_design_folder(outdir, force=False):
    """Refuse an output folder holding files nnhdl did not write (unless ``force``); return the
    names of the entries nnhdl wrote there (replaced by the next convert)."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir} exists and is not a folder; choose another output folder")
    ours, foreign = _classify(outdir)
    if foreign and not force:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputError(f"{outdir} holds files nnhdl did not write ({shown}); choose a new or empty output folder, "
                          "or pass --force to write into it anyway (your files are kept; nnhdl replaces only its own)")
    return ours


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _commit_design(tmp, outdir, force, top):
    """Move the files of ``tmp`` into the design folder ``outdir``, replacing its previous nnhdl
    contents; the manifest always lists everything of nnhdl's in the folder, so an interruption
    leaves nothing that a later run would take for the user's."""
    previous = check_design_folder(outdir, force)
    new = sorted(p.name for p in tmp.iterdir())
    others = sorted(set(_classify(outdir)[1]) - set(new))  # kept with force: never nnhdl's to remove
    old_files = (_manifest(outdir) or {"files": []})["files"]
    _write_manifest(outdir, set(new) | set(old_files) | (set(previous) - {MANIFEST}), top, others)
    for name in new:
        os.replace(tmp / name, outdir / name)
    for name in previous:
        if name not in new and name != MANIFEST:
            _remove(outdir / name)
    _write_manifest(outdir, new, top, others)


def _write_manifest(outdir, files, top, others):
    from . import __version__
    text = json.dumps({"written_by": "nnhdl convert", "nnhdl_version": __version__, "top": top,
                       "files": sorted(files), "others": sorted(others)}, indent=1) + "\n"
    tmp = outdir / f"{MANIFEST}.nnhdl-{os.getpid()}-m.tmp"
    tmp.write_text(text)
    os.replace(tmp, outdir / MANIFEST)


# -- staging -------------------------------------------------------------------------------------

@contextlib.contextmanager
def staged_outputs(outdir, *, design=False, force=False, top=""):
    """Yield a temporary folder beside ``outdir``; when the block succeeds, move every file in it
    into ``outdir`` (created if needed); when it fails or SIGTERM arrives, delete it, leaving
    ``outdir`` exactly as it was.

    ``design=False``: other files in ``outdir`` are left alone. ``design=True`` (``nnhdl
    convert``): ``outdir`` must hold only nnhdl's files unless ``force``, its previous nnhdl
    contents are replaced, and :data:`MANIFEST` lists the new files (see the module docstring)."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir} exists and is not a folder; choose another output folder")
    if design:
        check_design_folder(outdir, force)
    parent = outdir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(parent, outdir.name)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(outdir.name), suffix=".tmp", dir=parent))
    except OSError as e:
        raise _cannot_write(outdir, e) from None
    with _sigterm_raises():
        try:
            yield tmp
            try:
                outdir.mkdir(exist_ok=True)
                if not os.access(outdir, os.W_OK):
                    raise PermissionError(13, "Permission denied")
                if design:
                    _commit_design(tmp, outdir, force, top)
                else:
                    for item in sorted(tmp.rglob("*")):
                        dest = outdir / item.relative_to(tmp)
                        if item.is_dir():
                            dest.mkdir(exist_ok=True)
                        else:
                            os.replace(item, dest)
            except OutputError:
                raise
            except OSError as e:
                raise _cannot_write(outdir, e) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def write_atomic(path, write):
    """Create ``path`` all at once: ``write(tmp_path)`` writes a temporary file beside it, which
    then replaces ``path``. On failure (or SIGTERM) nothing is left behind."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    try:
        path.absolute().parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(path.absolute().parent, path.name)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".tmp", dir=path.absolute().parent)
        os.close(fd)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; choose a location you can write to") from None
    with _sigterm_raises():
        try:
            write(Path(tmp))
            os.replace(tmp, path)
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
