"""The hybrid benchmark's quick mode runs (smoke test), and its equal-accuracy interpolation."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

from coupling.surrogates import default_checkpoint

SPEC = importlib.util.spec_from_file_location("bench_hybrid", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_hybrid.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_equal_accuracy_cost_interpolates_log_linearly_and_marks_bounds():
    pure = {32: {"cost": 1.0, "t95": 1.0}, 64: {"cost": 4.0, "t95": 3.0}, 128: {"cost": 16.0, "t95": 5.0}}
    cost, bound = bench.equal_accuracy_cost(pure, 2.0, "t95", True)
    assert bound == "=" and math.isclose(cost, 2.0)  # half way in log cost between 1 and 4
    assert bench.equal_accuracy_cost(pure, 9.0, "t95", True) == (16.0, ">=")
    assert bench.equal_accuracy_cost(pure, 0.5, "t95", True) == (1.0, "<")
    spec = {32: {"cost": 1.0, "e": 1.0}, 64: {"cost": 4.0, "e": 0.5}}
    cost, bound = bench.equal_accuracy_cost(spec, 0.75, "e", False)
    assert bound == "=" and math.isclose(cost, 2.0)


def test_the_truths_are_shared_by_every_model_and_sampling_of_a_protocol(tmp_path):
    a = bench.parse(["--quick", "--checkpoint", str(tmp_path / "one")])
    b = bench.parse(["--quick", "--checkpoint", str(tmp_path / "two"), "--steps", "1"])
    assert bench.protocol_key(a, a.checkpoint) != bench.protocol_key(b, b.checkpoint)
    assert bench.truth_key(a, bench.base_config(a)) == bench.truth_key(b, bench.base_config(b))
    c = bench.parse(["--n", "64", "--t-end", "3"])
    assert bench.truth_key(c, bench.base_config(c)) != bench.truth_key(a, bench.base_config(a))
    with pytest.raises(SystemExit):
        bench.parse(["--quick", "--steps", "0"])
    for bad in (["--jobs", "2"], ["--truth-only", "--jobs", "0"]):  # timed runs run alone
        with pytest.raises(SystemExit):
            bench.parse(["--quick", *bad])


@pytest.mark.slow
def test_truths_computed_at_once_are_the_truths_computed_one_by_one(tmp_path):
    import importlib

    import numpy as np
    script = importlib.import_module("bench_hybrid")  # by name (benchmarks/ is on the path): the workers import it so
    small = ["--n", "32", "--t-end", "1", "--spinup", "0.5", "--truth-only"]
    assert script.main([*small, "--fields", "2", "--out", str(tmp_path / "a"), "--jobs", "2"]) == 0
    assert script.main([*small, "--fields", "1", "--out", str(tmp_path / "b")]) == 0
    (par,), (ser,) = ((tmp_path / d / ".work").glob("truths-*") for d in "ab")
    assert sorted(p.name for p in par.iterdir()) == ["truth_5000.npz", "truth_5001.npz"]
    with np.load(par / "truth_5000.npz") as x, np.load(ser / "truth_5000.npz") as y:
        # the same to round-off (FFTW's plans may differ between processes)
        for key in ("truth", "omega0"):
            assert np.abs(x[key] - y[key]).max() <= 1e-10 * np.abs(y[key]).max()


@pytest.mark.slow
@pytest.mark.skipif(not (default_checkpoint() / "model.safetensors").exists(),
                    reason=f"the shipped model is missing at {default_checkpoint()}")
def test_quick_mode_writes_the_json_and_the_figure_and_resumes(tmp_path, capsys):
    # the truth pass alone keeps the spun-up field and the truth, times nothing and writes no result
    assert bench.main(["--quick", "--out", str(tmp_path), "--truth-only"]) == 0
    assert not (tmp_path / "hybrid.json").exists()
    truths = list((tmp_path / ".work").glob("truths-*/truth_5000.npz"))
    assert len(truths) == 1
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "hybrid.json").read_text())
    assert (Path(result["work"]) / "field_5000.json").exists() and Path(result["work"]) != truths[0].parent
    assert result["rows"]["truth_128"]["cost"] > 0
    assert result["speedup"] > 0 and result["best_hybrid"] in ("superres", "leapfrog")
    for key in ("command", "machine", "date", "protocol"):
        assert key in result
    # the weights measured, by content (a shipped model's folder can be given new weights)
    from coupling.surrogates import FlexSurrogate
    assert result["protocol"]["model_digest"] == FlexSurrogate.from_checkpoint(result["protocol"]["checkpoint"]).digest
    for mode in ("superres", "leapfrog"):
        row = result["rows"][mode]
        assert row["calls"] >= 1 and {"speedup_correlation_time", "speedup_spectrum", "speedup_fixed_cadence"} <= set(row)
    assert (tmp_path / "hybrid.png").stat().st_size > 5000

    # a rerun with the same protocol reads the finished field instead of measuring it again
    capsys.readouterr()
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    assert "measured earlier" in capsys.readouterr().out
    again = json.loads((tmp_path / "hybrid.json").read_text())
    assert again["rows"] == result["rows"] and again["speedup"] == result["speedup"]
    assert again["field_loadavg"][0]["seed"] == 5000
    # the ablation adds only the unguarded runs to the finished field; every call is then used
    capsys.readouterr()
    assert bench.main(["--quick", "--out", str(tmp_path), "--unguarded"]) == 0
    assert "measured earlier but for superres_unguarded, leapfrog_unguarded" in capsys.readouterr().out
    ablation = json.loads((tmp_path / "hybrid.json").read_text())
    for mode in ("superres_unguarded", "leapfrog_unguarded"):
        row = ablation["rows"][mode]
        assert row["calls"] >= 1 and row["accepted"] == row["calls"] and "speedup_both" in row
    assert ablation["rows"]["pure_64"] == result["rows"]["pure_64"]  # the finished runs are not redone
    assert ablation["best_hybrid"] in ("superres", "leapfrog")  # never an unguarded row


@pytest.mark.parametrize("argv", [["--fields", "0"], ["--t-end", "-1"], ["--n", "100"]])
def test_bad_arguments_are_refused_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse(argv)
    assert exc.value.code == 2 and "need --fields" in capsys.readouterr().err


def test_the_protocol_key_changes_with_what_the_numbers_depend_on(tmp_path):
    a = bench.parse(["--fields", "2"])
    b = bench.parse(["--fields", "8"])
    c = bench.parse(["--t-end", "4"])
    ckpt = str(tmp_path)
    assert bench.protocol_key(a, ckpt) == bench.protocol_key(b, ckpt)  # more fields reuse the first ones
    assert bench.protocol_key(a, ckpt) != bench.protocol_key(c, ckpt)


def _records(spectrum_errors, cost):
    return [{"t95": 2.0 + e, "t95_censored": False, "spectrum_error": e, "profile_error": 0.1, "cost": cost}
            for e in spectrum_errors]


def test_bootstrap_intervals_resample_the_fields_and_bracket_the_point_estimate():
    per_field = {"pure_32": _records([0.5, 0.6, 0.4], 1.0), "pure_64": _records([0.1, 0.12, 0.08], 4.0),
                 "superres": [dict(r, calls=2, accepted=2) for r in _records([0.3, 0.2, 0.25], 0.5)],
                 "truth_128": [{"cost": 30.0}] * 3}
    methods = ["pure_32", "pure_64", "superres"]
    rows, best = bench.summarize(per_field, methods, [32, 64], 64)
    assert best == "superres" and rows["superres"]["accepted"] == 6
    one, _ = bench.summarize(per_field, methods, [32, 64], 64, fields=[1, 1, 1])
    assert one["superres"]["spectrum_error"] == pytest.approx(0.2)  # the resample takes field 1 three times
    ci = bench.bootstrap_intervals(per_field, methods, [32, 64], 64, resamples=200)["superres"]
    for key in bench.SPEEDUPS:
        lo, hi = ci[key]
        assert lo <= rows["superres"][key] <= hi and lo > 0
    assert bench.bootstrap_intervals(per_field, methods, [32, 64], 64, resamples=0) == {}
    single = {k: v[:1] for k, v in per_field.items()}
    assert bench.bootstrap_intervals(single, methods, [32, 64], 64, resamples=50) == {}  # one field: no interval


@pytest.mark.parametrize("grids", [["300"], ["15"], ["191"]])
def test_pure_grids_must_be_even_and_at_most_n(grids, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse(["--grids", *grids])
    assert exc.value.code == 2 and "--grids must be even grids from 16 to --n (256)" in capsys.readouterr().err
    assert bench.parse(["--grids", "128", "192", "256"]).grids == [128, 192, 256]  # need not divide n
