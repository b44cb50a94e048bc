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


@pytest.mark.slow
@pytest.mark.skipif(not (default_checkpoint() / "model.safetensors").exists(),
                    reason=f"the shipped model is missing at {default_checkpoint()}")
def test_quick_mode_writes_the_json_and_the_figure(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "hybrid.json").read_text())
    assert result["speedup"] > 0 and result["best_hybrid"] in ("superres", "leapfrog")
    for key in ("command", "machine", "date", "protocol"):
        assert key in result
    for mode in ("superres", "leapfrog"):
        row = result["rows"][mode]
        assert row["calls"] >= 1 and {"speedup_correlation_time", "speedup_spectrum", "speedup_fixed_cadence"} <= set(row)
    assert (tmp_path / "hybrid.png").stat().st_size > 5000
