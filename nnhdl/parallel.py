"""Run independent pure-Python jobs on the machine's cores, by forking.

:func:`run_jobs` spreads jobs (zero-argument callables returning picklable values, each with a
cost estimate) over up to ``jobs`` processes: the calling process runs one share itself and forked
children (which see the caller's objects as they were at the fork, with nothing to pickle on the
way in) run the others and send their results back through a pipe. It is used for work whose
results are plain data and the same whichever process computes them (the layers' searches for
shared subexpressions, :meth:`nnhdl.layers.Network.build`; Yosys writing the Verilog while the
caller collects its garbage, :func:`nnhdl.gcpause.collect_while`); they come back in the order of
the jobs.

When forking is impossible (no ``os.fork``), not worth it (one job, or one core) or fails in any
way (a child that raises, dies or takes far longer than the caller's share), the jobs concerned are
run in the calling process instead, so errors surface there with their normal traceback.
``NNHDL_JOBS`` (environment) sets the number of processes; ``NNHDL_JOBS=1`` never forks. Without
it, the cores on Linux, one process elsewhere.
"""

import os
import pickle
import select
import sys
import time

__all__ = ["run_jobs", "default_jobs"]

GRACE_SECONDS = 60  # a child's time limit: this plus ``patience`` times the caller's own share


def default_jobs():
    """The number of processes to use: ``NNHDL_JOBS`` if set, else the cores this process may run
    on (on Linux; elsewhere 1, as forking a process that has loaded system frameworks, e.g.
    TensorFlow on macOS, is not safe there)."""
    limit = os.environ.get("NNHDL_JOBS", "").strip()
    if limit:
        try:
            return max(1, int(limit))
        except ValueError:
            raise ValueError(f"NNHDL_JOBS must be a whole number of processes, not {limit!r}") from None
    if not sys.platform.startswith("linux"):
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _shares(costs, n):
    """Longest-processing-time-first assignment of jobs (by ``costs``) to ``n`` shares; share 0 is
    the calling process's."""
    shares = [[] for _ in range(n)]
    loads = [0] * n
    for k in sorted(range(len(costs)), key=lambda k: -costs[k]):
        target = min(range(n), key=lambda s: loads[s])
        shares[target].append(k)
        loads[target] += costs[k]
    return [sorted(share) for share in shares if share]


def run_jobs(functions, costs=None, jobs=None, patience=10):
    """``[f() for f in functions]``, computed on up to ``jobs`` processes (default
    :func:`default_jobs`); ``costs`` (one number per job) balance the shares. A child that has not
    answered a minute plus ``patience`` times the caller's own share later is stopped and its share
    run here (``patience=None``: wait for it however long it takes)."""
    functions = list(functions)
    costs = list(costs) if costs is not None else [1] * len(functions)
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    if jobs == 1 or len(functions) < 2 or not hasattr(os, "fork"):
        return [f() for f in functions]
    shares = _shares(costs, min(jobs, len(functions)))
    children = []
    for share in shares[1:]:
        child = _fork(functions, share)
        if child is None:  # could not fork: the caller runs it
            shares[0] = sorted(shares[0] + share)
        else:
            children.append((share, child))
    results = [None] * len(functions)
    start = time.monotonic()
    for k in shares[0]:
        results[k] = functions[k]()
    own = time.monotonic() - start
    for share, (pid, fd) in children:
        values = _collect(pid, fd, timeout=None if patience is None else GRACE_SECONDS + patience * own)
        if values is None:  # the child failed: run its share here (an error raises here)
            values = [functions[k]() for k in share]
        for k, value in zip(share, values):
            results[k] = value
    return results


def _fork(functions, share):
    """Fork a child computing ``functions[k]()`` for ``k`` in ``share``; returns ``(pid, read fd)``
    or None."""
    try:
        read, write = os.pipe()
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # the child: compute, send, leave without running the parent's exit handlers
        status = 0
        try:
            os.close(read)
            # fresh standard streams: another thread of the parent (a progress display) may have
            # held their locks at the fork; the child's output, if any, is not wanted anyway
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            sys.stdout = sys.stderr = open(null, "w", closefd=False)
            try:
                data = pickle.dumps([functions[k]() for k in share], protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:  # noqa: BLE001  (the parent reruns the share and reports the error)
                data, status = b"", 1
            view = memoryview(data)
            while view:
                view = view[os.write(write, view):]
            os.close(write)
        finally:
            os._exit(status)
    os.close(write)
    return pid, read


def _collect(pid, fd, timeout):
    """The child's results, or None if it failed or exceeded ``timeout`` seconds (it is then
    killed; ``None``: no limit)."""
    chunks = []
    deadline = None if timeout is None else time.monotonic() + timeout
    ok = True
    try:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or not select.select([fd], [], [], left)[0]:
                ok = False
                break
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
        if not ok:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        _, status = os.waitpid(pid, 0)
    if not ok or status != 0 or not chunks:
        return None
    try:
        return pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001
        return None
