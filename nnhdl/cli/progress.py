"""Progress of long steps: the stage, the count done and the elapsed time, in a terminal and in a log.

:func:`stage_progress` yields an object with ``stage(text, total=None, note="")`` (a new stage,
optionally with a number of vectors), ``update(done)`` (the count so far) and ``status(text)`` (what
the stage is doing now, e.g. nextpnr's ``routing: 88,331 of 106,680 arcs left``). In a terminal it is
one transient rich line (spinner, stage, bar, count, elapsed time). When the output is not a
terminal (``make demo > log``, CI) it is plain lines: one when a stage starts and one every
``NNHDL_PROGRESS_INTERVAL`` seconds (default 10) while it lasts, with the elapsed time::

    synth ecp5: Yosys synth_ecp5…
    synth ecp5: Yosys synth_ecp5… 10 s

The plain form is :class:`nnhdl.sim.cocotb_runner.ProgressLog`, which the standalone cocotb
testbench (``nnhdl testbench``) also uses, so both print the same lines.
"""

from contextlib import contextmanager

from .common import console

__all__ = ["stage_progress"]


class _RichStages:
    """Stages in a terminal: one transient line with a spinner, the stage, the count and the
    elapsed time (same interface as :class:`nnhdl.sim.cocotb_runner.ProgressLog`)."""

    def __init__(self, out, title):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[count]}"), TimeElapsedColumn(), console=out,
                                 transient=True)
        self.title, self.task, self.total, self.text = title, None, None, ""

    def stage(self, text, total=None, note=""):
        from rich.markup import escape
        self.text = text
        description = escape(f"{self.title}: {text}" + (f" ({note})" if note else ""))
        self.total = total
        count = f"0/{total}" if total else ""
        if self.task is None:
            self.task = self.progress.add_task(description, total=total, count=count)
        else:
            self.progress.reset(self.task, description=description, total=total, completed=0, count=count)

    def update(self, done):
        if self.task is not None:
            self.progress.update(self.task, completed=done, count=f"{done}/{self.total}" if self.total else "")

    def status(self, text):
        """What the current stage is doing now (after its name)."""
        from rich.markup import escape
        if self.task is not None:
            self.progress.update(self.task, description=escape(f"{self.title}: {self.text}: {text}"))

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()


@contextmanager
def stage_progress(title, first_stage="", out=None, interval=None):
    """Show the progress of a long step titled ``title`` on ``out`` (default: the CLI's stderr
    console): ``with stage_progress("build") as p: p.stage("Yosys"); ...``."""
    out = console if out is None else out
    if out.is_terminal:
        shown = _RichStages(out, title)
    else:
        from ..sim.cocotb_runner import ProgressLog
        shown = ProgressLog(out.file, interval=interval, prefix=f"{title}: ")
    with shown:
        if first_stage:
            shown.stage(first_stage)
        yield shown
