"""Jobs on several processes (:mod:`nnhdl.parallel`), as the network's layers are built: the
results come back in order, a failure surfaces in the caller, and the design is the same as built
in one process."""

import os

import numpy as np
import pytest

from nnhdl.export import to_rtlil
from nnhdl.layers import Network
from nnhdl.layers.dense import _GRAPHS, _recorders, computed_graphs
from nnhdl.parallel import default_jobs, run_jobs

from ..conftest import make_mlp


def _pid(k):
    return k, os.getpid()


def test_run_jobs_returns_results_in_order_from_several_processes():
    results = run_jobs([lambda k=k: _pid(k) for k in range(5)], costs=[5, 1, 1, 1, 1], jobs=2)
    assert [k for k, _ in results] == list(range(5))
    pids = {pid for _, pid in results}
    assert os.getpid() in pids and len(pids) == 2
    # the longest job alone in one process, the four short ones in the other
    assert results[0][1] not in {pid for _, pid in results[1:]}


def test_nnhdl_jobs_one_never_forks(monkeypatch):
    monkeypatch.setenv("NNHDL_JOBS", "1")
    assert default_jobs() == 1
    assert {pid for _, pid in run_jobs([lambda k=k: _pid(k) for k in range(4)])} == {os.getpid()}
    monkeypatch.setenv("NNHDL_JOBS", "two")
    with pytest.raises(ValueError, match="NNHDL_JOBS must be a whole number"):
        default_jobs()


def test_a_failing_job_raises_in_the_caller():
    """A job that raises in a child is run again by the caller, where its error surfaces."""
    def fail():
        if os.getpid() != parent:
            raise RuntimeError("in the child")
        raise KeyError("in the caller")

    parent = os.getpid()
    with pytest.raises(KeyError, match="in the caller"):
        run_jobs([lambda: 1, fail], costs=[10, 1], jobs=2)  # the cheap job goes to the child


def test_building_on_two_processes_is_building_in_one():
    """Network.build with the layers' searches in two processes: the same RTLIL as one process."""
    graph = make_mlp(np.random.default_rng(5), [5, 6, 4, 3], ["relu", "leaky_relu", "linear"])
    _GRAPHS.clear()  # (so that the searches run again)
    two = Network(graph, levels_per_stage=1)
    two.build(jobs=2)
    _GRAPHS.clear()
    one = Network(graph, levels_per_stage=1)
    one.build(jobs=1)
    assert to_rtlil(two, "net") == to_rtlil(one, "net")


def test_nested_computed_graphs_both_record_and_close_in_any_order():
    """A caller collecting the graphs around a build that collects its own (equal dicts) gets them
    too, and each context removes its own recorder."""
    graph = make_mlp(np.random.default_rng(6), [4, 5, 3], ["relu", "linear"])
    _GRAPHS.clear()
    with computed_graphs() as outer:
        with computed_graphs() as inner:
            Network(graph).build(jobs=1)
        assert inner and outer == inner
        assert _recorders == [outer] and _recorders[0] is outer
    assert _recorders == []


def test_collect_while_runs_the_job_elsewhere_and_returns_its_result(monkeypatch):
    import gc

    from nnhdl.gcpause import collect_while, paused_gc

    assert collect_while(lambda: _pid(7))[0] == 7
    assert collect_while(lambda: _pid(7))[1] != os.getpid()  # (forked: the job waits, this process collects)
    monkeypatch.setenv("NNHDL_JOBS", "1")
    assert collect_while(lambda: _pid(8)) == (8, os.getpid())
    enabled = gc.isenabled()
    with paused_gc():
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause holds
    assert gc.isenabled() == enabled


def test_a_child_that_takes_too_long_is_stopped_and_its_job_run_here(monkeypatch):
    import time

    import nnhdl.parallel as parallel

    monkeypatch.setattr(parallel, "GRACE_SECONDS", 0.5)
    parent = os.getpid()

    def slow_elsewhere():
        if os.getpid() != parent:
            time.sleep(30)  # a hung child
        return _pid(1)

    start = time.monotonic()
    results = run_jobs([lambda: _pid(0), slow_elsewhere], costs=[10, 1], jobs=2, patience=0)
    assert results == [(0, parent), (1, parent)]  # rerun here, after the child was stopped
    assert time.monotonic() - start < 10
