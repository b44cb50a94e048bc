"""The offline statistics benchmark: super-resolved coarse-solver states' time-mean spectrum."""
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from flexcouple.checkpoint import save_checkpoint
from flexcouple.data import generate as gen
from flexcouple.data.config import load_preset
from flexcouple.models import build_model

SPEC = importlib.util.spec_from_file_location(
    "bench_sr_statistics", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sr_statistics.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("srstat") / "ds"
    cfg = load_preset("tiny").replace(n=64, snapshots=5, spinup=0.5, train=1, valid=1, test=0, reynolds=[100.0],
                                      resolution_tolerance=1.0, store_velocity=False, coarsen_factors=[2],
                                      coarse_solver_factors=[2], coarse_solver_horizon=2)
    meta = gen.generate(cfg, out, comm=None, progress=False, log=lambda m: None)
    return out, meta


def _checkpoint(path, meta, upsample):
    torch.manual_seed(0)
    model = build_model("flex", "tiny", tasks=("superres",), image_size=64)
    norm = {"mean": float(meta["normalization"]["mean"]), "std": float(meta["normalization"]["std"])}
    return str(save_checkpoint(path, model, {"normalization": norm, "data": {"superres_options": {
        "factor": 2, "coarsen_method": "spectral", "upsample": upsample}}}))


def test_a_model_that_adds_nothing_scores_exactly_as_spectral_interpolation(dataset, tmp_path):
    root, meta = dataset
    # a fresh FLEX's output layer is zero (v = 0): one DDIM step returns alpha(1) noise, ~5e-5 of it, as
    # its residual, so its field is the spectral upsampling itself
    ckpt = _checkpoint(tmp_path / "fresh", meta, "spectral")
    assert bench.main(["--data", str(root), "--split", "valid", "--checkpoint", ckpt, "--steps", "1",
                       "--out", str(tmp_path), "--name", "s"]) == 0
    result = json.loads((tmp_path / "s.json").read_text())
    (row,) = result["trajectories"]
    assert row["snapshots"] == 5 and row["reynolds"] == 100.0
    spectral, model = result["summary"]["spectral"], result["summary"][ckpt]
    assert spectral["statistics_error_mean"] > 0
    assert math.isclose(model["statistics_error_mean"], spectral["statistics_error_mean"], rel_tol=1e-3)
    # and pointwise too: the same RFNE as the interpolation, which misses the fine scales (> 0)
    assert spectral["rfne_mean"] > 0 and math.isclose(model["rfne_mean"], spectral["rfne_mean"], rel_tol=1e-3)
    # in the top band, beyond the coarse grid's modes but for their corners, spectral interpolation
    # holds a few percent of the truth's energy
    assert spectral["bands_mean"][list(spectral["bands_mean"])[-1]] < 0.05
    assert "machine" in result and "command" in result
    # which weights the path held, by content
    from flexcouple.checkpoint import config_digest, read_config
    assert result["model_digests"] == {ckpt: config_digest(read_config(ckpt))}


def test_a_checkpoint_fed_other_conditions_is_refused(dataset, tmp_path):
    root, meta = dataset
    ckpt = _checkpoint(tmp_path / "bicubic", meta, "bicubic")
    with pytest.raises(SystemExit, match="train with --upsample spectral"):
        bench.main(["--data", str(root), "--checkpoint", ckpt, "--out", str(tmp_path)])
    assert not (tmp_path / "sr_statistics.json").exists()
