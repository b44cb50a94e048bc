"""The advection term in Basdevant's form equals the classical u . grad(omega) on the dealiased modes.

The solver computes u . grad omega = (d_xx - d_yy)(uv) + d_xy(v^2 - u^2) from 2 inverse and 2 forward
FFTs; the reference here is the classical form (u, v, d_x omega, d_y omega from 4 inverse FFTs, their
products, 1 forward FFT), written in plain numpy. On a band-limited field (modes |m| < n/3, which the
2/3 rule keeps) both are the exact product, so they agree to round-off.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from solver import NavierStokes2D

MPIEXEC = Path(sys.executable).with_name("mpiexec")
BOUNDARIES = ["periodic", "free-slip", "cylinder"]  # cylinder: a mean flow (U, 0) added to u


def band_limited_spectrum(sim, seed):
    """A random vorticity spectrum with modes only where the 2/3 rule keeps them (odd in y for free-slip)."""
    omega = np.random.default_rng(seed).standard_normal((sim.n, sim.n))
    return sim.to_spectral(omega[sim.local_rows]) * sim.spectral.dealias_np


def classical_advection(sim, w_hat):
    """FFT(u d_x omega + v d_y omega), dealiased, from the full (serial) spectrum."""
    g = sim.spectral
    shape = (g.nx, g.ny)
    k2 = np.where(g.k2_np > 0, g.k2_np, 1.0)
    u = np.fft.irfft2(1j * g.ky_d_np * w_hat / k2, s=shape) + sim.mean_velocity[0]
    v = np.fft.irfft2(-1j * g.kx_d_np * w_hat / k2, s=shape) + sim.mean_velocity[1]
    wx = np.fft.irfft2(1j * g.kx_d_np * w_hat, s=shape)
    wy = np.fft.irfft2(1j * g.ky_d_np * w_hat, s=shape)
    return g.dealias_np * np.fft.rfft2(u * wx + v * wy)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("backend", ["numpy", "pyfftw"])
def test_basdevant_advection_equals_the_classical_form(boundary, backend):
    sim = NavierStokes2D(48, 300.0, boundary=boundary, backend=backend)
    w_hat = band_limited_spectrum(sim, seed=3)
    ours = sim.spectral.dealias_np * sim.equation.explicit(w_hat.copy())
    ref = classical_advection(sim, w_hat)
    assert np.abs(ours - ref).max() / np.abs(ref).max() < 1e-12


def test_basdevant_advection_subtracts_the_forcing():
    sim = NavierStokes2D(32, 300.0, forcing="kolmogorov")
    w_hat = band_limited_spectrum(sim, seed=4)
    ours = sim.spectral.dealias_np * (sim.equation.explicit(w_hat.copy()) + sim.equation.forcing_hat)
    ref = classical_advection(sim, w_hat)
    assert np.abs(ours - ref).max() / np.abs(ref).max() < 1e-12


SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from mpi4py import MPI
    from solver import NavierStokes2D
    from solver.mpi import gather
    comm = MPI.COMM_WORLD
    for boundary in sys.argv[2].split(","):
        sim = NavierStokes2D(48, 300.0, boundary=boundary, comm=comm)
        omega = np.random.default_rng(3).standard_normal((48, 48))
        w_hat = sim.to_spectral(omega[sim.local_rows]) * sim.spectral.dealias_np
        term = gather(sim.to_physical(sim.spectral.dealias_np * sim.equation.explicit(w_hat)), sim)
        if comm.rank == 0:
            np.save(f"{sys.argv[1]}/{boundary}.npy", term)
""")


@pytest.mark.mpi
@pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable}")
def test_basdevant_advection_on_two_ranks_equals_the_serial_classical_form(tmp_path):
    script = tmp_path / "term.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(script), str(tmp_path), ",".join(BOUNDARIES)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for boundary in BOUNDARIES:
        sim = NavierStokes2D(48, 300.0, boundary=boundary)
        w_hat = band_limited_spectrum(sim, seed=3)
        ref = sim.to_physical(classical_advection(sim, w_hat))
        term = np.load(tmp_path / f"{boundary}.npy")
        assert np.abs(term - ref).max() / np.abs(ref).max() < 1e-12, boundary
