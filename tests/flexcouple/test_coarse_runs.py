"""Coarse-solver states: each fine snapshot paired with the coarse run a re-anchored hybrid would hold."""
import numpy as np
import pytest

from flexcouple.data.coarse_runs import coarse_solver_states, start_index
from flexcouple.data.coarsen import coarsen
from solver import NavierStokes2D, random_field

KW = dict(forcing="kolmogorov", forcing_wavenumber=4, drag=0.1, backend="numpy")


def test_start_indices_restart_every_horizon():
    assert [start_index(i, 3) for i in range(8)] == [0, 0, 0, 0, 3, 3, 3, 6]


def test_states_are_the_coarse_solver_run_from_the_restricted_fine_snapshot():
    fine = NavierStokes2D(64, 200.0, **KW)
    snaps = np.asarray(fine.trajectory(random_field(64, seed=3), [0.0, 0.25, 0.5, 0.75, 1.0]))
    states, horizons = coarse_solver_states(snaps, 0.25, 2, 2, dict(KW, reynolds=200.0))
    assert states.shape == (5, 32, 32) and horizons.tolist() == [0, 1, 2, 1, 2]
    coarse = NavierStokes2D(32, 200.0, **KW)
    np.testing.assert_allclose(states[0], coarsen(snaps[0], 2))
    two = coarse.advance(coarse.advance(coarsen(snaps[0], 2), 0.25), 0.25)
    np.testing.assert_allclose(states[2], two, rtol=0, atol=1e-12)
    # snapshot 3 comes from a run restarted at snapshot 2: it is not the truncation of the fine field
    np.testing.assert_allclose(states[3], coarse.advance(coarsen(snaps[2], 2), 0.25), rtol=0, atol=1e-12)
    assert np.abs(states[3] - coarsen(snaps[3], 2)).max() > 1e-6


@pytest.mark.parametrize("factor, horizon, match", [(3, 1, "divide"), (1, 1, ">= 2"), (2, 0, "horizon")])
def test_bad_settings_are_refused(factor, horizon, match):
    with pytest.raises(ValueError, match=match):
        coarse_solver_states(np.zeros((2, 64, 64)), 0.25, factor, horizon, dict(KW, reynolds=200.0))
