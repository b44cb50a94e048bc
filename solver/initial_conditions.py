"""Initial vorticity fields: plain functions of the grid size and a seed.

All return float64 arrays of shape (n, n) on x_i = 2 pi i / n, y_j = 2 pi j / n (axis 0 is x). Under
MPI every rank builds the same global field from the same seed and keeps its slab
(``solver.mpi.local_part``), so a distributed run starts from exactly the serial field.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from solver.grid import TWO_PI


def _check_n(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or n < 8 or n % 2:
        raise ValueError(f"n must be an even integer >= 8, got {n!r}")
    return int(n)


def taylor_green(n: int, k: int = 1, amplitude: float = 1.0, boundary: str = "periodic") -> np.ndarray:
    """Taylor-Green vortex: an eigenfunction of the Laplacian, so advection vanishes identically and
    omega(t) = omega(0) exp(-2 k^2 nu t) exactly.

    periodic: omega = 2 k cos(kx) cos(ky) (streamfunction cos(kx) cos(ky) / k);
    free-slip walls (omega = 0 at y = 0, 2 pi): omega = 2 k cos(kx) sin(ky).
    """
    n = _check_n(n)
    x = TWO_PI * np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    ydep = np.sin(k * Y) if boundary == "free-slip" else np.cos(k * Y)
    return amplitude * 2.0 * k * np.cos(k * X) * ydep


def random_field(
    n: int,
    seed: int,
    peak_wavenumber: float = 4.0,
    energy: float = 0.5,
    boundary: str = "periodic",
) -> np.ndarray:
    """Random vorticity with the energy spectrum E(k) ~ k^4 exp(-2 (k / k_p)^2) and total energy
    ``energy`` (per unit area, (1/|A|) int |u|^2 / 2), random phases from ``seed``.

    For free-slip walls the field is a sine series in y (zero on the walls).
    """
    n = _check_n(n)
    if energy <= 0 or not np.isfinite(energy):
        raise ValueError(f"energy must be positive and finite, got {energy!r}")
    rng = np.random.default_rng(seed)
    free_slip = boundary == "free-slip"
    ny = 2 * n if free_slip else n
    ly = TWO_PI * ny / n
    kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    ky = np.fft.fftfreq(ny, 1.0 / ny)[None, :] * (TWO_PI / ly)
    kk = np.sqrt(kx**2 + ky**2)
    spectrum = kk**4 * np.exp(-2.0 * (kk / peak_wavenumber) ** 2)
    # |omega_hat|^2 ~ k^2 E(k) / (2 pi k): amplitude per mode, times a complex Gaussian
    amp = np.sqrt(np.where(kk > 0, kk * spectrum, 0.0))
    noise = rng.standard_normal(kk.shape) + 1j * rng.standard_normal(kk.shape)
    omega = np.fft.ifft2(amp * noise).real
    if free_slip:
        omega = 0.5 * (omega - np.roll(omega[:, ::-1], 1, axis=1))  # odd about y = 0 (and y = 2 pi)
    omega -= omega.mean()
    # scale to the requested energy: E = (1/2) sum |omega_hat|^2 / k^2 / N^2 (Parseval)
    w = np.fft.fft2(omega)
    k2 = np.where(kk > 0, kk**2, np.inf)
    e = 0.5 * np.sum(np.abs(w) ** 2 / k2) / omega.size**2
    omega *= np.sqrt(energy / e)
    return np.ascontiguousarray(omega[:, :n])


def from_file(path, n: int | None = None, dataset: str | None = None) -> np.ndarray:
    """Restart from a saved field: ``.npy``, ``.npz`` (key ``vorticity`` or ``omega``) or HDF5
    (``dataset`` path, default the last snapshot of ``t0_fields/vorticity`` or ``vorticity``).

    A file that is missing raises FileNotFoundError; one that cannot serve as the field (a
    directory, unreadable, truncated, not NumPy / HDF5, no snapshot, not real, NaN or Inf, another
    grid) raises a ValueError naming the file, the problem and what to do."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"restart file {path} does not exist")
    if path.is_dir():
        raise ValueError(f"restart file {path} is a directory; give a .npy, .npz or .h5 file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".h5", ".hdf5"):
        raise ValueError(f"{path}: unknown restart format {suffix!r}; use .npy, .npz or .h5")
    try:
        field = _read_field(path, suffix, dataset)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, _Unreadable) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"restart file {path} cannot be read ({reason}): give a complete, readable "
                         f"{suffix} file") from None
    if field.size == 0:
        raise ValueError(f"{path}: holds no snapshot (shape {field.shape}); give a file with at least one field")
    while field.ndim > 2:  # take the last snapshot of the last trajectory
        field = field[-1]
    if field.ndim != 2 or field.shape[0] != field.shape[1]:
        raise ValueError(f"{path}: expected a square 2D vorticity field, got shape {field.shape}")
    if n is not None and field.shape[0] != n:
        raise ValueError(f"{path}: field is {field.shape[0]}^2 but the solver grid is {n}^2")
    if np.iscomplexobj(field) or field.dtype.kind not in "biuf":
        raise ValueError(f"{path}: the vorticity must be a real array, got dtype {field.dtype}")
    problem = nonfinite_problem(field)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return np.asarray(field, dtype=np.float64)


def nonfinite_problem(field) -> str | None:
    """"contains K NaN or Inf values (first at [i, j])" for a field that has any, else None."""
    bad = ~np.isfinite(np.asarray(field))
    if not bad.any():
        return None
    first = ", ".join(str(int(i)) for i in np.argwhere(bad)[0])
    return f"contains {int(bad.sum())} NaN or Inf values (first at [{first}])"


class _Unreadable(Exception):
    """numpy's own errors for a damaged file (a ValueError like ours, so told apart here)."""


def _read_field(path: Path, suffix: str, dataset: str | None) -> np.ndarray:
    def load(source, what):
        try:
            return np.load(source, allow_pickle=False) if what is None else source[what]
        except ValueError as exc:  # truncated header or data, or a pickle
            raise _Unreadable(str(exc)) from None

    if suffix == ".npy":
        return load(path, None)
    if suffix == ".npz":
        with load(path, None) as data:
            key = next((k for k in ("vorticity", "omega") if k in data), None)
            if key is None:
                raise ValueError(f"{path}: no 'vorticity' or 'omega' array (found {sorted(data)})")
            return load(data, key)
    import h5py

    with h5py.File(path, "r") as f:
        key = dataset or next((k for k in ("t0_fields/vorticity", "vorticity") if k in f), None)
        if key is None or key not in f:
            raise ValueError(f"{path}: no vorticity data set (looked for {dataset or 't0_fields/vorticity, vorticity'})")
        return np.asarray(f[key])
