"""Progress of long steps: stage lines and periodic elapsed-time lines when output is a log."""

import io
import re
import time

from rich.console import Console

from nnhdl.cli.progress import stage_progress


def test_log_form_has_stage_and_periodic_lines():
    buf = io.StringIO()
    log = Console(file=buf, force_terminal=False, width=200)
    with stage_progress("build demo", "synthesize (Yosys)", console=log, interval=0.05) as progress:
        time.sleep(0.3)
        progress.update("place and route (nextpnr)")
        time.sleep(0.3)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "[nnhdl] build demo: synthesize (Yosys) ..."
    assert "[nnhdl] build demo: place and route (nextpnr) ..." in lines
    periodic = [ln for ln in lines if re.fullmatch(r"\[nnhdl\] build demo: .* \.\.\. \d+ s", ln)]
    stages = {ln.split(": ", 1)[1].rsplit(" ...", 1)[0] for ln in periodic}
    assert stages == {"synthesize (Yosys)", "place and route (nextpnr)"}, lines


def test_terminal_form_prints_nothing_after_it_ends():
    buf = io.StringIO()
    term = Console(file=buf, force_terminal=True, width=100)
    with stage_progress("synth", "Yosys", console=term) as progress:
        progress.update("stat")
    assert "[nnhdl]" not in buf.getvalue()
