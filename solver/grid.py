"""The spectral grid: wavenumbers, the dealiasing mask, Parseval weights, and the free-slip extension.

The user's fields are ``(n, n)`` arrays on x_i = 2 pi i / n, y_j = 2 pi j / n (axis 0 is x).

* periodic (and the penalised boundaries): the computational grid is that grid on [0, 2 pi)^2.
* free-slip walls at y = 0 and y = 2 pi: the vorticity and streamfunction are sine series in y, which
  is exactly the periodic problem on [0, 2 pi) x [0, 4 pi) restricted to odd fields,
  omega(x, 4 pi - y) = -omega(x, y). The computational grid is that doubled box (n x 2n); the odd
  extension is made on input and dropped on output. psi = omega = 0 on the walls and
  d u / d y = 0 there, so the walls are free-slip to round-off.
"""
from __future__ import annotations

import numpy as np

TWO_PI = 2.0 * np.pi


class SpectralGrid:
    def __init__(self, n: int, backend, free_slip: bool = False, dealias: bool = True):
        self.n = n
        self.free_slip = free_slip
        self.backend = backend
        nx, ny = backend.shape
        self.nx, self.ny = nx, ny
        self.lx, self.ly = TWO_PI, TWO_PI * ny / n  # 2 pi, or 4 pi for the free-slip extension
        self.dx, self.dy = self.lx / nx, self.ly / ny
        sx, sy = backend.spectral_slice
        # integer mode numbers, then physical wavenumbers
        mx = np.fft.fftfreq(nx, 1.0 / nx)[sx][:, None]
        my = np.fft.rfftfreq(ny, 1.0 / ny)[sy][None, :]
        kx = mx * (TWO_PI / self.lx)
        ky = my * (TWO_PI / self.ly)
        self.kx_np, self.ky_np = kx, ky
        self.k2_np = kx**2 + ky**2
        # first derivatives drop the unpaired Nyquist modes so that derivatives of real fields stay real
        kx_d = np.where(np.abs(mx) == nx // 2, 0.0, kx)
        ky_d = np.where(np.abs(my) == ny // 2, 0.0, ky)
        self.kx_d_np, self.ky_d_np = kx_d, ky_d
        # 2/3 rule: keep |m| < (2/3)(N/2) in each direction
        if dealias:
            mask = (np.abs(mx) < nx / 3.0) & (np.abs(my) < ny / 3.0)
        else:
            mask = (np.abs(mx) < nx // 2) & (np.abs(my) < ny // 2)
        self.dealias_np = mask.astype(np.float64)
        self.cutoff_mode = (nx / 3.0) if dealias else nx / 2.0
        # Parseval weights of the half spectrum: ky = 0 and the Nyquist column count once
        w = np.full(my.shape, 2.0)
        w[my == 0] = 1.0
        if ny % 2 == 0:
            w[my == ny // 2] = 1.0
        self.parseval_np = np.broadcast_to(w, self.k2_np.shape)
        # index of -kx for the odd-symmetry projection (axis 0 of the spectrum is never split)
        self.neg_kx = (-np.arange(nx)) % nx

    # --- physical grid ----------------------------------------------------------------------
    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of this rank's part of the user grid, meshgrid indexing 'ij'."""
        sx, _ = self.backend.physical_slice
        x = TWO_PI * np.arange(sx.start, sx.stop) / self.n
        y = TWO_PI * np.arange(self.n) / self.n
        return np.meshgrid(x, y, indexing="ij")

    def computational_coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        sx, _ = self.backend.physical_slice
        x = self.dx * np.arange(sx.start, sx.stop)
        y = self.dy * np.arange(self.ny)
        return np.meshgrid(x, y, indexing="ij")

    # --- user grid <-> computational grid --------------------------------------------------
    def extend(self, field):
        """User field (nx_local, n) -> computational field (nx_local, ny)."""
        if not self.free_slip:
            return field
        xp = self.backend.xp
        n = self.n
        ext = xp.zeros(field.shape[:-1] + (2 * n,), dtype=field.dtype)
        ext[..., 1:n] = field[..., 1:n]
        ext[..., n + 1:] = -field[..., 1:n][..., ::-1]
        return ext

    def restrict(self, field):
        if not self.free_slip:
            return field
        return field[..., : self.n]

    def project_odd(self, spec):
        """Project a spectrum onto fields odd in y about y = 0 (free-slip): w(kx,ky) = -conj(w(-kx,ky))."""
        return 0.5 * (spec - spec[..., self.neg_kx, :].conj())
