r"""Integrals and spectra of a vorticity field: one definition each, for the solver, the checks and
the evaluation.

Two kinds of functions:

- of a spectrum on a :class:`solver.equations.VorticityEquation` (``eq``, ``w_hat``: this rank's part
  of the spectrum on the equation's computational grid; values are global under MPI): ``energy``,
  ``enstrophy``, ``palinstrophy``, ``spectrum``, ``divergence``, ``energy_budget``,
  ``enstrophy_budget``. ``NavierStokes2D``'s methods of the same names call them.
- of whole fields, numpy ``(..., nx, ny)`` on a periodic box: ``energy_spectrum``, ``scalar_spectrum``,
  ``wavenumbers``, and ``resolved_band``, the one answer to "which shells does a grid resolve".

The energy spectrum is E(k) = sum over the shell k - 1/2 <= |k| < k + 1/2 of |u_hat|^2 / 2, with
u = (d psi/dy, -d psi/dx), lap psi = -omega and u_hat = FFT(u) / N, so sum_k E(k) = <|u|^2> / 2
(Parseval); both kinds give the same shells (tested).
"""
from __future__ import annotations

import math

import numpy as np


# ---- the resolved band -----------------------------------------------------------------------------
def resolved_band(n: int, *, dealiased: bool = True) -> tuple[int, int]:
    """Shells (1, k_max) that an n x n grid resolves. A field of this solver (``dealiased``: the 2/3
    rule) carries |k| < n / 3, so k_max = n // 3; a field truncated from a finer run (a data set's
    snapshot) or of another solver carries every shell wholly inside the Nyquist square, k_max = n // 2
    (the corners beyond are only partly sampled and are left out)."""
    return 1, (int(n) // 3 if dealiased else int(n) // 2)


# ---- whole fields (numpy) ----------------------------------------------------------------------------
def wavenumbers(shape: tuple[int, int], length: float = 2 * math.pi) -> tuple[np.ndarray, np.ndarray]:
    """Angular wavenumbers (kx, ky) of the real FFT of a (nx, ny) field on a periodic box of side
    ``length`` ("ij" layout; ky runs over the rfft half-plane). Integers on [0, 2pi)^2."""
    nx, ny = shape
    kx = np.fft.fftfreq(nx, d=length / (2 * math.pi * nx))
    ky = np.fft.rfftfreq(ny, d=length / (2 * math.pi * ny))
    return np.meshgrid(kx, ky, indexing="ij")


def rfft_weights(ny: int) -> np.ndarray:
    """Multiplicity of each rfft column in the full spectrum (conjugate symmetry)."""
    w = np.full(ny // 2 + 1, 2.0)
    w[0] = 1.0
    if ny % 2 == 0:
        w[-1] = 1.0
    return w


def shell_sum(density: np.ndarray, shells: np.ndarray, n_shells: int) -> np.ndarray:
    """Sum a (..., nx, ny//2+1) spectral density over integer shells -> (..., n_shells)."""
    lead = density.shape[:-2]
    flat = density.reshape(-1, density.shape[-2] * density.shape[-1])
    idx = np.broadcast_to(shells, density.shape[-2:]).ravel()
    out = np.stack([np.bincount(idx, weights=row, minlength=n_shells)[:n_shells] for row in flat])
    return out.reshape(*lead, n_shells)


def _shells(shape, length):
    kx, ky = wavenumbers(shape, length)
    kmag = np.sqrt(kx**2 + ky**2) * length / (2 * math.pi)  # in units of the box's fundamental
    shells = np.floor(kmag + 0.5).astype(np.int64)  # k - 1/2 <= |k| < k + 1/2
    return shells, int(shells.max()) + 1


def energy_spectrum(vorticity, length: float = 2 * math.pi) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic kinetic-energy spectrum E(k) of vorticity field(s) (..., nx, ny).

    Returns (k, E) with k = 0, 1, ..., (integer shells; in units of 2 pi / length) and E of shape
    (..., len(k)). |u_hat|^2 + |v_hat|^2 = |omega_hat|^2 / |k|^2, so no velocity is formed.
    """
    w = np.asarray(vorticity, dtype=np.float64)
    nx, ny = w.shape[-2:]
    kx, ky = wavenumbers((nx, ny), length)
    k2 = kx**2 + ky**2
    k2[0, 0] = np.inf  # the mean vorticity carries no energy
    w_hat = np.fft.rfft2(w, axes=(-2, -1)) / (nx * ny)
    density = 0.5 * np.abs(w_hat) ** 2 / k2 * rfft_weights(ny)
    shells, n_shells = _shells((nx, ny), length)
    return np.arange(n_shells), shell_sum(density, shells, n_shells)


def scalar_spectrum(field, length: float = 2 * math.pi) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic spectrum of a scalar field, sum over shells of |f_hat|^2 / 2 (e.g. one velocity
    component, for the unseen-observable test where the fields are not vorticity)."""
    f = np.asarray(field, dtype=np.float64)
    nx, ny = f.shape[-2:]
    f_hat = np.fft.rfft2(f, axes=(-2, -1)) / (nx * ny)
    density = 0.5 * np.abs(f_hat) ** 2 * rfft_weights(ny)
    shells, n_shells = _shells((nx, ny), length)
    return np.arange(n_shells), shell_sum(density, shells, n_shells)


# ---- a spectrum on an equation's grid (this rank's part; global values) ------------------------------
def _mean_square(eq, spec) -> float:
    """Domain mean of f^2 from the half spectrum of f (Parseval), over all ranks."""
    n_total = eq.grid.nx * eq.grid.ny
    local = float(eq.xp.sum(eq.parseval * (spec.real**2 + spec.imag**2)))
    return eq.backend.allsum(local) / n_total**2


def energy(eq, w_hat) -> float:
    """E = <|u|^2> / 2 per unit area (the mean flow included)."""
    fluct = 0.5 * _mean_square(eq, w_hat * eq.xp.sqrt(eq.inv_k2))
    return fluct + 0.5 * float(np.sum(eq.mean_velocity**2))


def enstrophy(eq, w_hat) -> float:
    """Z = <omega^2> / 2."""
    return 0.5 * _mean_square(eq, w_hat)


def palinstrophy(eq, w_hat) -> float:
    """P = <|grad omega|^2> / 2."""
    return 0.5 * (_mean_square(eq, eq.ikx * w_hat) + _mean_square(eq, eq.iky * w_hat))


def spectrum_shells(n: int) -> int:
    """The number of shells of :func:`spectrum` on an n^2 grid: k = 0 up to the grid's corner."""
    return int(np.ceil(np.sqrt(2) * n / 2)) + 1


def spectrum(eq, w_hat) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic energy spectrum (k, E(k)), shells |k| in [k - 1/2, k + 1/2), sum E = energy of the
    fluctuation; k runs to the corner of the computational grid."""
    g = eq.grid
    n_total = g.nx * g.ny
    dens = 0.5 * eq.backend.to_numpy(eq.parseval * (w_hat.real**2 + w_hat.imag**2) * eq.inv_k2) / n_total**2
    kmag = np.sqrt(g.k2_np)
    kmax = spectrum_shells(g.n)
    shells = np.rint(kmag).astype(int)
    e = shell_sum(np.broadcast_to(dens, kmag.shape), shells, kmax)
    return np.arange(kmax, dtype=np.float64), eq.backend.allsum_array(e)


def divergence(eq, w_hat) -> float:
    """max |div u| computed spectrally (zero to round-off by construction)."""
    div_hat = eq.ikx * (eq.u_from_w * w_hat) + eq.iky * (eq.v_from_w * w_hat)
    div = eq.backend.backward(div_hat)
    return eq.backend.allmax(float(eq.xp.max(eq.xp.abs(div))))


def _forcing_product(eq, a_hat) -> float:
    """<a curl f> from the spectrum of a (Parseval), over all ranks; 0 unforced."""
    if eq.forcing_hat is None:
        return 0.0
    n_total = eq.grid.nx * eq.grid.ny
    return eq.backend.allsum(float(eq.xp.sum(eq.parseval * (a_hat.conj() * eq.forcing_hat).real))) / n_total**2


def energy_budget(eq, w_hat) -> dict:
    """Terms of dE/dt = -2 nu Z - 2 alpha E + <u . f> (periodic / free-slip, no solids)."""
    e, z = energy(eq, w_hat), enstrophy(eq, w_hat)
    # <u . f> = <psi curl f> (integration by parts on the periodic / odd-extended box)
    injection = _forcing_product(eq, w_hat * eq.inv_k2)
    dissipation = -2.0 * eq.nu * z
    damping = -2.0 * eq.drag * e
    return {"dE_dt": dissipation + damping + injection, "viscous": dissipation, "drag": damping,
            "injection": injection, "energy": e, "enstrophy": z}


def enstrophy_budget(eq, w_hat) -> dict:
    """Terms of dZ/dt = -2 nu P - 2 alpha Z + <omega curl f> (periodic / free-slip, no solids)."""
    z, p = enstrophy(eq, w_hat), palinstrophy(eq, w_hat)
    injection = _forcing_product(eq, w_hat)
    return {"dZ_dt": -2.0 * eq.nu * p - 2.0 * eq.drag * z + injection, "viscous": -2.0 * eq.nu * p,
            "drag": -2.0 * eq.drag * z, "injection": injection, "enstrophy": z, "palinstrophy": p}
