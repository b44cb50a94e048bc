"""Scatter and gather fields between a global (n, n) array and the ranks' slabs of axis 0.

Each rank of a distributed ``NavierStokes2D`` holds rows ``sim.local_rows`` (a slice of axis 0, x)
of every user-grid field. These helpers move whole fields in and out of that layout.
"""
from __future__ import annotations

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

class CollectiveError(ValueError):
    """Raised on every rank when some rank rejected its input in :func:`agree` (message: the first
    failing rank's, with its number)."""


def agree(comm, error: str | None) -> None:
    """Collective validation: every rank passes its own problem (None when its part is fine); if any
    rank has one, every rank raises :class:`CollectiveError` with the lowest failing rank's message.

    Call it after each rank validated its share and before any collective work, so a bad slab on
    one rank never leaves the others waiting in a later collective.
    """
    if comm is None or comm.size == 1:
        if error is not None:
            raise CollectiveError(error)
        return
    errors = comm.allgather(error)
    for rank, err in enumerate(errors):
        if err is not None:
            where = f"rank {rank} of {comm.size}: " if comm.size > 1 else ""
            raise CollectiveError(where + err)


def abort_on_error(comm, exc: BaseException, *, prefix: str = "error", code: int = 1) -> None:
    """End the whole MPI job after an uncaught error on this rank: print it once and Abort.

    Errors raised through :func:`agree` happened on every rank: rank 0 prints and all ranks return
    (the caller exits normally with a non-zero code). Any other error is local to this rank, so the
    others may be blocked in a collective: this rank prints it and aborts the communicator, which
    ends every rank. A single process just returns.
    """
    import sys
    if comm is None or comm.size == 1:
        return
    if isinstance(exc, CollectiveError):
        return
    print(f"{prefix} (rank {comm.rank} of {comm.size}): {exc}", file=sys.stderr, flush=True)
    comm.Abort(code)
