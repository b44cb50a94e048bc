"""The parts a hybrid run is made of: its decisions, their tally, the suspension rule, the schedule and
the run directory (each tested alone; tests/coupling/test_hybrid.py runs them together)."""
import json

import numpy as np
import pytest

from coupling.config import HybridConfig
from coupling.decision import Decision, Suspension, Tally
from coupling.rundir import STATE_KEYS, RunDirectory
from coupling.schedule import Schedule


def test_a_decision_logs_only_the_fields_that_apply():
    suspended = Decision.suspended(3, 1.5, "superres")
    assert suspended.source == "interpolation" and not suspended.called
    assert set(suspended.entry()) == {"tick", "time", "task", "called", "call", "accepted", "reason", "checks", "source"}
    failed = Decision(4, 2.0, "forecast", called=True, call=0, reason="timeout", error="took 9 s",
                      wall={"surrogate_s": 9.0, "comm_s": 0.0})
    assert failed.source == "solver" and "failed_checks" not in failed.entry() and failed.entry()["error"] == "took 9 s"
    ok = Decision(5, 2.5, "superres", called=True, call=1, accepted=True, failed_checks=[], prediction=object())
    entry = ok.entry()
    assert entry["source"] == "surrogate" and entry["failed_checks"] == [] and "prediction" not in entry
    json.dumps(entry)  # a log line
    with pytest.raises(ValueError, match="task"):
        Decision(1, 0.5, "superresolution")


def test_the_tally_counts_by_reason_and_survives_its_json():
    tally = Tally()
    for d in [Decision(1, 0.5, "superres", called=True, accepted=True),
              Decision(2, 1.0, "superres", called=True, reason="check_failed"),
              Decision(3, 1.5, "superres", called=True, reason="check_failed"),
              Decision(4, 2.0, "superres", called=True, reason="timeout"),
              Decision.suspended(5, 2.5, "superres")]:
        tally.add(d)
    assert (tally.accepted, tally.rejected, tally.suspended, tally.n_rejected) == (1, {"check_failed": 2, "timeout": 1}, 1, 3)
    assert Tally.from_json(json.loads(json.dumps(tally.to_json()))) == tally
    # a run state written before the tally had its own layout still resumes with its counts
    flat = {"accepted": 1, "rejected_check_failed": 2, "rejected_timeout": 1, "suspended": 1}
    assert Tally.from_json(flat) == tally


def test_suspension_after_max_rejections_in_a_row_for_cooldown_ticks():
    s = Suspension(max_rejections=2, cooldown=3)
    assert s.record(1, False) is None and s.record(2, True) is None  # an acceptance resets the streak
    assert s.record(3, False) is None and s.record(4, False) == 7
    assert [s.active(j) for j in (4, 5, 7, 8)] == [True, True, True, False] and s.streak == 0


class _Forecaster:
    lead_time = 0.25
    history_length = 2


def test_the_leapfrog_schedule_is_a_function_of_the_tick_alone():
    cfg = HybridConfig(mode="leapfrog", n=32, t_end=3.0, output_interval=0.5, warmup=2, stretch=1, jumps=2, relax=1,
                       surrogate_kind="persistence", lead_time=0.25)
    s = Schedule.of(cfg, _Forecaster())
    assert (s.dt_tick, s.output_every, s.n_ticks, s.history_length) == (0.25, 2, 12, 2)
    assert [s.kind(j) for j in range(1, 9)] == ["solver", "solver", "solver", "jump", "jump", "relax", "solver", "jump"]
    assert Schedule.of(cfg.replace(mode="superres", factor=2, surrogate_kind="spectral")).kind(5) == "solver"
    with pytest.raises(ValueError, match="multiple of"):
        Schedule.of(cfg.replace(output_interval=0.6), _Forecaster())
    with pytest.raises(ValueError, match="stretch"):
        Schedule.of(cfg.replace(stretch=0), _Forecaster())


def test_the_run_directory_names_a_damaged_state_and_cuts_the_log_back(tmp_path):
    run = RunDirectory(tmp_path / "run")
    assert run.read_state() is None
    meta = {k: 0 for k in STATE_KEYS}
    run.write_state(meta, {"solver": np.zeros((4, 4))})
    got_meta, arrays = run.read_state()
    assert got_meta == meta and arrays["solver"].shape == (4, 4)
    for i in range(3):
        run.append_decision({"call": i})
    assert run.cut_log(2) == [{"call": 0}, {"call": 1}]
    assert len(run.log_path.read_text().splitlines()) == 2
    run.write_output(0, np.ones((4, 4)), None, "solver")
    field, std, source = run.read_output(0)
    assert source == "solver" and std is None and field.sum() == 16
    run.state_path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="damaged run state.*--overwrite"):
        run.read_state()
    del meta["tick"]
    run.write_state(meta, {"solver": np.zeros((4, 4))})
    with pytest.raises(ValueError, match="lacks tick"):
        run.read_state()
