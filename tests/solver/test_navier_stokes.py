"""Validation of the pseudo-spectral solver against exact solutions, invariants and convergence orders."""
import math

import numpy as np
import pytest

from solver import NavierStokes2D, SolverBlowUp, random_field, taylor_green


def band_limited(sim, omega):
    """The part of omega that the dealiased (Galerkin-truncated) system evolves."""
    return sim.to_physical(sim.to_spectral(omega) * sim.xp.asarray(sim.spectral.dealias_np))


def spectral_resample(field, m):
    """Fourier interpolation of a periodic (n, n) field onto an (m, m) grid (m < n: truncation)."""
    n = field.shape[0]
    spec = np.fft.fft2(field)
    km = np.fft.fftfreq(m, 1.0 / m)
    keep = np.abs(km) < m / 2
    idx = (km[keep].astype(int)) % n
    out = np.zeros((m, m), dtype=complex)
    out[np.ix_(keep, keep)] = spec[np.ix_(idx, idx)]
    return np.fft.ifft2(out).real * (m * m) / (n * n)


# --- exact solutions -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [32, 64])
@pytest.mark.parametrize("dt", [None, 0.05])
def test_taylor_green_decay_is_exact_to_round_off(n, dt):
    reynolds, k, t_end = 100.0, 2, 1.0
    sim = NavierStokes2D(n, reynolds)
    omega0 = taylor_green(n, k=k)
    omega = sim.advance(omega0, t_end, dt=dt)
    exact = omega0 * math.exp(-2 * k**2 * t_end / reynolds)
    err = np.linalg.norm(omega - exact) / np.linalg.norm(exact)
    assert err < 1e-13, err


def test_taylor_green_free_slip_decay_is_exact():
    n, reynolds, k = 32, 50.0, 1
    sim = NavierStokes2D(n, reynolds, boundary="free-slip")
    omega0 = taylor_green(n, k=k, boundary="free-slip")
    omega = sim.advance(omega0, 1.0)
    exact = omega0 * math.exp(-2 * k**2 / reynolds)
    assert np.linalg.norm(omega - exact) / np.linalg.norm(exact) < 1e-13


def test_laminar_kolmogorov_state_is_steady():
    n, reynolds, drag, kf = 32, 1000.0, 0.1, 4
    sim = NavierStokes2D(n, reynolds, forcing="kolmogorov", forcing_wavenumber=kf, drag=drag)
    x, y = sim.grid()
    nu = 1.0 / reynolds
    # u = sin(4y) / (16 nu + alpha), omega = -du/dy
    laminar = -kf * np.cos(kf * y) / (kf**2 * nu + drag)
    u, v = sim.velocity(laminar)
    np.testing.assert_allclose(u, np.sin(kf * y) / (kf**2 * nu + drag), atol=1e-12)
    omega = sim.advance(laminar, 5.0)
    assert np.abs(omega - laminar).max() / np.abs(laminar).max() < 1e-12


# --- invariants and orders -------------------------------------------------------------------

def test_inviscid_run_conserves_energy_and_enstrophy_at_the_integrator_order():
    """Unforced, undamped, inviscid: the Galerkin-truncated system conserves E and Z exactly, so the
    drift is the time stepper's alone. RK4's amplitude error per unit time is O(dt^5) for oscillatory
    modes, so the drift must fall by at least 2^4 per halving of dt."""
    n = 32
    sim = NavierStokes2D(n, math.inf)
    omega0 = band_limited(sim, random_field(n, seed=3, peak_wavenumber=3))
    e0, z0 = sim.energy(omega0), sim.enstrophy(omega0)
    drifts = []
    for dt in (0.04, 0.02, 0.01):
        omega = sim.advance(omega0, 2.0, dt=dt)
        drifts.append((abs(sim.energy(omega) - e0) / e0, abs(sim.enstrophy(omega) - z0) / z0))
    drifts = np.array(drifts)
    orders = np.log2(drifts[:-1] / drifts[1:])
    assert drifts[-1].max() < 1e-7
    assert np.all(orders > 3.8), orders


def test_etdrk4_converges_at_fourth_order():
    sim = NavierStokes2D(32, 100.0, forcing="kolmogorov", drag=0.1)
    omega0 = random_field(32, seed=4, peak_wavenumber=3)
    reference = sim.advance(omega0, 1.0, dt=0.0025)
    errs = np.array([np.abs(sim.advance(omega0, 1.0, dt=dt) - reference).max() for dt in (0.04, 0.02, 0.01)])
    orders = np.log2(errs[:-1] / errs[1:])
    assert np.all((orders > 3.7) & (orders < 4.5)), orders


def test_spectral_convergence_in_n():
    """Errors against a 128^2 reference fall faster than any fixed algebraic order as n grows."""
    n_ref, reynolds, t_end = 128, 200.0, 1.0
    k = np.fft.fftfreq(n_ref, 1.0 / n_ref)
    smooth = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / 8.0)
    omega0 = np.fft.ifft2(np.fft.fft2(random_field(n_ref, seed=5, peak_wavenumber=2)) * smooth).real
    reference = NavierStokes2D(n_ref, reynolds, dealias=False).advance(omega0, t_end, dt=0.005)
    errs = {}
    for m in (12, 24, 48):
        out = NavierStokes2D(m, reynolds, dealias=False).advance(spectral_resample(omega0, m), t_end, dt=0.005)
        errs[m] = np.abs(out - spectral_resample(reference, m)).max() / np.abs(reference).max()
    # an order-p method gains 2^p per doubling; here the gain itself grows with n
    gain_1, gain_2 = errs[12] / errs[24], errs[24] / errs[48]
    assert gain_1 > 15 and gain_2 > 100 and gain_2 > 3 * gain_1, errs


@pytest.mark.parametrize("forcing", ["kolmogorov", "user"])
def test_energy_and_enstrophy_budgets_match_the_measured_rates(forcing):
    if forcing == "user":  # any curl f the user passes: a smooth random one
        forcing = random_field(64, seed=11, peak_wavenumber=3, energy=0.05)
    sim = NavierStokes2D(64, 500.0, forcing=forcing, drag=0.1)
    omega0 = band_limited(sim, random_field(64, seed=6, peak_wavenumber=4))
    h = 1e-4
    # centred difference of E and Z over [0, h], against the budget terms at t = h/2
    mid = sim.advance(omega0, h / 2, dt=h / 8)
    end = sim.advance(omega0, h, dt=h / 8)
    e_rate = (sim.energy(end) - sim.energy(omega0)) / h
    z_rate = (sim.enstrophy(end) - sim.enstrophy(omega0)) / h
    budget_e = sim.energy_budget(mid)
    budget_z = sim.enstrophy_budget(mid)
    assert abs(e_rate - budget_e["dE_dt"]) < 1e-5 * abs(budget_e["viscous"]) + 1e-8
    assert abs(z_rate - budget_z["dZ_dt"]) < 1e-4 * abs(budget_z["viscous"]) + 1e-8
    assert budget_e["injection"] != 0.0 and budget_e["viscous"] < 0 and budget_e["drag"] < 0


def test_kolmogorov_flow_at_re_1000_becomes_turbulent_with_a_steep_spectrum():
    n = 128
    sim = NavierStokes2D(n, 1000.0, forcing="kolmogorov", drag=0.1, backend="pyfftw")
    omega = sim.advance(random_field(n, seed=0), 20.0)
    x, y = sim.grid()
    laminar = -4 * np.cos(4 * y) / (16e-3 + 0.1)
    assert np.linalg.norm(omega - laminar) / np.linalg.norm(laminar) > 0.5  # far from the laminar state
    k, e_k = sim.spectrum(omega)
    band = (k >= 8) & (k <= 30)  # between the forcing scale and the dealiasing cutoff (42)
    slope = np.polyfit(np.log(k[band]), np.log(e_k[band]), 1)[0]
    # the enstrophy range of forced 2D turbulence with drag is k^-3 or steeper
    assert -6.0 < slope < -3.0, slope
    assert sim.last_stats["cfl_max"] <= 0.5 + 1e-9


test_kolmogorov_flow_at_re_1000_becomes_turbulent_with_a_steep_spectrum = pytest.mark.slow(
    test_kolmogorov_flow_at_re_1000_becomes_turbulent_with_a_steep_spectrum)


# --- diagnostics and conventions -------------------------------------------------------------

def test_velocity_is_divergence_free_and_consistent_with_vorticity():
    sim = NavierStokes2D(64, 1000.0)
    omega = random_field(64, seed=7)
    assert sim.divergence(omega) < 1e-12
    u, v = sim.velocity(omega)
    k = np.fft.fftfreq(64, 1.0 / 64)
    curl = np.fft.ifft2(1j * k[:, None] * np.fft.fft2(v) - 1j * k[None, :] * np.fft.fft2(u)).real
    np.testing.assert_allclose(curl, omega - omega.mean(), atol=1e-10)
    # the spectrum sums to the energy, and the energy is <|u|^2>/2
    _, e_k = sim.spectrum(omega)
    assert e_k.sum() == pytest.approx(sim.energy(omega), rel=1e-12)
    assert sim.energy(omega) == pytest.approx(0.5 * np.mean(u**2 + v**2), rel=1e-12)


def test_random_field_is_seeded_and_has_the_requested_energy():
    a, b, c = random_field(64, seed=1), random_field(64, seed=1), random_field(64, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    sim = NavierStokes2D(64, 100.0)
    assert sim.energy(random_field(64, seed=1, energy=0.3)) == pytest.approx(0.3, rel=1e-10)


def test_trajectory_hits_output_times_exactly_and_matches_advance():
    sim = NavierStokes2D(32, 300.0, forcing="kolmogorov", drag=0.1)
    omega0 = random_field(32, seed=8)
    times = [0.0, 0.13, 0.5, 0.5, 1.0]
    snaps = sim.trajectory(omega0, times)
    assert snaps.shape == (5, 32, 32)
    np.testing.assert_array_equal(snaps[0], sim.to_physical(sim.to_spectral(omega0)))
    np.testing.assert_allclose(snaps[1], sim.advance(omega0, 0.13), atol=1e-6)
    stats = sim.last_stats
    # dt_min ignores the steps shortened to land on an output time; dt_mean counts every step
    assert stats["steps"] > 0 and 0 < stats["dt_mean"] <= stats["dt_max"] and stats["dt_min"] <= stats["dt_max"]
    assert stats["dt_min"] > 0.5 * stats["dt_max"]  # no sliver steps reported as the stability bound


def test_float32_matches_float64():
    omega0 = random_field(64, seed=9)
    w64 = NavierStokes2D(64, 500.0, forcing="kolmogorov", drag=0.1).advance(omega0, 0.5, dt=0.01)
    sim32 = NavierStokes2D(64, 500.0, forcing="kolmogorov", drag=0.1, dtype="float32")
    w32 = sim32.advance(omega0.astype(np.float32), 0.5, dt=0.01)
    assert w32.dtype == np.float32
    assert np.abs(w32 - w64).max() / np.abs(w64).max() < 1e-5


def test_dealiasing_can_be_turned_off():
    sim = NavierStokes2D(32, 100.0, dealias=False)
    assert sim.spectral.dealias_np.mean() > NavierStokes2D(32, 100.0).spectral.dealias_np.mean()
    assert sim.settings()["dealias"] is False


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [31, 4, 0, -8, 16.0, True])
def test_bad_grid_sizes_are_refused(n):
    with pytest.raises(ValueError, match="n must be an even integer"):
        NavierStokes2D(n, 100.0)


@pytest.mark.parametrize("re", [0.0, -5.0, float("nan"), "fast"])
def test_bad_reynolds_numbers_are_refused(re):
    with pytest.raises(ValueError, match="reynolds"):
        NavierStokes2D(32, re)


@pytest.mark.parametrize("kwargs, match", [
    ({"backend": "fortran"}, "unknown backend"),
    ({"boundary": "slippery"}, "boundary 'slippery' is unknown"),
    ({"boundary": np.zeros((8, 8))}, "mask must have shape"),
    ({"forcing": "tidal"}, "forcing 'tidal' is unknown"),
    ({"dtype": "float16"}, "dtype"),
    ({"drag": -1.0}, "drag"),
])
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NavierStokes2D(32, 100.0, **kwargs)


def test_bad_fields_are_refused():
    sim = NavierStokes2D(32, 100.0)
    with pytest.raises(ValueError, match=r"shape \(32, 32\)"):
        sim.advance(np.zeros((16, 16)), 1.0)
    bad = np.zeros((32, 32))
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        sim.advance(bad, 1.0)
    with pytest.raises(ValueError, match="dt must be"):
        sim.advance(np.zeros((32, 32)), 1.0, dt=-0.1)
    with pytest.raises(ValueError, match="t_end"):
        sim.advance(np.zeros((32, 32)), -1.0)


def test_a_run_that_blows_up_raises_with_the_time_and_cfl():
    sim = NavierStokes2D(32, 1e6, forcing="kolmogorov")
    with pytest.raises(SolverBlowUp, match=r"blew up.*t = .*CFL number"):
        sim.advance(random_field(32, seed=0, energy=50.0), 50.0, dt=0.5)
