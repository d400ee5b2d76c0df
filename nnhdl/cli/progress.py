"""Progress of long steps: the stage and the elapsed time, in a terminal and in a log.

In a terminal a transient spinner line shows ``title: stage  0:00:42``. When the output is not a
terminal (``make demo > log``, CI) a plain line is printed when a stage starts and then every
``interval`` seconds while it runs (``NNHDL_PROGRESS_INTERVAL``, default 10 s), so a log shows
what is happening and for how long::

    [nnhdl] synth ecp5: Yosys synth_ecp5 ...
    [nnhdl] synth ecp5: Yosys synth_ecp5 ... 10 s
"""

import contextlib
import os
import threading
import time

__all__ = ["stage_progress", "progress_interval"]


def progress_interval():
    """Seconds between the plain progress lines of a non-terminal output."""
    try:
        return max(0.05, float(os.environ.get("NNHDL_PROGRESS_INTERVAL", "10")))
    except ValueError:
        return 10.0


class _PlainProgress:
    """Stage lines and periodic elapsed-time lines for a console that is not a terminal."""

    def __init__(self, console, title, interval):
        self.console, self.title, self.interval = console, title, interval
        self.stage, self.started = "", time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def _line(self, text):
        self.console.print(f"[nnhdl] {self.title}: {text}", markup=False, highlight=False, soft_wrap=True)

    def update(self, stage):
        with self._lock:
            self.stage, self.started = stage, time.monotonic()
            self._line(f"{stage} ...")

    def _tick(self):
        while not self._stop.wait(self.interval):
            with self._lock:
                self._line(f"{self.stage} ... {time.monotonic() - self.started:.0f} s")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class _TerminalProgress:
    def __init__(self, console, title):
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        self.title = title
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                  console=console, transient=True)
        self._task = None

    def update(self, stage):
        from rich.markup import escape
        text = escape(f"{self.title}: {stage}")
        if self._task is None:
            self._task = self._progress.add_task(text)
        else:
            self._progress.update(self._task, description=text)

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        self._progress.__exit__(*exc)


@contextlib.contextmanager
def stage_progress(title, first_stage="", console=None, interval=None):
    """Show the progress of a long step: ``with stage_progress("build") as p: p.update("Yosys")``.

    ``p.update(stage)`` names the stage now running (its elapsed time restarts in a log)."""
    if console is None:
        from .common import console
    shown = _TerminalProgress(console, title) if console.is_terminal else \
        _PlainProgress(console, title, progress_interval() if interval is None else interval)
    with shown:
        if first_stage:
            shown.update(first_stage)
        yield shown
