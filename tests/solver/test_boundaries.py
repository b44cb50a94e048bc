"""Boundary conditions: free-slip walls (exact sine series) and Brinkman-penalised no-slip solids."""
import numpy as np
import pytest

from solver import NavierStokes2D, random_field
from solver.grid import TWO_PI


def test_free_slip_walls_hold_through_a_turbulent_run():
    n = 64
    sim = NavierStokes2D(n, 2000.0, forcing="kolmogorov", drag=0.05, boundary="free-slip")
    omega0 = random_field(n, seed=2, boundary="free-slip")
    assert np.abs(omega0[:, 0]).max() < 1e-12  # omega = 0 on the wall y = 0
    omega = sim.advance(omega0, 2.0)
    u, v = sim.velocity(omega)
    psi = sim.streamfunction(omega)
    scale = np.abs(omega).max()
    assert np.abs(omega[:, 0]).max() < 1e-12 * scale       # omega = 0 on the wall
    assert np.abs(psi[:, 0]).max() < 1e-12 * np.abs(psi).max()  # the wall is a streamline
    assert np.abs(v[:, 0]).max() < 1e-12 * np.abs(v).max()  # no flow through the wall
    # free slip: u is even about the wall, so du/dy = 0 there (spectral derivative on the box)
    ky = np.fft.fftfreq(2 * n, 1.0 / (2 * n)) / 2.0
    u_even = np.concatenate([u, u[:, :1], u[:, 1:][:, ::-1]], axis=1)  # even extension
    dudy = np.fft.ifft(1j * ky * np.fft.fft(u_even, axis=1), axis=1).real
    assert np.abs(dudy[:, 0]).max() < 1e-9 * np.abs(dudy).max()
    assert sim.divergence(omega) < 1e-10 * scale
    assert sim.energy(omega) > 0.1  # the flow was not just damped away


def test_free_slip_extension_is_odd_and_kept_odd():
    """Free-slip walls are the periodic problem on [0, 2pi) x [0, 4pi) restricted to odd fields."""
    n = 32
    omega0 = random_field(n, seed=3, boundary="free-slip")
    sim = NavierStokes2D(n, 500.0, boundary="free-slip")
    ext = sim.spectral.extend(omega0)
    assert ext.shape == (n, 2 * n)
    np.testing.assert_allclose(ext[:, n + 1:], -omega0[:, 1:][:, ::-1])
    assert np.abs(ext[:, [0, n]]).max() == 0.0
    spec = sim.backend.forward(ext)
    np.testing.assert_allclose(sim.spectral.project_odd(spec), spec, atol=1e-10)  # odd: unchanged
    # an even field (in y) projects to zero
    even = sim.backend.forward(np.abs(ext))
    assert np.abs(sim.spectral.project_odd(even)).max() < 1e-10 * np.abs(even).max()
    omega = sim.advance(omega0, 0.5, dt=0.01)
    assert np.abs(omega[:, 0]).max() < 1e-12


def _poiseuille_error(eta, n=128):
    nu, wall = 1.0, np.pi / 2
    half_width, gradient = np.pi - wall, 2.0
    sim = NavierStokes2D(n, 1.0 / nu, boundary="channel", wall_thickness=wall, pressure_gradient=gradient,
                         penalization=eta)
    omega = sim.advance(np.zeros((n, n)), 8.0)  # 8 viscous times of the slowest channel mode
    u, v = sim.velocity(omega)
    _, y = sim.grid()
    fluid = np.abs(y - np.pi) < half_width
    exact = gradient / (2 * nu) * (half_width**2 - (y - np.pi) ** 2)
    assert np.abs(v).max() < 1e-10
    return np.linalg.norm((u - exact)[fluid]) / np.linalg.norm(exact[fluid]), np.abs(u[~fluid]).mean()


@pytest.mark.slow
def test_penalised_channel_converges_to_plane_poiseuille_as_eta_shrinks():
    etas = np.array([1e-1, 3e-2, 1e-2])
    results = [_poiseuille_error(eta) for eta in etas]
    errors = np.array([r[0] for r in results])
    solid_speed = np.array([r[1] for r in results])
    assert np.all(np.diff(errors) < 0), errors
    rate = np.polyfit(np.log(etas), np.log(errors), 1)[0]
    assert rate > 0.4, (rate, errors)  # theory: O(eta^(1/2)) (Angot et al. 1999)
    assert errors[-1] < 0.25
    assert np.all(np.diff(solid_speed) < 0)  # the walls come to rest as eta -> 0


def test_cylinder_wake_is_penalised_and_stays_finite():
    n = 64
    sim = NavierStokes2D(n, 100.0, boundary="cylinder", penalization=1e-2)
    omega = sim.advance(np.zeros((n, n)), 0.5)
    u, v = sim.velocity(omega)
    solid = sim.solid_fraction > 0.99
    assert np.all(np.isfinite(omega))
    assert np.abs(u[solid]).mean() < 0.2 * np.abs(u[~solid]).mean()  # the free stream is 1, the body ~ at rest
    assert np.abs(omega).max() > 1.0  # vorticity is shed from the body


def test_user_mask_is_validated():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        NavierStokes2D(32, 100.0, boundary=np.full((32, 32), 2.0))
    mask = np.zeros((32, 32))
    mask[10:14, 10:14] = 1.0
    sim = NavierStokes2D(32, 100.0, boundary=mask)
    assert sim.boundary == "mask"
    assert np.all(np.isfinite(sim.advance(np.zeros((32, 32)), 0.1)))
