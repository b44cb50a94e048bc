"""Raw space against residual space (``flexcouple train --space raw``): recorded, honoured, refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from flexcouple import checkpoint as ckpt
from flexcouple.models import build_model
from flexcouple.training import TrainConfig, train
from tests.flexcouple.test_training import sets, small_config

NORM = {"normalization": {"mean": 0.0, "std": 1.0}}


def _pair(name: str, task: str):
    """The same network (same weights) in residual and in raw space."""
    torch.manual_seed(0)
    residual = build_model(name, "tiny", (task,), image_size=16, dropout=0.0).eval()
    raw = build_model(name, "tiny", (task,), image_size=16, dropout=0.0, space="raw").eval()
    raw.load_state_dict(residual.state_dict())
    return residual, raw


@pytest.mark.parametrize("name,task", [("flex", "superres"), ("flex", "forecast"), ("regression", "forecast")])
def test_a_raw_space_sample_does_not_add_the_base(name, task):
    residual, raw = _pair(name, task)
    channels = 1 if task == "superres" else 2
    condition = torch.randn(2, channels, 16, 16, generator=torch.Generator().manual_seed(1)) + 3.0
    base = condition if task == "superres" else condition[:, -1:]
    noise = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    out_res = residual.sample(condition, 1000.0, steps=2, task=task, noise=noise)
    out_raw = raw.sample(condition, 1000.0, steps=2, task=task, noise=noise)
    # the network's output is the same; only the residual-space model adds the base (mean 3, not 0)
    torch.testing.assert_close(out_raw, out_res - base[:, None], rtol=1e-5, atol=1e-5)
    assert float((out_res - out_raw).abs().mean()) > 1.0


def test_raw_space_training_learns_the_target_itself_and_records_it(tmp_path):
    cfg = small_config(tmp_path, space="raw")
    train(cfg, sets(("superres", "forecast"), size=16))
    config = ckpt.read_config(cfg.out)
    assert config["space"] == "raw"
    assert ckpt.read_training_info(cfg.out)["train_config"]["space"] == "raw"
    model, _ = ckpt.load_checkpoint(cfg.out)
    assert model.space == "raw"
    # the loss is on the target itself: a model whose residual-space loss is the same differs here
    item = sets(("superres",), size=16)["superres"][0]
    batch = {k: torch.as_tensor(v)[None] for k, v in item.items()}
    t, noise = torch.full((1,), 0.5), torch.zeros(1, 1, 16, 16)
    residual = build_model("flex", "tiny", ("superres", "forecast"), image_size=16, dropout=0.0)
    residual.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert float(model({"superres": batch}, t=t, noise=noise)) != float(residual({"superres": batch}, t=t, noise=noise))
    # resuming it as a residual-space run is refused
    with pytest.raises(ValueError, match="space"):
        train(small_config(tmp_path, steps=6), sets(("superres", "forecast"), size=16), resume=True)


def test_a_config_without_space_loads_as_residual(tmp_path):
    model = build_model("flex", "tiny", ("superres",), image_size=16)
    del model.config["space"]  # a checkpoint written before raw space existed
    ckpt.save_checkpoint(tmp_path / "old", model, NORM)
    assert "space" not in ckpt.read_config(tmp_path / "old")
    loaded, _ = ckpt.load_checkpoint(tmp_path / "old")
    assert loaded.space == "residual"


def test_the_surrogate_honours_raw_space(tmp_path):
    from coupling.surrogates import FlexSurrogate
    _, raw = _pair("flex", "forecast")
    ckpt.save_checkpoint(tmp_path / "raw", raw, {**NORM, "data": {"forecast_options": {"lead_time": 0.25}}})
    sur = FlexSurrogate.from_checkpoint(tmp_path / "raw")
    assert sur.model.space == "raw"
    history = np.random.default_rng(0).standard_normal((2, 16, 16)) + 50.0
    out = sur.forecast(history, 1000.0).mean
    # an untrained raw-space model's output is near 0, nowhere near the last snapshot (mean 50)
    assert abs(float(np.mean(out))) < 25.0


def test_an_unknown_space_is_refused(tmp_path, capsys):
    from flexcouple_cli import main
    with pytest.raises(ValueError, match="space must be one of residual, raw"):
        TrainConfig(space="bogus")
    with pytest.raises(ValueError, match="space must be one of residual, raw"):
        build_model("flex", "tiny", ("superres",), image_size=16, space="bogus")
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tmp_path), "--space", "bogus"])
    assert "--space: invalid choice: 'bogus'" in capsys.readouterr().err
