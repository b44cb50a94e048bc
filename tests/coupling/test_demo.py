"""`flexcouple demo` (the hybrid demo) on the shipped model, shortened (--quick), and its verdict."""
import json

import pytest

from coupling.demo import RUNS, cheapest_as_accurate, verdict
from coupling.surrogates import SUPERRES_X2_MODEL, default_checkpoint, shipped_model
from flexcouple.cli import main


@pytest.mark.slow
@pytest.mark.skipif(not (default_checkpoint() / "model.safetensors").exists()
                    or not (shipped_model(SUPERRES_X2_MODEL) / "model.safetensors").exists(),
                    reason=f"a shipped model is missing at {default_checkpoint().parent}")
def test_quick_demo_runs_both_tables_and_writes_its_files(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for label in ("pure CFD n=256", "hybrid superres x2", "pure 192", "pure 128", "hybrid superres x4",
                  "hybrid leapfrog", "pure 64", "table 1", "table 2"):
        assert label in out
    report = json.loads((tmp_path / "demo.json").read_text())
    assert report["calibration"].endswith("flex-c16-superres256x2/calibration.json")
    for name in ("superres_x2", "superres_x4", "leapfrog"):
        run = report["runs"][name]
        assert run["speedup"] > 0 and len(run["accuracy"]["correlation"]) == 4
        assert run["summary"]["calls"] >= 1, f"{name}: the surrogate was never called"
    # the calibrated x2 regime is the one whose calls are trusted
    assert report["runs"]["superres_x2"]["summary"]["accepted"] >= 2
    for fig in ("fields.png", "correlation.png", "spectra.png"):
        assert (tmp_path / fig).stat().st_size > 5000
    for name in RUNS:
        assert (tmp_path / name / "trajectory.h5").exists()
    # a second run resumes every stage: nothing is recomputed, the tables are the same
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    again = json.loads((tmp_path / "demo.json").read_text())
    assert again["runs"]["superres_x2"]["accuracy"] == report["runs"]["superres_x2"]["accuracy"]


def _report():
    def pure(table, wall, t95, spec):
        return {"table": table, "label": f"pure {wall}", "summary": {"wall_s": wall},
                "accuracy": {"time_until_correlation_below": {"0.95": t95}, "mean_spectrum_error": spec}}

    def hybrid(table, wall, t95, spec, calls, accepted, speedup):
        return {"table": table, "label": "h", "mode": "superres", "summary": {"wall_s": wall, "calls": calls,
                "accepted": accepted}, "speedup": speedup,
                "accuracy": {"time_until_correlation_below": {"0.95": t95}, "mean_spectrum_error": spec}}
    return {"runs": {
        "pure": {"table": 0, "label": "pure CFD n=256", "summary": {"wall_s": 10.0}},
        "superres_x2": hybrid(1, 3.0, 5.0, 0.03, 16, 16, 10 / 3),
        "pure_192": pure(1, 5.0, 6.0, 0.20),
        "coarse_128": pure(1, 1.0, 5.5, 0.50),
        "superres_x4": hybrid(2, 14.0, 0.4, 0.5, 10, 2, 10 / 14),
        "coarse_64": pure(2, 0.5, 0.4, 0.5)}}


def test_the_cheapest_pure_run_as_accurate_is_found_per_criterion():
    report = _report()
    found = cheapest_as_accurate(report, "superres_x2")
    assert found["a"]["run"] == "coarse_128" and found["a"]["speedup"] == pytest.approx(1 / 3)
    assert found["b"]["run"] == "pure" and found["b"]["speedup"] == pytest.approx(10 / 3)  # 192 is less accurate
    report["runs"]["pure_192"]["accuracy"]["mean_spectrum_error"] = 0.03  # as accurate, and cheaper
    assert cheapest_as_accurate(report, "superres_x2")["b"]["run"] == "pure_192"
    # a pure run of the other table never counts
    assert cheapest_as_accurate(report, "superres_x4")["b"]["run"] == "coarse_64"


def test_the_verdict_says_plainly_where_the_hybrid_wins_and_where_it_loses():
    text = verdict(_report())
    assert "superres_x2: 3.33x faster" in text and "16/16 surrogate calls accepted (100%)" in text
    assert "pure CFD n=256 (10.0 s): the hybrid is 3.33x faster at equal accuracy" in text
    assert "pure 1.0 is at least as accurate for 1.0 s: the hybrid LOSES (0.33x)" in text
    assert "superres_x4: 0.71x SLOWER" in text and "most superres_x4 calls were rejected" in text
    inf = _report()
    inf["runs"]["superres_x2"]["accuracy"]["time_until_correlation_below"]["0.95"] = float("inf")
    assert "correlation >= 0.95 for the whole run" in verdict(inf)


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


def test_a_missing_calibration_or_checkpoint_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from coupling.hybrid import HybridSimulation

    def no_work(*args, **kwargs):
        raise AssertionError("the demo started working before checking its arguments")

    monkeypatch.setattr(HybridSimulation, "initial_field", no_work)
    for extra, message in [(["--calibration", str(tmp_path / "nope.json")], "nope.json' is not a file"),
                           (["--checkpoint", str(tmp_path / "no_model")], "no FLEX checkpoint at")]:
        assert main(["demo", "--quick", "--out", str(tmp_path / "out"), "--no-progress", *extra]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


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
