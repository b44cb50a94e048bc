"""The cost model's formulas, and its quick mode end to end (parts, maps, a measured run, the figure)."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "bench_costmodel", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_costmodel.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_leapfrog_cost_is_bounded_by_the_schedule_and_loses_when_jumps_are_rejected():
    # free, always accepted jumps: one solver tick and one jump per cycle halve the cost, never more
    assert math.isclose(bench.leapfrog_cost(10.0, 0.0, 0.0, 0.5, 1.0), 5.0)
    assert math.isclose(bench.leapfrog_cost(10.0, 0.0, 0.0, 0.5, 1.0, stretch=1, jumps=3), 2.5)
    # every jump rejected: the solver computes every tick and the calls come on top
    assert bench.leapfrog_cost(10.0, 1.0, 0.1, 0.5, 0.0) > 10.0
    # a call dearer than the solver time it replaces cannot pay, even always accepted
    assert bench.leapfrog_cost(10.0, 6.0, 0.0, 0.5, 1.0) > 10.0


def test_superres_cost_adds_one_call_and_its_checks_per_output():
    assert math.isclose(bench.superres_cost(0.4, 0.15, 0.05, 0.5), 0.8)
    assert bench.superres_cost(0.4, 0.15, 0.05, 1.0) < bench.superres_cost(0.4, 0.15, 0.05, 0.25)


def test_solver_cost_extrapolates_beyond_the_measured_grids():
    rows = [{"n": 64, "reynolds": 1000.0, "s_per_unit": 1.0}, {"n": 128, "reynolds": 1000.0, "s_per_unit": 9.0}]
    assert bench.solver_cost(rows, 128) == 9.0
    assert bench.solver_cost(rows, 256) > 8 * 9.0  # n^2 log n per step, n more steps per unit time


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        bench.parse(["--reynolds", "500"])
    assert "must include 1000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse(["--surrogate-n", "100"])


def test_quick_mode_writes_parts_maps_runs_and_the_figure(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "costmodel.json").read_text())
    for key in ("command", "machine", "date", "parts", "maps", "runs"):
        assert key in result
    assert all(r["s_per_unit"] > 0 for r in result["parts"]["solver"])
    assert {r["steps"] for r in result["parts"]["surrogate"]} == {1, 2}
    assert result["maps"]["superres"] and result["maps"]["leapfrog"]
    run = result["runs"][0]
    assert run["calls"] >= 1 and run["measured_wall_s"] > 0 and run["predicted"]["wall_s"] > 0
    assert (tmp_path / "costmodel.png").stat().st_size > 5000
    # the README's table renders from it (benchmarks/make_tables.py)
    spec = importlib.util.spec_from_file_location(
        "make_tables", Path(__file__).resolve().parents[2] / "benchmarks" / "make_tables.py")
    make_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_tables)
    text = make_tables.render("costmodel", tmp_path)
    assert "predicted / measured" in text and "layout not known" not in text
