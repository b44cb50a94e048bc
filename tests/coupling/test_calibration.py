"""Check calibration on held-out runs: the rule, the file, its use by a run, and that every broken
surrogate of the suite is still rejected under a calibration made on the n = 32 test regime."""
import json
import math

import numpy as np
import pytest

from coupling import HybridConfig, HybridSimulation
from coupling.calibration import Calibration, calibrate, calibrated_threshold
from tests.coupling.stand_ins import Broken, NearOracle

BASE = dict(n=32, reynolds=100.0, t_end=2.0, output_interval=0.25, backend="numpy", spinup=2.0, mode="superres",
            factor=2, surrogate_kind="spectral", timeout=5.0)


def config(**kw) -> HybridConfig:
    return HybridConfig(**dict(BASE, **kw))


def test_the_rule_tightens_to_a_good_model_loosens_only_as_far_as_the_truth_needs_and_never_admits_a_bad_one():
    # the truth fails the default (1.0): the ceiling follows the truth, with the margin
    row = calibrated_threshold("tendency", model=[1.01, 1.02], oracle=[1.04, 1.05])
    assert row["ceiling"] == pytest.approx(1.3125) and row["threshold"] == pytest.approx(1.3125)
    assert not row["model_fails"]
    # a model worse than the truth-validated ceiling fails, the threshold stays at the default
    row = calibrated_threshold("spectrum_tail", model=[1.8, 2.0], oracle=[0.4, 0.6])
    assert row["threshold"] == pytest.approx(1.5) and row["model_fails"]
    # far below the default: tightened down to the check's floor, no further
    row = calibrated_threshold("spectrum_resolved", model=[0.01, 0.1], oracle=[0.02])
    assert row["threshold"] == pytest.approx(0.15)
    row = calibrated_threshold("energy_budget", model=[0.03, float("inf")], oracle=[0.001])
    assert row["threshold"] == pytest.approx(1.25 * 0.03) and row["model_calls"] == 1  # non-finite left out
    with pytest.raises(ValueError, match="no finite values of tendency"):
        calibrated_threshold("tendency", model=[float("nan")], oracle=[])


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    cfg = config()
    model = NearOracle(32, cfg.solver_kwargs(), factor=2)
    cal = calibrate(cfg, reynolds=[100.0, 150.0], seeds=[1], holdout_seeds=[2], surrogate=model, log=lambda *_: None)
    path = tmp_path_factory.mktemp("cal") / "calibration.json"
    cal.save(path)
    return cal, path


def test_a_good_model_is_accepted_held_out_and_every_adversary_is_rejected(calibrated):
    cal, path = calibrated
    assert cal.regime["mode"] == "superres" and cal.regime["n"] == 32 and cal.regime["factor"] == 2
    assert "finite" not in cal.checks and {"tendency", "superres_consistency", "spectrum_tail"} <= set(cal.checks)
    for name, row in cal.checks.items():
        assert row["threshold"] <= row["ceiling"] + 1e-12 and row["oracle_calls"] > 0
    # the coarse 16^2 run drifts from the truth: superres_consistency's default (0.1) rejects the truth here
    assert cal.checks["superres_consistency"]["oracle_max"] > 0.1
    h = cal.holdout
    assert h["calls"] == 2 * 8 and h["false_rejection_rate"] <= 0.125, h
    for how in ("interpolation", "shift", "phases"):
        a = cal.adversaries[how]
        assert a["calls"] == 8 and a["rejection_rate"] == 1.0 and a["reasons"] == {"check_failed": 8}, (how, a)
    loaded = Calibration.load(path)
    assert loaded.thresholds == cal.thresholds and loaded.holdout == json.loads(json.dumps(cal.holdout))


@pytest.mark.parametrize("how", ["nan", "huge", "shift", "noise"])
def test_broken_surrogates_are_still_rejected_by_a_run_that_uses_the_calibration(calibrated, how):
    cal, path = calibrated
    cfg = config(calibration=str(path), max_rejections=100)
    res = HybridSimulation(cfg, Broken(how, factor=2)).run()
    called = [d for d in res.decisions if d["called"]]
    assert len(called) == 8 and not any(d["accepted"] for d in called)
    rules = {c["rule"] for d in called for c in d["checks"] if c["name"] != "finite"}
    assert rules == {"calibrated"}


def test_a_run_applies_the_calibrated_thresholds_and_accepts_the_good_model(calibrated):
    cal, path = calibrated
    cfg = config(calibration=str(path), reynolds=120.0, init_seed=3, max_rejections=100)
    res = HybridSimulation(cfg, NearOracle(32, cfg.solver_kwargs(), factor=2)).run()
    checks = [c for d in res.decisions for c in d["checks"] if c["name"] != "finite"]
    assert checks and all(c["rule"] == "calibrated" for c in checks)
    assert {c["threshold"] for c in checks if c["name"] == "tendency"} == {cal.thresholds["tendency"]}
    assert sum(d["accepted"] for d in res.decisions) >= 7
    # the same run under the defaults rejects the near-truth (superres_consistency's 0.1)
    plain = HybridSimulation(config(reynolds=120.0, init_seed=3, max_rejections=100),
                             NearOracle(32, cfg.solver_kwargs(), factor=2)).run()
    assert sum(d["accepted"] for d in plain.decisions) < sum(d["accepted"] for d in res.decisions)


def test_a_calibration_is_refused_outside_its_regime(calibrated):
    cal, path = calibrated
    model = NearOracle(32, config().solver_kwargs(), factor=2)
    for changes, what in (({"output_interval": 0.5, "t_end": 2.0}, "output_interval"), ({"sample_steps": 1}, "sample_steps"),
                          ({"n": 64}, "n 32 there, 64 here"), ({"drag": 0.2}, "drag 0.1 there, 0.2 here"),
                          ({"forcing_wavenumber": 2}, "forcing_wavenumber 4 there, 2 here")):
        with pytest.raises(ValueError, match=f"another regime.*{what}"):
            HybridSimulation(config(calibration=str(path), **changes), NearOracle(changes.get("n", 32),
                             config().solver_kwargs(), factor=2))
    with pytest.raises(ValueError, match="Re 100-150; this run has Re 400"):
        HybridSimulation(config(calibration=str(path), reynolds=400.0), model)
    with pytest.raises(ValueError, match="another regime.*model"):
        cal.thresholds_for(config(), "0" * 64)


def test_bad_calibration_files_and_arguments_are_named(tmp_path, calibrated):
    cal, good = calibrated
    with pytest.raises(ValueError, match="is not a file: write one with `flexcouple calibrate`"):
        config(calibration=str(tmp_path / "missing.json")).validate()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        Calibration.load(bad)
    bad.write_text(json.dumps({"thresholds": {}}))
    with pytest.raises(ValueError, match="not a calibration written by"):
        Calibration.load(bad)
    d = json.loads(good.read_text())
    d["checks"]["tendency"]["threshold"] = -1
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="threshold of tendency must be a finite number >= 0"):
        Calibration.load(bad)
    d["checks"]["tendency"]["threshold"] = 1.0
    d["checks"]["finite"] = {"threshold": 1.0}
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="'finite', which is not a calibrated check"):
        Calibration.load(bad)
    model = NearOracle(32, config().solver_kwargs(), factor=2)
    kw = dict(reynolds=[100.0], seeds=[1], holdout_seeds=[2], surrogate=model, log=lambda *_: None)
    with pytest.raises(ValueError, match="supports mode = \"superres\""):
        calibrate(config(mode="leapfrog", surrogate_kind="persistence", lead_time=0.25), **kw)
    with pytest.raises(ValueError, match="set \\[surrogate\\] kind to the model"):
        calibrate(config(surrogate_kind="oracle"), **kw)
    with pytest.raises(ValueError, match="must differ from the calibration seeds"):
        calibrate(config(), **dict(kw, holdout_seeds=[1]))
    with pytest.raises(ValueError, match="margin must be a finite number >= 1"):
        calibrate(config(), **dict(kw, margin=0.5))
    assert math.isfinite(cal.thresholds["tendency"])


@pytest.mark.slow
def test_the_command_writes_the_calibration_and_refuses_to_overwrite(tmp_path, checkpoint, capsys):
    from flexcouple_cli import main
    cfg = tmp_path / "c.toml"
    cfg.write_text(config(surrogate_kind="flex", t_end=1.0, checkpoint=str(checkpoint), sample_steps=1).to_toml())
    out = tmp_path / "cal.json"
    args = ["calibrate", "--config", str(cfg), "--reynolds", "100", "--seeds", "1", "--holdout-seeds", "2",
            "--no-adversaries", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| tendency |" in text and "held out:" in text and "[checks] calibration" in text
    cal = Calibration.load(out)
    assert cal.regime["model"] and cal.regime["sample_steps"] == 1 and cal.adversaries == {}
    before = out.read_bytes()
    assert main(args) != 0
    assert "pass --overwrite" in capsys.readouterr().err and out.read_bytes() == before


@pytest.mark.parametrize("model", [None, "flex-c16-superres256x2", "flex-c16s2-superres256x2"])
def test_the_regime_preset_its_calibration_and_the_shipped_x2_models_fit_together(monkeypatch, model):
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)  # the preset names the model and the calibration relative to the repository
    cfg = HybridConfig.from_toml(repo / "benchmarks" / "presets" / "superres256x2.toml")
    if model is None:  # the preset names the default x2 model, the demo's
        from coupling.surrogates import SUPERRES_X2_MODEL
        assert cfg.checkpoint == f"flexcouple/shipped/{SUPERRES_X2_MODEL}"
    else:  # another shipped x2 model, with its own calibration of the same regime
        folder = f"flexcouple/shipped/{model}"
        cfg = cfg.replace(checkpoint=folder, calibration=f"{folder}/calibration.json")
    sim = HybridSimulation(cfg)  # loads the model, checks the calibration's regime and model digest
    cal = Calibration.load(cfg.calibration)
    assert sim.checks.calibrated == cal.thresholds and cal.regime["model"] == sim.surrogate.digest
    assert cal.holdout["calls"] >= 40 and all(a["rejection_rate"] == 1.0 for a in cal.adversaries.values())
    with pytest.raises(ValueError, match="another regime.*sample_steps"):
        HybridSimulation(cfg.replace(sample_steps=1))
