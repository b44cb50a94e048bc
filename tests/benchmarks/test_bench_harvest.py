"""bench_harvest in the x2 super-resolution regime: a small run end to end (harvest, fine-tune, rerun)."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

from coupling.surrogates import SUPERRES_X2_MODEL, shipped_model

SPEC = importlib.util.spec_from_file_location(
    "bench_harvest", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_harvest.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)
MODEL = shipped_model(SUPERRES_X2_MODEL)


def _run(tmp_path, *extra) -> dict:
    """The x2 regime on a small case (n = 64, 3 calls, forcing 8) with its calibrated thresholds fixed."""
    assert bench.main(["--mode", "superres", "--factor", "2", "--checkpoint", str(MODEL),
                       "--fixed-thresholds-from", str(MODEL / "calibration.json"), "--n", "64", "--t-end", "1.5",
                       "--spinup", "0.5", "--forcing-wavenumber", "8", "--steps", "2", "--crop", "64",
                       "--work", str(tmp_path / "work"), "--out", str(tmp_path), "--name", "h", *extra]) == 0
    return json.loads((tmp_path / "h.json").read_text())


@pytest.mark.slow
@pytest.mark.skipif(not (MODEL / "model.safetensors").exists(), reason=f"the shipped x2 model is missing at {MODEL}")
def test_superres_harvest_records_acceptance_statistics_and_the_interpolation_floor(tmp_path):
    result = _run(tmp_path)
    assert result["case"]["fixed_thresholds_from"]["file"].endswith("calibration.json")
    assert result["run_a"]["calls"] == 3 and result["run_b"]["original"]["calls"] == 3
    floor = result["run_b"]["interpolation"]["statistics_error"]
    for label, row in result["run_b"].items():
        assert math.isfinite(row["statistics_error"]) and row["statistics_error"] >= 0, label
    assert floor > 0
    # a fine-tuned model exists exactly when something was harvested
    assert ("fine-tuned" in result["run_b"]) == (result["run_a"]["harvested_examples"] > 0)


@pytest.mark.slow
@pytest.mark.skipif(not (MODEL / "model.safetensors").exists(), reason=f"the shipped x2 model is missing at {MODEL}")
def test_an_audit_harvests_accepted_calls_and_the_model_is_fine_tuned_on_them(tmp_path):
    result = _run(tmp_path, "--audit-every", "1")
    run_a = result["run_a"]
    assert run_a["audited"] == run_a["accepted"] and run_a["audit_every"] == 1
    assert run_a["harvested_examples"] == run_a["calls"] == 3  # every call: audited or rejected
    assert "fine-tuned" in result["run_b"] and result["finetune"]["steps"] == 2
