"""benchmarks/bench_scaling.py: its pure helpers, and its quick mode over 1, 2 and 4 ranks (smoke test)."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from coupling.surrogates import default_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("bench_scaling", ROOT / "benchmarks" / "bench_scaling.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)
MPIEXEC = Path(sys.executable).with_name("mpiexec")


def test_efficiency_is_t1_over_r_tr():
    assert bench.efficiency(10.0, 2, 5.0) == 1.0
    assert math.isclose(bench.efficiency(10.0, 4, 5.0), 0.5)
    assert bench.efficiency(None, 2, 5.0) is None and bench.efficiency(10.0, 2, None) is None


def test_rows_are_labelled_oversubscribed_beyond_the_cores_and_get_their_group_efficiency():
    rows = [bench.label_row({"kind": "solver", "n": n, "ranks": r, "ms_per_step": bench.summarize([t, t + 1, t + 2])},
                            cores=2)
            for n, r, t in ((64, 1, 8.0), (64, 2, 4.0), (64, 4, 4.0), (128, 2, 1.0))]
    assert [r["oversubscribed"] for r in rows] == [False, False, True, False]
    assert all(r["cores"] == 2 for r in rows)
    rows = bench.add_efficiency(rows, "ms_per_step", ("n",))
    assert rows[0]["efficiency"] == 1.0 and math.isclose(rows[1]["efficiency"], 9.0 / (2 * 5.0))
    assert math.isclose(rows[2]["speedup"], 9.0 / 5.0)
    assert rows[3]["efficiency"] is None and rows[3]["speedup"] is None  # no 1-rank row at n = 128


def test_summarize_and_the_worker_protocol():
    assert bench.summarize([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "samples": [3.0, 1.0, 2.0]}
    out = "noise\nSCALING_ROW {\"n\": 64}\nSCALING_ROWX no\nSCALING_ROW {\"n\": 128}\n"
    assert bench.parse_rows(out) == [{"n": 64}, {"n": 128}]


def test_the_solver_rows_use_bench_solvers_dt_and_block():
    assert bench.solver_dt(256) == 0.5 * (2 * math.pi / 256) / 7.0
    assert bench.block_steps(1024) == 10 and bench.block_steps(256) == 61


def test_the_hybrid_runs_are_the_demos_at_the_benchmark_grid():
    cfgs = bench.hybrid_configs(64, 1.0, 2, "")
    assert set(cfgs) == set(bench.MODES)
    assert all(c.n == 64 and c.t_end == 1.0 and c.spinup == 0.0 and c.torch_threads == 1 for c in cfgs.values())
    assert cfgs["leapfrog"].stretch == 1 and cfgs["leapfrog"].jumps == 2
    assert cfgs["superres_ensemble"].strategy == "ensemble" and cfgs["superres_ensemble"].ensemble == 2
    assert cfgs["superres"].strategy == "gather" and cfgs["superres"].ensemble == 1


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable} (pip install mpich)")
@pytest.mark.skipif(not (default_checkpoint() / "model.safetensors").exists(),
                    reason=f"the shipped model is missing at {default_checkpoint()}")
def test_quick_mode_writes_the_json_and_the_figure(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "scaling.json").read_text())
    for key in ("command", "date", "machine", "versions", "commit", "wall_s", "settings", "note"):
        assert key in result
    assert result["errors"] == [] and result["cores"] == result["machine"]["cores"]
    assert "oversubscribe" in result["note"]
    assert sorted((r["n"], r["ranks"]) for r in result["solver"]) == [(64, 1), (64, 2), (64, 4)]
    assert sorted((r["mode"], r["ranks"]) for r in result["hybrid"]) == sorted(
        (m, r) for m in bench.MODES for r in (1, 2, 4))
    for row in result["solver"] + result["hybrid"]:
        assert row["oversubscribed"] == (row["ranks"] > result["cores"])
        key = "ms_per_step" if row["kind"] == "solver" else "s_per_unit_time"
        assert 0 < row[key]["min"] <= row[key]["median"]
        assert row["efficiency"] > 0 and (row["ranks"] > 1 or row["efficiency"] == 1.0)
    assert all(r["finite"] for r in result["solver"])
    assert all(r["calls"] >= 1 for r in result["hybrid"] if r["mode"] != "pure")
    assert (tmp_path / "scaling.png").stat().st_size > 5000
