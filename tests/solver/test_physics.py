"""FlowSpec: the one flow specification, its rules at the solver's door, and endless runs refused."""
import math

import numpy as np
import pytest

from solver import FlowSpec, NavierStokes2D, random_field


@pytest.mark.parametrize("kwargs, match", [
    (dict(forcing="kolmogorov", forcing_wavenumber=0), "forcing_wavenumber must be an integer >= 1"),
    (dict(forcing="kolmogorov", forcing_wavenumber=11), r"forcing_wavenumber = 11 is not resolved on n = 32 .*n/3"),
    (dict(forcing="kolmogorov", forcing_wavenumber=16, dealias=False), r"not resolved .*n/2"),
    (dict(boundary="channel", penalization=math.inf), "penalization must be a finite number > 0"),
    (dict(boundary="cylinder", inflow_velocity=math.nan), "inflow_velocity must be a finite number"),
    (dict(cfl=3.0), r"cfl must be in \(0, 2\]"),
    (dict(max_dt=0.0), "max_dt must be a finite number > 0"),
    (dict(dealias="yes"), "dealias must be true or false"),
])
def test_the_solver_refuses_what_generate_refuses(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NavierStokes2D(32, 100.0, **kwargs)


def test_the_forcing_wavenumber_is_checked_against_the_grid_it_runs_on():
    NavierStokes2D(32, 100.0, forcing="kolmogorov", forcing_wavenumber=10)        # |k| < 32/3
    NavierStokes2D(32, 100.0, forcing="kolmogorov", forcing_wavenumber=15, dealias=False)
    NavierStokes2D(8, 100.0, forcing_wavenumber=4)  # unforced: k_f forces nothing, so any grid will do


def test_every_problem_is_named_at_once():
    with pytest.raises(ValueError) as info:
        NavierStokes2D(32, -1.0, forcing="kolmogorov", forcing_wavenumber=0, drag=-1.0, penalization=0.0)
    msg = str(info.value)
    for name in ("reynolds", "forcing_wavenumber", "drag", "penalization"):
        assert name in msg, msg


def test_problems_use_the_callers_names_and_solver_kwargs_round_trip():
    spec = FlowSpec(forcing="kolmogorov", forcing_wavenumber=30)
    assert spec.problems(64, labels={"forcing_wavenumber": "flow.forcing_wavenumber"}, grid="the coarse grid") == [
        "flow.forcing_wavenumber = 30 is not resolved on the coarse grid (the dealiased grid keeps |k| < n/3 = 21.3; "
        "it would alias onto another mode): use a larger grid or a smaller wavenumber"]
    spec = FlowSpec(reynolds=200.0, boundary="channel", pressure_gradient=0.5, penalization=5e-3, max_dt=1e-3)
    sim = NavierStokes2D(16, **spec.solver_kwargs())
    assert sim.flow == spec
    assert sim.settings()["pressure_gradient"] == 0.5 and sim.max_dt == 1e-3 and sim.penalization == 5e-3
    assert FlowSpec(forcing=None) == FlowSpec(forcing="none") and FlowSpec().solver_kwargs()["forcing"] is None


def test_an_endless_run_is_refused_not_returned_at_once():
    sim = NavierStokes2D(16, 100.0)
    w = random_field(16, seed=0)
    for t_end in (math.inf, math.nan):
        with pytest.raises(ValueError, match="must be finite"):
            sim.advance(w, t_end)
    with pytest.raises(ValueError, match="must be finite"):
        sim.advance(w, 1.0, t_start=-math.inf)
    with pytest.raises(ValueError, match="must be finite"):
        sim.trajectory(w, [0.0, math.inf])
    assert not np.array_equal(sim.advance(w, 0.1), w)


@pytest.mark.parametrize("flags, match", [
    (["--forcing-wavenumber", "0"], "forcing_wavenumber must be an integer >= 1"),
    (["--forcing-wavenumber", "11"], "forcing_wavenumber = 11 is not resolved on n = 32"),
    (["--boundary", "channel", "--penalization", "inf"], "penalization must be a finite number > 0"),
])
def test_simulate_refuses_them_in_one_line(flags, match, capsys):
    from flexcouple_cli import main
    assert main(["simulate", "--n", "32", "--t-end", "0.1", "--backend", "numpy"] + flags) == 1
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
