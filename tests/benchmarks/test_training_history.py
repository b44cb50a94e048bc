"""benchmarks/training_history.py: a model card's training curve, one finished run appended per stage."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("training_history", ROOT / "benchmarks" / "training_history.py")
th = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(th)


def _run(tmp_path, name, steps=40, done=40):
    run = tmp_path / name
    run.mkdir()
    history = [{"step": s, "loss": 1.0 / s, "lr": 1e-4} for s in range(10, done + 1, 10)]
    history.append({"step": done, "val_rfne_superres": 0.05, "val_lsd_superres": 0.1})
    info = {"step": done, "wall_s": 12.5, "history": history, "train_config": {"steps": steps}}
    (run / "training_state.json").write_text(json.dumps({"format": 1, "info": info}))
    return run


def test_stages_are_appended_in_order_and_plotted(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    assert th.main([str(model), "--add", str(_run(tmp_path, "a")), "--label", "A: first"]) == 0
    assert th.main([str(model), "--add", str(_run(tmp_path, "b")), "--label", "B: second"]) == 0
    data = json.loads((model / "training_history.json").read_text())
    assert list(data["stages"]) == ["A: first", "B: second"]
    assert data["stages"]["B: second"]["wall_s"] == 12.5 and data["stages"]["B: second"]["run"].endswith("b")
    assert (model / "training_curve.png").stat().st_size > 5000
    # replot only: the history is unchanged
    before = (model / "training_history.json").read_bytes()
    assert th.main([str(model)]) == 0
    assert (model / "training_history.json").read_bytes() == before


def test_an_unfinished_or_repeated_stage_is_refused_and_nothing_is_written(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    run = _run(tmp_path, "a")
    assert th.main([str(model), "--add", str(run), "--label", "A"]) == 0
    before = (model / "training_history.json").read_bytes()
    assert th.main([str(model), "--add", str(run), "--label", "A again"]) == 2
    assert "already recorded" in capsys.readouterr().err
    assert th.main([str(model), "--add", str(_run(tmp_path, "b")), "--label", "A"]) == 2
    assert "already recorded" in capsys.readouterr().err
    assert th.main([str(model), "--add", str(_run(tmp_path, "c", steps=100, done=40)), "--label", "C"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert th.main([str(model), "--add", str(tmp_path / "missing"), "--label", "D"]) == 2
    assert "training_state.json" in capsys.readouterr().err
    assert (model / "training_history.json").read_bytes() == before


def test_the_shipped_c24s4_history_is_a_valid_record_of_finished_stages():
    data = th.load(ROOT / "flexcouple" / "shipped" / "flex-c24s4-superres256x2")
    assert len(data["stages"]) >= 5
    for stage in data["stages"].values():
        assert stage["wall_s"] > 0 and any("val_rfne_superres" in r for r in stage["history"])
