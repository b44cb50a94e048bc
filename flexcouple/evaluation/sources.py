"""What an evaluation runs on: the splits of a generated data set, each sample's out-of-distribution
category, and the unseen-observable split (velocity components) derived from the test split.

Categories (each sample gets one, from its parameters against the *training* split's):
- ``in_distribution``: a training Reynolds number, boundary condition and forcing wavenumber;
- ``unseen_re_below`` / ``unseen_re_above``: Re outside the training range (extrapolation);
- ``unseen_re_inside``: Re inside the range but not a training value (interpolation; the paper's
  Re 12000 and 24000);
- ``unseen_boundary``: a boundary condition not in the training split;
- ``unseen_forcing``: a forcing wavenumber not in the training split;
- ``unseen_observable``: the velocity components fed to a vorticity-trained model (the paper's test).
A sample that differs in several ways is filed under the first that applies in the order
boundary, forcing, Reynolds number.

Unseen observable: the velocity (u, v) = (d psi/dy, -d psi/dx) is derived spectrally from the
fine test vorticity (periodic splits only), each component is normalised by its own mean and
standard deviation over the evaluated samples (the model's vorticity statistics mean nothing for a
velocity), coarsened and upsampled exactly as the data set makes its conditions; the data set's own
conditions are recomputed this way once and compared, so a mismatch in the pipeline is an error,
not a silent difference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CATEGORIES = ("in_distribution", "unseen_re_below", "unseen_re_inside", "unseen_re_above", "unseen_boundary",
              "unseen_forcing", "unseen_observable")


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass
class Case:
    """One parameter set (one HDF5 file) of a split."""

    path: Path
    reynolds: float
    boundary: str
    forcing_wavenumber: float | None
    n: int
    times: np.ndarray
    has_velocity: bool


def split_names(root: str | Path) -> list[str]:
    """Split directories under ``root/data`` (train, valid, test and the OOD sets)."""
    data = Path(root) / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"{root}: no 'data' directory; is this a data set made by 'flexcouple generate'?")
    return sorted(p.name for p in data.iterdir() if p.is_dir() and any(p.glob("*.hdf5")))


def read_cases(root: str | Path, split: str) -> list[Case]:
    """The parameter sets of a split, read from the files' attributes (no field data is read)."""
    import h5py

    files = sorted((Path(root) / "data" / split).glob("*.hdf5"))
    if not files:
        raise FileNotFoundError(f"{root}: split {split!r} has no HDF5 files under data/{split}/; "
                                f"available splits: {', '.join(split_names(root)) or 'none'}")
    cases = []
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                attrs = f.attrs
                if "Re" not in attrs:
                    raise ValueError("no 'Re' root attribute")
                kf = attrs.get("forcing_wavenumber")
                boundary = _s(attrs["boundary"]) if "boundary" in attrs else _boundary_from_groups(f)
                cases.append(Case(path=path, reynolds=float(attrs["Re"]), boundary=boundary,
                                  forcing_wavenumber=None if kf is None else float(kf),
                                  n=int(f["dimensions/x"].shape[0]),
                                  times=np.asarray(f["dimensions/time"][()], dtype=np.float64),
                                  has_velocity="velocity" in f.get("t1_fields", {})))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable flexcouple data file ({exc})") from None
    return cases


def _boundary_from_groups(f) -> str:
    groups = set(f.get("boundary_conditions", {}).keys())
    return "periodic" if groups <= {"x_periodic", "y_periodic"} else "+".join(sorted(groups))


@dataclass
class TrainingRange:
    """The parameters a model was trained on (from the data set's training split)."""

    reynolds: list[float]
    boundaries: set[str]
    forcing_wavenumbers: set[float] = field(default_factory=set)

    @classmethod
    def from_cases(cls, cases: list[Case]) -> "TrainingRange":
        return cls(sorted({c.reynolds for c in cases}), {c.boundary for c in cases},
                   {c.forcing_wavenumber for c in cases if c.forcing_wavenumber is not None})

    def category(self, reynolds: float, boundary: str | None, forcing_wavenumber: float | None) -> str:
        if boundary is not None and boundary not in self.boundaries:
            return "unseen_boundary"
        if (forcing_wavenumber is not None and self.forcing_wavenumbers
                and forcing_wavenumber not in self.forcing_wavenumbers):
            return "unseen_forcing"
        if any(math.isclose(reynolds, r, rel_tol=1e-6) for r in self.reynolds):
            return "in_distribution"
        if reynolds < self.reynolds[0]:
            return "unseen_re_below"
        if reynolds > self.reynolds[-1]:
            return "unseen_re_above"
        return "unseen_re_inside"

    def to_dict(self) -> dict:
        return {"reynolds": self.reynolds, "boundaries": sorted(self.boundaries),
                "forcing_wavenumbers": sorted(self.forcing_wavenumbers)}


def case_of(cases: list[Case], reynolds: float) -> Case | None:
    """The split's case with this Reynolds number (None when several boundaries share it)."""
    hits = [c for c in cases if math.isclose(c.reynolds, reynolds, rel_tol=1e-6)]
    return hits[0] if len({(c.boundary, c.forcing_wavenumber) for c in hits}) == 1 else None


def default_splits(root: str | Path) -> list[str]:
    """Every split but train and valid: test first, then the OOD sets."""
    names = [s for s in split_names(root) if s not in ("train", "valid")]
    return sorted(names, key=lambda s: (s != "test", s))
