"""The fuzz suite's summary: models run, mismatches, crashes and time, printed at the end."""

import datetime
import time

from .models import STATS

_START = {}


def pytest_sessionstart(session):
    _START["t"] = time.perf_counter()


def pytest_terminal_summary(terminalreporter):
    if not STATS.models:
        return
    tr = terminalreporter
    tr.section("nnhdl fuzz summary")
    kinds = ", ".join(f"{k}/{io}: {n}" for (k, io), n in sorted(STATS.by_kind.items()))
    wall = time.perf_counter() - _START.get("t", time.perf_counter())
    tr.write_line(f"models run: {STATS.models} ({kinds})")
    tr.write_line(f"mismatches: {STATS.mismatches}   crashes: {STATS.crashes}   "
                  f"refused with a clear message: {STATS.refused}   "
                  f"time in models: {STATS.seconds:.1f} s   wall time: {wall:.1f} s   "
                  f"finished: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    for line in STATS.failures:
        tr.write_line(f"  failure: {line}")
