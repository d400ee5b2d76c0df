"""Progress of long steps: stage lines and periodic elapsed-time lines when output is a log."""

import io
import re
import time

from rich.console import Console

from nnhdl.cli.progress import stage_progress


def test_log_form_has_stage_and_periodic_lines():
    buf = io.StringIO()
    log = Console(file=buf, force_terminal=False, width=200)
    with stage_progress("build demo", "synthesize (Yosys)", out=log, interval=0.05) as progress:
        time.sleep(0.3)
        progress.stage("simulate", total=40)
        progress.update(12)
        time.sleep(0.3)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "build demo: synthesize (Yosys)…"
    assert "build demo: simulate… (40 vectors)" in lines
    periodic = [ln for ln in lines if re.fullmatch(r"build demo: .*… (12/40 vectors, )?\d+ s", ln)]
    assert {ln.split(": ", 1)[1].split("…")[0] for ln in periodic} == {"synthesize (Yosys)", "simulate"}, lines
    assert any("12/40 vectors" in ln for ln in periodic)


def test_terminal_form_leaves_nothing_behind():
    buf = io.StringIO()
    term = Console(file=buf, force_terminal=True, width=100)
    with stage_progress("synth", "Yosys", out=term) as progress:
        progress.stage("stat")
    assert "synth: " not in buf.getvalue().replace("\x1b", "").split("\n")[-1]


def test_rates_below_one_are_not_rounded_away():
    from nnhdl.cli.common import per_second
    assert [per_second(r) for r in (0.3125, 1.0, 3.14159, 42.44, 12345.6)] == ["0.31", "1", "3.1", "42.4", "12,346"]
