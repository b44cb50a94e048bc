"""The ``flexcouple simulate`` command, restarts, and the solver's independence from torch."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from flexcouple.cli import main
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
    (["--reynolds", "-1"], "reynolds must be positive"),
    (["--init", "nowhere.npy"], "does not exist"),
    (["--init", "sideways"], "unknown --init"),
    (["--snapshots", "0"], "--snapshots"),
])
def test_simulate_bad_input_gives_a_clear_error(extra, message, capsys):
    assert main(["simulate", "--n", "32", "--t-end", "0.1", "--backend", "numpy"] + extra) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_solver_never_imports_torch():
    code = "import sys, solver, solver.cli, solver.mpi; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("flexcouple")
    if not exe.exists():
        pytest.skip(f"no console script next to {sys.executable}: the package is not pip-installed here")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "simulate" in proc.stdout
