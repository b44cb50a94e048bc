"""The ``flexcouple simulate`` command, restarts, and the solver's independence from torch."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from flexcouple_cli import main
from solver import NavierStokes2D, random_field


def test_simulate_writes_snapshots_and_picture(tmp_path, capsys):
    out, png = tmp_path / "run.h5", tmp_path / "run.png"
    rc = main(["simulate", "--n", "32", "--reynolds", "300", "--t-end", "0.5", "--snapshots", "3",
               "--backend", "numpy", "--out", str(out), "--plot", str(png)])
    assert rc == 0
    assert png.stat().st_size > 1000
    with h5py.File(out) as f:
        assert f["vorticity"].shape == (3, 32, 32)
        np.testing.assert_allclose(f["time"][:], [0.0, 0.25, 0.5])
        settings = json.loads(f.attrs["solver_settings"])
        assert settings["reynolds"] == 300 and settings["integrator"] == "ETDRK4"
        assert json.loads(f.attrs["run_stats"])["steps"] > 0
        final = f["vorticity"][-1]
    expected = NavierStokes2D(32, 300.0, forcing="kolmogorov", drag=0.1).trajectory(
        random_field(32, seed=0), [0.0, 0.25, 0.5])[-1]
    np.testing.assert_allclose(final, expected, atol=1e-10)
    assert "ms/step" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.tmp"))


def test_simulate_refuses_to_overwrite_and_restarts_from_its_output(tmp_path, capsys):
    out = tmp_path / "run.h5"
    args = ["simulate", "--n", "32", "--t-end", "0.2", "--snapshots", "2", "--backend", "numpy"]
    assert main(args + ["--out", str(out)]) == 0
    before = out.read_bytes()
    assert main(args + ["--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before  # nothing written was lost
    cont = tmp_path / "cont.h5"
    assert main(args + ["--init", str(out), "--out", str(cont)]) == 0
    with h5py.File(out) as a, h5py.File(cont) as b:
        np.testing.assert_allclose(b["vorticity"][0], a["vorticity"][-1], atol=1e-12)  # FFT round trip


@pytest.mark.parametrize("extra, message", [
    (["--n", "33"], "n must be an even integer"),
    (["--reynolds", "-1"], "reynolds must be a positive number"),
    (["--init", "nowhere.npy"], "does not exist"),
    (["--init", "sideways"], "unknown --init"),
    (["--snapshots", "0"], "--snapshots"),
])
def test_simulate_bad_input_gives_a_clear_error(extra, message, capsys):
    assert main(["simulate", "--n", "32", "--t-end", "0.1", "--backend", "numpy"] + extra) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_solver_never_imports_torch():
    code = ("import sys, numpy, solver, solver.cli, solver.mpi, solver.resample as r; "
            "r.spectral_upsample(r.coarsen(numpy.ones((8, 8)), 2), 2); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("flexcouple")
    if not exe.exists():
        pytest.skip(f"no console script next to {sys.executable}: the package is not pip-installed here")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "simulate" in proc.stdout


def test_simulate_checks_its_inputs_and_outputs_before_any_work(tmp_path, capsys, monkeypatch):
    base = ["simulate", "--n", "32", "--t-end", "0.1", "--backend", "numpy"]
    (tmp_path / "a_file").write_text("")
    (tmp_path / "junk.h5").write_text("not hdf5")
    field = np.random.default_rng(0).standard_normal((32, 32))
    np.save(tmp_path / "complex.npy", field + 1j * field)
    nan = field.copy()
    nan[3, 4] = np.inf
    np.save(tmp_path / "nan.npy", nan)
    for extra, message in [
        (["--out", str(tmp_path / "a_file" / "run.h5")], "is a file, not a directory"),
        (["--out", str(tmp_path)], "is a directory; give a file name"),
        (["--plot", str(tmp_path / "a_file" / "p.png")], "is a file, not a directory"),
        (["--init", str(tmp_path / "junk.h5")], "cannot be read"),
        (["--init", str(tmp_path / "complex.npy")], "must be a real array"),
        (["--init", str(tmp_path / "nan.npy")], "1 NaN or Inf values (first at [3, 4])"),
    ]:
        assert main(base + extra) == 1, extra
        captured = capsys.readouterr()
        assert message in captured.err and "Traceback" not in captured.err, (extra, captured.err)
        assert "steps" not in captured.out  # refused before the solver ran
    # a read-only folder (simulated: the tests may run as root, who can write anywhere)
    import solver.paths
    monkeypatch.setattr(solver.paths.os, "access", lambda path, mode: False)
    assert main(base + ["--out", str(tmp_path / "ro" / "run.h5")]) == 1
    assert "is not writable" in capsys.readouterr().err


def test_spectrum_slope_is_not_printed_as_nan_on_a_small_grid(capsys):
    assert main(["simulate", "--n", "32", "--t-end", "0.1", "--snapshots", "2", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out.lower() and "not measured" in out


def test_fields_the_solver_refuses_and_a_field_at_rest():
    sim = NavierStokes2D(32, 100.0, forcing=None)
    with pytest.raises(ValueError, match="complex"):
        sim.advance(np.zeros((32, 32), complex), 0.1)
    with pytest.raises(ValueError, match=r"shape \(32, 32\), got \(31, 32\)"):
        sim.advance([[0.0] * 32] * 31, 0.1)  # a list of lists: its real shape is named
    assert sim.advance([[0.0] * 32] * 32, 0.1).shape == (32, 32)
    # no flow at all: the adaptive step lands on t_end (it used to shrink geometrically and give up)
    assert np.abs(sim.advance(np.zeros((32, 32)), 0.01)).max() == 0 and sim.last_stats["steps"] == 1


SIMULATE = ["simulate", "--n", "32", "--t-end", "0.1", "--snapshots", "2", "--backend", "numpy"]


def test_a_full_disk_gives_one_line_no_temporary_and_the_rerun_works(tmp_path, capsys, full_disk):
    out = tmp_path / "a.h5"
    stale = tmp_path / ".a.h5.tmp-k1ll3d_x"  # a killed run's temporary of the same file
    stale.write_bytes(b"\x89HDF partial")
    assert main(SIMULATE + ["--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"no space left on device while writing {out}" in err and "free space and rerun" in err
    assert "Traceback" not in err and "Errno" not in err
    assert list(tmp_path.iterdir()) == []  # neither the new temporary nor the stale one is left
    full_disk.undo()  # space freed
    assert main(SIMULATE + ["--out", str(out)]) == 0 and list(tmp_path.iterdir()) == [out]


def test_restart_files_that_cannot_serve_are_named_with_the_problem(tmp_path, capsys):
    good = np.random.default_rng(0).standard_normal((32, 32))
    np.save(tmp_path / "good.npy", good)
    (tmp_path / "truncated.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:200])
    (tmp_path / "folder.npy").mkdir()
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("vorticity", shape=(0, 32, 32), dtype="f8")
    for name, message in [("truncated.npy", "cannot be read"), ("folder.npy", "is a directory"),
                          ("empty.h5", "holds no snapshot")]:
        assert main(SIMULATE + ["--init", str(tmp_path / name)]) == 1, name
        err = capsys.readouterr().err
        assert f"{tmp_path / name}" in err and message in err and "Traceback" not in err, err
    assert main(SIMULATE + ["--threads", "-3"]) == 1
    err = capsys.readouterr().err
    assert "threads must be an integer >= 1" in err and "Traceback" not in err
