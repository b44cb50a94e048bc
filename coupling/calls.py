"""Collective surrogate calls over MPI ranks, with a wall-clock timeout and every failure caught.

Strategies:

- ``gather``: the input is on rank 0; rank 0 draws the whole ensemble in one batched call;
- ``ensemble``: the input is broadcast; rank r draws members m with m mod P == r, one member per
  call (so a member does not depend on the batch it was drawn in, and 1, 2 or 4 ranks give the same
  members); rank 0 collects them in member order and forms the mean and the std.

Either way, only rank 0 holds the prediction afterwards; the caller checks it there and broadcasts
the decision. A surrogate that raises, returns the wrong shape or type, or takes longer than
``timeout`` seconds yields a :class:`CallOutcome` with ``error`` set and no prediction: the caller
then falls back to the solver. A timed-out call keeps running in a daemon thread (Python cannot
stop it); its result is discarded when it arrives.
"""
from __future__ import annotations

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


def _with_timeout(fn, timeout: float):
    """(result, error, reason, seconds): run ``fn()`` in a daemon thread, waiting at most ``timeout``."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - any failure of the surrogate is a rejection
            box["error"] = f"{type(exc).__name__}: {exc}"

    start = time.perf_counter()
    worker = threading.Thread(target=target, daemon=True, name="surrogate-call")
    worker.start()
    worker.join(timeout)
    elapsed = time.perf_counter() - start
    if worker.is_alive():
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
        pred, err, reason, secs = _with_timeout(
            lambda: method(inp, reynolds, ensemble=ensemble, call=call, time=time_), timeout)
        if err is None:
            err = _validate(pred, shape)
            reason = "wrong_output" if err else None
        return CallOutcome(pred if err is None else None, err, reason, secs, 0.0)

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
            lambda m=m: method(inp, reynolds, ensemble=1, members=[m], call=call, time=time_), max(remaining, 0.0))
        if err is None:
            err = _validate(pred, shape, members=1)
            reason = "wrong_output" if err else None
        if err is not None:
            break
        fields[m] = pred.members[0]
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
