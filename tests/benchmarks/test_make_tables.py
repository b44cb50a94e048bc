"""benchmarks/make_tables.py: docs/benchmarks.md's tables come from the result JSON files."""
import importlib.util
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("make_tables", ROOT / "benchmarks" / "make_tables.py")
mt = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(mt)

MACHINE = {"cores": 2, "gpu": None, "loadavg_start": [0.5, 0.4, 0.3], "loadavg_end": [1.25, 1.0, 0.9]}
HYBRID = {
    "benchmark": "hybrid", "command": "python benchmarks/bench_hybrid.py --quick", "date": "2026-01-02T03:04:05+00:00",
    "machine": MACHINE, "protocol": {"reynolds": 1000.0, "n": 64, "truth_n": 128, "fields": 1, "t_end": 2.5},
    "speedup": 0.5, "best_hybrid": "leapfrog",
    "rows": {"pure_64": {"t95": 2.5, "t95_censored_fields": 1, "spectrum_error": 0.01, "profile_error": 0.002,
                         "cost": 0.25},
             "leapfrog": {"t95": 1.5, "t95_censored_fields": 0, "spectrum_error": 0.02, "profile_error": 0.003,
                          "cost": 0.5, "calls": 3, "accepted": 2, "speedup_correlation_time": 0.5,
                          "speedup_correlation_time_bound": "=", "speedup_spectrum": 0.75,
                          "speedup_spectrum_bound": ">=", "speedup_both": 0.5, "speedup_fixed_cadence": 0.5,
                          "failed_checks": {"coarse_forecast": 1}}},
}
BASELINES = {"benchmark": "baselines", "command": "python benchmarks/bench_baselines.py", "date": "2026-01-02",
             "machine": MACHINE, "params": {"flex": 1000, "bicubic": 0},
             "superres": {"test": {"flex": {"rfne": 0.125, "ssim": 0.875, "curve": [1, 2]},
                                   "bicubic": {"rfne": 0.25, "ssim": 0.5}}},
             "summary": ["superres test: rfne FLEX 0.125, best flex; FLEX beats every baseline"]}
SAMPLING = {"benchmark": "sampling", "command": "python benchmarks/bench_sampling.py --quick", "machine": MACHINE,
            "quick": True, "note": "QUICK MODE: NOT meaningful",
            "steps": {"2": {"superres": {"by_split": {"test": {"rfne": 0.5}}, "cost": {"seconds_per_sample": 0.25}}}},
            "calibration": {"superres": {"1": {"by_split": {"test": {"spread_skill_ratio": 0.75, "rfne": 0.5}}}}},
            "verdict": {"summary": ["two steps suffice"]}}


def write(results: Path, name: str, data: dict) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(data))


def readme_with(names) -> str:
    body = "\n\n".join("\n".join(mt.markers(n)) for n in names)
    return f"# project\n\n## Benchmarks\n\nprose kept\n\n{body}\n\n## Tests\n\nother text\n"


def test_a_known_result_renders_its_table_and_provenance(tmp_path):
    write(tmp_path, "hybrid", HYBRID)
    block = mt.render("hybrid", tmp_path)
    assert "| leapfrog | 0.5 | 1.5 | 0.02 | 0.003 | =0.5 | >=0.75 | 0.5 | 3 (2) |" in block
    assert "| pure_64 | 0.25 | 2.5+ |" in block  # censored: a lower bound
    assert "Command: `python benchmarks/bench_hybrid.py --quick`" in block
    assert "turned surrogate calls down (calls failing each; one call can fail several): leapfrog: coarse_forecast 1" in block
    assert "2026-01-02T03:04:05+00:00; 2 cores, GPU: none, load 0.5 -> 1.25" in block


def test_baselines_render_one_row_per_split_and_model_and_the_verdict(tmp_path):
    write(tmp_path, "baselines", BASELINES)
    block = mt.render("baselines", tmp_path)
    assert "| split | model | parameters | rfne | ssim |" in block  # the curve (a list) left out
    assert "| test | flex | 1000 | 0.125 | 0.875 |" in block and "| test | bicubic | 0 | 0.25 | 0.5 |" in block
    assert "- superres test: rfne FLEX 0.125, best flex; FLEX beats every baseline" in block


def test_sampling_renders_steps_and_calibration_and_says_quick(tmp_path):
    write(tmp_path, "sampling", SAMPLING)
    block = mt.render("sampling", tmp_path)
    assert block.startswith("QUICK MODE: NOT meaningful")
    assert "| 2 | superres | test | 0.5 | 0.25 |" in block and "| superres | 1 | test | 0.75 | 0.5 |" in block
    assert "- two steps suffice" in block


def test_an_unknown_layout_falls_back_to_every_scalar(tmp_path):
    write(tmp_path, "hybrid", {"command": "x", "rows": [{"oops": 1}], "total": 3})
    block = mt.render("hybrid", tmp_path)
    assert "layout not known to make_tables.py, AttributeError" in block
    assert "| level 1 | level 2 | total | oops |" in block and "| rows | 0 |  | 1 |" in block


def test_scaling_renders_solver_and_hybrid_rows_with_efficiency_and_oversubscription(tmp_path):
    row = {"ranks": 4, "cores": 2, "oversubscribed": True, "efficiency": 0.25}
    write(tmp_path, "scaling", {"command": "c", "machine": MACHINE, "settings": {"quick": True}, "note": "4 > 2 cores",
                                "solver": [dict(row, n=64, ms_per_step={"min": 1.0, "median": 2.0})],
                                "hybrid": [dict(row, mode="superres", strategy="ensemble", n=64, calls=3, accepted=1,
                                                s_per_unit_time={"min": 0.5, "median": 0.75})]})
    block = mt.render("scaling", tmp_path)
    assert block.startswith("QUICK MODE") and "4 > 2 cores" in block
    assert "| 64 | 4 | 2 (1) | 0.25 | yes |" in block
    assert "| superres | ensemble | 64 | 4 | 0.75 (0.5) | 0.25 | 3 (1) | yes |" in block


def test_a_missing_file_says_not_run_yet(tmp_path):
    assert "not run yet" in mt.render("scaling", tmp_path)


def test_old_machine_keys_are_read(tmp_path):
    line = mt.footer({"machine": {"cpus": 2, "load_average_start": [3.0], "load_average_end": [2.5]},
                      "gpu": {"available": False}})
    assert line[-1] == "(date not recorded; 2 cores, GPU: none, load 3 -> 2.5)" and "not recorded" in line[1]


def test_update_rewrites_only_between_markers_and_check_names_stale_tables(tmp_path, capsys):
    results = tmp_path / "results"
    write(results, "hybrid", HYBRID)
    readme = tmp_path / "README.md"
    readme.write_text(readme_with(["hybrid", "scaling", "solver"]))
    assert mt.main(["--readme", str(readme), "--results", str(results), "--check"]) == 1
    assert "hybrid" in capsys.readouterr().err
    assert mt.main(["--doc", str(readme), "--results", str(results)]) == 0
    text = readme.read_text()
    assert text.startswith("# project\n\n## Benchmarks\n\nprose kept\n\n") and text.endswith("## Tests\n\nother text\n")
    assert "| leapfrog | 0.5 |" in text and "scaling.json`: not run yet" in text
    assert mt.main(["--readme", str(readme), "--results", str(results), "--check"]) == 0
    # a hand edit between the markers, and a new result, make the check fail naming them
    readme.write_text(text.replace("| leapfrog | 0.5 |", "| leapfrog | 0.1 |"))
    write(results, "scaling", {"command": "c", "solver": [], "hybrid": []})
    assert mt.main(["--readme", str(readme), "--results", str(results), "--check"]) == 1
    err = capsys.readouterr().err
    assert "stale tables" in err and "hybrid, scaling" in err and "python benchmarks/make_tables.py" in err


def test_a_new_result_needs_only_its_markers_its_renderer_comes_from_its_benchmark(tmp_path):
    results = tmp_path / "results"
    write(results, "hybrid_some_new_protocol", HYBRID)
    write(results, "odd_layout", {"benchmark": "never_heard_of", "command": "c", "x": {"y": 1.5}})
    doc = tmp_path / "benchmarks.md"
    doc.write_text(readme_with(["hybrid_some_new_protocol", "odd_layout"]))
    assert mt.main(["--doc", str(doc), "--results", str(results)]) == 0
    text = doc.read_text()
    assert "| leapfrog | 0.5 | 1.5 | 0.02 | 0.003 | =0.5 | >=0.75 | 0.5 | 3 (2) |" in text  # the hybrid table
    assert "| x | y |" in text or "level 1" in text  # an unknown benchmark: every scalar
    assert mt.main(["--doc", str(doc), "--results", str(results), "--check"]) == 0


def test_the_repository_benchmarks_page_is_in_sync_with_benchmarks_results(tmp_path):
    readme = tmp_path / "benchmarks.md"
    shutil.copy(ROOT / "docs" / "benchmarks.md", readme)
    new, changed, unmarked = mt.update(readme.read_text(), ROOT / "benchmarks" / "results")
    assert not changed and not unmarked, (
        f"docs/benchmarks.md's tables {changed + unmarked} differ from benchmarks/results/*.json: "
        "run `python benchmarks/make_tables.py` (never edit the numbers by hand)")
    missing = mt.unshown(readme.read_text(), ROOT / "benchmarks" / "results")
    assert not missing, f"benchmarks/results/ files with no block in docs/benchmarks.md: {missing}"


def test_a_result_file_without_a_block_fails_the_check(tmp_path, capsys):
    results = tmp_path / "results"
    write(results, "hybrid", HYBRID)
    write(results, "hybrid_forgotten", HYBRID)
    doc = tmp_path / "benchmarks.md"
    doc.write_text(readme_with(["hybrid"]))
    assert mt.main(["--doc", str(doc), "--results", str(results)]) == 0
    assert "hybrid_forgotten" in capsys.readouterr().err
    assert mt.main(["--doc", str(doc), "--results", str(results), "--check"]) == 1
    assert "hybrid_forgotten" in capsys.readouterr().err
    doc.write_text(readme_with(["hybrid", "hybrid_forgotten"]))
    assert mt.main(["--doc", str(doc), "--results", str(results)]) == 0
    assert mt.main(["--doc", str(doc), "--results", str(results), "--check"]) == 0


def test_the_solver_table_shows_the_fused_kernel_rows(tmp_path):
    row = {"n": 256, "backend": "pyfftw", "dtype": "float64", "threads": 1, "ms_per_step": 8.0, "ms_per_fft": 0.25,
           "fft_floor_ms": 4.0, "ratio_to_floor": 2.0}
    write(tmp_path, "solver", {"command": "c", "machine": MACHINE, "backends": [row],
                               "kernels": [{"n": 256, "dtype": "float64", "numpy_ms_per_step": 8.0,
                                            "numba_ms_per_step": 6.0, "numba_over_numpy": 0.75,
                                            "max_relative_difference": 0.0, "difference_after_steps": 100},
                                           {"n": 512, "dtype": "float64", "skipped": "numba is not installed"}]})
    block = mt.render("solver", tmp_path)
    assert "| 256 | float64 | 8 | 6 | 0.75 | 0.0e+00 (100) |" in block
    assert "| pyfftw | float64 | 1 | 8 (2) |" in block  # no performed-FFT ratio recorded: the floor's only
    write(tmp_path, "solver", {"command": "c", "machine": MACHINE,
                               "backends": [dict(row, ratio_to_performed_ffts=2.5), dict(row, backend="numpy")]})
    block = mt.render("solver", tmp_path)
    assert "| pyfftw | float64 | 1 | 8 (2 / 2.5) |" in block and "| numpy | float64 | 1 | 8 (2) |" in block
    assert "| 512 | float64 |" not in block  # a skipped row has no numbers to show


def test_sr_statistics_names_the_weights_it_measured_where_the_result_records_them(tmp_path):
    bands = {"21-42": 1.0, "75-85": 0.5}
    result = {"benchmark": "sr_statistics", "command": "python benchmarks/bench_sr_statistics.py", "machine": MACHINE,
              "data": "data/x", "split": "valid", "steps": 2, "precision": "float32",
              "summary": {"spectral": {"statistics_error_mean": 0.25, "rfne_mean": 0.125, "bands_mean": bands},
                          "m": {"statistics_error_mean": 0.0625, "rfne_mean": 0.25, "bands_mean": bands}},
              "trajectories": [{"spectral": {}, "m": {"s_per_call": 0.5}}]}
    write(tmp_path, "sr_statistics_sweep", result)
    block = mt.render("sr_statistics_sweep", tmp_path)
    assert "| `m` | 0.0625 | 0.25 | 1 | 0.5 | 0.5 |" in block and "weights measured" not in block
    write(tmp_path, "sr_statistics_sweep", dict(result, model_digests={"m": "0123456789abcdef"}))
    assert "weights measured: `m` 01234567" in mt.render("sr_statistics_sweep", tmp_path)
