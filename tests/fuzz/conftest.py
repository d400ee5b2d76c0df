"""The fuzz suite's summary: models run, mismatches, crashes and time, printed at the end."""

from .models import STATS


def pytest_terminal_summary(terminalreporter):
    if not STATS.models:
        return
    tr = terminalreporter
    tr.section("nnhdl fuzz summary")
    kinds = ", ".join(f"{k}/{io}: {n}" for (k, io), n in sorted(STATS.by_kind.items()))
    tr.write_line(f"models run: {STATS.models} ({kinds})")
    tr.write_line(f"mismatches: {STATS.mismatches}   crashes: {STATS.crashes}   "
                  f"time in models: {STATS.seconds:.1f} s")
    for line in STATS.failures:
        tr.write_line(f"  failure: {line}")
