"""Scatter and gather fields between a global (n, n) array and the ranks' slabs of axis 0.

Each rank of a distributed ``NavierStokes2D`` holds rows ``sim.local_rows`` (a slice of axis 0, x)
of every user-grid field. These helpers move whole fields in and out of that layout. The second
half makes failures collective: one rank's error ends the whole job, non-zero, printed once, and
never leaves the other ranks waiting.
"""
from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np


def local_rows(sim) -> slice:
    """The slice of axis 0 (x) of the global field that this rank holds."""
    return sim.local_rows


def local_part(global_field, sim) -> np.ndarray:
    """This rank's slab of a global field that every rank holds (e.g. an initial condition)."""
    global_field = np.asarray(global_field)
    if global_field.shape[-2:] != (sim.n, sim.n):
        raise ValueError(f"expected a global field of shape (..., {sim.n}, {sim.n}), got {global_field.shape}")
    return np.ascontiguousarray(global_field[..., local_rows(sim), :])


def scatter(global_field, sim, root: int = 0) -> np.ndarray:
    """Send slabs of ``global_field`` (significant on ``root`` only) to every rank."""
    comm = sim.comm
    if comm is None or comm.size == 1:
        return np.asarray(global_field)
    rows = comm.allgather(local_rows(sim))
    if comm.rank == root:
        global_field = np.asarray(global_field)
        if global_field.shape != (sim.n, sim.n):
            raise ValueError(f"expected a global field of shape ({sim.n}, {sim.n}), got {global_field.shape}")
        parts = [np.ascontiguousarray(global_field[r, :]) for r in rows]
    else:
        parts = None
    return comm.scatter(parts, root=root)


def gather(local_field, sim, root: int | None = 0) -> np.ndarray | None:
    """Assemble the global field from every rank's slab; on ``root`` only (None elsewhere), or on
    every rank when ``root`` is None."""
    comm = sim.comm
    local_field = sim.backend.to_numpy(local_field)
    if comm is None or comm.size == 1:
        return local_field
    if root is None:
        return np.concatenate(comm.allgather(local_field), axis=-2)
    parts = comm.gather(local_field, root=root)
    return np.concatenate(parts, axis=-2) if comm.rank == root else None


# ---- collective failure handling: one rank's error ends the whole job, printed once -------------
#
# The rule: a rank that fails must never leave the others waiting in a collective. Problems found
# before collective work are shared with agree() (every rank raises CollectiveError, rank 0 reports,
# every rank exits non-zero); any other error aborts the communicator from the rank that hit it.

USER_ERRORS = (ValueError, OSError, RuntimeError)  # errors that carry a message for the user, no traceback


class CollectiveError(ValueError):
    """Raised on every rank when some rank rejected its input in :func:`agree` (message: the first
    failing rank's, with its number)."""


def world_comm():
    """COMM_WORLD when launched by mpiexec with more than one rank, else None (mpi4py not imported)."""
    launched = any(v in os.environ for v in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK"))
    if not launched:
        return None
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    return comm if comm.size > 1 else None


def agree(comm, error: str | None) -> None:
    """Collective validation: every rank passes its own problem (None when its part is fine); if any
    rank has one, every rank raises :class:`CollectiveError` with the lowest failing rank's message
    (prefixed with its rank unless every rank failed the same way).

    Call it after each rank validated its share and before any collective work, so a bad slab on
    one rank never leaves the others waiting in a later collective.
    """
    if comm is None or comm.size == 1:
        if error is not None:
            raise CollectiveError(error)
        return
    errors = comm.allgather(None if error is None else str(error))
    failed = [(rank, err) for rank, err in enumerate(errors) if err is not None]
    if failed:
        rank, err = failed[0]
        if len(failed) == comm.size and all(e == err for _, e in failed):
            raise CollectiveError(err)
        raise CollectiveError(f"rank {rank} of {comm.size}: {err}")


def agreed(comm, fn, /, *args, **kwargs):
    """``fn(*args, **kwargs)`` on every rank, then :func:`agree` on whether it raised.

    Returns fn's result. Under MPI an exception on any rank becomes a CollectiveError on all of them;
    a single process gets fn's own exception unchanged.
    """
    if comm is None or comm.size == 1:
        return fn(*args, **kwargs)
    result, error = None, None
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # shared with every rank below
        error = str(exc) if isinstance(exc, USER_ERRORS) else f"{type(exc).__name__}: {exc}"
    agree(comm, error)
    return result


def abort_on_error(comm, exc: BaseException, *, prefix: str = "error", code: int = 1) -> None:
    """End the whole MPI job after an uncaught error on this rank: print it once and Abort.

    Errors raised through :func:`agree` happened on every rank: all ranks return (the caller lets
    rank 0 report and exits with a non-zero code). Any other error is local to this rank, so the
    others may be blocked in a collective: this rank prints it and aborts the communicator, which
    ends every rank. A rank other than 0 waits a moment first, so that an error every rank hits is
    printed once (rank 0's Abort ends the others while they wait). After printing, the rank waits
    another moment before the Abort: MPICH's launcher forwards a rank's output through a pipe, and
    an Abort right after the write can kill the job before the message is forwarded (CI once saw
    the whole stderr lost that way). A single process just returns.
    """
    if comm is None or comm.size == 1 or isinstance(exc, CollectiveError):
        return
    if comm.rank != 0:
        time.sleep(ABORT_GRACE_S)
    if isinstance(exc, USER_ERRORS):
        print(f"{prefix} (rank {comm.rank} of {comm.size}): {exc}", file=sys.stderr, flush=True)
    else:  # a bug, not a user error: the traceback says where
        print(f"{prefix} (rank {comm.rank} of {comm.size}):", file=sys.stderr)
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.stderr.flush()
    time.sleep(FORWARD_GRACE_S)
    comm.Abort(code)
    os._exit(code)  # MPICH's Abort may return while the launcher tears the job down: never carry on


ABORT_GRACE_S = 2.0  # a rank other than 0 waits this long before reporting (rank 0 may report first)
FORWARD_GRACE_S = 0.5  # the wait between printing and aborting, for the launcher to forward the message


def run_collectively(comm, fn, /, *args, prefix: str = "error", **kwargs):
    """Run a command's body so that under MPI any rank's failure ends the whole job, reported once.

    A CollectiveError (every rank failed together, see :func:`agree`) is re-raised on rank 0 for the
    caller's usual error report and ends the other ranks silently with exit code 1; any other
    exception is printed by the rank that raised it, which aborts the communicator
    (:func:`abort_on_error`). KeyboardInterrupt and SystemExit pass through; so does everything in a
    single process.
    """
    try:
        return fn(*args, **kwargs)
    except CollectiveError:
        if comm is not None and comm.size > 1 and comm.rank != 0:
            raise SystemExit(1) from None
        raise
    except Exception as exc:
        abort_on_error(comm, exc, prefix=prefix)
        raise
