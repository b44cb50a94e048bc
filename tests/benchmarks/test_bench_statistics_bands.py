"""bench_statistics_bands: the statistics error of bench_hybrid split by wavenumber band."""
import importlib.util
import json
from pathlib import Path

import numpy as np

from solver import random_field

ROOT = Path(__file__).resolve().parents[2]  # conftest.py puts benchmarks/ on sys.path (the script's siblings)
SPEC = importlib.util.spec_from_file_location("bench_statistics_bands", ROOT / "benchmarks" / "bench_statistics_bands.py")
bands = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bands)
SPEC_MT = importlib.util.spec_from_file_location("make_tables", ROOT / "benchmarks" / "make_tables.py")
mt = importlib.util.module_from_spec(SPEC_MT)
SPEC_MT.loader.exec_module(mt)


def test_band_log_ratios_are_zero_for_the_truth_and_log4_for_twice_the_field():
    truth = np.stack([random_field(64, seed=s) for s in range(3)])
    same = bands.band_log_ratios(truth, truth)
    assert {"1-10", "11-20", "21-42"} <= set(same) and "64-85" not in same  # shells to the corner, k ~ 45 on 64^2
    assert all(abs(v) < 1e-12 for v in same.values())
    doubled = bands.band_log_ratios(2 * truth, truth)
    assert all(abs(v - np.log(4.0)) < 1e-9 for v in doubled.values())  # energy goes as the square


def test_missing_truths_are_refused_with_the_command_that_makes_them(tmp_path, capsys):
    code = bands.main(["--seeds", "5000", "--t-end", "3", "--checkpoint", "x", "--out", str(tmp_path), "--name", "b"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no truth for seed(s) [5000]" in err and "--truth-only" in err
    assert not (tmp_path / "b.json").exists()


def test_a_result_renders_one_row_per_field_and_method(tmp_path):
    m = {"statistics_error": 0.02, "t95": 5.5, "t95_censored": False, "window_snapshots": 22,
         "bands": {"1-10": 0.12, "64-85": 0.4}}
    data = {"benchmark": "statistics_bands", "command": "c",
            "protocol": {"reynolds": 1000.0, "n": 256, "t_end": 16.0, "checkpoint": "ck"},
            "fields": {"5000": {"hybrid": m, "pure_256": dict(m, statistics_error=0.007)}}}
    (tmp_path / "statistics_bands.json").write_text(json.dumps(data))
    text = mt.render("statistics_bands", tmp_path)
    assert "| 5000 | hybrid | 0.02 | 22 | 0.12 | 0.4 |" in text and "| 5000 | pure_256 | 0.007 |" in text
