"""`flexcouple run`: initial-condition files and outputs it cannot use are named, with what to do,
before any work; no raw OSError, IndexError or traceback."""
import errno

import h5py
import numpy as np
import pytest

from coupling import HybridConfig
from coupling.hybrid import HybridSimulation
from flexcouple_cli import main

SUPERRES = """
mode = "superres"
[grid]
n = 64
factor = 4
[flow]
reynolds = 100.0
[time]
t_end = 0.5
output_interval = 0.25
spinup = 0.0
[initial_condition]
file = "{init}"
[solver]
backend = "numpy"
[surrogate]
kind = "oracle"
"""


def run(tmp_path, init, out=None):
    config = tmp_path / "run.toml"
    config.write_text(SUPERRES.format(init=init))
    return main(["run", "--config", str(config), "--out", str(out or tmp_path / "out"), "--no-progress"])


def test_initial_condition_files_that_cannot_serve_are_named(tmp_path, capsys, monkeypatch):
    field = np.random.default_rng(0).standard_normal((64, 64))
    np.save(tmp_path / "good.npy", field)
    (tmp_path / "truncated.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:200])
    (tmp_path / "folder.npy").mkdir()
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("t0_fields/vorticity", shape=(1, 0, 64, 64), dtype="f4")
    nan = field.copy()
    nan[5, 7] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    cases = [("truncated.npy", "cannot be read"), ("folder.npy", "is a directory"),
             ("empty.h5", "holds no snapshot"), ("nan.npy", "1 NaN or Inf values (first at [5, 7])")]
    for name, message in cases:
        assert run(tmp_path, tmp_path / name) == 1, name
        err = capsys.readouterr().err
        assert str(tmp_path / name) in err and message in err and "Traceback" not in err, err
    denied = OSError(errno.EACCES, "Permission denied", str(tmp_path / "good.npy"))
    with monkeypatch.context() as m:  # unreadable (simulated: the tests may run as root)
        m.setattr(np, "load", lambda *a, **k: (_ for _ in ()).throw(denied))
        assert run(tmp_path, tmp_path / "good.npy") == 1
    err = capsys.readouterr().err
    assert "good.npy cannot be read (Permission denied)" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before the run folder was made
    assert run(tmp_path, tmp_path / "good.npy") == 0


def test_an_output_that_cannot_be_written_is_named_with_what_to_do(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "good.npy", np.random.default_rng(0).standard_normal((64, 64)))
    out = tmp_path / "out"
    (out / "trajectory.h5").mkdir(parents=True)  # in the way of a file the run writes
    assert run(tmp_path, tmp_path / "good.npy", out) == 1
    err = capsys.readouterr().err
    assert f"{out / 'trajectory.h5'}: is a directory; a directory is where a file is expected" in err and "Errno" not in err and "Traceback" not in err
    import solver.paths
    monkeypatch.setattr(solver.paths.os, "access", lambda path, mode: False)  # read-only, even for root
    assert run(tmp_path, tmp_path / "good.npy", tmp_path / "ro") == 1
    assert "is not writable" in capsys.readouterr().err


def test_a_bad_initial_field_is_named_by_what_is_wrong():
    cfg = HybridConfig(mode="pure", n=32, reynolds=100.0, t_end=0.5, output_interval=0.25, spinup=0.0,
                       backend="numpy")
    sim = HybridSimulation(cfg)
    with pytest.raises(ValueError, match=r"has shape \(16, 16\), but the run's grid is \(32, 32\)"):
        sim.run(np.zeros((16, 16)))
    field = np.zeros((32, 32))
    field[3, 4] = np.inf
    with pytest.raises(ValueError, match=r"contains 1 NaN or Inf values \(first at \[3, 4\]\)"):
        sim.run(field)


def test_a_full_disk_gives_one_line_no_temporary_and_the_rerun_works(tmp_path, capsys, full_disk):
    np.save(tmp_path / "good.npy", np.random.default_rng(0).standard_normal((64, 64)))
    out = tmp_path / "out"
    assert run(tmp_path, tmp_path / "good.npy", out) == 1
    err = capsys.readouterr().err
    assert f"no space left on device while writing {out}" in err and "free space and rerun" in err
    assert "Traceback" not in err and "Errno" not in err
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    full_disk.undo()
    assert run(tmp_path, tmp_path / "good.npy", out) == 0 and (out / "trajectory.h5").is_file()
