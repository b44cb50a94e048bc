"""The demo's solver stage through the CLI (the full pipeline's stages are tested in their own modules)."""
import h5py

from flexcouple_cli import main


def test_demo_solver_stage_writes_its_files(tmp_path, capsys):
    assert main(["demo", "--pipeline", "--out", str(tmp_path), "--n", "32", "--t-end", "0.2", "--solver-only"]) == 0
    out = capsys.readouterr().out
    assert "1/4 solver" in out and "ms/step" in out
    with h5py.File(tmp_path / "kolmogorov_re1000.h5") as f:
        assert f["vorticity"].shape == (6, 32, 32)
    assert (tmp_path / "kolmogorov_re1000.png").stat().st_size > 1000
