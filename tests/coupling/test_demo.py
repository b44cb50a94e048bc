"""`flexcouple demo` (the hybrid demo) on the shipped model, shortened (--quick), and its verdict."""
import json

import pytest

from coupling.demo import verdict
from coupling.surrogates import default_checkpoint
from flexcouple.cli import main


@pytest.mark.slow
@pytest.mark.skipif(not (default_checkpoint() / "model.safetensors").exists(),
                    reason=f"the shipped model is missing at {default_checkpoint()}")
def test_quick_demo_runs_pure_superres_and_leapfrog_and_writes_its_files(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for label in ("pure CFD n=256", "hybrid superres", "hybrid leapfrog", "coarse 64"):
        assert label in out
    report = json.loads((tmp_path / "demo.json").read_text())
    for name in ("superres", "leapfrog"):
        run = report["runs"][name]
        assert run["speedup"] > 0 and len(run["accuracy"]["correlation"]) == 4
        assert run["summary"]["calls"] >= 1, f"{name}: the surrogate was never called"
    for fig in ("fields.png", "correlation.png", "spectra.png"):
        assert (tmp_path / fig).stat().st_size > 5000
    for name in ("pure", "superres", "leapfrog", "coarse"):
        assert (tmp_path / name / "trajectory.h5").exists()
    # a second run resumes every stage: nothing is recomputed, the table is the same
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0


def test_the_verdict_says_plainly_where_the_hybrid_loses():
    acc = {"time_until_correlation_below": {"0.95": 1.2}, "mean_spectrum_error": 0.5}
    report = {"runs": {
        "superres": {"accuracy": acc, "summary": {"calls": 10, "accepted": 2}, "speedup": 0.7},
        "leapfrog": {"accuracy": dict(acc, time_until_correlation_below={"0.95": float("inf")}),
                     "summary": {"calls": 4, "accepted": 4}, "speedup": 1.6},
        "coarse": {"accuracy": {"mean_spectrum_error": 0.3}}}}
    text = verdict(report)
    assert "0.70x SLOWER" in text and "does NOT restore" in text and "most superres calls were rejected" in text
    assert "1.60x faster" in text and "the whole run" in text
