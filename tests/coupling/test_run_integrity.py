"""What a surrogate or a run folder cannot do to a run: edit the solver's state through its input,
alias the outputs to its buffer, resume a run with another model, leave threads that abort the
process at exit; and what a run does not do to a folder: delete or overwrite files it did not write."""
import json
import os
import shutil
import subprocess
import threading

import numpy as np
import pytest

from coupling import HybridConfig, HybridSimulation, PersistenceSurrogate, Prediction, SolverSurrogate
from coupling.calls import call_surrogate, finish_running_calls
from flexcouple_cli import main
from tests.coupling.stand_ins import Broken
from tests.coupling.test_cli import FLEXCOUPLE, SMALL

BASE = dict(n=32, reynolds=100.0, t_end=2.0, output_interval=0.25, backend="numpy", spinup=2.0, warmup=4,
            timeout=5.0, cooldown=2, max_rejections=100)


def config(**kw) -> HybridConfig:
    return HybridConfig(**dict(BASE, **kw))


class EditsItsInput:
    """Adds 1 to the array it is handed, then fails: every call is rejected."""

    history_length = 1
    grid_divisor = 1
    factor = 2
    lead_time = 0.25

    def superres(self, coarse, reynolds, **kw):
        coarse += 1.0
        raise RuntimeError("edited its input, then crashed")

    def forecast(self, history, reynolds, **kw):
        history += 1.0
        raise RuntimeError("edited its input, then crashed")


class OneBuffer:
    """Another surrogate's answers, written into the same array on every call."""

    def __init__(self, inner):
        self.inner, self.buffer = inner, None
        self.factor, self.lead_time = inner.factor, inner.lead_time
        self.history_length, self.grid_divisor = inner.history_length, inner.grid_divisor

    def reset(self, omega0):
        self.inner.reset(omega0)

    def _into(self, pred):
        if self.buffer is None:
            self.buffer = np.empty_like(pred.mean)
        self.buffer[...] = pred.mean
        return Prediction(self.buffer)

    def superres(self, coarse, reynolds, **kw):
        return self._into(self.inner.superres(coarse, reynolds, **kw))

    def forecast(self, history, reynolds, **kw):
        return self._into(self.inner.forecast(history, reynolds, **kw))


class KilledAt(HybridSimulation):
    """The process dies at the start of tick ``kill`` (its earlier outputs checkpointed)."""

    kill = 3

    def _superres_tick(self, j, w_local):
        if j == self.kill:
            raise SystemExit("killed")
        return super()._superres_tick(j, w_local)

    def _leapfrog_tick(self, j, w_local):
        if j == self.kill:
            raise SystemExit("killed")
        return super()._leapfrog_tick(j, w_local)


# ---- the surrogate gets copies, and its answers are copied ------------------------------------------
@pytest.mark.parametrize("mode", ["superres", "leapfrog"])
@pytest.mark.parametrize("strategy", ["gather", "ensemble"])
def test_a_surrogate_that_edits_its_input_does_not_change_the_trajectory(mode, strategy):
    cfg = config(mode=mode, factor=2, jumps=2, strategy=strategy, ensemble=2 if strategy == "ensemble" else 1)
    edited = HybridSimulation(cfg, EditsItsInput()).run()
    assert not any(d["accepted"] for d in edited.decisions) and edited.summary["calls"] > 0
    only_raises = HybridSimulation(cfg, Broken("raise", factor=2)).run()
    assert np.array_equal(edited.fields, only_raises.fields)


@pytest.mark.parametrize("mode", ["superres", "leapfrog"])
def test_answers_in_one_reused_buffer_are_copied_when_accepted(mode):
    cfg = config(mode=mode, factor=2, jumps=2, disabled_checks=["superres_consistency"])
    oracle = SolverSurrogate(32, cfg.solver_kwargs(), factor=2, lead_time=0.25)
    res = HybridSimulation(cfg, OneBuffer(oracle)).run()
    accepted = [i for i, s in enumerate(res.sources) if s == "surrogate"]
    assert len(accepted) >= 2
    pure = HybridSimulation(config(mode="pure")).run()
    assert np.abs(res.fields - pure.fields).max() <= 1e-12 * np.abs(pure.fields).max()
    assert not np.array_equal(res.fields[accepted[0]], res.fields[accepted[-1]])


# ---- timed-out calls ----------------------------------------------------------------------------------
def test_a_timed_out_call_is_never_overlapped_and_is_joined_at_the_end():
    sur = Broken("sleep", sleep=0.6)
    history = np.zeros((1, 32, 32))
    kw = dict(ensemble=1, time_=0.25, n=32, strategy="gather", timeout=0.1)
    first = call_surrogate(sur, "forecast", history, 100.0, call=0, **kw)
    second = call_surrogate(sur, "forecast", history, 100.0, call=1, **kw)
    assert first.reason == second.reason == "timeout"
    assert "was not started" in second.error and sur.calls == 1  # never entered twice at once
    finish_running_calls()
    assert not [t for t in threading.enumerate() if t.name == "surrogate-call"]
    third = call_surrogate(sur, "forecast", history, 100.0, call=2, **dict(kw, timeout=2.0))
    assert third.error is None and sur.calls == 2


SHIPPED_SHORT_TIMEOUT = """
mode = "superres"
[grid]
n = 64
factor = 4
[time]
t_end = 2.0
output_interval = 0.5
spinup = 0.0
[solver]
backend = "numpy"
[surrogate]
timeout = 0.001
"""


def test_a_run_whose_flex_calls_all_time_out_exits_cleanly(tmp_path):
    """Calls past their timeout had left torch running in threads at exit: SIGABRT."""
    cfg = tmp_path / "short.toml"
    cfg.write_text(SHIPPED_SHORT_TIMEOUT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([str(FLEXCOUPLE), "run", "--config", str(cfg), "--out", str(tmp_path / "run"),
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "terminate called" not in proc.stderr
    reasons = {json.loads(line)["reason"] for line in (tmp_path / "run" / "decisions.jsonl").read_text().splitlines()}
    assert "timeout" in reasons


# ---- resume: the same model, an intact state -----------------------------------------------------------
def _other_model(path, like):
    """A checkpoint like ``like`` (same config) with other weights."""
    import torch

    from flexcouple.checkpoint import read_config, save_checkpoint
    from flexcouple.models import build_model
    torch.manual_seed(1)
    model = build_model("flex", "tiny", tasks=("superres", "forecast"), image_size=32)
    old = read_config(like)
    return save_checkpoint(path, model, {"normalization": old["normalization"], "data": old["data"]})


def test_resume_refuses_a_checkpoint_folder_that_now_holds_another_model(checkpoint, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(checkpoint, model)
    cfg = config(mode="superres", factor=2, t_end=1.0, checkpoint=str(model))
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        KilledAt(cfg, out=out).run()
    shutil.rmtree(model)
    _other_model(model, checkpoint)
    with pytest.raises(ValueError, match="another model") as err:
        HybridSimulation(cfg, out=out).run()
    assert str(model) in str(err.value)
    # the same model from another folder resumes: the run is keyed on its content, not its path
    moved = tmp_path / "moved"
    shutil.copytree(checkpoint, moved)
    res = HybridSimulation(cfg.replace(checkpoint=str(moved)), out=out).run()
    assert [d["tick"] for d in res.decisions] == [1, 2, 3, 4]


def test_a_truncated_run_state_is_reported_as_damaged(tmp_path):
    cfg = config(mode="leapfrog", jumps=2, t_end=1.0)
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        KilledAt(cfg, PersistenceSurrogate(0.25), out=out).run()
    state = out / "state.npz"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(ValueError, match="damaged run state.*--overwrite"):
        HybridSimulation(cfg, PersistenceSurrogate(0.25), out=out).run()


# ---- the harvest folder --------------------------------------------------------------------------------
def test_a_harvest_dir_holding_another_data_set_or_other_files_is_refused(tmp_path):
    cfg = config(mode="leapfrog", jumps=2, t_end=1.0, warmup=1, harvest_enabled=True)
    dataset = tmp_path / "dataset"
    (dataset / "data" / "train").mkdir(parents=True)
    meta = json.dumps({"format": "flexcouple data set", "config_hash": "0123", "status": "complete"})
    (dataset / "flexcouple_dataset.json").write_text(meta)
    (dataset / "data" / "train" / "kolmogorov.hdf5").write_text("data")
    with pytest.raises(FileExistsError, match="another data set"):
        HybridSimulation(cfg.replace(harvest_dir=str(dataset)), PersistenceSurrogate(0.25), out=tmp_path / "a")
    assert (dataset / "flexcouple_dataset.json").read_text() == meta
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="todo.txt"):
        HybridSimulation(cfg.replace(harvest_dir=str(notes)), PersistenceSurrogate(0.25), out=tmp_path / "b")
    # this run's own harvest is taken up again; another run's is refused
    shared = tmp_path / "harvest"
    HybridSimulation(cfg.replace(harvest_dir=str(shared)), PersistenceSurrogate(0.25), out=tmp_path / "c").run()
    assert (shared / "flexcouple_dataset.json").exists()
    HybridSimulation(cfg.replace(harvest_dir=str(shared)), PersistenceSurrogate(0.25), out=tmp_path / "c").run()
    with pytest.raises(FileExistsError, match="another run"):
        HybridSimulation(cfg.replace(harvest_dir=str(shared), reynolds=120.0), PersistenceSurrogate(0.25),
                         out=tmp_path / "d")


# ---- flexcouple run: harvest setting, --overwrite ------------------------------------------------------
# every jump of persistence is rejected, so a harvest has something to write
REJECTED = (SMALL.format(t_end=1.0).replace('kind = "oracle"', 'kind = "persistence"')
            + "[harvest]\nenabled = {enabled}\n")


@pytest.mark.parametrize("enabled, flags, written", [("false", [], False), ("true", [], True),
                                                     ("true", ["--no-harvest"], False)])
def test_run_harvests_only_when_the_config_enables_it(tmp_path, enabled, flags, written):
    cfg = tmp_path / "h.toml"
    cfg.write_text(REJECTED.format(enabled=enabled))
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(out), "--no-progress", *flags]) == 0
    rejected = [d for d in map(json.loads, (out / "decisions.jsonl").read_text().splitlines()) if d["called"]]
    assert rejected and not any(d["accepted"] for d in rejected)
    assert (out / "harvest").exists() == written


def test_overwrite_refuses_files_it_did_not_write_and_removes_only_its_own(tmp_path, capsys):
    cfg = tmp_path / "h.toml"
    cfg.write_text(REJECTED.format(enabled="true"))
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(out), "--no-progress", "--reference"]) == 0
    (out / "harvest" / "my_notes.txt").write_text("mine")
    (out / "outputs" / "my.h5").write_text("mine")
    (out / "mine.txt").write_text("mine")
    assert main(["run", "--config", str(cfg), "--out", str(out), "--no-progress", "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert "harvest/my_notes.txt" in err and "outputs/my.h5" in err and "Traceback" not in err
    assert (out / "state.npz").exists() and (out / "trajectory.h5").exists()  # nothing removed
    (out / "harvest" / "my_notes.txt").unlink()
    (out / "outputs" / "my.h5").unlink()
    (out / "outputs" / "000099.npz").write_text("a stale output")
    assert main(["run", "--config", str(cfg), "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert not (out / "outputs" / "000099.npz").exists() and not (out / "reference").exists()
    assert (out / "mine.txt").read_text() == "mine"
    assert (out / "trajectory.h5").exists() and (out / "harvest" / "flexcouple_dataset.json").exists()


def test_a_run_stopped_between_a_harvest_flush_and_its_state_harvests_no_example_twice(tmp_path, monkeypatch):
    from coupling.rundir import RunDirectory as RunDir
    from flexcouple.data.datasets import ForecastDataset
    cfg = config(mode="leapfrog", jumps=2, t_end=2.0, warmup=1, harvest_enabled=True)
    full = HybridSimulation(cfg, PersistenceSurrogate(0.25), out=tmp_path / "full").run()
    rejected = [d for d in full.decisions if d["called"] and not d["accepted"]]
    assert len(rejected) >= 3
    out = tmp_path / "run"
    write_state, writes = RunDir.write_state, []

    def dies_at_the_second_part(self, meta, arrays):  # that part is already on disk, its state is not
        writes.append(meta["harvest_parts"])
        if meta["harvest_parts"] == 2:
            raise SystemExit("killed")
        write_state(self, meta, arrays)

    monkeypatch.setattr(RunDir, "write_state", dies_at_the_second_part)
    with pytest.raises(SystemExit):
        HybridSimulation(cfg, PersistenceSurrogate(0.25), out=out).run()
    monkeypatch.setattr(RunDir, "write_state", write_state)
    parts = sorted((out / "harvest" / "data" / "train").glob("*.hdf5"))
    stored = json.loads(str(np.load(out / "state.npz")["meta"]))
    assert len(parts) == 2 and stored["harvest_parts"] == 1  # a part the state does not count
    HybridSimulation(cfg, PersistenceSurrogate(0.25), out=out).run()
    ds, ref = (ForecastDataset(d / "harvest", "train", past=1, lead=1) for d in (out, tmp_path / "full"))
    assert len(ds) == len(ref) == len(rejected)
    assert np.array_equal(ds[len(ds) - 1]["target"].numpy(), ref[len(ref) - 1]["target"].numpy())
    # a part removed by hand is reported, not silently re-harvested around
    stored = json.loads(str(np.load(out / "state.npz")["meta"]))
    for part in sorted((out / "harvest" / "data" / "train").glob("*.hdf5")):
        part.unlink()
    with pytest.raises(ValueError, match="removed by hand.*--overwrite"):
        HybridSimulation(cfg, PersistenceSurrogate(0.25), out=out).run()
    assert stored["harvest_parts"] >= 2 and writes[-1] == 2
