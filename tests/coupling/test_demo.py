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


def test_a_bad_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from coupling.hybrid import HybridSimulation

    def no_work(*args, **kwargs):
        raise AssertionError("the demo started working before checking --out")

    monkeypatch.setattr(HybridSimulation, "initial_field", no_work)
    monkeypatch.setattr("coupling.surrogates.FlexSurrogate.from_checkpoint", no_work)
    (tmp_path / "a_file").write_text("")
    (tmp_path / "d1" / "demo.json").mkdir(parents=True)
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2" / "pure").write_text("")
    for out, message in [(tmp_path / "a_file", "is a file, not a directory"),
                         (tmp_path / "a_file" / "demo", "is a file, not a directory"),
                         (tmp_path / "d1", "demo.json is a directory where the demo writes a file"),
                         (tmp_path / "d2", "pure is a file where the demo writes its pure run")]:
        assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and "Errno" not in err, err


def test_a_damaged_initial_field_cache_is_computed_again(tmp_path, capsys):
    import numpy as np

    from coupling.demo import cached_initial_field

    field = np.random.default_rng(0).standard_normal((16, 16))
    path = tmp_path / "initial_field_spinup1.npy"
    np.save(path, field)
    path.write_bytes(path.read_bytes()[:100])  # killed while it was written by an older version
    calls = []
    make = lambda: calls.append(1) or field  # noqa: E731
    np.testing.assert_array_equal(cached_initial_field(path, 16, make), field)
    assert calls == [1] and "cannot be read" in capsys.readouterr().out
    np.testing.assert_array_equal(cached_initial_field(path, 16, make), field)  # now read from the cache
    assert calls == [1] and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
