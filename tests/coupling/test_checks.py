"""Each drift check: one case it passes (the solver's own field), one it fails; the threshold rules."""
import math

import numpy as np
import pytest

from coupling.checks import (ALL_CHECKS, CheckContext, CheckSuite, FieldDiagnostics, log_spectral_distance)
from solver import NavierStokes2D, random_field

N, DT = 64, 0.25
KW = dict(reynolds=200.0, forcing="kolmogorov", drag=0.1, backend="numpy")


@pytest.fixture(scope="module")
def flow():
    sim = NavierStokes2D(N, **KW)
    w0 = np.asarray(sim.advance(random_field(N, seed=4), 4.0))
    w1 = np.asarray(sim.advance(w0, DT))
    diag = FieldDiagnostics(N, {**KW, "boundary": "periodic", "dtype": "float64", "cfl": 0.5})
    return w0, w1, diag


def ctx(flow, candidate, **kw):
    w0, _, diag = flow
    base = dict(candidate=candidate, previous=w0, dt=DT, diagnostics=diag, recent_max=float(np.abs(w0).max()),
                reference_spectrum=diag.spectrum(w0), forecast=True)
    base.update(kw)
    return CheckContext(**base)


def check(name):
    return next(c for c in ALL_CHECKS if c.name == name)()


def noise_like(w, seed=0):
    rng = np.random.default_rng(seed)
    f = np.fft.rfft2(w)
    return np.fft.irfft2(np.abs(f) * np.exp(2j * np.pi * rng.random(f.shape)), s=w.shape)


def lowpass(w, kc, gain=1.0):
    kx = np.fft.fftfreq(w.shape[0], 1.0 / w.shape[0])[:, None]
    ky = np.fft.rfftfreq(w.shape[1], 1.0 / w.shape[1])[None, :]
    return np.fft.irfft2(np.fft.rfft2(w) * gain * (np.hypot(kx, ky) < kc), s=w.shape)


@pytest.mark.parametrize("name, bad", [
    ("finite", lambda w: np.where(np.arange(w.size).reshape(w.shape) == 7, np.nan, w)),
    ("max_vorticity", lambda w: 3 * w),
    ("energy_budget", lambda w: 1.5 * w),
    ("enstrophy_budget", lambda w: 1.4 * w),
    ("tendency", lambda w: np.roll(w, 8, axis=0)),
    ("coarse_forecast", lambda w: noise_like(w)),
    ("spectrum_resolved", lambda w: lowpass(w, 6, gain=4.0)),
    ("spectrum_tail", lambda w: lowpass(w, 11)),
])
def test_the_solver_passes_and_a_wrong_field_fails(flow, name, bad):
    c = check(name)
    w0, w1, _ = flow
    good = c.value(ctx(flow, w1))
    wrong = c.value(ctx(flow, bad(w1)))
    assert good <= c.default, f"{name}: the solver's own field scores {good}"
    assert not wrong <= c.default, f"{name}: the wrong field scores {wrong}"


def test_superres_consistency_and_ensemble_spread(flow):
    from flexcouple.data.coarsen import coarsen
    w0, w1, diag = flow
    coarse = coarsen(w1, 4, "spectral")
    c = check("superres_consistency")
    assert c.value(ctx(flow, w1, coarse=coarse)) < 1e-12
    assert c.value(ctx(flow, np.roll(w1, 5, axis=1), coarse=coarse)) > c.default
    s = check("ensemble_spread")
    assert s.value(ctx(flow, w1, std=0.01 * np.abs(w1))) < s.default
    assert s.value(ctx(flow, w1, std=2 * np.abs(w1))) > s.default


def test_solid_velocity_in_a_penalised_channel():
    kw = dict(reynolds=100.0, forcing=None, drag=0.0, backend="numpy", boundary="channel", dtype="float64", cfl=0.5,
              pressure_gradient=1.0)
    diag = FieldDiagnostics(32, {k: v for k, v in kw.items() if k != "pressure_gradient"})
    sim = NavierStokes2D(32, **kw)
    w = np.asarray(sim.advance(np.zeros((32, 32)), 1.0))
    c = check("solid_velocity")
    inside = lambda field: c.value(CheckContext(candidate=field, previous=None, dt=1.0, diagnostics=diag))
    assert inside(w) < c.default
    y = np.arange(32) * 2 * np.pi / 32
    assert inside(np.broadcast_to(3 * np.cos(y), (32, 32)).copy()) > c.default  # a shear through the walls


def test_threshold_rules_fixed_adaptive_default(flow):
    w0, w1, diag = flow
    suite = CheckSuite(thresholds={"max_vorticity": 1.1}, floors={"energy_budget": 1e-9}, k_mad=3.0)
    res = {r.name: r for r in suite.evaluate(ctx(flow, w1))}
    assert res["max_vorticity"].rule == "fixed" and res["max_vorticity"].threshold == 1.1
    assert res["energy_budget"].rule == "default"
    for v in (0.01, 0.012, 0.011, 0.013, 0.0105):
        suite.samples["energy_budget"].append(v)
    thr, rule = suite.threshold(check("energy_budget"))
    a = np.array([0.01, 0.012, 0.011, 0.013, 0.0105])
    mad = 1.4826 * np.median(np.abs(a - np.median(a)))
    assert rule == "adaptive" and math.isclose(thr, np.median(a) + 3.0 * mad)
    nan_ctx = ctx(flow, np.full_like(w1, np.nan))
    assert not any(r.passed for r in suite.evaluate(nan_ctx) if r.name in ("finite", "max_vorticity"))


def test_log_spectral_distance():
    e = np.arange(1, 40.0) ** -3
    assert log_spectral_distance(e, e) == 0
    assert math.isclose(log_spectral_distance(2 * e, e), math.log(2))
