"""Checkpoints: round trip, training-state round trip, and refusal of pickles, tampering and mismatches."""
from __future__ import annotations

import json

import pytest
import torch

from flexcouple import checkpoint as ckpt
from flexcouple.models import build_model
from flexcouple.optim import Lion

NORM = {"mean": 0.1, "std": 5.457}


def saved(tmp_path, name="flex", tasks=("superres", "forecast")):
    torch.manual_seed(0)
    model = build_model(name, "tiny", tasks, image_size=32)
    path = ckpt.save_checkpoint(tmp_path / "ckpt", model, {"normalization": NORM, "data": {"root": "/data/x"}})
    return model, path


@pytest.mark.parametrize("name", ["flex", "unet", "uvit", "regression"])
def test_round_trip_gives_the_same_model(tmp_path, name):
    model, path = saved(tmp_path, name)
    loaded, config = ckpt.load_checkpoint(path)
    assert config["model"] == name and config["tasks"] == ["superres", "forecast"]
    assert config["normalization"] == NORM and config["data"]["root"] == "/data/x"
    assert config["image_size"] == 32 and config["cond_snapshots"] == 2 and config["code_version"]
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    cond = torch.randn(1, 2, 32, 32)
    a = model.eval().sample(cond, 3000.0, task="forecast", generator=torch.Generator().manual_seed(0))
    b = loaded.sample(cond, 3000.0, task="forecast", generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert json.loads((path / "config.json").read_text())["parameters"] == sum(p.numel() for p in model.parameters())


def test_refuses_a_pickle(tmp_path):
    model, path = saved(tmp_path)
    torch.save(model.state_dict(), path / "model.safetensors")  # a zip-pickle in disguise
    with pytest.raises(ValueError, match="pickle"):
        ckpt.load_checkpoint(path)
    import pickle
    (path / "model.safetensors").write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(ValueError, match="pickle"):
        ckpt.load_checkpoint(path)
    torch.save(model.state_dict(), tmp_path / "legacy.pt")
    with pytest.raises((ValueError, FileNotFoundError), match="pickle|not a flexcouple"):
        ckpt.load_checkpoint(tmp_path / "legacy.pt")


def test_refuses_tampered_weights(tmp_path):
    _, path = saved(tmp_path)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last weight
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        ckpt.load_checkpoint(path)


def test_refuses_config_that_does_not_match_the_weights(tmp_path):
    _, path = saved(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["arch"]["channels"] = [32, 32, 64, 96]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match"):
        ckpt.load_checkpoint(path)
    config["arch"]["channels"] = [32, 32, 64, 64]
    config["tasks"] = ["superres"]  # the forecast encoder's weights become unexpected
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unexpected"):
        ckpt.load_checkpoint(path)


def test_refuses_broken_or_foreign_files(tmp_path):
    _, path = saved(tmp_path)
    garbage = b"not safetensors at all"
    (path / "model.safetensors").write_bytes(garbage)
    with pytest.raises(ValueError, match="not a safetensors"):
        ckpt.load_checkpoint(path)
    (path / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        ckpt.load_checkpoint(path)
    (path / "config.json").write_text(json.dumps({"model": "flex"}))
    with pytest.raises(ValueError, match="not a flexcouple checkpoint"):
        ckpt.load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="normalization"):
        ckpt.save_checkpoint(tmp_path / "x", build_model("flex", "tiny", image_size=32), {})


@pytest.mark.parametrize("optimizer", ["adamw", "lion"])
def test_training_state_round_trip(tmp_path, optimizer):
    model, path = saved(tmp_path)
    params = list(model.parameters())
    opt = (torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95)) if optimizer == "adamw"
           else Lion(params, lr=1e-4, betas=(0.9, 0.98)))
    batch = {"superres": {"condition": torch.randn(2, 1, 32, 32), "target": torch.randn(2, 1, 32, 32),
                          "reynolds": torch.tensor([1e3, 2e3])},
             "forecast": {"condition": torch.randn(2, 2, 32, 32), "target": torch.randn(2, 1, 32, 32),
                          "reynolds": torch.tensor([1e3, 2e3])}}
    model(batch, generator=torch.Generator().manual_seed(0)).backward()
    opt.step()
    ckpt.save_training_state(path, model_state=model.state_dict(), optimizer=opt, info={"step": 1})
    state = ckpt.load_training_state(path)
    fresh = type(opt)(params, lr=5.0)
    fresh.load_state_dict(state["optimizer"])
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"]
    assert tuple(b["param_groups"][0]["betas"]) == a["param_groups"][0]["betas"]
    for pid, entries in a["state"].items():
        for name, value in entries.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][pid][name]))
    assert state["info"]["step"] == 1 and set(state["model"]) == set(model.state_dict())
    (path / "training_state.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(ValueError, match="pickle"):
        ckpt.load_training_state(path)


def test_lion_moves_every_coordinate_by_lr():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = Lion([p], lr=0.1, betas=(0.9, 0.99))
    p.grad = torch.tensor([0.5, -3.0, 0.0])
    opt.step()
    assert torch.allclose(p.detach(), torch.tensor([0.9, -1.9, 3.0]))  # sign step; sign(0) = 0
    assert torch.allclose(opt.state[p]["exp_avg"], 0.01 * torch.tensor([0.5, -3.0, 0.0]))
