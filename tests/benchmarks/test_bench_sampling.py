"""The sampling benchmark: its verdicts, its noise temperature, its refusal of unfit data, and its
quick mode (smoke test)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from coupling.surrogates import default_checkpoint

SPEC = importlib.util.spec_from_file_location("bench_sampling",
                                              Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sampling.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)

HAVE_MODEL = (default_checkpoint() / "model.safetensors").exists()
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason=f"the shipped model is missing at {default_checkpoint()}")


def _steps(rfne_by_steps: dict, task="superres", split="test"):
    return {s: {task: {"by_split": {split: {"rfne": r}}}} for s, r in rfne_by_steps.items()}


def _calib(ratios_rfnes: dict, task="forecast", split="test"):
    return {task: {tau: {"by_split": {split: {"spread_skill_ratio": ratio, "rfne": rfne}}}
                   for tau, (ratio, rfne) in ratios_rfnes.items()}}


def test_two_steps_suffice_within_the_tolerance_of_the_best():
    v = bench.two_steps_verdict(_steps({1: 0.10, 2: 0.0620, 4: 0.0600, 32: 0.0605}))
    entry = v["by_task"]["superres"]["test"]
    assert v["suffice"] and entry["suffice"] and entry["best_steps"] == 4
    assert entry["excess"] == pytest.approx(0.0620 / 0.0600 - 1)


def test_two_steps_do_not_suffice_when_more_steps_are_clearly_better():
    v = bench.two_steps_verdict(_steps({1: 0.2, 2: 0.10, 8: 0.08}))  # 2 steps 25% worse than 8
    assert not v["suffice"] and v["by_task"]["superres"]["test"]["best_steps"] == 8
    # string keys (as read back from the JSON) work alike; one failing task fails the whole verdict
    both = {str(s): {**a, **b} for (s, a), b in zip(_steps({1: 0.1, 2: 0.05}).items(),
                                                    _steps({1: 0.7, 2: 0.9}, task="forecast").values())}
    v = bench.two_steps_verdict(both)
    assert v["by_task"]["superres"]["test"]["suffice"] and not v["by_task"]["forecast"]["test"]["suffice"]
    assert not v["suffice"]


def test_over_confident_ensemble_fixed_by_a_temperature_that_keeps_the_rfne():
    c = bench.calibration_verdict(_calib({1.0: (0.45, 0.70), 1.5: (0.70, 0.71), 2.0: (0.90, 0.72),
                                          3.0: (1.10, 0.80)}))
    f = c["by_task"]["forecast"]
    assert not c["calibrated"] and f["by_split"]["test"]["state"] == "over-confident"
    assert f["by_split"]["test"]["fixing_taus"] == [2.0]  # tau 3 is in the band but costs 14% RFNE
    assert f["recommended_tau"] == 2.0 and "tau = 2" in f["advice"]


def test_over_confident_ensemble_no_temperature_fixes_without_ruining_accuracy():
    c = bench.calibration_verdict(_calib({1.0: (0.40, 0.07), 2.0: (0.60, 0.10), 3.0: (0.95, 0.20)}))
    f = c["by_task"]["forecast"]
    assert f["recommended_tau"] is None and f["by_split"]["test"]["fixing_taus"] == []
    assert "more training" in f["advice"]


def test_calibrated_ensemble_needs_no_fix_and_under_confidence_is_named():
    c = bench.calibration_verdict(_calib({1.0: (1.0, 0.07), 2.0: (1.5, 0.09)}))
    assert c["calibrated"] and c["by_task"]["forecast"]["recommended_tau"] is None
    c = bench.calibration_verdict(_calib({1.0: (1.6, 0.07)}))
    assert c["by_task"]["forecast"]["by_split"]["test"]["state"] == "under-confident"
    with pytest.raises(ValueError, match="tau = 1"):
        bench.calibration_verdict(_calib({2.0: (1.0, 0.07)}))


def test_a_recommended_tau_must_work_on_every_split():
    calib = {"superres": {1.0: {"by_split": {"test": {"spread_skill_ratio": 0.5, "rfne": 0.07},
                                             "re_1000": {"spread_skill_ratio": 0.4, "rfne": 0.09}}},
                          2.0: {"by_split": {"test": {"spread_skill_ratio": 0.9, "rfne": 0.07},
                                             "re_1000": {"spread_skill_ratio": 0.7, "rfne": 0.09}}},
                          3.0: {"by_split": {"test": {"spread_skill_ratio": 1.2, "rfne": 0.072},
                                             "re_1000": {"spread_skill_ratio": 0.95, "rfne": 0.092}}}}}
    assert bench.calibration_verdict(calib)["by_task"]["superres"]["recommended_tau"] == 3.0


def test_check_data_fits_names_what_differs():
    model = {"data": {"dataset": {"config": {"n": 256, "physics": "kolmogorov", "forcing_wavenumber": 4,
                                             "drag": 0.1, "name": "kolmogorov-hybrid256"}}}}
    bench.check_data_fits(model, {"n": 256, "config": {"physics": "kolmogorov", "forcing_wavenumber": 4,
                                                       "drag": 0.1}}, Path("d"))
    with pytest.raises(ValueError, match=r"n 64 \(the model's training data: 256\).*forcing_wavenumber 2"):
        bench.check_data_fits(model, {"n": 64, "config": {"forcing_wavenumber": 2}}, Path("d"))


@needs_model
def test_noise_temperature_scales_the_initial_noise_and_tau_1_changes_nothing():
    from flexcouple.checkpoint import load_checkpoint
    model, _ = load_checkpoint(default_checkpoint())
    model.eval()
    cond, re_ = torch.randn(1, 1, 32, 32), torch.tensor([700.0])

    def draw(**kw):
        return model.sample(cond, re_, steps=1, ensemble=2, generator=torch.Generator().manual_seed(3), task="superres", **kw)

    plain = draw()
    with bench.noise_temperature(1.0):
        assert torch.equal(draw(), plain)
    noise = torch.randn((2, 1, 32, 32), generator=torch.Generator().manual_seed(3))
    with bench.noise_temperature(2.0):
        hot = draw()
    assert torch.allclose(hot, draw(noise=2.0 * noise), atol=1e-6)
    assert torch.equal(draw(), plain)  # restored on exit


@needs_model
@pytest.mark.filterwarnings("ignore:under-resolved")  # a 32^2 set made only to be refused
def test_data_the_model_does_not_fit_is_refused_clearly(tmp_path):
    from flexcouple.data.config import load_preset
    from flexcouple.data.generate import generate
    with pytest.raises(FileNotFoundError, match="not a flexcouple data set"):
        bench.main(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w")])
    cfg = load_preset("tiny").replace(n=32, snapshots=2, spinup=0.1, train=1, valid=0, test=1, reynolds=[30.0], ood=[])
    generate(cfg, tmp_path / "small", progress=False, log=lambda m: None)
    with pytest.raises(ValueError, match=r"does not fit --data .*n 32 \(the model's training data: 256\)"):
        bench.main(["--data", str(tmp_path / "small"), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w")])
    assert not (tmp_path / "out").exists()


def test_bad_options_are_refused():
    with pytest.raises(SystemExit):
        bench.parse(["--steps", "1", "4"])  # the claim under test needs 2
    with pytest.raises(SystemExit):
        bench.parse(["--taus", "2", "3"])


@pytest.mark.slow
@needs_model
def test_quick_mode_writes_the_json_and_the_figure(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path), "--work", str(tmp_path / "work")]) == 0
    result = json.loads((tmp_path / "sampling.json").read_text())
    for key in ("command", "date", "machine", "versions", "protocol", "note"):
        assert key in result
    assert result["quick"] and not result["meaningful"] and "NOT meaningful" in result["note"]
    assert {"cores", "gpu", "loadavg_start", "loadavg_end"} <= set(result["machine"])
    assert list(result["steps"]) == ["1", "2", "4"]
    for per_task in result["steps"].values():
        sr, fc = per_task["superres"], per_task["forecast"]
        assert sr["cost"]["seconds_per_sample"] > 0 and fc["cost"]["seconds_per_sample"] > 0
        assert {"rfne", "ssim", "spectrum_error"} <= set(sr["by_split"]["test"])
        assert {"rfne", "correlation", "rollout_correlation"} <= set(fc["by_split"]["test"])
    for task in ("superres", "forecast"):
        assert list(result["calibration"][task]) == ["1", "2"]
        m = result["calibration"][task]["1"]["by_split"]["test"]
        assert {"spread_skill_ratio", "coverage_50", "coverage_90", "expected_coverage_90", "rfne"} <= set(m)
        assert 0 < m["expected_coverage_90"] < 0.9  # what a calibrated 4-member ensemble reaches
    v = result["verdict"]
    assert isinstance(v["two_steps"]["suffice"], bool) and isinstance(v["calibration"]["calibrated"], bool)
    assert v["summary"] and (tmp_path / "sampling.png").stat().st_size > 5000
