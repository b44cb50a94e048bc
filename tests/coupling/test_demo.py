"""`flexcouple demo` (the hybrid demo) on the shipped model, shortened (--quick), and its verdict."""
import json

import pytest

from coupling.demo import RUNS, equal_accuracy, verdict
from coupling.surrogates import SUPERRES_X2_MODEL, default_checkpoint, shipped_model
from flexcouple_cli import main


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
    assert report["calibration"].endswith(f"{SUPERRES_X2_MODEL}/calibration.json")
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
    def acc(t95, stat):
        return {"time_until_correlation_below": {"0.95": t95}, "spectrum_statistics_error": stat}

    def pure(table, wall, t95, stat):
        return {"table": table, "label": f"pure {wall}", "summary": {"wall_s": wall}, "accuracy": acc(t95, stat)}

    def hybrid(table, wall, t95, stat, calls, accepted, speedup):
        return {"table": table, "label": "h", "mode": "superres", "summary": {"wall_s": wall, "calls": calls,
                "accepted": accepted}, "speedup": speedup, "accuracy": acc(t95, stat)}
    return {"t_end": 8.0, "runs": {
        "pure": {"table": 0, "label": "pure CFD n=256", "summary": {"wall_s": 16.0}},
        "superres_x2": hybrid(1, 2.0, 5.0, 0.1, 16, 16, 8.0),
        "pure_192": pure(1, 4.0, float("inf"), 0.2),
        "coarse_128": pure(1, 1.0, 5.5, 0.5),
        "superres_x4": hybrid(2, 14.0, 0.4, 0.8, 10, 2, 16 / 14),
        "coarse_64": pure(2, 0.5, 0.4, 0.8)}}


def test_equal_accuracy_interpolates_log_linearly_between_every_pure_run():
    found = equal_accuracy(_report(), "superres_x2")
    # t95 5.0 lies between pure 64 (0.4, 0.5 s) and pure 128 (5.5, 1 s): the hybrid loses on (a)
    assert found["a"]["bound"] == "=" and found["a"]["cost_s"] == pytest.approx(0.5 * 2 ** (4.6 / 5.1))
    # 0.1 lies half way between pure 192 (0.2, 4 s) and the reference (0, 16 s): 8 s in log cost
    assert found["b"]["bound"] == "=" and found["b"]["cost_s"] == pytest.approx(8.0)
    assert found["b"]["speedup"] == pytest.approx(4.0)
    # a pure run of the other table counts too: pure 64 is as good as the x4 hybrid
    assert equal_accuracy(_report(), "superres_x4")["b"]["bound"] == "<"


def test_the_verdict_says_plainly_where_the_hybrid_wins_and_where_it_loses():
    text = verdict(_report())
    assert "superres_x2: 8.00x faster" in text and "16/16 surrogate calls accepted (100%)" in text
    assert "costs 8.0 s (interpolated between the pure runs): the hybrid is 4.00x faster at equal accuracy" in text
    assert "the hybrid is 0.47x SLOWER: it LOSES at equal accuracy" in text
    assert "the cheapest pure run is already as accurate (0.5 s): the hybrid LOSES (0.04x)" in text
    assert "superres_x4: 1.14x faster" in text and "most superres_x4 calls were rejected" in text
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
                           (["--checkpoint", str(tmp_path / "no_model")], "no FLEX checkpoint at"),
                           (["--steps", "0"], "steps must be an integer >= 1")]:
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


def test_allow_unverified_reaches_both_of_the_demos_models(tmp_path, monkeypatch):
    """``flexcouple demo --allow-unverified`` loads both its checkpoints with the opt-in (and without the
    flag, without it): recorded at the loader, which then stops the demo before any run."""
    from coupling.demo import run_hybrid_demo
    from coupling.surrogates import FlexSurrogate
    from flexcouple_cli import build_parser
    seen = []

    class Stop(Exception):
        pass

    def loader(path, *args, allow_unverified=False, **kwargs):
        seen.append(allow_unverified)
        if len(seen) in (2, 4):  # both models loaded: stop before the runs
            raise Stop
        return object()

    monkeypatch.setattr(FlexSurrogate, "from_checkpoint", staticmethod(loader))
    for flags in (["--allow-unverified"], []):
        args = build_parser("demo").parse_args(["demo", "--quick", "--out", str(tmp_path / str(len(flags))),
                                                "--no-progress", *flags])
        with pytest.raises(Stop):
            run_hybrid_demo(args)
    assert seen == [True, True, False, False]
