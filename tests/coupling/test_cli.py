"""`flexcouple run`: the example config, the files a run writes, --reference, errors, kill -9 + resume."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from coupling import HybridConfig
from coupling.report import read_trajectory
from flexcouple_cli import main

FLEXCOUPLE = Path(sys.executable).with_name("flexcouple")
SMALL = """
mode = "leapfrog"
[grid]
n = 32
[flow]
reynolds = 100.0
[time]
t_end = {t_end}
output_interval = 0.25
spinup = 1.0
[solver]
backend = "numpy"
[surrogate]
kind = "oracle"
lead_time = 0.25
[leapfrog]
jumps = 2
[checks]
warmup = 2
"""


def write(tmp_path, t_end=2.0, name="h.toml"):
    path = tmp_path / name
    path.write_text(SMALL.format(t_end=t_end))
    return path


def test_print_config_is_a_valid_commented_config(tmp_path, capsys):
    assert main(["run", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "# superres | leapfrog | pure" in text
    (tmp_path / "c.toml").write_text(text)
    assert HybridConfig.from_toml(tmp_path / "c.toml") == HybridConfig()


def test_run_writes_trajectory_log_summary_and_reference(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--config", str(write(tmp_path)), "--out", str(out), "--reference", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "speedup" in printed and "reference" in printed
    traj = read_trajectory(out / "trajectory.h5")
    assert traj["vorticity"].shape == (9, 32, 32) and "surrogate" in traj["sources"]
    from flexcouple.data.well import validate_file
    validate_file(out / "trajectory.h5", full=True)
    decisions = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    assert decisions and all({"source", "checks", "wall", "accepted"} <= set(d) for d in decisions if d["called"])
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["time_s"]) >= {"solver", "surrogate", "checks", "comm", "io"}
    ref = summary["reference"]
    # the oracle reproduces the pure solver: correlation 1 throughout
    assert min(ref["accuracy"]["correlation"]) > 1 - 1e-12
    assert ref["accuracy"]["time_until_correlation_below"]["0.95"] == float("inf")
    assert ref["speedup"] > 0
    assert (out / "reference" / "trajectory.h5").exists()


@pytest.mark.parametrize("content, message", [
    ('mode = "superres"\n[grid]\nn = 64\nfactor = 3\n', "factor 3 must divide"),
    ('[grid]\nnn = 64\n', "unknown key 'nn' in [grid] (did you mean 'n'?)"),
    ('[flow]\nreynolds = "high"\n', "reynolds must be a positive number"),
    ("mode = \n", "not valid TOML"),
])
def test_bad_configs_fail_with_one_line(tmp_path, capsys, content, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_unwritable_out_and_missing_config_are_refused(tmp_path, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["run", "--config", str(write(tmp_path)), "--out", str(afile), "--no-progress"]) == 1
    assert "is a file, not a directory" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "nope.toml"), "--no-progress"]) == 1
    assert "--print-config" in capsys.readouterr().err


def test_another_config_in_the_same_out_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--config", str(write(tmp_path, 1.0)), "--out", str(out), "--no-progress"]) == 0
    other = tmp_path / "other.toml"
    other.write_text(SMALL.format(t_end=1.0).replace("reynolds = 100.0", "reynolds = 150.0"))
    assert main(["run", "--config", str(other), "--out", str(out), "--no-progress"]) == 1
    assert "another config" in capsys.readouterr().err
    (out / "mine.txt").write_text("keep me")
    assert main(["run", "--config", str(other), "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert (out / "mine.txt").read_text() == "keep me"


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    cfg = write(tmp_path, t_end=12.0)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    full = tmp_path / "full"
    subprocess.run([str(FLEXCOUPLE), "run", "--config", str(cfg), "--out", str(full), "--no-progress"], check=True,
                   env=env, capture_output=True, timeout=300)
    out = tmp_path / "killed"
    proc = subprocess.Popen([str(FLEXCOUPLE), "run", "--config", str(cfg), "--out", str(out), "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "outputs").glob("*.npz"))) < 12:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "trajectory.h5").exists(), "the run finished before it was killed; lengthen it"
    subprocess.run([str(FLEXCOUPLE), "run", "--config", str(cfg), "--out", str(out), "--no-progress"], check=True,
                   env=env, capture_output=True, timeout=300)
    a, b = read_trajectory(full / "trajectory.h5"), read_trajectory(out / "trajectory.h5")
    assert np.array_equal(a["vorticity"], b["vorticity"]) and a["sources"] == b["sources"]
    da = [json.loads(x)["tick"] for x in (full / "decisions.jsonl").read_text().splitlines()]
    db = [json.loads(x)["tick"] for x in (out / "decisions.jsonl").read_text().splitlines()]
    assert da == db


def test_the_command_line_resolves_the_default_checkpoint_once(tmp_path):
    """A FLEX run without a checkpoint gets the shipped default's path at the command line, so the
    run's config.toml names the model it loaded; a given checkpoint and stand-ins are left alone."""
    import argparse

    from coupling.cli import add_arguments, load_config
    from coupling.surrogates import default_checkpoint
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert load_config(parser.parse_args([])).checkpoint == str(default_checkpoint())
    assert load_config(parser.parse_args(["--checkpoint", str(tmp_path)])).checkpoint == str(tmp_path)
    assert load_config(parser.parse_args(["--config", str(write(tmp_path))])).checkpoint == ""  # the oracle
