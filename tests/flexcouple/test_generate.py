"""`flexcouple generate`: end to end, resume after a kill, refusal to overwrite, bad input, MPI."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from flexcouple_cli import main
from flexcouple.data import generate as gen
from flexcouple.data import well
from flexcouple.data.config import DataConfig, OODSet, load_preset, save_config, to_toml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def small_config(**changes) -> DataConfig:
    cfg = load_preset("tiny").replace(n=32, snapshots=4, spinup=0.5, train=2, valid=1, test=1,
                                      reynolds=[100.0, 150.0], resolution_tolerance=1.0,
                                      ood=[OODSet("re_high", reynolds=[300.0])])
    return cfg.replace(**changes)


def quiet(msg):
    pass


def read_all(out: Path) -> dict:
    arrays = {}
    for p in sorted((out / "data").rglob("*.hdf5")):
        with h5py.File(p, "r") as f:
            arrays[str(p.relative_to(out))] = f["t0_fields/vorticity"][:]
    return arrays


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small data set generated once, serially, in-process."""
    out = tmp_path_factory.mktemp("gen") / "ref"
    cfg = small_config()
    meta = gen.generate(cfg, out, comm=None, progress=False, log=quiet)
    return out, cfg, meta, read_all(out)


def test_generate_writes_every_split(reference):
    out, cfg, meta, arrays = reference
    assert meta["status"] == "complete"
    assert sorted(meta["splits"]) == ["re_high", "test", "train", "valid"]
    assert len(arrays) == 2 + 2 + 2 + 1
    w = arrays["data/train/kolmogorov_periodic_Re100_kf4.hdf5"]
    assert w.shape == (2, 4, 32, 32) and np.isfinite(w).all()
    # different seeds -> different trajectories; same seed at another Re -> different flow too
    assert not np.allclose(w[0], w[1])
    test = arrays["data/test/kolmogorov_periodic_Re100_kf4.hdf5"]
    assert not np.allclose(test[0], w[0])
    # normalisation = moments of the training split
    train = np.concatenate([a.ravel() for k, a in arrays.items() if k.startswith("data/train")]).astype(np.float64)
    assert meta["normalization"]["mean"] == pytest.approx(train.mean(), abs=1e-6)
    assert meta["normalization"]["std"] == pytest.approx(train.std(), rel=1e-6)


def test_cli_end_to_end_and_rerun_skips_everything(tmp_path, capsys):
    cfg = small_config(ood=[])
    path = tmp_path / "cfg.toml"
    save_config(cfg, path)
    out = tmp_path / "cli"
    assert main(["generate", "--config", str(path), "--out", str(out), "--no-progress"]) == 0
    files = sorted((out / "data").rglob("*.hdf5"))
    assert len(files) == 6
    mtimes = [p.stat().st_mtime_ns for p in files]
    first = json.loads((out / "flexcouple_dataset.json").read_text())
    calls = []
    original = gen.simulate_trajectory
    gen.simulate_trajectory = lambda *a, **k: calls.append(a) or original(*a, **k)
    try:
        assert main(["generate", "--config", str(path), "--out", str(out), "--no-progress"]) == 0
    finally:
        gen.simulate_trajectory = original
    assert calls == [] and [p.stat().st_mtime_ns for p in files] == mtimes
    assert "(8 already done)" in capsys.readouterr().err
    # the same data set: its creation date (part of evaluate's resume keys) and generation time stand
    again = json.loads((out / "flexcouple_dataset.json").read_text())
    assert again["created"] == first["created"]
    assert again["generation_wall_time_s"] == first["generation_wall_time_s"]


def test_a_deleted_file_is_regenerated_identically(reference, tmp_path):
    ref_out, cfg, _, ref_arrays = reference
    out = tmp_path / "deleted"
    shutil.copytree(ref_out, out)
    victim = out / "data" / "test" / "kolmogorov_periodic_Re150_kf4.hdf5"
    victim.unlink()
    calls = []
    original = gen.simulate_trajectory
    gen.simulate_trajectory = lambda *a, **k: calls.append(a) or original(*a, **k)
    try:
        meta = gen.generate(cfg, out, comm=None, progress=False, log=quiet)
    finally:
        gen.simulate_trajectory = original
    assert len(calls) == cfg.test and meta["status"] == "complete"
    # regenerated bitwise: still the data set created then; the redone trajectories add their time
    assert meta["created"] == reference[2]["created"]
    assert meta["generation_wall_time_s"] > reference[2]["generation_wall_time_s"]
    with h5py.File(victim, "r") as f:
        np.testing.assert_array_equal(f["t0_fields/vorticity"][:], ref_arrays["data/test/kolmogorov_periodic_Re150_kf4.hdf5"])


def test_cli_flags_override_the_preset(tmp_path, capsys):
    assert main(["generate", "--preset", "tiny", "--n", "48", "--reynolds", "120,240", "--no-ood",
                 "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "n = 48" in text and "reynolds = [120.0, 240.0]" in text and "[[ood]]" not in text
    assert main(["generate", "--preset", "default", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    for split in ("train", "valid", "test", "re_low", "re_high", "boundary_free_slip", "forcing_k8"):
        assert f"data/{split}/" in plan


def test_resume_after_interruption_recomputes_only_missing_trajectories(reference, tmp_path):
    ref_out, cfg, _, ref_arrays = reference
    out = tmp_path / "resume"
    total = len(gen.plan(cfg))
    calls = []
    original = gen.simulate_trajectory

    def dies_after_three(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill between two trajectories
        calls.append(args)
        return original(*args, **kwargs)

    gen.simulate_trajectory = dies_after_three
    try:
        with pytest.raises(KeyboardInterrupt):
            gen.generate(cfg, out, comm=None, progress=False, log=quiet)
    finally:
        gen.simulate_trajectory = original
    assert len(list((out / ".work").rglob("traj_*.npz"))) == 3
    assert json.loads((out / well.METADATA_FILE).read_text())["status"] == "generating"
    # a temporary file from a writer killed mid-write, and a damaged trajectory file
    stale = out / "data" / "train" / ".kolmogorov_periodic_Re150_kf4.hdf5.tmp-abc12345"  # mkstemp-style
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\x89HDF partial")
    damaged = gen.trajectory_path(out, gen.plan(cfg)[-1], cfg.physics)
    damaged.parent.mkdir(parents=True, exist_ok=True)
    damaged.write_bytes(b"PK\x03\x04 truncated")

    calls.clear()
    counting = lambda *a, **k: calls.append(a) or original(*a, **k)  # noqa: E731
    gen.simulate_trajectory = counting
    try:
        meta = gen.generate(cfg, out, comm=None, progress=False, log=quiet)
    finally:
        gen.simulate_trajectory = original
    assert len(calls) == total - 3  # the three checkpointed trajectories were not recomputed
    assert meta["status"] == "complete" and not stale.exists() and not (out / ".work").exists()
    arrays = read_all(out)
    assert arrays.keys() == ref_arrays.keys()
    for k in arrays:  # deterministic: identical to the uninterrupted run
        np.testing.assert_array_equal(arrays[k], ref_arrays[k])


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_the_same_data_set(tmp_path):
    # long enough trajectories (~0.3 s each) that the kill lands mid-run, never after the end
    cfg = small_config(n=48, spinup=2.0, name="killed")
    gen.generate(cfg, tmp_path / "reference", comm=None, progress=False, log=quiet)
    ref_arrays = read_all(tmp_path / "reference")
    path = tmp_path / "cfg.toml"
    save_config(cfg, path)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "flexcouple_cli", "generate", "--config", str(path), "--out", str(out), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / ".work").rglob("traj_*.npz")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert json.loads((out / well.METADATA_FILE).read_text())["status"] == "generating", left
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    arrays = read_all(out)
    assert arrays.keys() == ref_arrays.keys(), (left, done.stderr)
    for k in arrays:
        np.testing.assert_array_equal(arrays[k], ref_arrays[k], err_msg=f"{k}; left after the kill: {left}")


def test_refuses_to_overwrite_a_data_set_made_with_another_config(reference, tmp_path, capsys):
    ref_out, cfg, _, _ = reference
    out = tmp_path / "copy"
    shutil.copytree(ref_out, out)
    other = cfg.replace(reynolds=[100.0, 175.0])
    with pytest.raises(FileExistsError, match="another config"):
        gen.generate(other, out, comm=None, progress=False, log=quiet)
    path = tmp_path / "other.toml"
    save_config(other.replace(ood=[], valid=0, test=0, train=1), path)
    assert main(["generate", "--config", str(path), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "pass --overwrite" in err and "Traceback" not in err
    assert main(["generate", "--config", str(path), "--out", str(out), "--no-progress", "--overwrite"]) == 0
    meta = json.loads((out / well.METADATA_FILE).read_text())
    assert meta["splits"]["train"]["reynolds"] == [100.0, 175.0]
    assert sorted(p.parent.name for p in (out / "data").rglob("*.hdf5")) == ["train", "train"]


def test_overwrite_removes_only_the_data_sets_own_files(reference, tmp_path, capsys):
    ref_out, cfg, _, _ = reference
    out = tmp_path / "copy"
    shutil.copytree(ref_out, out)
    (out / "README.txt").write_text("my notes")                    # beside the data set: never touched
    (out / "data" / "train" / "README.txt").write_text("notes")   # in the way: named, kept
    with h5py.File(out / "data" / "train" / "mine.hdf5", "w") as f:
        f["x"] = np.arange(3)
    before = sorted(p for p in out.rglob("*") if p.is_file())
    path = tmp_path / "other.toml"
    save_config(cfg.replace(reynolds=[100.0, 175.0], ood=[], valid=0, test=0, train=1), path)
    args = ["generate", "--config", str(path), "--out", str(out), "--no-progress", "--overwrite"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "data/train/README.txt" in err and "data/train/mine.hdf5" in err and "Traceback" not in err
    assert sorted(p for p in out.rglob("*") if p.is_file()) == before  # nothing deleted
    (out / "data" / "train" / "README.txt").unlink()
    (out / "data" / "train" / "mine.hdf5").rename(tmp_path / "mine.hdf5")
    assert main(args) == 0
    assert (out / "README.txt").read_text() == "my notes"
    assert sorted(p.name for p in (out / "data").rglob("*.hdf5")) == [
        "kolmogorov_periodic_Re100_kf4.hdf5", "kolmogorov_periodic_Re175_kf4.hdf5"]
    assert not (out / "data" / "valid").exists()  # the old splits' folders went with their files


def test_foreign_and_truncated_files_in_the_data_directory_are_named(reference, tmp_path):
    ref_out, cfg, _, _ = reference
    out = tmp_path / "foreign"
    shutil.copytree(ref_out, out)
    intruder = out / "data" / "train" / "someone_else.hdf5"
    with h5py.File(intruder, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(FileExistsError, match="someone_else.hdf5: not part of this data set"):
        gen.generate(cfg, out, comm=None, progress=False, log=quiet)
    intruder.unlink()
    victim = out / "data" / "valid" / "kolmogorov_periodic_Re100_kf4.hdf5"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(well.WellFormatError, match="kolmogorov_periodic_Re100_kf4.hdf5"):
        gen.generate(cfg, out, comm=None, progress=False, log=quiet)
    # a directory that is not a data set is never written into
    other = tmp_path / "not_a_dataset"
    (other / "data").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a flexcouple data set"):
        gen.generate(cfg, other, comm=None, progress=False, log=quiet)


def test_bad_configs_are_reported_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('physics = "kolmogorov"\n[grid]\nn = 30\n[storage]\ncoarsen_factors = [8]\n')
    assert main(["generate", "--config", str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "does not divide n = 30" in err and "Traceback" not in err
    assert main(["generate", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["generate", "--preset", "tiny"]) == 1
    assert "--out DIR is required" in capsys.readouterr().err


def test_unusable_backend_fails_before_writing_anything(tmp_path, capsys):
    from solver import cupy_available

    if cupy_available()[0]:
        pytest.skip("a CUDA GPU is present: the cupy backend is usable here")
    out = tmp_path / "gpu"
    assert main(["generate", "--preset", "tiny", "--backend", "cupy", "--out", str(out)]) == 1
    assert "cupy" in capsys.readouterr().err and not out.exists()


def test_under_resolved_cases_warn_and_are_recorded(tmp_path):
    cfg = small_config(reynolds=[2000.0], train=1, valid=0, test=0, ood=[], resolution_tolerance=1e-6,
                       snapshots=2)
    with pytest.warns(gen.UnderResolvedWarning, match="under-resolved"):
        meta = gen.generate(cfg, tmp_path / "coarse", comm=None, progress=False, log=quiet)
    assert meta["warnings"] and "under-resolved" in meta["warnings"][0]
    prov = well.read_provenance(tmp_path / "coarse" / meta["splits"]["train"]["files"][0])
    assert prov["under_resolved"] is True or prov["under_resolved"] == 1


def _mpi_run(args, tmp_path, n=2, timeout=180):
    mpiexec = VENV_BIN / "mpiexec"
    if not mpiexec.exists():
        pytest.skip(f"no mpiexec next to {sys.executable} (install the mpich wheel)")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [str(mpiexec), "-n", str(n), sys.executable, "-m", "flexcouple_cli", "generate", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.mpi
def test_mpi_two_ranks_spread_trajectories_and_match_serial(reference, tmp_path):
    _, cfg, _, ref_arrays = reference
    path = tmp_path / "cfg.toml"
    save_config(cfg, path)
    out = tmp_path / "mpi"
    res = _mpi_run(["--config", str(path), "--out", str(out)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "[rank 0/2] done" in res.stderr and "[rank 1/2] done" in res.stderr
    arrays = read_all(out)
    assert arrays.keys() == ref_arrays.keys()
    for k in arrays:  # each trajectory is computed serially on one rank: bitwise identical
        np.testing.assert_array_equal(arrays[k], ref_arrays[k])
    meta = json.loads((out / well.METADATA_FILE).read_text())
    assert meta["ranks"] == 2


@pytest.mark.mpi
def test_mpi_slab_decomposition_of_each_trajectory(reference, tmp_path):
    pytest.importorskip("mpi4py_fft", reason="slab decomposition needs mpi4py-fft")
    _, cfg, _, ref_arrays = reference
    small = cfg.replace(ood=[], valid=0, test=0)
    path = tmp_path / "cfg.toml"
    save_config(small, path)
    out = tmp_path / "slab"
    res = _mpi_run(["--config", str(path), "--out", str(out), "--slab"], tmp_path)
    assert res.returncode == 0, res.stderr
    arrays = read_all(out)
    assert len(arrays) == 2
    for k, a in arrays.items():
        np.testing.assert_allclose(a, ref_arrays[k], atol=1e-4 * np.abs(ref_arrays[k]).max())
    prov = well.read_provenance(out / next(iter(arrays)))
    assert prov["slab_decomposition"] and prov["solver_settings"]["ranks"] == 2


def test_stored_kolmogorov_flow_has_the_forced_mean_profile_along_the_right_axis(tmp_path):
    """End-to-end physics and layout check: forcing f = (sin(4y), 0) drives a mean streamwise velocity
    <u>(y) ~ sin(4y); it must show up in velocity[..., 0] as a function of axis 1 (y), not axis 0."""
    cfg = small_config(reynolds=[100.0], train=2, valid=0, test=0, spinup=5.0, snapshots=8, interval=0.5, ood=[])
    meta = gen.generate(cfg, tmp_path / "kolmogorov", comm=None, progress=False, log=quiet)
    with h5py.File(tmp_path / "kolmogorov" / meta["splits"]["train"]["files"][0], "r") as f:
        uv = f["t1_fields/velocity"][:].astype(np.float64)
    y = 2 * np.pi * np.arange(cfg.n) / cfg.n
    forced = np.sin(cfg.forcing_wavenumber * y)
    assert np.corrcoef(uv[..., 0].mean(axis=(0, 1, 2)), forced)[0, 1] > 0.9      # <u>(y)
    assert abs(np.corrcoef(uv[..., 0].mean(axis=(0, 1, 3)), forced)[0, 1]) < 0.6  # not <u>(x)
    assert abs(np.corrcoef(uv[..., 1].mean(axis=(0, 1, 2)), forced)[0, 1]) < 0.6  # not <v>(y)


@pytest.mark.parametrize("physics", ["decaying", "free_slip_channel", "no_slip_channel", "obstacle"])
def test_every_physics_preset_generates(physics, tmp_path):
    cfg = load_preset(physics).replace(n=32, snapshots=2, spinup=0.3, interval=0.1, train=1, valid=0, test=0,
                                       reynolds=[100.0], ood=[], resolution_tolerance=1.0, coarsen_factors=[4])
    meta = gen.generate(cfg, tmp_path / physics, comm=None, progress=False, log=quiet)
    path = tmp_path / physics / meta["splits"]["train"]["files"][0]
    summary = well.validate_file(path, config_hash=cfg.config_hash(), full=True)
    with h5py.File(path, "r") as f:
        w = f["t0_fields/vorticity"][0]
        bcs = {name: g.attrs["bc_type"] for name, g in f["boundary_conditions"].items()}
    assert summary["boundary"] == cfg.boundaries[0] and np.abs(w).max() > 0
    assert not np.allclose(w[0], w[1])  # the flow evolves
    if physics == "obstacle":
        assert bcs["solid"] == "WALL" and "inflow_velocity" in summary["parameters"]
    if physics.endswith("channel"):
        assert bcs["y_wall"] == "WALL"
    if physics == "free_slip_channel":  # the sine series in y: vorticity vanishes on the wall y = 0
        assert np.abs(w[:, :, 0]).max() < 1e-4 * np.abs(w).max()


def test_console_script(tmp_path):
    script = VENV_BIN / "flexcouple"
    if not script.exists():
        pytest.skip(f"{script} is not installed (run `make install`, which pip-installs the package)")
    res = subprocess.run([str(script), "generate", "--preset", "tiny", "--n", "32", "--no-ood", "--print-config"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "n = 32" in res.stdout


@pytest.mark.slow
def test_the_shipped_tiny_preset_end_to_end(tmp_path):
    """The embedded default exactly as `flexcouple demo` uses it (under a minute on one core)."""
    from flexcouple.data.datasets import ForecastDataset, SuperResDataset

    out = tmp_path / "tiny"
    assert main(["generate", "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    meta = json.loads((out / well.METADATA_FILE).read_text())
    cfg = load_preset("tiny")
    assert meta["status"] == "complete" and meta["config_hash"] == cfg.config_hash()
    assert meta["warnings"] == []  # every case within tiny's resolution tolerance
    assert sorted(meta["splits"]) == sorted(cfg.split_names())
    assert len(list((out / "data").rglob("*.hdf5"))) == sum(len(cfg.cases(s)) for s in cfg.split_names())
    sr = SuperResDataset(out, "train", crop=32)
    fc = ForecastDataset(out, "re_high")
    assert sr[0]["condition"].shape == (1, 32, 32) and fc[0]["condition"].shape == (2, 64, 64)
    assert len(sr) == 2 * cfg.train * cfg.snapshots


FAILING_RANK_SCRIPT = """
import sys
from mpi4py import MPI
from flexcouple_cli import main
from flexcouple.data import generate as gen

real = gen.simulate_trajectory

def simulate_trajectory(cfg, case, seed, comm=None):
    if MPI.COMM_WORLD.rank == 1:
        raise RuntimeError("rank 1 ran out of memory")
    return real(cfg, case, seed, comm=comm)

gen.simulate_trajectory = simulate_trajectory
sys.exit(main(["generate", "--config", sys.argv[1], "--out", sys.argv[2], "--no-progress"] + sys.argv[3:]))
"""


@pytest.mark.mpi
@pytest.mark.parametrize("slab", [False, True])
def test_mpi_one_failing_rank_ends_the_job_with_one_message(reference, tmp_path, slab):
    """Dealt trajectories: the failure is agreed after the work; --slab: the failing rank aborts the job
    (the other is inside the same trajectory's collectives)."""
    if slab:
        pytest.importorskip("mpi4py_fft", reason="slab decomposition needs mpi4py-fft")
    mpiexec = VENV_BIN / "mpiexec"
    if not mpiexec.exists():
        pytest.skip(f"no mpiexec next to {sys.executable} (install the mpich wheel)")
    _, cfg, _, _ = reference
    path = tmp_path / "cfg.toml"
    save_config(cfg.replace(ood=[], valid=0, test=0), path)
    script = tmp_path / "job.py"
    script.write_text(FAILING_RANK_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [str(mpiexec), "-n", "2", sys.executable, str(script), str(path), str(tmp_path / "out")]
    try:
        res = subprocess.run(cmd + (["--slab"] if slab else []), cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the MPI job hung after one rank failed")
    assert res.returncode != 0
    assert res.stderr.count("rank 1 ran out of memory") == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert not list((tmp_path / "out").glob("data/*/*.hdf5"))


@pytest.mark.mpi
def test_mpi_a_bad_config_is_reported_once(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('physics = "kolmogorov"\n[grid]\nn = 30\n[storage]\ncoarsen_factors = [8]\n')
    res = _mpi_run(["--config", str(bad), "--out", str(tmp_path / "o")], tmp_path, timeout=120)
    assert res.returncode != 0
    assert res.stderr.count("does not divide n = 30") == 1, res.stderr


def test_an_unwritable_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    (tmp_path / "a_file").write_text("")
    assert main(["generate", "--preset", "tiny", "--out", str(tmp_path / "a_file"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and "Traceback" not in err
    import solver.paths
    monkeypatch.setattr(solver.paths.os, "access", lambda path, mode: False)  # read-only, even for root
    assert main(["generate", "--preset", "tiny", "--out", str(tmp_path / "ro" / "ds"), "--no-progress"]) == 1
    assert "is not writable" in capsys.readouterr().err and not (tmp_path / "ro").exists()


def test_only_the_programs_own_temporaries_are_removed(reference, tmp_path):
    ref_out, cfg, _, _ = reference
    out = tmp_path / "copy"
    shutil.copytree(ref_out, out)
    mine = [out / "backup.tmp-2024.txt", out / "notes" / "draft.tmp-1.md", out / ".notes.tmp-abcdefgh",
            out / "notes" / ".kolmogorov_periodic_Re100_kf4.hdf5.tmp-abc12345"]  # not where the set writes it
    for p in mine:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("the user's")
    ours = [out / ".flexcouple_dataset.json.tmp-k1ll3d_x",
            out / "data" / "train" / ".kolmogorov_periodic_Re100_kf4.hdf5.tmp-abc12345"]
    for p in ours:
        p.write_bytes(b"partial")
    gen.generate(cfg, out, comm=None, progress=False, log=quiet)
    assert all(p.read_text() == "the user's" for p in mine)
    assert not any(p.exists() for p in ours)


def test_a_full_disk_gives_one_line_no_temporary_and_the_rerun_works(tmp_path, capsys, full_disk):
    path = tmp_path / "small.toml"
    # the config file is the test's setup, written past the full disk (save_config writes atomically,
    # so it would fail too)
    path.write_text(to_toml(small_config(ood=[], valid=0, test=0, train=1, reynolds=[100.0])))
    out = tmp_path / "ds"
    args = ["generate", "--config", str(path), "--out", str(out), "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"no space left on device while writing {out}" in err and "free space and rerun" in err
    assert "Traceback" not in err and "Errno" not in err
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    full_disk.undo()
    assert main(args) == 0
    assert json.loads((out / well.METADATA_FILE).read_text())["status"] == "complete"
