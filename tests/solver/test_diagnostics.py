"""One definition each: the solver's spectrum is the whole-field one, the resolved band is one rule,
and the equation object gives the solver's own tendency and budgets without a solver run."""
import numpy as np
import pytest

from solver import NavierStokes2D, diagnostics, random_field
from solver.equations import VorticityEquation

KW = dict(forcing="kolmogorov", forcing_wavenumber=4, drag=0.1)


@pytest.fixture(scope="module")
def field():
    sim = NavierStokes2D(64, 500.0, **KW)
    return np.asarray(sim.advance(random_field(64, seed=3), 0.5))


def test_the_solvers_spectrum_is_the_whole_field_spectrum(field):
    k, e = NavierStokes2D(64, 500.0, **KW).spectrum(field)
    k2, e2 = diagnostics.energy_spectrum(field)
    m = min(len(e), len(e2))
    assert np.allclose(e[:m], e2[:m], rtol=1e-12, atol=1e-16 * e.max())
    assert np.all(e[m:] == 0) and np.all(e2[m:] == 0)
    assert np.isclose(e.sum(), NavierStokes2D(64, 500.0, **KW).energy(field), rtol=1e-12)  # Parseval


def test_the_resolved_band_is_one_rule():
    assert diagnostics.resolved_band(256) == (1, 85)                    # the 2/3 rule of this solver
    assert diagnostics.resolved_band(256, dealiased=False) == (1, 128)  # a truncation of a finer run
    from coupling.checks import FieldDiagnostics
    from flexcouple.evaluation.metrics import field_band
    d = FieldDiagnostics(64, dict(KW, reynolds=500.0), coarse_n=32)
    assert (d.k_max, d.k_resolved) == (diagnostics.resolved_band(64)[1], diagnostics.resolved_band(32)[1])
    assert field_band((64, 64)) == diagnostics.resolved_band(64, dealiased=False)


def test_the_equation_gives_the_solvers_tendency_and_budgets(field):
    sim = NavierStokes2D(64, 500.0, **KW)
    eq = VorticityEquation.serial(64, reynolds=500.0, **KW)
    w_hat = eq.spectral_of(field)
    assert np.allclose(eq.physical_of(eq.tendency(w_hat)), sim.tendency(field), rtol=0, atol=1e-12)
    budget = diagnostics.energy_budget(eq, w_hat)
    assert budget == sim.energy_budget(field)
    # dE/dt from the budget against a short solver step (the advection conserves energy)
    h = 1e-4
    de = (sim.energy(sim.advance(field, h)) - sim.energy(field)) / h
    assert de == pytest.approx(budget["dE_dt"], rel=1e-2)
    # the tendency is d omega / dt: one short step against it
    step = (np.asarray(sim.advance(field, h)) - field) / h
    assert np.linalg.norm(step - eq.physical_of(eq.tendency(w_hat))) < 1e-2 * np.linalg.norm(step)
