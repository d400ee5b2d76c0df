"""Python's cyclic garbage collector, paused during a conversion.

Building a large datapath and converting it with Amaranth allocates millions of small objects
(nets, values, statements), and each of Python's full collections traverses every object in the
process, TensorFlow's included: on the 16-bit jet tagger about 2 s of a 4.6 s conversion went to
collections. Nearly all of those objects are freed by reference counting anyway, so
:func:`nnhdl.convert.convert` runs with the collector paused (:func:`paused_gc`). The objects still
alive must be traversed once when it resumes (about 0.5 s there); :func:`collect_while` does that
while another process waits for a tool (Yosys writing the Verilog), so that it costs no time.
"""

import gc
from contextlib import contextmanager

from .parallel import default_jobs, run_jobs

__all__ = ["paused_gc", "collect_while"]


@contextmanager
def paused_gc():
    """Within this context (or a function decorated with ``@paused_gc()``), no automatic cyclic
    garbage collection; nested uses are fine."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def collect_while(job):
    """``job()`` (which should mostly wait for another program) computed in a forked child while
    this process collects its young garbage generations (where everything made while the collector
    was paused is); without forking, one after the other. Returns ``job()``'s result."""
    # (the larger share stays here; the job may take much longer than the collection: no time limit)
    result, _ = run_jobs([job, _collect], costs=[1, 2], jobs=min(2, default_jobs()), patience=None)
    return result


def _collect():
    gc.collect(1)  # the young generations: the objects made while the collector was paused
