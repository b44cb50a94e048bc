"""The hybrid loop: fallbacks for every kind of broken surrogate, the oracle, suspension, resume,
harvest, and refusals before any work."""
import json

import numpy as np
import pytest

from coupling import (HybridConfig, HybridSimulation, InterpolationSurrogate, PersistenceSurrogate,
                      SolverSurrogate, SurrogateMisfit)
from tests.coupling.stand_ins import Broken, NoisyEnsemble

BASE = dict(n=32, reynolds=100.0, t_end=2.0, output_interval=0.25, backend="numpy", spinup=2.0, warmup=4,
            timeout=0.5, cooldown=2, max_rejections=3)


def config(**kw) -> HybridConfig:
    return HybridConfig(**dict(BASE, **kw))


@pytest.fixture(scope="module")
def pure():
    return HybridSimulation(config(mode="pure")).run()


@pytest.mark.parametrize("how", ["nan", "huge", "shape", "dtype", "none", "raise", "sleep", "shift", "noise"])
def test_broken_forecasts_all_fall_back_and_leapfrog_equals_the_pure_solver(how, pure):
    cfg = config(mode="leapfrog", jumps=2, max_rejections=100)
    sur = Broken(how, n=32, solver_kwargs=cfg.solver_kwargs(), sleep=1.5)
    res = HybridSimulation(cfg, sur).run()
    called = [d for d in res.decisions if d["called"]]
    assert called, "the schedule never called the surrogate"
    assert all(not d["accepted"] and d["source"] == "solver" for d in called)
    assert set(res.sources) == {"solver"}
    assert np.abs(res.fields[-1] - pure.fields[-1]).max() <= 1e-12 * np.abs(pure.fields[-1]).max()
    reasons = {d["reason"] for d in called}
    expected = {"nan": {"check_failed"}, "huge": {"check_failed"}, "shift": {"check_failed"},
                "noise": {"check_failed"}, "shape": {"wrong_output"}, "dtype": {"wrong_output"},
                "none": {"wrong_output"}, "raise": {"exception"}, "sleep": {"timeout"}}[how]
    assert reasons == expected
    if how in ("shift", "noise"):  # plausible fields: caught by the physics, not by shape or finiteness
        failed = {name for d in called for name in d["failed_checks"]}
        assert failed & {"coarse_forecast", "tendency", "energy_budget", "enstrophy_budget"}


@pytest.mark.parametrize("how", ["nan", "raise", "shape", "shift"])
def test_broken_superres_outputs_are_the_interpolated_coarse_state(how):
    from flexcouple.data.coarsen import upsample
    cfg = config(mode="superres", factor=2, max_rejections=100)
    res = HybridSimulation(cfg, Broken(how, factor=2)).run()
    assert res.sources[0] == "solver" and set(res.sources[1:]) == {"interpolation"}
    coarse_run = HybridSimulation(cfg.replace(mode="pure", n=16, spinup=0.0)).run(
        omega0=_restrict(res.fields[0], 2))
    for i in (1, len(res.times) - 1):
        assert np.allclose(res.fields[i], upsample(coarse_run.fields[i], 2, "spectral"), atol=1e-10)


def _restrict(w, factor):
    from flexcouple.data.coarsen import coarsen
    return coarsen(w, factor, "spectral")


def test_oracle_leapfrog_accepts_every_call_and_equals_the_pure_solver(pure):
    cfg = config(mode="leapfrog", jumps=2)
    res = HybridSimulation(cfg, SolverSurrogate(32, cfg.solver_kwargs(), lead_time=0.25)).run()
    called = [d for d in res.decisions if d["called"]]
    assert called and all(d["accepted"] for d in called)
    assert "surrogate" in res.sources
    assert np.array_equal(res.fields, pure.fields)


def test_oracle_superres_equals_the_pure_solver(pure):
    cfg = config(mode="superres", factor=2, disabled_checks=["superres_consistency"])
    sur = SolverSurrogate(32, cfg.solver_kwargs(), factor=2)
    res = HybridSimulation(cfg, sur).run()
    assert all(d["accepted"] for d in res.decisions)
    assert np.abs(res.fields - pure.fields).max() <= 1e-12 * np.abs(pure.fields).max()


def test_suspension_after_repeated_rejections_then_retry():
    cfg = config(mode="leapfrog", stretch=1, jumps=3, max_rejections=2, cooldown=3, t_end=4.0)
    res = HybridSimulation(cfg, Broken("raise", n=32)).run()
    reasons = [d["reason"] for d in res.decisions]
    assert "suspended" in reasons
    first = reasons.index("suspended")
    assert reasons[first - 2:first] == ["exception", "exception"]
    assert "exception" in reasons[first + 1:], "the surrogate is tried again after the cool-down"
    assert res.summary["suspended_ticks"] >= 1


def test_persistence_is_rejected_by_the_physics_checks():
    cfg = config(mode="leapfrog", jumps=1)
    res = HybridSimulation(cfg, PersistenceSurrogate(0.25)).run()
    called = [d for d in res.decisions if d["called"]]
    assert called and not any(d["accepted"] for d in called)


def test_ensemble_mean_and_std_are_saved():
    cfg = config(mode="superres", factor=2, ensemble=4, disabled_checks=["spectrum_tail"])
    res = HybridSimulation(cfg, NoisyEnsemble(2)).run()
    assert res.std is not None and res.std.shape == res.fields.shape
    accepted = [i for i, s in enumerate(res.sources) if s == "surrogate"]
    assert accepted and all(res.std[i].mean() > 0 for i in accepted)
    assert np.all(res.std[0] == 0)  # the initial (solver) field has no spread


def test_resume_after_an_interruption_equals_the_uninterrupted_run(tmp_path):
    cfg = config(mode="leapfrog", jumps=2, t_end=3.0)

    class KilledAt(HybridSimulation):  # the process dies in the middle of tick 9 (after 2 outputs' checkpoints)
        def _leapfrog_tick(self, j, w_local):
            if j == 9:
                raise SystemExit("killed")
            return super()._leapfrog_tick(j, w_local)

    full = HybridSimulation(cfg, SolverSurrogate(32, cfg.solver_kwargs(), lead_time=0.25)).run()
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        KilledAt(cfg, SolverSurrogate(32, cfg.solver_kwargs(), lead_time=0.25), out=out).run()
    partial = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    assert 0 < len(partial) < len(full.decisions)
    resumed = HybridSimulation(cfg, SolverSurrogate(32, cfg.solver_kwargs(), lead_time=0.25), out=out).run()
    assert np.array_equal(resumed.fields, full.fields)
    assert resumed.sources == full.sources
    assert [d["tick"] for d in resumed.decisions] == [d["tick"] for d in full.decisions]


def test_a_run_directory_of_another_config_is_refused(tmp_path):
    cfg = config(mode="pure", t_end=0.5)
    HybridSimulation(cfg, out=tmp_path).run()
    with pytest.raises(ValueError, match="another config"):
        HybridSimulation(cfg.replace(reynolds=200.0), out=tmp_path).run()


def test_harvest_writes_a_forecast_data_set_of_the_rejected_calls(tmp_path):
    from flexcouple.data.datasets import ForecastDataset
    cfg = config(mode="leapfrog", jumps=2, harvest_enabled=True, max_rejections=100)
    res = HybridSimulation(cfg, Broken("shift", n=32, solver_kwargs=config().solver_kwargs()), out=tmp_path).run()
    rejected = [d for d in res.decisions if d["called"]]
    ds = ForecastDataset(tmp_path / "harvest", "train", past=1, lead=1)
    assert len(ds) == len(rejected)
    item = ds[0]
    assert item["condition"].shape == (1, 32, 32) and item["target"].shape == (1, 32, 32)
    # the target is the solver's answer: the pure run's field at that time
    pure = HybridSimulation(config(mode="pure", t_end=2.0)).run()
    t = rejected[0]["time"]
    i = int(round(t / 0.25))
    target = ds.denormalize(item["target"][0].double().numpy())
    assert np.allclose(target, pure.fields[i], atol=1e-4 * np.abs(pure.fields[i]).max())


def test_harvest_writes_a_superres_data_set_of_the_coarse_states_the_model_was_called_on(tmp_path):
    from coupling.harvest import STARTS
    from flexcouple.data.coarsen import upsample
    from flexcouple.data.datasets import SuperResDataset
    cfg = config(mode="superres", factor=2, harvest_enabled=True, max_rejections=100)
    res = HybridSimulation(cfg, Broken("shift", factor=2), out=tmp_path).run()
    n_rejected = sum(d["called"] for d in res.decisions)
    ds = SuperResDataset(tmp_path / "harvest", "train", factor=2, upsample="spectral", coarse_source="solver")
    assert len(ds) == n_rejected > 0
    assert ds[0]["target"].shape == (1, 32, 32)
    # the condition is the run's coarse state at that output: the coarse solver's own run
    coarse_run = HybridSimulation(cfg.replace(mode="pure", n=16, spinup=0.0, harvest_enabled=False)).run(
        omega0=_restrict(res.fields[0], 2))
    condition = ds.denormalize(ds[0]["condition"][0].double().numpy())
    expected = upsample(coarse_run.fields[1], 2, "spectral")
    assert np.abs(condition - expected).max() <= 1e-5 * np.abs(expected).max()
    import h5py
    with h5py.File(next((tmp_path / "harvest").rglob("*.hdf5")), "r") as f:  # nothing accepted: every start
        assert {int(c) for c in np.asarray(f["provenance/start_code"]).ravel()} == {STARTS.index("interpolation")}


def test_an_audit_answer_starts_from_the_previous_accepted_output(pure, tmp_path):
    from coupling.harvest import STARTS
    cfg = config(mode="superres", factor=2, disabled_checks=["superres_consistency"], harvest_enabled=True,
                 harvest_audit_every=1)
    HybridSimulation(cfg, SolverSurrogate(32, cfg.solver_kwargs(), factor=2), out=tmp_path).run()
    import h5py
    answers, starts, times = [], [], []
    for part in sorted((tmp_path / "harvest").rglob("*.hdf5")):  # one part file per run checkpoint
        with h5py.File(part, "r") as f:
            answers += list(np.asarray(f["t0_fields/vorticity"][:, 0], dtype=np.float64))
            starts += list(np.asarray(f["provenance/start_code"]).ravel())
            times += list(np.asarray(f["provenance/time"]).ravel())
    assert len(answers) >= 4
    # the oracle's outputs are the fine solver's, so an answer from the previous output is the pure run's
    # field (to the file's float32); only the first call has no accepted output before it
    assert starts[0] == STARTS.index("interpolation") and set(starts[1:]) == {STARTS.index("output")}
    for answer, t in zip(answers[1:], times[1:]):
        truth = pure.fields[int(round(t / 0.25))]
        assert np.abs(answer - truth).max() <= 1e-5 * np.abs(truth).max()
    first = pure.fields[int(round(times[0] / 0.25))]
    assert np.abs(answers[0] - first).max() > 1e-3 * np.abs(first).max()  # the interpolated start lost scales


def test_an_audit_harvests_every_nth_accepted_call_and_leaves_the_run_unchanged(pure, tmp_path):
    from coupling.harvest import REASONS
    from flexcouple.data.datasets import SuperResDataset
    cfg = config(mode="superres", factor=2, disabled_checks=["superres_consistency"], harvest_enabled=True,
                 harvest_audit_every=2)
    res = HybridSimulation(cfg, SolverSurrogate(32, cfg.solver_kwargs(), factor=2), out=tmp_path).run()
    accepted = sum(d["accepted"] for d in res.decisions)
    assert accepted == sum(d["called"] for d in res.decisions) >= 4
    ds = SuperResDataset(tmp_path / "harvest", "train", factor=2, upsample="spectral")
    assert len(ds) == accepted // 2
    import h5py
    with h5py.File(next((tmp_path / "harvest").rglob("*.hdf5")), "r") as f:
        assert {int(c) for c in np.asarray(f["provenance/reason_code"]).ravel()} == {REASONS.index("audit")}
    # the audit only adds data: the trajectory is the oracle's, the pure solver's
    assert np.abs(res.fields - pure.fields).max() <= 1e-12 * np.abs(pure.fields).max()
    assert config(harvest_audit_every=2).config_hash() == config().config_hash()
    for bad, match in ((dict(harvest_audit_every=-1), "audit_every must be an integer >= 0"),
                       (dict(mode="superres", harvest_audit_every=2), "needs enabled = true"),
                       (dict(mode="leapfrog", harvest_enabled=True, harvest_audit_every=2), "mode = 'superres'")):
        with pytest.raises(ValueError, match=match):
            config(**bad).validate()


@pytest.mark.parametrize("bad, match", [
    (dict(mode="sideways"), "mode must be one of"),
    (dict(n=30, mode="superres", factor=4), "factor 4 must divide"),
    (dict(t_end=1.0, output_interval=0.3), "multiple of output_interval"),
    (dict(reynolds=-5.0), "reynolds must be a positive"),
    (dict(thresholds={"energy_budgt": 0.1}), "did you mean 'energy_budget'"),
    (dict(mode="leapfrog", surrogate_kind="spectral"), "super-resolves"),
])
def test_bad_configs_are_refused_with_every_problem_named(bad, match):
    with pytest.raises(ValueError, match=match):
        config(**bad).validate()


def test_misfit_surrogates_are_refused_before_any_work():
    with pytest.raises(ValueError, match="factor"):
        HybridSimulation(config(mode="superres", factor=2), InterpolationSurrogate(4))
    with pytest.raises(ValueError, match="lead_time"):
        HybridSimulation(config(mode="leapfrog"), InterpolationSurrogate(2))
    with pytest.raises(ValueError, match="history_length"):
        sur = PersistenceSurrogate(0.25)
        sur.history_length = 3
        HybridSimulation(config(mode="leapfrog", stretch=1), sur)
    with pytest.raises(ValueError, match="multiple of"):
        HybridSimulation(config(mode="leapfrog", output_interval=0.25), PersistenceSurrogate(0.5))


def test_a_run_of_finished_parts_equals_the_run_of_its_config(pure):
    """HybridParts.from_config builds every part once; HybridSimulation(parts) only runs them, and
    HybridSimulation(config, ...) is that composition."""
    from coupling.parts import HybridParts
    cfg = config(mode="superres", factor=2)
    parts = HybridParts.from_config(cfg, InterpolationSurrogate(2))
    assert parts.solver.n == 16 and parts.schedule.dt_tick == 0.25 and parts.diagnostics is not None
    assert parts.harvest is None and not parts.harvesting and parts.rundir is None
    by_parts = HybridSimulation(parts).run()
    by_config = HybridSimulation(cfg, InterpolationSurrogate(2)).run()
    by_factory = HybridSimulation.from_config(cfg, InterpolationSurrogate(2)).run()
    for res in (by_config, by_factory):
        assert np.array_equal(res.fields, by_parts.fields) and res.sources == by_parts.sources
    # finished parts take no second surrogate, communicator, folder or harvest
    with pytest.raises(TypeError, match="from_config"):
        HybridSimulation(parts, InterpolationSurrogate(2))
    # a pure run has no surrogate, diagnostics or calibration to build
    pure_parts = HybridParts.from_config(config(mode="pure"))
    assert pure_parts.surrogate is None and pure_parts.diagnostics is None and pure_parts.solver.n == 32
    assert np.array_equal(HybridSimulation(pure_parts).run().fields, pure.fields)
