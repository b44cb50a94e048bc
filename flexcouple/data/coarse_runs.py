"""Coarse-solver states: the super-resolution inputs a hybrid run actually produces.

A model trained on spectral truncations of resolved fields sees, inside a hybrid ``superres`` run,
something else: the state of the coarse solver, which has evolved on its own grid since it was last
set from a fine field, with the errors of that grid (Um et al. 2020, "Solver-in-the-Loop"). These
pairs are made the way the run makes them. With ``R`` the spectral truncation onto ``n / f``,
``S_m^t`` the solver on that grid over a time ``t`` (advanced one snapshot interval at a time, as the
hybrid advances one output interval a tick) and ``w_i`` the fine snapshots ``interval`` apart, a coarse
run starts from ``R w_s`` at every ``s = 0, H, 2H, ...`` (H = ``horizon``) and gives

    c_i = S_m^{(i - s) interval}(R w_s),   s = H floor((i - 1) / H),   horizon h_i = i - s in 1..H,

for every snapshot ``i >= 1`` (``c_0 = R w_0``, horizon 0): each fine snapshot is paired with the
coarse-solver state that a hybrid re-anchored from the fine field every H outputs would hold then.
"""
from __future__ import annotations

import numpy as np

SOURCE = "solver"  # the coarse group's method name in the files: coarse/solver_x<f>


def group_name(factor: int) -> str:
    return f"{SOURCE}_x{int(factor)}"


def start_index(i: int, horizon: int) -> int:
    """The snapshot the coarse run that reaches snapshot ``i`` started from."""
    return 0 if i == 0 else horizon * ((i - 1) // horizon)


def coarse_solver_states(snapshots: np.ndarray, interval: float, factor: int, horizon: int,
                         solver_kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(states, horizons)``: ``states[i]`` = c_i of the module docstring, shape (n_t, n / f, n / f),
    and ``horizons[i]`` = h_i (in snapshot intervals). ``solver_kwargs``: the fine run's solver settings,
    the Reynolds number among them (the coarse run keeps the same physics; only the grid changes)."""
    from flexcouple.data.coarsen import coarsen
    from solver import NavierStokes2D

    snapshots = np.asarray(snapshots)
    n_t, n = snapshots.shape[0], snapshots.shape[-1]
    if factor < 2 or n % factor:
        raise ValueError(f"coarse-solver factor {factor} must be >= 2 and divide the grid n = {n}")
    if horizon < 1:
        raise ValueError(f"coarse-solver horizon must be >= 1 snapshot interval, got {horizon}")
    sim = NavierStokes2D(n // factor, **solver_kwargs)
    states = np.empty((n_t, n // factor, n // factor), dtype=np.float64)
    horizons = np.zeros(n_t, dtype=np.int64)
    state = None
    for i in range(n_t):
        s = start_index(i, horizon)
        if i == 0 or (i - 1) % horizon == 0:
            state = np.asarray(coarsen(snapshots[s].astype(np.float64), factor, "spectral"))
        if i > 0:
            state = np.asarray(sim.backend.to_numpy(sim.advance(state, interval)))
        states[i], horizons[i] = state, i - s
    if not np.all(np.isfinite(states)):
        raise RuntimeError(f"the coarse solver on {n // factor}^2 blew up at Re {solver_kwargs.get('reynolds')}; use a smaller "
                           "coarse-solver factor or horizon")
    return states, horizons
