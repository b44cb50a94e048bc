"""Collective surrogate calls over MPI ranks, with a wall-clock timeout and every failure caught.

Strategies:

- ``gather``: the input is on rank 0; rank 0 draws the whole ensemble in one batched call;
- ``ensemble``: the input is broadcast; rank r draws members m with m mod P == r, one member per
  call (so a member does not depend on the batch it was drawn in, and 1, 2 or 4 ranks give the same
  members); rank 0 collects them in member order and forms the mean and the std.

Either way, only rank 0 holds the prediction afterwards; the caller checks it there and broadcasts
the decision. A surrogate that raises, returns the wrong shape or type, or takes longer than
``timeout`` seconds yields a :class:`CallOutcome` with ``error`` set and no prediction: the caller
then falls back to the solver.

The surrogate gets a fresh copy of its input on every call, and an accepted answer is copied from
the surrogate's arrays, so nothing a surrogate does to its buffers reaches the trajectory. A
timed-out call keeps running in a thread (Python cannot stop it) and its result is discarded; the
surrogate is never entered twice at once: the next call first waits for it within its own timeout
(and is rejected if it is still running), and :func:`finish_running_calls` joins it at the end of a
run and at exit (a thread still inside torch while the interpreter finalises aborts the process).
"""
from __future__ import annotations

import atexit
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from coupling.surrogates import Prediction


@dataclass
class CallOutcome:
    prediction: Prediction | None
    error: str | None           # None: a usable prediction
    reason: str | None          # "exception" | "timeout" | "wrong_output"
    surrogate_s: float          # wall time of the call (max over ranks)
    comm_s: float               # wall time moving inputs and members between ranks


FINISH_WAIT_S = 120.0        # the longest wait for calls still running at the end of a run or at exit
_running: list[threading.Thread] = []  # calls past their timeout that had not ended when last seen


def _wait_running(timeout: float | None) -> bool:
    """Join the calls still running past their timeout, at most ``timeout`` seconds in all (None:
    as long as they take); True when none is left."""
    deadline = None if timeout is None else time.perf_counter() + timeout
    for worker in list(_running):
        worker.join(None if deadline is None else max(0.0, deadline - time.perf_counter()))
        if not worker.is_alive():
            _running.remove(worker)
    return not _running


def finish_running_calls(wait: float = FINISH_WAIT_S) -> None:
    """Join the calls that outlived their timeout (at most ``wait`` seconds); say so on stderr when
    one is still running after that."""
    if not _wait_running(wait):
        print(f"warning: {len(_running)} surrogate call(s) still running {wait:g} s after their timeout; "
              "their results are discarded", file=sys.stderr, flush=True)


atexit.register(finish_running_calls)


def _with_timeout(fn, timeout: float):
    """(result, error, reason, seconds): run ``fn()`` in a thread, waiting at most ``timeout`` seconds,
    including the wait for a previous call still running past its own timeout."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - any failure of the surrogate is a rejection
            box["error"] = f"{type(exc).__name__}: {exc}"

    start = time.perf_counter()
    if not _wait_running(timeout):
        return None, (f"the previous call, past its timeout, was still running {timeout:g} s later; "
                      "this call was not started"), "timeout", time.perf_counter() - start
    worker = threading.Thread(target=target, daemon=True, name="surrogate-call")
    worker.start()
    worker.join(max(0.0, timeout - (time.perf_counter() - start)))
    elapsed = time.perf_counter() - start
    if worker.is_alive():
        _running.append(worker)
        return None, f"the call took longer than the timeout ({timeout:g} s)", "timeout", elapsed
    if "error" in box:
        return None, box["error"], "exception", elapsed
    return box.get("result"), None, None, elapsed


def _validate(pred, shape: tuple[int, ...], members: int | None = None) -> str | None:
    """Why ``pred`` is not a usable Prediction of fields of ``shape`` (None if it is)."""
    if not isinstance(pred, Prediction):
        return f"the surrogate returned {type(pred).__name__}, not a Prediction"
    for name in ("mean", "std") + (("members",) if members else ()):
        a = getattr(pred, name)
        if a is None:
            if name == "mean" or name == "members":
                return f"the prediction has no {name}"
            continue
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
            return f"the prediction's {name} is {type(a).__name__} of {getattr(a, 'dtype', '?')}, not a float array"
        want = (members,) + shape if name == "members" else shape
        if a.shape != want:
            return f"the prediction's {name} has shape {a.shape}, expected {want}"
    return None


def call_surrogate(surrogate, task: str, inp: np.ndarray | None, reynolds: float, *, ensemble: int, call: int,
                   time_: float, n: int, strategy: str, timeout: float, comm=None) -> CallOutcome | None:
    """One collective call; returns the outcome on rank 0 (None on the other ranks).

    ``inp``: the global input on rank 0 (coarse field for "superres", history for "forecast").
    """
    method = surrogate.superres if task == "superres" else surrogate.forecast
    size = 1 if comm is None else comm.size
    rank = 0 if comm is None else comm.rank
    shape = (n, n)
    comm_s = 0.0
    if strategy == "gather":
        if rank != 0:
            return None
        given = inp.copy()
        pred, err, reason, secs = _with_timeout(
            lambda: method(given, reynolds, ensemble=ensemble, call=call, time=time_), timeout)
        if err is None:
            err = _validate(pred, shape)
            reason = "wrong_output" if err else None
        if err is not None:
            return CallOutcome(None, err, reason, secs, 0.0)
        return CallOutcome(Prediction(pred.mean.copy(), None if pred.std is None else pred.std.copy()),
                           None, None, secs, 0.0)

    # "ensemble": every rank draws its share of the members, one member per call
    t0 = time.perf_counter()
    if comm is not None and size > 1:
        inp = comm.bcast(inp, root=0)
    comm_s += time.perf_counter() - t0
    mine = [m for m in range(ensemble) if m % size == rank]
    fields, err, reason = {}, None, None
    start = time.perf_counter()
    for m in mine:
        remaining = timeout - (time.perf_counter() - start)
        pred, err, reason, _ = _with_timeout(
            lambda m=m, given=inp.copy(): method(given, reynolds, ensemble=1, members=[m], call=call, time=time_),
            max(remaining, 0.0))
        if err is None:
            err = _validate(pred, shape, members=1)
            reason = "wrong_output" if err else None
        if err is not None:
            break
        fields[m] = pred.members[0].copy()
    secs = time.perf_counter() - start
    t0 = time.perf_counter()
    parts = [(fields, err, reason, secs)] if comm is None or size == 1 else comm.gather((fields, err, reason, secs), root=0)
    comm_s += time.perf_counter() - t0
    if rank != 0:
        return None
    surrogate_s = max(p[3] for p in parts)
    for r, (_, e, why, _) in enumerate(parts):
        if e is not None:
            return CallOutcome(None, (f"rank {r}: " if size > 1 else "") + e, why, surrogate_s, comm_s)
    members = {}
    for f, *_ in parts:
        members.update(f)
    stacked = np.stack([members[m] for m in range(ensemble)])
    return CallOutcome(Prediction.from_members(stacked), None, None, surrogate_s, comm_s)
