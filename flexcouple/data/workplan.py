"""The work plan of ``flexcouple generate``: one task per (split, parameter set, trajectory), where each
task's finished trajectory is kept (``<out>/.work/<split>/<file stem>/traj_XXXX.npz``, written
atomically, read back whole or recomputed) and where the merged HDF5 file goes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flexcouple.data import coarse_runs, well
from flexcouple.data.config import Case, DataConfig

WORK_DIR = ".work"


@dataclass(frozen=True)
class Task:
    split: str
    case: Case
    index: int
    seed: int



def plan(cfg: DataConfig) -> list[Task]:
    tasks = []
    for split in cfg.split_names():
        for case in cfg.cases(split):
            for i in range(cfg.trajectories(split)):
                tasks.append(Task(split, case, i, cfg.ic_seed(split, i)))
    return tasks


def data_path(out: Path, split: str, case: Case, physics: str) -> Path:
    return out / "data" / split / f"{case.stem(physics)}.hdf5"


def trajectory_path(out: Path, task: Task, physics: str) -> Path:
    """The finished trajectory's file, kept until its parameter set is merged into one HDF5 file."""
    return out / WORK_DIR / task.split / task.case.stem(physics) / f"traj_{task.index:04d}.npz"


def save_trajectory(path: Path, record: dict) -> None:
    with well.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **record)


PROVENANCE_KEYS = ("seed", "steps", "dt_min", "dt_mean", "dt_max", "cfl_max", "wall_time_s", "resolution_ratio")


def load_trajectory(path: Path, cfg: DataConfig, lazy: bool = False):
    """A finished trajectory, or None when the file is missing or damaged (then it is recomputed).

    Every array is read once to prove the file whole. ``lazy=True`` returns the open ``np.load``
    mapping (arrays read again on access, one at a time) instead of a dict held in memory."""
    if not path.is_file():
        return None
    try:
        z = np.load(path, allow_pickle=False)
        shapes = {k: z[k].shape for k in z.files}  # reads (and checks) every member
    except Exception:  # a damaged trajectory file is recomputed, never trusted
        return None
    needed = ("vorticity", "settings_json") + PROVENANCE_KEYS + (("velocity",) if cfg.store_velocity else ()) \
        + tuple(coarse_runs.group_name(f) for f in cfg.coarse_solver_factors)
    if any(k not in shapes for k in needed) or shapes["vorticity"] != (cfg.snapshots, cfg.n, cfg.n):
        z.close()
        return None
    if lazy:
        return z
    rec = {k: z[k] for k in z.files}
    z.close()
    return rec
