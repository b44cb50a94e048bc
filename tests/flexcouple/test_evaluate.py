"""End to end: `flexcouple evaluate` on a tiny generated data set with a freshly initialised FLEX
checkpoint and the interpolation / persistence baselines; refusals; JSON and Markdown outputs."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flexcouple_cli import main
from flexcouple.evaluation import evaluate as E

FACTOR = 2


def _generate(root, n, ood=()):
    from flexcouple.data.config import DataConfig
    from flexcouple.data.generate import generate

    cfg = DataConfig(name="micro", n=n, ic_peak_wavenumber=2.0, reynolds=[100.0, 200.0], spinup=1.0, snapshots=14,
                     interval=0.25, train=1, valid=1, test=1, coarsen_factors=[FACTOR], resolution_tolerance=1.0,
                     ood=list(ood))
    generate(cfg, root, comm=None, progress=False, log=lambda msg: None)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A 32^2 Kolmogorov data set made by `flexcouple generate` (2 s): train/valid/test at Re 100 and
    200; OOD sets at Re 50 and 300 and with free-slip walls."""
    from flexcouple.data.config import OODSet

    return _generate(tmp_path_factory.mktemp("data") / "micro", 32,
                     [OODSet(name="re_low", reynolds=[50.0]), OODSet(name="re_high", reynolds=[300.0]),
                      OODSet(name="boundary_free_slip", boundaries=["free-slip"], reynolds=[100.0])])


def _normalization(root):
    meta = json.loads((Path(root) / "flexcouple_dataset.json").read_text())
    return {"mean": float(meta["normalization"]["mean"]), "std": float(meta["normalization"]["std"])}


def _checkpoint(tmp_path, root, task, name="flex-tiny", factor=FACTOR, cond_snapshots=2, upsample=None):
    from flexcouple.checkpoint import save_checkpoint
    from flexcouple.models import build_model

    torch.manual_seed(0)
    model = build_model("flex", "tiny", tasks=(task,), image_size=32, cond_snapshots=cond_snapshots)
    options = ({"superres_options": {"factor": factor, "coarsen_method": "spectral",
                                     **({"upsample": upsample} if upsample else {})}} if task == "superres"
               else {"forecast_options": {"past": cond_snapshots, "lead": 1}})
    return str(save_checkpoint(tmp_path / name, model, {"normalization": _normalization(root),
                                                        "data": {"root": str(root), **options}}))


def _run(argv):
    return main(["evaluate", "--no-progress", *argv])


# ------------------------------------------------------------------------------------ superres
@pytest.mark.slow
def test_superres_end_to_end_with_comparison(dataset, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, dataset, "superres")
    out = tmp_path / "eval"
    rc = _run(["--checkpoint", ckpt, "bicubic", "spectral", "--data", str(dataset), "--task", "superres",
               "--steps", "2", "--ensemble", "3", "--max-samples", "3", "--out", str(out),
               "--splits", "test", "re_low", "re_high", "boundary_free_slip"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["models"]) == {"flex-tiny", "bicubic", "spectral"}
    splits = set(m["models"]["bicubic"]["by_split"])
    assert splits == {"test", "re_low", "re_high", "boundary_free_slip", "velocity"}
    cats = set(m["models"]["bicubic"]["by_category"])
    assert cats == {"in_distribution", "unseen_re_below", "unseen_re_above", "unseen_boundary", "unseen_observable"}
    test = m["models"]["flex-tiny"]["by_split"]["test"]
    assert set(test["by_reynolds"]) == {"100", "200"}
    assert test["n_samples"] == 3
    for key in ("rfne", "psnr", "ssim", "max_error", "correlation", "crps", "crps_fair", "spread_skill_ratio",
                "coverage_50", "coverage_90", "spectrum_band_member", "spectrum_top_octave_member"):
        assert test[key] is not None and math.isfinite(test[key]), key
    assert sum(test["rank_histogram"]) == 3 * 32 * 32
    # baselines: deterministic, so the CRPS is the MAE and the spread is zero; interpolation of a
    # 16x16 coarse field of a resolved flow is a decent but imperfect reconstruction
    bic = m["models"]["bicubic"]["by_split"]["test"]
    assert 0 < bic["rfne"] < 1 and bic["spread"] == 0 and bic["spread_skill_ratio"] == 0
    spec = m["models"]["spectral"]["by_split"]["test"]
    # the spectral interpolant carries no energy above the coarse Nyquist: the top octave is missing
    assert spec["spectrum_top_octave_member"] > spec["spectrum_band_member"]
    # the velocity split holds both components of the test samples
    assert m["models"]["bicubic"]["by_split"]["velocity"]["n_samples"] == 6
    table = json.loads((out / "comparison.json").read_text())
    assert set(table["by_split"]["test"]) == {"flex-tiny", "bicubic", "spectral"}
    md = (out / "comparison.md").read_text()
    assert "| flex-tiny |" in md and "### unseen_re_above" in md and "Re=" in md
    for f in ("figures/flex-tiny/fields_test.png", "figures/flex-tiny/fields_velocity.png",
              "figures/flex-tiny/spectra.png", "figures/flex-tiny/calibration_test.png",
              "figures/compare_spectra.png", "figures/compare_rfne_by_reynolds.png"):
        assert (out / f).stat().st_size > 2000, f
    assert "RFNE" in capsys.readouterr().out


def test_bicubic_baseline_is_the_conditioning_field(dataset, tmp_path):
    """The bicubic pseudo-checkpoint's error is the data set's own condition error, and its CRPS
    equals its mean absolute error (a point forecast)."""
    out = tmp_path / "eval"
    metrics = E.evaluate(["bicubic"], dataset, "superres", out,
                         opts=E.Options(task="superres", ensemble=2, max_samples=2, progress=False,
                                        observables=("vorticity",)), splits=["test"])
    rep = metrics["models"]["bicubic"]["by_split"]["test"]
    plan = E.plan_splits(dataset, "superres", ["test"], E.Options(task="superres", max_samples=2,
                                                                   observables=("vorticity",)),
                         factor=None, past=2)["plans"][0]
    norm = plan.dataset.normalization
    errs, maes = [], []
    for i in plan.indices:
        item = plan.dataset[i]
        t = item["target"].double() * norm["std"] + norm["mean"]
        c = item["condition"].double() * norm["std"] + norm["mean"]
        errs.append(float(torch.linalg.norm(c - t) / torch.linalg.norm(t)))
        maes.append(float((c - t).abs().mean()))
    assert rep["rfne"] == pytest.approx(np.mean(errs), rel=1e-9)
    assert rep["crps"] == pytest.approx(np.mean(maes), rel=1e-9)
    assert rep["crps_fair"] == pytest.approx(np.mean(maes), rel=1e-9)  # zero spread: no pair term
    assert (out / "metrics.json").exists() and not (out / "comparison.md").exists()


def test_conditions_follow_the_checkpoints_upsampling(dataset, tmp_path):
    """A model trained on spectrally upsampled conditions is fed spectral conditions (fed bicubic ones it
    is silently much worse); the bicubic baseline stays the paper's image bicubic of the coarse field."""
    opts = lambda: E.Options(task="superres", ensemble=1, max_samples=2, progress=False,  # noqa: E731
                             observables=("vorticity",), figures="none")
    ckpt = _checkpoint(tmp_path, dataset, "superres", upsample="spectral")
    m = E.evaluate([ckpt, "bicubic", "spectral"], dataset, "superres", tmp_path / "eval", opts=opts(), splits=["test"])
    assert m["conditioning"]["upsample"] == "spectral"
    ref = E.evaluate(["bicubic"], dataset, "superres", tmp_path / "ref", opts=opts(), splits=["test"])
    assert ref["conditioning"]["upsample"] == "bicubic"
    bic = m["models"]["bicubic"]["by_split"]["test"]["rfne"]
    assert bic == pytest.approx(ref["models"]["bicubic"]["by_split"]["test"]["rfne"], rel=1e-5)
    assert m["models"]["spectral"]["by_split"]["test"]["rfne"] != pytest.approx(bic, rel=1e-3)
    plan = E.plan_splits(dataset, "superres", ["test"], opts(), factor=FACTOR, past=2, upsample="spectral",
                         periodic_bicubic=False)["plans"][0]
    assert plan.dataset.upsample == "spectral"


# ------------------------------------------------------------------------------------ forecast
@pytest.mark.slow
def test_forecast_rollout_end_to_end(dataset, tmp_path):
    ckpt = _checkpoint(tmp_path, dataset, "forecast")
    out = tmp_path / "eval"
    rc = _run(["--checkpoint", ckpt, "persistence", "--data", str(dataset), "--task", "forecast",
               "--ensemble", "2", "--horizon", "4", "--max-samples", "2", "--splits", "test", "re_high",
               "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    per = m["models"]["persistence"]["by_split"]["test"]
    assert len(per["rfne"]) == 4 and per["times"] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # persistence error grows with lead time on an evolving flow
    assert per["rfne"][0] < per["rfne"][-1]
    assert per["correlation"][0] > per["correlation"][-1]
    assert len(per["rank_histogram"]) == 4
    flex = m["models"]["flex-tiny"]["by_split"]["re_high"]
    assert flex["by_reynolds"].keys() == {"300"} and len(flex["crps"]) == 4
    assert "decorrelation_time_median" in flex
    assert (out / "figures/compare_lead_test.png").exists()
    assert "### test" in (out / "comparison.md").read_text()


# ------------------------------------------------------------------------------------- refusals
def test_refuses_a_checkpoint_for_another_task(dataset, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, dataset, "forecast")
    rc = _run(["--checkpoint", ckpt, "--data", str(dataset), "--task", "superres", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and "trained for forecast, not superres" in err
    assert "Traceback" not in err
    rc = _run(["--checkpoint", "persistence", "--data", str(dataset), "--task", "superres", "--out", str(tmp_path / "o")])
    assert rc == 1 and "use bicubic or spectral" in capsys.readouterr().err


def test_refuses_a_checkpoint_whose_resolution_does_not_fit(dataset, tmp_path_factory, tmp_path, capsys):
    # trained for x3 super-resolution: 3 does not divide the 32^2 grid, so no data fits it
    ckpt = _checkpoint(tmp_path, dataset, "superres", name="x3", factor=3)
    rc = _run(["--checkpoint", ckpt, "--data", str(dataset), "--task", "superres", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and "x3 super-resolution" in err and "does not divide" in err, err
    # FLEX tiny downsamples 4 times: a 24^2 grid is not divisible by 16
    small = _generate(tmp_path_factory.mktemp("data24") / "n24", 24)
    ckpt = _checkpoint(tmp_path, small, "superres", name="flex-24")
    rc = _run(["--checkpoint", ckpt, "--data", str(small), "--task", "superres", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and "divisible by 16" in err and "24x24" in err, err


def test_refuses_bad_paths_and_existing_output(dataset, tmp_path, capsys):
    assert _run(["--checkpoint", str(tmp_path / "nope"), "--data", str(dataset), "--task", "superres",
                 "--out", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert _run(["--checkpoint", "bicubic", "--data", str(tmp_path / "nodata"), "--task", "superres",
                 "--out", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert _run(["--checkpoint", "bicubic", "--data", str(dataset), "--task", "superres", "--splits", "nosuch",
                 "--out", str(tmp_path / "o")]) == 1
    assert "no split nosuch" in capsys.readouterr().err
    out = tmp_path / "o2"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    assert _run(["--checkpoint", "bicubic", "--data", str(dataset), "--task", "superres", "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_forecast_horizon_longer_than_the_trajectories_is_refused(dataset, tmp_path, capsys):
    rc = _run(["--checkpoint", "persistence", "--data", str(dataset), "--task", "forecast", "--horizon", "40",
               "--out", str(tmp_path / "o")])
    assert rc == 1 and "lower --horizon" in capsys.readouterr().err


# ------------------------------------------------------------------------------ data parallel
def _without_run_details(metrics):
    return {k: v for k, v in metrics.items() if k not in ("processes", "wall_time_s", "figures")}


@pytest.mark.mpi
@pytest.mark.slow
def _single_process_one_thread(argv, out):
    """The single-process reference run. The parallel run's processes have one thread each
    (OMP_NUM_THREADS=1); with another count float32 convolutions sum in another order (measured:
    1e-9 relative on the velocity split), and the exact comparison would fail for that alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*argv, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)


def test_two_mpi_ranks_give_exactly_the_single_process_numbers(dataset, tmp_path):
    """Each rank takes every other batch; the noise of batch b is seeded by b, and records are
    reduced in sample order: the reports must be identical to the last bit."""
    import os
    import subprocess
    import sys

    ckpt = _checkpoint(tmp_path, dataset, "superres")
    argv = ["evaluate", "--checkpoint", ckpt, "spectral", "--data", str(dataset), "--task", "superres",
            "--ensemble", "2", "--max-samples", "3", "--batch-size", "1", "--splits", "test", "re_high",
            "--figures", "none", "--no-progress"]
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("no mpiexec beside the Python interpreter (install the 'mpich' wheel)")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([str(mpiexec), "-n", "2", sys.executable, "-m", "flexcouple_cli", *argv,
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    _single_process_one_thread(argv, tmp_path / "one")
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["processes"] == 2 and one["processes"] == 1
    assert _without_run_details(two) == _without_run_details(one)


@pytest.mark.slow
def test_two_torchrun_processes_give_exactly_the_single_process_numbers(dataset, tmp_path):
    """The README's promise for torchrun (torch.distributed, gloo on CPU): the same report as one
    process. Tolerance zero, as for MPI: each process evaluates whole batches with the batch's own
    seeded noise, and the gathered records are reduced in sample order, so no sum is reordered."""
    import os
    import subprocess
    import sys

    from flexcouple.checkpoint import save_checkpoint
    from flexcouple.models import build_model

    torch.manual_seed(0)
    model = build_model("flex", "tiny", tasks=("superres",), image_size=32)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # off the zero-initialised output layer: the network's output is not trivially 0
        for p in model.parameters():
            p += 0.02 * torch.randn(p.shape, generator=g)
    ckpt = str(save_checkpoint(tmp_path / "flex-tiny", model, {
        "normalization": _normalization(dataset),
        "data": {"root": str(dataset), "superres_options": {"factor": FACTOR, "coarsen_method": "spectral"}}}))
    argv = ["evaluate", "--checkpoint", ckpt, "spectral", "--data", str(dataset), "--task", "superres",
            "--ensemble", "2", "--max-samples", "3", "--batch-size", "1", "--splits", "test", "re_high",
            "--figures", "none", "--no-progress"]
    torchrun = Path(sys.executable).parent / "torchrun"
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "PMI_SIZE",
                                                            "OMPI_COMM_WORLD_SIZE")}
    env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run([*launcher, "--standalone", "--nproc-per-node", "2", "-m", "flexcouple_cli", *argv,
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    _single_process_one_thread(argv, tmp_path / "one")
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["processes"] == 2 and one["processes"] == 1
    assert one["models"]["flex-tiny"]["by_split"]["test"]["n_samples"] == 3
    assert _without_run_details(two) == _without_run_details(one)


def test_an_interrupted_evaluation_resumes_after_its_finished_splits(dataset, tmp_path, monkeypatch):
    opts = lambda: E.Options(task="superres", ensemble=1, max_samples=2, progress=False,  # noqa: E731
                             observables=("vorticity",), figures="none")
    fresh = E.evaluate(["spectral"], dataset, "superres", tmp_path / "fresh", opts=opts(), splits=["test", "re_high"])
    real, calls = E.evaluate_split, []

    def interrupted(pred, plan, *a, **kw):
        calls.append(plan.name)
        if plan.name == "re_high" and len(calls) == 2:
            raise KeyboardInterrupt
        return real(pred, plan, *a, **kw)

    monkeypatch.setattr(E, "evaluate_split", interrupted)
    with pytest.raises(KeyboardInterrupt):
        E.evaluate(["spectral"], dataset, "superres", tmp_path / "run", opts=opts(), splits=["test", "re_high"])
    assert not (tmp_path / "run" / "metrics.json").exists()
    resumed = E.evaluate(["spectral"], dataset, "superres", tmp_path / "run", opts=opts(), splits=["test", "re_high"])
    assert calls == ["test", "re_high", "re_high"]  # the finished test split was not evaluated again
    from flexcouple.evaluation.report import to_jsonable
    assert to_jsonable(resumed["models"]) == to_jsonable(fresh["models"])
    # other settings are another evaluation: nothing is reused
    other = opts()
    other.seed = 1
    E.evaluate(["spectral"], dataset, "superres", tmp_path / "run", opts=other, splits=["test", "re_high"],
               overwrite=True)
    assert calls[-2:] == ["test", "re_high"]


def test_installed_console_script(dataset, tmp_path):
    import subprocess
    import sys

    script = Path(sys.executable).parent / "flexcouple"
    if not script.exists():
        pytest.skip("the flexcouple console script is not installed beside this interpreter (pip install -e .)")
    res = subprocess.run([str(script), "evaluate", "--checkpoint", "bicubic", "--data", str(dataset), "--task",
                          "superres", "--splits", "test", "--max-samples", "1", "--figures", "none", "--no-progress",
                          "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "bicubic" in res.stdout and (tmp_path / "o" / "metrics.json").exists()


def test_derived_velocity_matches_the_solvers_stored_velocity(dataset):
    """The unseen-observable split derives (u, v) spectrally from the vorticity; it must be the
    velocity the solver stored (t1_fields/velocity), sign conventions included."""
    import h5py

    from flexcouple.evaluation.metrics import velocity_from_vorticity

    path = sorted((Path(dataset) / "data" / "test").glob("*.hdf5"))[0]
    with h5py.File(path, "r") as f:
        w = f["t0_fields/vorticity"][0, :3].astype(np.float64)
        stored = f["t1_fields/velocity"][0, :3].astype(np.float64)
    u, v = velocity_from_vorticity(w)
    scale = np.abs(stored).max()
    np.testing.assert_allclose(u, stored[..., 0], atol=1e-5 * scale)
    np.testing.assert_allclose(v, stored[..., 1], atol=1e-5 * scale)


def test_a_full_disk_gives_one_line_no_temporary_and_the_rerun_works(dataset, tmp_path, capsys, full_disk):
    out = tmp_path / "o"
    argv = ["--checkpoint", "bicubic", "--data", str(dataset), "--task", "superres", "--splits", "test",
            "--max-samples", "2", "--ensemble", "1", "--observables", "vorticity", "--figures", "none",
            "--out", str(out)]
    assert _run(argv) == 1
    err = capsys.readouterr().err
    assert f"no space left on device while writing {out / '.shards'}" in err and "free space and rerun" in err
    assert "Traceback" not in err and "Errno" not in err
    assert not [p for p in out.rglob("*") if p.is_file()]  # no test.tmp, no half shard
    full_disk.undo()
    assert _run(argv) == 0 and (out / "metrics.json").is_file()


def test_bad_sample_counts_and_a_file_given_as_data_are_named(dataset, tmp_path, capsys):
    base = ["--checkpoint", "bicubic", "--task", "superres", "--out", str(tmp_path / "o")]
    assert _run(base + ["--data", str(dataset), "--max-samples", "0"]) == 1
    err = capsys.readouterr().err
    assert "--max-samples must be at least 1" in err and "TensorList" not in err
    (tmp_path / "a_file").write_text("")
    assert _run(base + ["--data", str(tmp_path / "a_file")]) == 1
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and "does not exist" not in err
