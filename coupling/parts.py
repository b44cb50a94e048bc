"""The finished parts of one hybrid run, and the factory that builds them from a config.

:class:`coupling.hybrid.HybridSimulation` receives a :class:`HybridParts` and only runs it; everything
that reads the config to build something (the surrogate and the check that it fits the run, the
schedule, the run's solver, the diagnostics, the checks with their calibration, the harvest, the run
directory, torch's thread count) happens once, here, in :meth:`HybridParts.from_config`, before any
work: a refusal there costs nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coupling.checks import CheckSuite, FieldDiagnostics
from coupling.config import HybridConfig
from coupling.rundir import RunDirectory
from coupling.schedule import Schedule

__all__ = ["HybridParts"]


@dataclass(frozen=True)
class HybridParts:
    """One run's parts. Rank-0-only parts (``rundir``, ``diagnostics``, ``harvest``) are None on the
    other ranks; ``harvesting`` is the same on every rank."""

    config: HybridConfig                 # validated
    comm: Any                            # an mpi4py communicator of more than one rank, or None
    surrogate: Any                       # a coupling.Surrogate that fits the run; None in mode 'pure'
    schedule: Schedule
    solver: Any                          # the run's solver: n / factor in 'superres', else n
    diagnostics: FieldDiagnostics | None
    checks: CheckSuite
    harvest: Any                         # a coupling.harvest.Harvest or None
    harvesting: bool
    out: Path | None                     # the run directory (resume, outputs, decision log)
    rundir: RunDirectory | None

    @property
    def rank(self) -> int:
        return 0 if self.comm is None else self.comm.rank

    @property
    def size(self) -> int:
        return 1 if self.comm is None else self.comm.size

    @classmethod
    def from_config(cls, config: HybridConfig, surrogate=None, comm=None, *,
                    out: str | os.PathLike | None = None, harvest=None) -> "HybridParts":
        """Build every part of the run ``config`` describes. ``surrogate``: any :class:`coupling.Surrogate`
        (None: the one the config names, loaded here); ``comm``: an mpi4py communicator; ``out``: the run
        directory; ``harvest``: a :class:`coupling.harvest.Harvest` to use instead of the config's."""
        from solver import NavierStokes2D

        from coupling.surrogates import build_surrogate, check_fit
        cfg = config.validate()
        comm = comm if comm is not None and comm.size > 1 else None
        rank = 0 if comm is None else comm.rank
        size = 1 if comm is None else comm.size
        out = Path(out) if out is not None else None
        if cfg.mode != "pure":
            if surrogate is None:
                surrogate = build_surrogate(cfg, comm=comm)
            check_fit(cfg, surrogate)  # the one place a run's fit is checked
        schedule = Schedule.of(cfg, surrogate)
        if rank == 0:
            harvest = harvest if harvest is not None else _new_harvest(cfg, surrogate, out, schedule.dt_tick)
        else:
            harvest = None
        harvesting = bool(comm.bcast(harvest is not None, root=0)) if comm else harvest is not None
        kwargs = cfg.solver_kwargs()
        n_solver = cfg.n // cfg.factor if cfg.mode == "superres" else cfg.n
        diagnostics = FieldDiagnostics(cfg.n, kwargs, coarse_n=n_solver if cfg.mode == "superres" else None) \
            if rank == 0 and cfg.mode != "pure" else None
        if cfg.mode != "pure" and (size > 1 or cfg.torch_threads):
            _set_torch_threads(cfg.torch_threads, size)
        return cls(config=cfg, comm=comm, surrogate=surrogate, schedule=schedule,
                   solver=NavierStokes2D(n_solver, comm=comm, **kwargs), diagnostics=diagnostics,
                   checks=_new_checks(cfg, surrogate), harvest=harvest, harvesting=harvesting, out=out,
                   rundir=RunDirectory(out) if out is not None and rank == 0 else None)


def _new_harvest(cfg: HybridConfig, surrogate, out: Path | None, interval: float):
    """The harvest ``[harvest] enabled`` asks for, or None."""
    if not cfg.harvest_enabled or cfg.mode == "pure":
        return None
    if out is None and not cfg.harvest_dir:
        raise ValueError("harvest = true needs a run directory (out=...) or [harvest] dir")
    from coupling.harvest import Harvest
    norm = (getattr(surrogate, "config", None) or {}).get("normalization")
    return Harvest(Path(cfg.harvest_dir) if cfg.harvest_dir else out / "harvest",
                   task="superres" if cfg.mode == "superres" else "forecast", config=cfg,
                   normalization=norm, interval=interval)


def _new_checks(cfg: HybridConfig, surrogate) -> CheckSuite:
    """The run's checks: the config's thresholds, a calibration where ``[checks] calibration`` names one."""
    calibrated = None
    if cfg.calibration and cfg.mode != "pure":
        from coupling.calibration import Calibration
        calibrated = Calibration.load(cfg.calibration).thresholds_for(
            cfg, getattr(surrogate, "digest", None), source=f"[checks] calibration {cfg.calibration}")
    return CheckSuite(disabled=cfg.disabled_checks, thresholds=cfg.thresholds, floors=cfg.floors,
                      k_mad=cfg.k_mad, window=cfg.window, calibrated=calibrated)


def _set_torch_threads(requested: int, ranks: int) -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    from coupling.surrogates import torch_threads_per_rank
    torch.set_num_threads(torch_threads_per_rank(requested, ranks))
