"""Harvest: what the surrogate got wrong, with the solver's answer, as a data set to fine-tune on.

Every rejected call adds one example, written in our Well layout so that ``SuperResDataset`` /
``ForecastDataset`` (and so ``flexcouple train``) read it:

- ``leapfrog``: the history the surrogate saw and the solver's field one lead time later, as one
  trajectory of k + 1 snapshots spaced by the lead time (a ``ForecastDataset`` window, past = k);
- ``superres``: the pair a coarse-solver data set holds (:mod:`flexcouple.data.coarse_runs`): the
  run's coarse state at the output time, what the model was called on, stored as the coarse-solver
  group ``coarse/solver_x<f>`` (train on it with ``--coarse-source solver``), and the fine solver's
  field then, integrated over one output interval from the accepted output one interval earlier
  (else from the coarse state then, interpolated; ``provenance/start_code`` says which, an index
  into ``STARTS``).

Examples are flushed in part files ``data/train/<task>_p<k>.hdf5`` (atomic writes) whenever the run
checkpoints, and ``flexcouple_dataset.json`` lists every part, so an interrupted run loses nothing
it had checkpointed; the run state counts the parts, and a resumed run cuts those flushed after it
(:meth:`Harvest.cut`), so no example is harvested twice. Each example records the rejection reason,
the call and the time.

A harvest folder holds nothing else: one that holds another data set, the harvest of another run, or
files a harvest does not write is refused before the run starts, so nothing there is overwritten.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from coupling.rundir import listed, run_identity, sort_files
from flexcouple.data import coarse_runs, well

# why a call was harvested: rejected (the first four) or audited although accepted ([harvest] audit_every)
REASONS = ("check_failed", "exception", "timeout", "wrong_output", "audit")
# where a superres answer's fine run started: the previous accepted output, or the interpolated coarse state
STARTS = ("output", "interpolation")
FORMAT = "flexcouple-harvest"
# the files a harvest writes (paths relative to its folder, a regular expression)
HARVEST_FILES = rf"({re.escape(well.METADATA_FILE)}|data/train/(superres|forecast)_p\d{{4}}\.hdf5)"


class Harvest:
    def __init__(self, root: str | Path, *, task: str, config, normalization: dict | None, interval: float):
        self.root = Path(root)
        self.task = task
        self.config = config
        self.normalization = normalization
        self.interval = float(interval)
        self.pending: list[dict] = []
        self._check_folder()
        self.parts = sorted(str(p.relative_to(self.root)) for p in (self.root / "data" / "train").glob(f"{task}_p*.hdf5"))

    def _check_folder(self) -> None:
        """Refuse a folder that holds another data set, another run's harvest, or other files."""
        meta_path = self.root / well.METADATA_FILE
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
                fmt, config_hash = meta.get("format"), meta.get("config_hash")
            except (OSError, ValueError, AttributeError):
                raise FileExistsError(f"{meta_path} cannot be read, so {self.root} is not known to be this run's "
                                      "harvest; choose another [harvest] dir") from None
            if fmt != FORMAT:
                raise FileExistsError(f"{self.root} holds another data set ({meta_path}: format {fmt!r}), not a "
                                      "harvest; choose another [harvest] dir, its files would be overwritten")
            if config_hash != self.config_hash:
                raise FileExistsError(f"{self.root} holds the harvest of another run ({config_hash}, this run "
                                      f"{self.config_hash}); choose another [harvest] dir")
        _, others = sort_files(self.root, HARVEST_FILES)
        if others:
            raise FileExistsError(f"{self.root} holds {len(others)} file(s) a harvest does not write: "
                                  f"{listed(others, self.root)}; choose an empty or new [harvest] dir, or move "
                                  "them elsewhere")

    def add(self, snapshots: np.ndarray, *, reason: str, call: int, time: float, checks: list[str],
            coarse: np.ndarray | None = None, start: str | None = None) -> None:
        """One example: ``snapshots`` (n_t, n, n), oldest first (forecast: history + answer); superres
        also ``coarse`` (n_t, n / f, n / f), the coarse-solver state the model was called on, and
        ``start``, one of ``STARTS``."""
        example = {"vorticity": np.asarray(snapshots, dtype=np.float32), "call": int(call), "time": float(time),
                   "reason_code": REASONS.index(reason) if reason in REASONS else -1,
                   "failed_checks": ",".join(checks)}
        if self.task == "superres":
            if coarse is None or start not in STARTS:
                raise ValueError(f"a superres example needs its coarse-solver state and a start in {STARTS}")
            example[coarse_runs.group_name(self.config.factor)] = np.asarray(coarse, dtype=np.float32)
            example["coarse_solver_horizon"] = np.full(len(example["vorticity"]), -1, dtype=np.int64)
            example["start_code"] = STARTS.index(start)
        self.pending.append(example)

    def cut(self, keep: int) -> None:
        """Keep the first ``keep`` part files, the ones a resumed run's state counted: parts flushed
        after that state (the run stopped between a flush and its state's write) are written again by
        the resumed run, so without the cut their examples would be in the harvest twice. The
        metadata is rewritten first, so a stop in the middle leaves parts it no longer lists, cut again
        at the next resume."""
        if keep > len(self.parts):
            raise ValueError(f"{self.root} holds {len(self.parts)} harvest part file(s), the run state counted {keep}: "
                             "parts were removed by hand; restore them, or start the run again with --overwrite")
        if keep == len(self.parts):
            return
        extra, self.parts = self.parts[keep:], self.parts[:keep]
        if self.parts:
            self._write_metadata()
        else:
            (self.root / well.METADATA_FILE).unlink(missing_ok=True)
        for rel in extra:
            (self.root / rel).unlink(missing_ok=True)

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
            provenance_attrs={"reasons": json.dumps(list(REASONS)), "starts": json.dumps(list(STARTS)),
                              "hybrid_config": json.dumps(cfg.to_dict())},
            provenance_keys=("call", "time", "reason_code") + (("start_code",) if self.task == "superres" else ()),
            coarse_solver=({coarse_runs.group_name(cfg.factor): (int(cfg.factor), -1)} if self.task == "superres"
                           else None))
        self.parts.append(rel)
        self.pending = []
        self._write_metadata()

    @property
    def config_hash(self) -> str:
        return f"harvest-{run_identity(self.config)}"

    def _write_metadata(self) -> None:
        cfg = self.config
        meta = {
            "format": FORMAT, "status": "complete", "config_hash": self.config_hash,
            "splits": {"train": {"files": list(self.parts)}},
            "normalization": self.normalization or _stats(self.root, self.parts),
            "coarse": {"factors": [int(cfg.factor)], "method": "spectral"},
            # the run's own coarse states (horizon -1: the run's, since its last re-anchor)
            **({"coarse_solver": {"factors": [int(cfg.factor)], "horizon": -1}} if self.task == "superres" else {}),
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
