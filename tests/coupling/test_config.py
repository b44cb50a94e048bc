"""HybridConfig's physics: the same solver.FlowSpec as a data set's, by the same rules, in TOML."""
import json
import math

import numpy as np
import pytest

from coupling import HybridConfig, HybridSimulation
from flexcouple.data.config import DataConfig
from flexcouple.data.generate import simulate_trajectory
from solver import random_field

PHYSICS = dict(pressure_gradient=0.5, inflow_velocity=2.0, penalization=5e-3, max_dt=2e-3, dealias=False, cfl=0.4)


def test_a_hybrid_channel_run_and_a_channel_data_set_use_the_same_solver_settings():
    data = DataConfig(name="channel", physics="no_slip_channel", n=32, reynolds=[200.0], backend="numpy",
                      spinup=0.0, snapshots=3, interval=0.05, **PHYSICS).validate()
    case = data.cases("train")[0]
    hybrid = HybridConfig(mode="pure", n=32, reynolds=200.0, boundary="channel", forcing=data.forcing, drag=data.drag,
                          backend="numpy", spinup=0.0, t_end=0.1, output_interval=0.05, **PHYSICS).validate()
    assert hybrid.flow() == data.flow(case)
    assert hybrid.solver_kwargs() == data.solver_kwargs(case)
    record = simulate_trajectory(data, case, seed=0)
    run = HybridSimulation(hybrid)
    settings = run.sim.settings()
    assert json.loads(str(record["settings_json"])) == settings
    assert settings["pressure_gradient"] == 0.5 and settings["penalization"] == 5e-3 and settings["max_dt"] == 2e-3
    # the same field from the same start: outputs 0.05 apart, integrated by the same solver
    omega0 = random_field(32, 0, peak_wavenumber=data.ic_peak_wavenumber, energy=data.ic_energy)
    fields = run.run(omega0).fields
    snaps = record["vorticity"]
    scale = np.abs(snaps).max()
    assert np.abs(fields - snaps).max() < 1e-5 * scale


def test_the_physics_keys_of_a_data_set_are_hybrid_toml_keys(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text('[flow]\nboundary = "cylinder"\npressure_gradient = 1\ninflow_velocity = 2\n'
                    "[solver]\nmax_dt = 0.001\ndealias = false\npenalization = 0.005\n")
    cfg = HybridConfig.from_toml(path)
    kwargs = cfg.solver_kwargs()
    assert kwargs["inflow_velocity"] == 2.0 and kwargs["max_dt"] == 1e-3 and kwargs["dealias"] is False
    assert kwargs["penalization"] == 5e-3 and kwargs["boundary"] == "cylinder"
    again = tmp_path / "again.toml"
    again.write_text(cfg.to_toml())
    assert HybridConfig.from_toml(again) == cfg
    path.write_text("[solver]\npenalisation = 0.005\n[flow]\ninflow = 2.0\n")
    with pytest.raises(ValueError, match=r"unknown key 'penalisation' in \[solver\] \(did you mean 'penalization'\?\)"
                                         r".*unknown key 'inflow' in \[flow\]"):
        HybridConfig.from_toml(path)


def test_runs_written_before_the_new_keys_keep_their_identity():
    assert HybridConfig().config_hash() == "dd42e9eddc45fb39"  # the default's hash before the flow keys came
    assert HybridConfig(max_dt=0.01).config_hash() != HybridConfig().config_hash()


@pytest.mark.parametrize("change, match", [
    (dict(spinup=math.inf), "spinup must be a finite number"),
    (dict(forcing_wavenumber=0), "forcing_wavenumber must be an integer >= 1"),
    (dict(factor=4, forcing_wavenumber=6), "not resolved on the coarse grid n / factor = 16"),
    (dict(mode="leapfrog", surrogate_kind="oracle", lead_time=0.25, n=128, forcing_wavenumber=12),
     "not resolved on the coarse_forecast check's grid n = 32"),
    (dict(boundary="channel", penalization=math.inf), "penalization must be a finite number > 0"),
    (dict(dealias="no"), "dealias must be true or false"),
])
def test_the_hybrid_config_refuses_what_generate_refuses(change, match):
    settings = {"n": 64, "backend": "numpy"} | change
    with pytest.raises(ValueError, match=match):
        HybridConfig(**settings).validate()
    if "coarse" in match:  # the fine grid resolves it: the run is fine without its coarse solver
        mode = "pure" if settings.get("mode", "superres") == "superres" else "leapfrog"
        HybridConfig(**dict(settings, mode=mode, disabled_checks=["coarse_forecast"])).validate()
