"""Progress of long steps: stage lines and periodic elapsed-time lines when output is a log."""

import io
import re
import time

from rich.console import Console

from nnhdl.cli.progress import stage_progress


def test_log_form_is_the_progress_log_titled():
    """Not a terminal: nnhdl.sim.cocotb_runner.ProgressLog's lines (tested in test_verify.py), titled."""
    buf = io.StringIO()
    with stage_progress("build demo", "synthesize (Yosys)", out=Console(file=buf, force_terminal=False),
                        interval=0.05):
        time.sleep(0.2)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "build demo: synthesize (Yosys)…"
    assert re.fullmatch(r"build demo: synthesize \(Yosys\)… \d+ s", lines[-1]), lines


def test_terminal_form_leaves_nothing_behind():
    buf = io.StringIO()
    term = Console(file=buf, force_terminal=True, width=100)
    with stage_progress("synth", "Yosys", out=term) as progress:
        progress.stage("stat")
    assert "synth: " not in buf.getvalue().replace("\x1b", "").split("\n")[-1]


def test_terminal_form_shows_the_status_after_the_stage():
    buf = io.StringIO()
    term = Console(file=buf, force_terminal=True, width=120)
    with stage_progress("build ulx3s-85f", "place and route (nextpnr)", out=term) as progress:
        progress.status("routing: 97,093 of 106,680 arcs left")
        task = progress.progress.tasks[0]
        assert task.description == "build ulx3s-85f: place and route (nextpnr): routing: 97,093 of 106,680 arcs left"
        progress.stage("bitstream")
        assert progress.progress.tasks[0].description == "build ulx3s-85f: bitstream"


def test_rates_below_one_are_not_rounded_away():
    from nnhdl.cli.common import per_second
    assert [per_second(r) for r in (0.3125, 1.0, 3.14159, 42.44, 12345.6)] == ["0.31", "1", "3.1", "42.4", "12,346"]
