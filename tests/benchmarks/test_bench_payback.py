"""The payback benchmark: up-front core-seconds from the records that measured them, and the simulated
time and runs after which a hybrid's saving at equal accuracy repays them."""
import importlib.util
import json
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "bench_payback", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_payback.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def _write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture
def records(tmp_path):
    hybrid = _write(tmp_path / "hybrid.json", {
        "best_hybrid": "superres", "protocol": {"t_end": 8.0, "n": 256, "factor": 2, "checkpoint": "m"},
        "rows": {"superres": {"cost": 0.25, "speedup_spectrum": 3.0, "speedup_correlation_time": 0.5}}})
    data = tmp_path / "data"
    _write(data / "flexcouple_dataset.json", {"status": "complete", "generation_wall_time_s": 100.0, "ranks": 2})
    stages = []
    for name, wall in (("a", 300.0), ("b", 100.0)):
        _write(tmp_path / name / "training_state.json", {"info": {"step": 10, "wall_s": wall}})
        stages.append(str(tmp_path / name))
    cal = _write(tmp_path / "calibration.json", {"provenance": {"wall_s": 50.0}})
    return tmp_path, str(hybrid), str(data), stages, str(cal)


def test_the_up_front_cost_is_repaid_by_the_saving_at_equal_accuracy(records, capsys):
    tmp, hybrid, data, stages, cal = records
    assert bench.main(["--hybrid", hybrid, "--data", data, "--training", *stages, "--training-threads", "2",
                       "--calibration", cal, "--name", "pb", "--out", str(tmp)]) == 0
    out = json.loads((tmp / "pb.json").read_text())
    # 100 s x 2 ranks + (300 + 100) s x 2 threads + 50 s
    assert out["upfront_core_s"] == pytest.approx(200 + 800 + 50)
    stat = out["criteria"]["statistics"]
    # pure at equal accuracy 0.75 s per unit, the hybrid 0.25: 0.5 s saved per unit time
    assert stat["saving_s_per_unit"] == pytest.approx(0.5) and stat["repaid"]
    assert stat["time_units"] == pytest.approx(1050 / 0.5) and stat["runs"] == pytest.approx(1050 / 0.5 / 8)
    corr = out["criteria"]["correlation_time"]
    assert not corr["repaid"] and corr["runs"] is None and corr["saving_s_per_unit"] < 0
    assert "never repaid" in capsys.readouterr().out


def test_missing_or_unnamed_costs_are_refused(records, tmp_path):
    tmp, hybrid, data, stages, cal = records
    _write(Path(stages[0]) / "training_state.json", {"info": {"step": 10}})  # trained before wall_s existed
    with pytest.raises(SystemExit, match="records no training time"):
        bench.main(["--hybrid", hybrid, "--data", data, "--training", stages[0], "--out", str(tmp)])
    with pytest.raises(SystemExit, match="needs --training-source"):
        bench.main(["--hybrid", hybrid, "--data", data, "--training-seconds", "60", "--out", str(tmp)])
    with pytest.raises(SystemExit, match="no training cost"):
        bench.main(["--hybrid", hybrid, "--data", data, "--out", str(tmp)])
    with pytest.raises(SystemExit, match="no row 'leapfrog'"):
        bench.main(["--hybrid", hybrid, "--mode", "leapfrog", "--data", data, "--training-seconds", "60",
                    "--training-source", "card", "--out", str(tmp)])
    with pytest.raises(SystemExit, match="does not exist"):
        bench.main(["--hybrid", str(tmp / "nope.json"), "--data", data, "--out", str(tmp)])
