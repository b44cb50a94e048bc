"""The baselines benchmark: its verdict logic, and its quick mode (smoke test) end to end."""
import importlib.util
import json
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "bench_baselines", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_baselines.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_judge_says_which_baseline_beats_flex():
    rfne = {"flex": 0.30, "flex_raw": 0.10, "unet": 0.40, "bicubic": 0.25, "spectral": 0.30}
    v = bench.judge(rfne, higher_is_better=False)
    # the raw-space ablation is best overall, but it is no baseline; bicubic wins, spectral ties: both count
    assert v["best"] == "flex_raw" and v["ranking"][0] == "flex_raw"
    assert v["flex_beats_every_baseline"] is False
    assert v["flex_beaten_by"] == ["bicubic", "spectral"]
    corr = {"flex": 0.9, "unet": 0.8, "persistence": 0.85, "regression": None}
    v = bench.judge(corr, higher_is_better=True)
    assert v["best"] == "flex" and v["flex_beats_every_baseline"] is True and v["flex_beaten_by"] == []
    assert "regression" not in v["ranking"]  # no value: left out, not counted as a win
    assert bench.judge({"unet": 1.0}, False)["flex_beats_every_baseline"] is None


def test_verdicts_per_split_with_residual_against_raw():
    rows = {"test": {"flex": {"rfne": 0.2, "ssim": 0.9, "spectrum_error": 0.1},
                     "flex_raw": {"rfne": 0.3, "ssim": 0.8, "spectrum_error": 0.05},
                     "bicubic": {"rfne": 0.5, "ssim": 0.7, "spectrum_error": 0.5}},
            "re_high": {"flex": {"rfne": 0.6, "ssim": 0.6, "spectrum_error": 0.4},
                        "bicubic": {"rfne": 0.5, "ssim": 0.7, "spectrum_error": 0.5}}}
    v = bench.verdicts("superres", rows)
    assert v["test"]["primary_metric"] == "rfne" and v["test"]["flex_beats_every_baseline"] is True
    assert v["test"]["residual_beats_raw"] is True
    assert v["test"]["by_metric"]["spectrum_error"]["residual_beats_raw"] is False
    assert v["re_high"]["flex_beats_every_baseline"] is False and v["re_high"]["flex_beaten_by"] == ["bicubic"]
    assert v["re_high"]["residual_beats_raw"] is None  # raw space not evaluated there
    assert v["re_high"]["by_metric"]["spectrum_error"]["flex_beats_every_baseline"] is True


@pytest.mark.slow
def test_quick_mode_writes_the_json_and_the_figure(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path / "results"), "--work", str(tmp_path / "work")]) == 0
    result = json.loads((tmp_path / "results" / "baselines.json").read_text())
    for key in ("command", "date", "machine", "versions", "protocol", "params", "training", "verdict", "wall_s"):
        assert key in result
    assert {"cores", "gpu", "loadavg_start", "loadavg_end"} <= set(result["machine"])
    trained = ["flex", "flex_raw", "unet", "uvit", "regression"]
    assert set(result["params"]) == set(trained) | {"bicubic", "spectral", "persistence"}
    assert all(result["training"][m]["steps"] == 3 and result["training"][m]["wall_s"] > 0 for m in trained)
    assert result["training"]["flex_raw"]["space"] == "raw"
    ood = {"re_low", "re_high", "boundary_free_slip", "forcing_k8"}
    assert set(result["superres"]) == {"test", "velocity"} | ood and list(result["superres"])[0] == "test"
    assert set(result["forecast"]) == {"test"} | ood
    for split, models in result["superres"].items():
        assert set(models) == set(trained) | {"bicubic", "spectral"}
        assert all({"rfne", "ssim", "spectrum_error"} <= set(m) for m in models.values())
    for split, models in result["forecast"].items():
        assert set(models) == set(trained) | {"persistence"}
        for m in models.values():
            assert len(m["correlation"]) == len(m["times"]) == 3 and {"rfne", "correlation_mean"} <= set(m)
    for task in ("superres", "forecast"):
        assert set(result["verdict"][task]) == set(result[task])
        for v in result["verdict"][task].values():
            assert v["best"] and isinstance(v["flex_beats_every_baseline"], bool)
    assert (tmp_path / "results" / "baselines.png").stat().st_size > 10000
    # a rerun resumes: nothing is trained or evaluated again
    stamp = (tmp_path / "work" / "eval" / "superres" / "metrics.json").stat().st_mtime
    data_meta = tmp_path / "work" / "data" / "flexcouple_dataset.json"
    created = data_meta.stat().st_mtime
    assert bench.main(["--quick", "--out", str(tmp_path / "results"), "--work", str(tmp_path / "work")]) == 0
    assert (tmp_path / "work" / "eval" / "superres" / "metrics.json").stat().st_mtime == stamp
    assert data_meta.stat().st_mtime == created
    again = json.loads((tmp_path / "results" / "baselines.json").read_text())
    assert again["training"] == result["training"] and again["superres"] == result["superres"]
