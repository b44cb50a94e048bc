"""Data sets with coarse-solver states: generated beside the fine fields, read as super-resolution pairs."""
import h5py
import numpy as np
import pytest

from flexcouple.data import generate as gen
from flexcouple.data.coarse_runs import coarse_solver_states
from flexcouple.data.config import DataConfig, load_preset
from flexcouple.data.datasets import SuperResDataset


def small_config(**changes) -> DataConfig:
    cfg = load_preset("tiny").replace(n=64, snapshots=5, spinup=0.5, train=1, valid=1, test=0,
                                      reynolds=[100.0], resolution_tolerance=1.0, store_velocity=False,
                                      coarsen_factors=[2], coarse_solver_factors=[2], coarse_solver_horizon=2)
    return cfg.replace(**changes)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("coarse_solver") / "ds"
    cfg = small_config()
    meta = gen.generate(cfg, out, comm=None, progress=False, log=lambda m: None)
    return out, cfg, meta


def test_the_file_holds_the_coarse_solver_states_of_each_trajectory(dataset):
    out, cfg, meta = dataset
    assert meta["coarse_solver"] == {"factors": [2], "horizon": 2}
    path = out / meta["splits"]["train"]["files"][0]
    with h5py.File(path, "r") as f:
        fine = f["t0_fields/vorticity"][0].astype(np.float64)
        g = f["coarse/solver_x2"]
        assert g.attrs["method"] == "solver" and g.attrs["horizon"] == 2
        assert g["horizon"][:].tolist() == [0, 1, 2, 1, 2]
        stored = g["vorticity"][0]
    # the same run from the stored (float32) fine snapshots: equal to storage precision
    again, _ = coarse_solver_states(fine, cfg.interval, 2, 2, cfg.solver_kwargs(cfg.cases("train")[0]))
    np.testing.assert_allclose(stored, again, atol=1e-4 * np.abs(again).max())


def test_superres_pairs_from_either_source_or_both(dataset):
    out, _, _ = dataset
    trunc = SuperResDataset(out, "train", factor=2, upsample="spectral")
    solver = SuperResDataset(out, "train", factor=2, upsample="spectral", coarse_source="solver")
    both = SuperResDataset(out, "train", upsample="spectral", coarse_source="both")
    assert len(both) == len(trunc) + len(solver) and both.factor == 2
    # snapshot 0 is the restricted fine field either way; later ones differ by the coarse run's error
    np.testing.assert_allclose(trunc[0]["condition"], solver[0]["condition"], atol=1e-5)
    assert (trunc[2]["condition"] - solver[2]["condition"]).abs().max() > 1e-4
    np.testing.assert_array_equal(trunc[2]["target"], solver[2]["target"])
    np.testing.assert_array_equal(both[len(trunc) + 2]["condition"], solver[2]["condition"])


def test_a_data_set_without_coarse_solver_states_is_refused_with_what_to_do(tmp_path):
    cfg = small_config(coarse_solver_factors=[], valid=0)
    gen.generate(cfg, tmp_path / "plain", comm=None, progress=False, log=lambda m: None)
    with pytest.raises(ValueError, match=r"no coarse-solver states for x2.*coarse_solver_factors = \[2\]"):
        SuperResDataset(tmp_path / "plain", "train", factor=2, coarse_source="solver")
    with pytest.raises(ValueError, match="coarse_source must be one of"):
        SuperResDataset(tmp_path / "plain", "train", factor=2, coarse_source="coarse")


@pytest.mark.parametrize("changes, match", [
    (dict(coarse_solver_factors=[3]), "does not divide"),
    (dict(coarse_solver_factors=[8]), ">= 16 points"),
    (dict(coarse_solver_factors=[2], coarse_solver_horizon=0), "coarse_solver_horizon must be an integer >= 1"),
    (dict(coarse_solver_factors=[2], boundaries=["free-slip"]), "needs periodic boundaries"),
])
def test_bad_coarse_solver_settings_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        small_config(**changes).validate()


def test_unused_coarse_solver_keys_leave_the_data_set_identity_unchanged():
    plain = small_config(coarse_solver_factors=[])
    assert plain.config_hash() == plain.replace(coarse_solver_horizon=7).config_hash()
    assert plain.config_hash() != small_config().config_hash()


def test_train_on_coarse_solver_states_records_the_source_and_resumes_with_it(dataset, tmp_path, capsys):
    from flexcouple import checkpoint as ckpt
    from flexcouple_cli import main

    out_dir, _, _ = dataset
    run = tmp_path / "run"
    args = ["train", "--data", str(out_dir), "--task", "superres", "--size", "tiny", "--crop", "32", "--steps", "2",
            "--batch-size", "2", "--upsample", "spectral", "--coarse-source", "both", "--val-every", "2",
            "--val-batches", "1", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    config = ckpt.read_config(run)
    options = config["data"]["superres_options"]
    assert options["coarse_source"] == "both" and options["factor"] == 2
    # resume takes the stored source; a contradicting flag is refused by name
    assert main(["train", "--out", str(run), "--resume", "--coarse-source", "solver", "--steps", "3"]) == 1
    assert "--coarse-source 'solver' (the run has 'both')" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--steps", "3", "--no-progress"]) == 0
    assert ckpt.load_training_state(run)["info"]["step"] == 3


def test_evaluate_reports_a_model_on_coarse_solver_inputs(dataset, tmp_path, capsys):
    import json

    from flexcouple_cli import main

    out_dir, _, _ = dataset
    run = tmp_path / "run"
    assert main(["train", "--data", str(out_dir), "--task", "superres", "--size", "c16", "--crop", "32", "--steps", "1",
                 "--batch-size", "2", "--upsample", "spectral", "--coarse-source", "solver", "--out", str(run),
                 "--no-progress"]) == 0
    rfne = {}
    for source in ("truncation", "solver"):
        out = tmp_path / f"eval-{source}"
        assert main(["evaluate", "--checkpoint", str(run), "spectral", "--data", str(out_dir), "--task", "superres",
                     "--splits", "valid", "--out", str(out), "--coarse-source", source, "--max-samples", "3",
                     "--ensemble", "2", "--observables", "vorticity", "--figures", "none", "--no-progress"]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["coarse_source"] == source
        rfne[source] = metrics["models"]["spectral"]["by_split"]["valid"]["rfne"]
    # spectral interpolation of the coarse-solver state is further from the truth than of its truncation
    assert rfne["solver"] > rfne["truncation"]
    # a checkpoint trained on bicubic conditions cannot be fed the coarse-solver states' upsampling
    bicubic = tmp_path / "bicubic"
    assert main(["train", "--data", str(out_dir), "--task", "superres", "--size", "c16", "--crop", "32", "--steps", "1",
                 "--batch-size", "2", "--out", str(bicubic), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(bicubic), "--data", str(out_dir), "--task", "superres",
                 "--splits", "valid", "--out", str(tmp_path / "e3"), "--coarse-source", "solver"]) == 1
    assert "--upsample spectral" in capsys.readouterr().err
