"""One trajectory of a data set: the solver from a seeded random field through the spin-up, its snapshots,
the coarse-solver states paired with them, and the resolution check recorded in every file."""
from __future__ import annotations

import json

import numpy as np

from flexcouple.data import coarse_runs
from flexcouple.data.config import Case, DataConfig


class UnderResolvedWarning(UserWarning):
    """E(k) at the dealiasing cutoff is not negligible against its peak: the grid is too coarse."""



def cutoff_shell(n: int, dealias: bool) -> int:
    """Largest wavenumber shell fully inside the kept modes: |k| < n/3 (2/3 rule) or n/2."""
    cutoff = n / 3.0 if dealias else n / 2.0
    return int(np.ceil(cutoff)) - 1


def resolution_ratio(sim, omega, n: int, dealias: bool) -> float:
    """E(k_cutoff) / max_k E(k) of one field (the resolution check recorded in every file)."""
    k, e = sim.spectrum(omega)
    kc = cutoff_shell(n, dealias)
    peak = float(np.max(e))
    return float(e[kc] / peak) if peak > 0 else 0.0


def simulate_trajectory(cfg: DataConfig, case: Case, seed: int, comm=None) -> dict | None:
    """Integrate one trajectory. Returns the trajectory record (on rank 0 of ``comm``; None elsewhere)."""
    from solver import NavierStokes2D, SolverBlowUp, random_field
    from solver.mpi import local_part

    n = cfg.n
    sim = NavierStokes2D(n, comm=comm, **cfg.solver_kwargs(case))
    omega0 = random_field(n, seed, peak_wavenumber=cfg.ic_peak_wavenumber, energy=cfg.ic_energy,
                          boundary=case.boundary if case.boundary == "free-slip" else "periodic")
    distributed = comm is not None and comm.size > 1
    if distributed:
        omega0 = local_part(omega0, sim)
    times = np.asarray(cfg.times())
    try:
        snaps = sim.trajectory(omega0, times)
    except SolverBlowUp as exc:
        raise RuntimeError(f"the solver blew up for Re={case.reynolds:g}, boundary={case.boundary}, "
                           f"seed={seed} ({exc}); use a finer grid n, a smaller cfl or a lower Re") from None
    stats = dict(sim.last_stats)
    # resolution check on the first, middle and last snapshot (spectrum() is global under MPI)
    picks = sorted({0, len(times) // 2, len(times) - 1})
    ratio = max(resolution_ratio(sim, snaps[i], n, cfg.dealias) for i in picks)
    velocity = None
    if cfg.store_velocity:
        velocity = np.stack([np.stack([np.asarray(sim.backend.to_numpy(c)) for c in sim.velocity(s)], axis=-1)
                             for s in snaps])
    settings = sim.settings()
    solid = getattr(sim, "solid_fraction", None)
    if solid is not None:
        solid = np.asarray(sim.backend.to_numpy(solid))
        solid = solid[:, :n]
    if distributed:
        parts = comm.gather((snaps, velocity, solid), root=0)
        if comm.rank != 0:
            return None
        snaps = np.concatenate([p[0] for p in parts], axis=1)
        velocity = None if velocity is None else np.concatenate([p[1] for p in parts], axis=1)
        solid = None if solid is None else np.concatenate([p[2] for p in parts], axis=0)
    storage = np.dtype(cfg.dtype)
    if not np.all(np.isfinite(snaps)):
        raise RuntimeError(f"non-finite vorticity for Re={case.reynolds:g}, boundary={case.boundary}, seed={seed}; "
                           f"use a finer grid n, a smaller cfl or a lower Re")
    out = {"vorticity": snaps.astype(storage)}
    for factor in cfg.coarse_solver_factors:  # what a superres run's coarse solver holds (coarse_runs)
        states, horizons = coarse_runs.coarse_solver_states(snaps, cfg.interval, factor, cfg.coarse_solver_horizon,
                                                            cfg.solver_kwargs(case))
        out[coarse_runs.group_name(factor)] = states.astype(storage)
        out["coarse_solver_horizon"] = horizons
    out.update({
        "seed": np.int64(seed),
        "steps": np.int64(stats.get("steps", 0)),
        "dt_min": np.float64(stats.get("dt_min", np.nan)),
        "dt_mean": np.float64(stats.get("dt_mean", np.nan)),
        "dt_max": np.float64(stats.get("dt_max", np.nan)),
        "cfl_max": np.float64(stats.get("cfl_max", np.nan)),
        "wall_time_s": np.float64(stats.get("wall_time_s", np.nan)),
        "resolution_ratio": np.float64(ratio),
        "settings_json": np.array(json.dumps(settings, default=str)),
    })
    if velocity is not None:
        out["velocity"] = velocity.astype(storage)
    if solid is not None:
        out["solid"] = solid.astype(np.float32)
    return out
