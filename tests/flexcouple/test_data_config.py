"""Data-set configs: presets, TOML round trips, seeds, and clear errors for impossible settings."""
import math
import tomllib

import pytest

from solver import NavierStokes2D

from flexcouple.data.config import (
    PHYSICS, SPLITS, DataConfig, OODSet, from_dict, load_config, load_preset, preset_names, save_config, to_toml,
)


def test_shipped_presets_validate_and_round_trip_through_toml():
    names = preset_names()
    assert {"tiny", "default", "large"} <= set(names)
    assert {load_preset(p).physics for p in names} == set(PHYSICS)  # a preset per physics
    for name in names:
        cfg = load_preset(name).validate()
        again = from_dict(tomllib.loads(to_toml(cfg)))
        assert again == cfg, name
        assert again.config_hash() == cfg.config_hash()


def test_default_preset_has_every_ood_kind():
    cfg = load_preset("default")
    lo, hi = min(cfg.reynolds), max(cfg.reynolds)
    ood_re = [r for o in cfg.ood if o.reynolds and o.boundaries is None and o.forcing_wavenumber is None
              for r in o.reynolds]
    assert any(r < lo for r in ood_re) and any(r > hi for r in ood_re)
    assert any(o.boundaries and not set(o.boundaries) & set(cfg.boundaries) for o in cfg.ood)
    assert any(o.forcing_wavenumber not in (None, cfg.forcing_wavenumber) for o in cfg.ood)
    assert cfg.n >= 256 and load_preset("large").n > cfg.n > load_preset("tiny").n


def test_physics_preset_fills_solver_settings():
    cfg = DataConfig(physics="free_slip_channel")
    assert cfg.boundaries == ["free-slip"] and cfg.forcing == "kolmogorov" and cfg.drag == 0.1
    cfg = DataConfig(physics="decaying")
    assert cfg.forcing == "none" and cfg.drag == 0.0
    assert DataConfig(physics="obstacle").boundaries == ["cylinder"]


def test_splits_are_separated_by_seed_and_ood_reuses_test_seeds():
    cfg = load_preset("default")
    seeds = {s: {cfg.ic_seed(s, i) for i in range(cfg.trajectories(s))} for s in SPLITS}
    assert not seeds["train"] & seeds["valid"] and not seeds["train"] & seeds["test"]
    assert not seeds["valid"] & seeds["test"]
    for o in cfg.ood:  # an OOD trajectory is its test twin with one parameter changed
        assert all(cfg.ic_seed(o.name, i) == cfg.ic_seed("test", i) for i in range(cfg.trajectories(o.name)))
    # a different base seed gives a disjoint data set
    other = cfg.replace(seed=1)
    assert not {other.ic_seed("train", i) for i in range(cfg.train)} & seeds["train"]


def test_cases_and_file_stems():
    cfg = DataConfig(reynolds=[100.0, 200.0], ood=[OODSet("re_high", reynolds=[400.0]),
                                                    OODSet("walls", boundaries=["free-slip"])])
    assert [c.reynolds for c in cfg.cases("train")] == [100.0, 200.0]
    assert [c.reynolds for c in cfg.cases("re_high")] == [400.0]
    assert {c.boundary for c in cfg.cases("walls")} == {"free-slip"}
    assert cfg.cases("train")[0].stem("kolmogorov") == "kolmogorov_periodic_Re100_kf4"
    with pytest.raises(ValueError, match="unknown split"):
        cfg.cases("nope")


def test_hash_tracks_data_not_descriptions():
    cfg = DataConfig()
    assert cfg.replace(description="x").config_hash() == cfg.config_hash()
    assert cfg.replace(name="other").config_hash() != cfg.config_hash()  # files carry the name
    assert cfg.replace(reynolds=[100.0, 300.0]).config_hash() != cfg.config_hash()
    assert cfg.replace(dtype="float64").config_hash() != cfg.config_hash()


@pytest.mark.parametrize("change, match", [
    (dict(n=63), "even integer"),
    (dict(n=48, coarsen_factors=[5]), "does not divide"),
    (dict(n=32, coarsen_factors=[16]), ">= 4 points"),
    (dict(forcing_wavenumber=30, n=64), "not resolved"),
    (dict(reynolds=[]), "non-empty"),
    (dict(reynolds=[-5.0]), "flow.reynolds must be a positive number"),
    (dict(boundaries=["slippery"]), "unknown"),
    (dict(train=0), "trajectories.train"),
    (dict(snapshots=0), "time.snapshots"),
    (dict(interval=0.0), "time.interval"),
    (dict(backend="fortran"), "solver.backend"),
    (dict(dtype="float16"), "storage.dtype"),
    (dict(coarsen_method="average"), "coarsen_method"),
    (dict(physics="magnetohydro"), "physics"),
    (dict(name="has space"), "name"),
    (dict(ood=[OODSet("re_high")]), "changes nothing"),
    (dict(ood=[OODSet("train", reynolds=[1.0])]), "already used"),
    (dict(ood=[OODSet("Bad Name", reynolds=[1.0])]), "directory"),
])
def test_impossible_configs_raise_clear_errors(change, match):
    with pytest.raises(ValueError, match=match):
        DataConfig().replace(**change).validate()


def test_validation_lists_every_problem_at_once():
    with pytest.raises(ValueError) as info:
        DataConfig(n=63, train=0, interval=-1.0).validate()
    msg = str(info.value)
    assert "grid n" in msg and "trajectories.train" in msg and "time.interval" in msg


def test_each_case_is_one_solver_flow_spec_checked_by_its_rules():
    cfg = DataConfig(physics="no_slip_channel", n=32, reynolds=[100.0], pressure_gradient=0.5, penalization=5e-3,
                     max_dt=1e-3, dealias=False).validate()
    case = cfg.cases("train")[0]
    sim = NavierStokes2D(cfg.n, **cfg.solver_kwargs(case))
    assert sim.flow == cfg.flow(case)
    assert sim.pressure_gradient == 0.5 and sim.max_dt == 1e-3 and sim.penalization == 5e-3
    with pytest.raises(ValueError) as info:
        cfg.replace(penalization=math.inf, dealias="yes", forcing_wavenumber=0,
                    ood=[OODSet("k16", forcing_wavenumber=16)]).validate()
    msg = str(info.value)
    assert "solver.penalization must be a finite number > 0" in msg and "solver.dealias must be true or false" in msg
    assert "flow.forcing_wavenumber must be an integer >= 1" in msg
    cfg.replace(ood=[OODSet("k15", forcing_wavenumber=15)]).validate()  # |k| < n/2 without dealiasing
    with pytest.raises(ValueError, match="ood set 'k16': forcing_wavenumber = 16 is not resolved on n = 32"):
        cfg.replace(ood=[OODSet("k16", forcing_wavenumber=16)]).validate()


def test_config_file_errors_name_the_file_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        load_config(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("[flow]\nreynold = [100.0]\n")
    with pytest.raises(ValueError, match=r"typo.toml: unknown key 'reynold' in \[flow\] \(did you mean 'reynolds'\?\)"):
        load_config(typo)
    section = tmp_path / "section.toml"
    section.write_text("[flwo]\nreynolds = [100.0]\n")
    with pytest.raises(ValueError, match=r"unknown section \[flwo\]"):
        load_config(section)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        load_preset("huge")


def test_save_and_load_config_file(tmp_path):
    cfg = load_preset("tiny").replace(n=32, reynolds=[150.0], max_dt=0.01)
    path = tmp_path / "cfg.toml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    # integers typed for Reynolds numbers are read as floats (same hash as the float spelling)
    path.write_text(path.read_text().replace("reynolds = [150.0]", "reynolds = [150]"))
    assert load_config(path).config_hash() == cfg.config_hash()
