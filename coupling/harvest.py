"""Harvest: what the surrogate got wrong, with the solver's answer, as a data set to fine-tune on.

Every rejected call adds one example, written in our Well layout so that ``SuperResDataset`` /
``ForecastDataset`` (and so ``flexcouple train``) read it:

- ``leapfrog``: the history the surrogate saw and the solver's field one lead time later, as one
  trajectory of k + 1 snapshots spaced by the lead time (a ``ForecastDataset`` window, past = k);
- ``superres``: the fine solver's field at the rejected output time, integrated over one output
  interval from the coarse state interpolated to the fine grid; the data set derives the coarse
  input from it by spectral truncation, as for generated data.

Examples are flushed in part files ``data/train/<task>_p<k>.hdf5`` (atomic writes) whenever the run
checkpoints, and ``flexcouple_dataset.json`` lists every part, so an interrupted run loses nothing
it had checkpointed. Each example records the rejection reason, the call and the time.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from flexcouple.data import well

REASONS = ("check_failed", "exception", "timeout", "wrong_output")
FORMAT = "flexcouple-harvest"


class Harvest:
    def __init__(self, root: str | Path, *, task: str, config, normalization: dict | None, interval: float):
        self.root = Path(root)
        self.task = task
        self.config = config
        self.normalization = normalization
        self.interval = float(interval)
        self.pending: list[dict] = []
        self.parts = sorted(str(p.relative_to(self.root)) for p in (self.root / "data" / "train").glob(f"{task}_p*.hdf5"))

    def add(self, snapshots: np.ndarray, *, reason: str, call: int, time: float, checks: list[str]) -> None:
        """One example: ``snapshots`` (n_t, n, n), oldest first (forecast: history + answer)."""
        self.pending.append({"vorticity": np.asarray(snapshots, dtype=np.float32), "call": int(call),
                             "time": float(time), "reason_code": REASONS.index(reason) if reason in REASONS else -1,
                             "failed_checks": ",".join(checks)})

    def __len__(self) -> int:
        return len(self.parts) + bool(self.pending)

    def flush(self) -> None:
        if not self.pending:
            return
        cfg = self.config
        n = self.pending[0]["vorticity"].shape[-1]
        n_t = self.pending[0]["vorticity"].shape[0]
        rel = f"data/train/{self.task}_p{len(self.parts):04d}.hdf5"
        x = 2 * np.pi * np.arange(n) / n
        params = {"Re": float(cfg.reynolds), "drag": float(cfg.drag), "forcing_wavenumber": float(cfg.forcing_wavenumber),
                  "viscosity": 1.0 / float(cfg.reynolds)}
        well.write_parameter_set(
            self.root / rel, dataset_name=f"harvest-{cfg.name}", trajectories=self.pending,
            times=np.arange(n_t) * self.interval, x=x, y=x, boundary=cfg.boundary, parameters=params,
            attrs={"config_hash": self.config_hash, "boundary": cfg.boundary, "harvest": True},
            provenance_attrs={"reasons": json.dumps(list(REASONS)), "hybrid_config": json.dumps(cfg.to_dict())},
            provenance_keys=("call", "time", "reason_code"))
        self.parts.append(rel)
        self.pending = []
        self._write_metadata()

    @property
    def config_hash(self) -> str:
        return f"harvest-{self.config.config_hash()}"

    def _write_metadata(self) -> None:
        cfg = self.config
        meta = {
            "format": FORMAT, "status": "complete", "config_hash": self.config_hash,
            "splits": {"train": {"files": list(self.parts)}},
            "normalization": self.normalization or _stats(self.root, self.parts),
            "coarse": {"factors": [int(cfg.factor)], "method": "spectral"},
            "config": {"n": cfg.n, "interval": self.interval, "reynolds": [cfg.reynolds], "name": cfg.name},
            "hybrid": cfg.to_dict(), "task": self.task,
            "description": "inputs the surrogate got wrong during a hybrid run, with the solver's answer",
        }
        well.write_json_atomic(self.root / well.METADATA_FILE, meta)


def _stats(root: Path, parts: list[str]) -> dict:
    """Mean and std of the harvested vorticity (when no model normalisation is known)."""
    import h5py
    s = s2 = count = 0.0
    for rel in parts:
        with h5py.File(root / rel, "r") as f:
            w = np.asarray(f["t0_fields/vorticity"], dtype=np.float64)
        s += w.sum()
        s2 += (w ** 2).sum()
        count += w.size
    mean = s / count
    return {"mean": float(mean), "std": float(np.sqrt(max(s2 / count - mean ** 2, 1e-30)))}
