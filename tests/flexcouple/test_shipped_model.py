"""The shipped default model (flexcouple/shipped/flex-tiny-kolmogorov256/): it installs with the package,
loads through the checkpoint verifier, records what the coupling layer needs, and samples both tasks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import flexcouple
from flexcouple.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint
from flexcouple.data.coarsen import coarsen, upsample
from solver import random_field

SHIPPED = Path(flexcouple.__file__).parent / "shipped" / "flex-tiny-kolmogorov256"
MAX_BYTES = 20 * 1024 * 1024

pytestmark = pytest.mark.skipif(
    not (SHIPPED / CONFIG_FILE).is_file(),
    reason=f"the shipped model is absent ({SHIPPED} has no {CONFIG_FILE}); "
           "make it with flexcouple/shipped/train_default_model.sh")


@pytest.fixture(scope="module")
def shipped():
    torch.manual_seed(0)
    return load_checkpoint(SHIPPED)


def test_shipped_folder_is_small_and_complete():
    files = sorted(p.name for p in SHIPPED.iterdir() if p.is_file())
    assert {CONFIG_FILE, WEIGHTS_FILE, "MODEL_CARD.md"} <= set(files), files
    assert not [f for f in files if f.startswith("training_state")], "the training state must not be shipped"
    total = sum(p.stat().st_size for p in SHIPPED.iterdir() if p.is_file())
    assert total < MAX_BYTES, f"the shipped model takes {total / 2**20:.1f} MiB (limit 20)"


def test_shipped_config_records_the_pipeline(shipped):
    _, config = shipped
    assert config["model"] == "flex" and config["size"] == "tiny"
    assert config["tasks"] == ["superres", "forecast"]
    assert set(config["files"]) == {WEIGHTS_FILE}, config["files"]
    norm = config["normalization"]
    assert np.isfinite(norm["mean"]) and norm["std"] > 0
    sr = config["data"]["superres_options"]
    assert sr["factor"] == 4 and sr["upsample"] == "spectral" and sr["coarsen_method"] == "spectral"
    fc = config["data"]["forecast_options"]
    assert fc["lead"] == 1 and fc["past"] == config["cond_snapshots"] == 2
    assert fc["lead_time"] == pytest.approx(0.5)
    dataset = config["data"]["dataset"]["config"]
    assert dataset["n"] == 256 and dataset["interval"] == pytest.approx(0.5)
    assert 1000.0 not in dataset["reynolds"], "Re 1000 (the demo's case) must stay unseen"


def _normalized(field, norm):
    return (field - norm["mean"]) / norm["std"]


def test_shipped_model_super_resolves_a_64_field(shipped):
    model, config = shipped
    norm = config["normalization"]
    fine = torch.from_numpy(random_field(64, seed=3, energy=2.0)).float()[None, None]
    cond = upsample(coarsen(fine, 4, method="spectral"), (64, 64), method="spectral")
    out = model.sample(_normalized(cond, norm), 1000.0, steps=2, ensemble=1, task="superres",
                       generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, 1, 64, 64)
    assert torch.isfinite(out).all()
    # the learned residual is a correction, not a new field
    assert (out[:, 0] - _normalized(cond, norm)).norm() < 3 * _normalized(cond, norm).norm()


def test_shipped_model_forecasts(shipped):
    model, config = shipped
    norm = config["normalization"]
    past = torch.stack([torch.from_numpy(random_field(64, seed=s, energy=2.0)).float() for s in (4, 5)])[None]
    out = model.sample(_normalized(past, norm), 1000.0, steps=2, ensemble=2, task="forecast",
                       generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 2, 1, 64, 64)
    assert torch.isfinite(out).all()
