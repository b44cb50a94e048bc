"""Torch data sets over a generated data set: super-resolution pairs and forecasting windows.

Both read ``<root>/data/<split>/*.hdf5`` lazily (one h5py handle per worker process) and return dicts
of float32 tensors::

    condition  (C, H, W)  normalised   superres: C = 1, the coarse field upsampled to the fine grid
                                       forecast: C = past snapshots, oldest first, last = most recent
    target     (1, H, W)  normalised   the fine field (superres) / the snapshot ``lead`` intervals later
    reynolds   ()         the raw Reynolds number (the network scales it itself, Re / 40000)

Normalisation is one (mean, std) pair for vorticity, computed once from the training split when the
data set was generated and stored in ``flexcouple_dataset.json`` (and the Well's ``stats.yaml``);
every split uses the training statistics.

Super-resolution follows the FLEX paper: the coarse field is ``coarsen(fine, factor, method)`` on
the grid x_i = 2 pi i f / n (method "stride" is the paper's x[::f, ::f]; "spectral", the default,
truncates the Fourier series), then brought back to the fine grid. With ``upsample="bicubic"`` the
crop's coarse patch is interpolated like an image (the paper: crop, subsample, bicubic); with
``upsample="spectral"`` (exact for band-limited periodic fields) or ``periodic_bicubic=True`` the
whole periodic field is upsampled first and then cropped. Random crops wrap around periodic axes
(fields are periodic in x, and in y unless the file records a wall in y); their offsets are
multiples of the factor so that the crop's coarse grid is a sub-grid of the full one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from flexcouple.data import coarse_runs, well
from flexcouple.data.coarsen import coarsen, superres_condition

COARSE_SOURCES = ("truncation", "solver", "both")


def load_metadata(root: str | Path) -> dict:
    """The data set's ``flexcouple_dataset.json``; clear errors for missing or unfinished sets."""
    root = Path(root)
    path = root / well.METADATA_FILE
    if not root.is_dir():
        raise FileNotFoundError(f"data set directory {root} does not exist; create it with "
                                f"`flexcouple generate --out {root}`")
    if not path.is_file():
        raise FileNotFoundError(f"{root} is not a flexcouple data set (no {well.METADATA_FILE}); "
                                f"generate one with `flexcouple generate --out {root}`")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise well.WellFormatError(f"{path}: damaged metadata ({exc}); regenerate the data set") from None
    if meta.get("status") != "complete":
        raise ValueError(f"{root}: the data set is not complete (status {meta.get('status')!r}); "
                         f"re-run the same `flexcouple generate` command to finish it")
    return meta


def load_normalization(root: str | Path) -> dict:
    """{"mean": float, "std": float} of vorticity over the training split."""
    norm = load_metadata(root).get("normalization")
    if not norm or not norm.get("std"):
        raise well.WellFormatError(f"{root}: no normalisation statistics in {well.METADATA_FILE}")
    return {"mean": float(norm["mean"]), "std": float(norm["std"])}


class _VorticityFiles(Dataset):
    """Shared part: file discovery, validation, lazy handles, normalisation, crops."""

    def __init__(self, root, split: str, *, crop: int | None = None, reynolds=None, normalization=None,
                 seed: int = 0):
        self.root = Path(root)
        self.meta = load_metadata(self.root)
        splits = self.meta["splits"]
        if split not in splits:
            raise ValueError(f"{self.root}: no split {split!r}; it has {', '.join(splits)}")
        self.split = split
        self.normalization = dict(normalization) if normalization is not None else load_normalization(self.root)
        self.seed = int(seed)
        self.epoch = 0
        self.files = []
        for rel in splits[split]["files"]:
            path = self.root / rel
            info = well.validate_file(path, config_hash=self.meta["config_hash"])
            if reynolds is not None and not any(np.isclose(info["parameters"]["Re"], r) for r in np.atleast_1d(reynolds)):
                continue
            info["periodic_y"] = info.get("boundary", "periodic") not in ("free-slip", "channel")
            self.files.append(info)
        if not self.files:
            raise ValueError(f"{self.root}: split {split!r} has no files" +
                             (f" with Re in {list(np.atleast_1d(reynolds))}" if reynolds is not None else ""))
        self.n = self.files[0]["n"]
        self.n_t = self.files[0]["n_t"]
        if crop is not None and (not isinstance(crop, int) or not 0 < crop <= self.n):
            raise ValueError(f"crop must be an integer in (0, {self.n}] (the fine grid), got {crop!r}")
        self.crop = crop
        self._handles = None
        self._pid = None

    # h5py handles are per process (DataLoader workers fork/spawn): never pickle them
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"], state["_pid"] = None, None
        return state

    def _file(self, i: int):
        if self._handles is None or self._pid != os.getpid():
            self._handles = [None] * len(self.files)
            self._pid = os.getpid()
        if self._handles[i] is None:
            self._handles[i] = well.open_file(self.files[i]["path"])
        return self._handles[i]

    def close(self) -> None:
        for h in self._handles or []:
            if h is not None:
                h.close()
        self._handles = None

    def set_epoch(self, epoch: int) -> None:
        """Draw new random crops: crops depend only on (seed, epoch, index), never on global state."""
        self.epoch = int(epoch)

    def normalize(self, x):
        return (x - self.normalization["mean"]) / self.normalization["std"]

    def denormalize(self, x):
        return x * self.normalization["std"] + self.normalization["mean"]

    def _offsets(self, index: int, file_info: dict, multiple: int = 1) -> tuple[int, int]:
        if self.crop is None or self.crop == self.n:
            return 0, 0
        rng = np.random.default_rng([self.seed, self.epoch, index])
        slots = self.n // multiple
        ox = int(rng.integers(0, slots)) * multiple  # x is periodic: any offset, the crop wraps
        if file_info["periodic_y"]:
            oy = int(rng.integers(0, slots)) * multiple
        else:  # a wall in y: stay inside the box
            oy = int(rng.integers(0, (self.n - self.crop) // multiple + 1)) * multiple
        return ox, oy

    @staticmethod
    def _take(field: np.ndarray, ox: int, oy: int, size: int) -> np.ndarray:
        """field[..., ox:ox+size, oy:oy+size] with periodic wrap-around."""
        nx, ny = field.shape[-2:]
        ix = (ox + np.arange(size)) % nx
        iy = (oy + np.arange(size)) % ny
        return field[..., ix[:, None], iy[None, :]]


class SuperResDataset(_VorticityFiles):
    """(coarse upsampled, fine, Re) pairs, one per snapshot (times ``samples_per_snapshot`` crops).

    Parameters: ``factor`` (default: the data set's largest coarsening factor), ``coarsen_method``
    ("spectral" or "stride"; default: the data set's), ``coarse_source``: "truncation" (the coarse
    field is the fine one coarsened) or "solver" (the coarse-solver state of
    :mod:`flexcouple.data.coarse_runs` stored with the data set, what a hybrid run feeds the model) or
    "both" (each snapshot twice, once from each),
    ``upsample`` ("bicubic" or "spectral"),
    ``periodic_bicubic``, ``crop`` (None: the full field), ``samples_per_snapshot``, ``reynolds``
    (keep only these Re), ``normalization`` (override), ``seed``.
    """

    def __init__(self, root, split: str = "train", crop: int | None = None, *, factor: int | None = None,
                 coarsen_method: str | None = None, upsample: str = "bicubic", periodic_bicubic: bool = False,
                 samples_per_snapshot: int = 1, reynolds=None, normalization=None, seed: int = 0,
                 coarse_source: str = "truncation"):
        super().__init__(root, split, crop=crop, reynolds=reynolds, normalization=normalization, seed=seed)
        coarse_meta = self.meta.get("coarse", {})
        if coarse_source not in COARSE_SOURCES:
            raise ValueError(f"coarse_source must be one of {COARSE_SOURCES}, got {coarse_source!r}")
        solver_factors = list((self.meta.get("coarse_solver") or {}).get("factors", []))
        default_factors = solver_factors if coarse_source != "truncation" else coarse_meta.get("factors", [8])
        self.factor = int(factor if factor is not None else max(default_factors or [8]))
        self.coarse_source = coarse_source
        self.coarsen_method = coarsen_method or coarse_meta.get("method", "spectral")
        if self.coarsen_method not in ("spectral", "stride"):
            raise ValueError(f"coarsen_method must be 'spectral' or 'stride', got {self.coarsen_method!r}")
        if coarse_source != "truncation":
            missing = [Path(info["path"]).name for info in self.files if coarse_runs.group_name(self.factor)
                       not in info.get("coarse", [])]
            if missing:
                raise ValueError(f"{self.root}: no coarse-solver states for x{self.factor} in {', '.join(missing)} "
                                 f"(it has factors {solver_factors or 'none'}); generate the data set with "
                                 f"coarse_solver_factors = [{self.factor}] in [storage]")
        if upsample not in ("bicubic", "spectral"):
            raise ValueError(f"upsample must be 'bicubic' or 'spectral', got {upsample!r}")
        if self.n % self.factor:
            raise ValueError(f"factor {self.factor} does not divide the grid n = {self.n}")
        if crop is not None and crop % self.factor:
            raise ValueError(f"crop {crop} must be a multiple of the factor {self.factor}")
        self.upsample = upsample
        self.periodic_bicubic = periodic_bicubic
        self.samples_per_snapshot = int(samples_per_snapshot)
        truncated = f"{self.coarsen_method}_x{self.factor}"
        self._sources = {"truncation": [truncated], "solver": [coarse_runs.group_name(self.factor)],
                         "both": [truncated, coarse_runs.group_name(self.factor)]}[coarse_source]
        self._index = [(fi, traj, t, stored) for stored in self._sources for fi, info in enumerate(self.files)
                       for traj in range(info["n_trajectories"]) for t in range(info["n_t"])]

    def __len__(self) -> int:
        return len(self._index) * self.samples_per_snapshot

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        fi, traj, t, stored = self._index[index // self.samples_per_snapshot]
        f = self._file(fi)
        fine = np.asarray(f["t0_fields/vorticity"][traj, t], dtype=np.float64)
        if "coarse" in f and stored in f["coarse"]:
            coarse = np.asarray(f["coarse"][stored]["vorticity"][traj, t], dtype=np.float64)
        else:  # derived on load: the whole field is periodic in x, so spectral coarsening is clean
            coarse = coarsen(fine, self.factor, self.coarsen_method)
        info = self.files[fi]
        ox, oy = self._offsets(index, info, multiple=self.factor)
        size = self.crop or self.n
        if self.upsample == "bicubic" and not self.periodic_bicubic:
            # the paper's pipeline: the crop's coarse patch, interpolated like an image
            patch = self._take(coarse, ox // self.factor, oy // self.factor, size // self.factor)
            condition = superres_condition(patch, size, "bicubic")
        else:
            full = superres_condition(coarse, coarse.shape[-1] * self.factor, self.upsample, self.periodic_bicubic)
            condition = self._take(full, ox, oy, size)
        target = self._take(fine, ox, oy, size)
        return {
            "condition": torch.from_numpy(self.normalize(condition)[None].astype(np.float32)),
            "target": torch.from_numpy(self.normalize(target)[None].astype(np.float32)),
            "reynolds": torch.tensor(info["parameters"]["Re"], dtype=torch.float32),
        }


class ForecastDataset(_VorticityFiles):
    """Windows of ``past`` consecutive snapshots -> the snapshot ``lead`` intervals after the last.

    The FLEX paper conditions on 2 past snapshots and predicts the next (past=2, lead=1). Windows
    never cross trajectories. ``crop`` takes the same (wrapping) crop of every snapshot of a window.
    """

    def __init__(self, root, split: str = "train", past: int = 2, lead: int = 1, *, crop: int | None = None,
                 reynolds=None, normalization=None, seed: int = 0):
        super().__init__(root, split, crop=crop, reynolds=reynolds, normalization=normalization, seed=seed)
        if not isinstance(past, int) or past < 1:
            raise ValueError(f"past must be an integer >= 1, got {past!r}")
        if not isinstance(lead, int) or lead < 1:
            raise ValueError(f"lead must be an integer >= 1, got {lead!r}")
        if past + lead > self.n_t:
            raise ValueError(f"trajectories have {self.n_t} snapshots: too few for past={past} and lead={lead}")
        self.past, self.lead = past, lead
        self._index = [(fi, traj, t) for fi, info in enumerate(self.files)
                       for traj in range(info["n_trajectories"]) for t in range(past - 1, info["n_t"] - lead)]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        fi, traj, t = self._index[index]
        w = self._file(fi)["t0_fields/vorticity"]
        past = np.asarray(w[traj, t - self.past + 1: t + 1], dtype=np.float64)
        future = np.asarray(w[traj, t + self.lead], dtype=np.float64)
        info = self.files[fi]
        ox, oy = self._offsets(index, info)
        size = self.crop or self.n
        condition = self._take(past, ox, oy, size)
        target = self._take(future, ox, oy, size)[None]
        return {
            "condition": torch.from_numpy(self.normalize(condition).astype(np.float32)),
            "target": torch.from_numpy(self.normalize(target).astype(np.float32)),
            "reynolds": torch.tensor(info["parameters"]["Re"], dtype=torch.float32),
        }
