"""Python's cyclic garbage collector, paused during the long conversions.

Building a large datapath and converting it with Amaranth allocates millions of small objects
(nets, values, statements), and each of Python's full collections then traverses every object in
the process, TensorFlow's included. On the 16-bit jet tagger that was about 2 s of a 4.6 s
conversion. Nearly all of those objects are freed by reference counting anyway; the collector
runs again, as usual, once the context closes.
"""

import gc
from contextlib import contextmanager

__all__ = ["paused_gc"]


@contextmanager
def paused_gc():
    """Within this context, no automatic cyclic garbage collection (nested uses are fine)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
