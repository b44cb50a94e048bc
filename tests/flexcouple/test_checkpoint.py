"""Checkpoints: round trip, training-state round trip, and refusal of pickles, tampering and mismatches."""
from __future__ import annotations

import json
from pathlib import Path

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


def rewrite_config(path, config, seal=True):
    """Write an edited config.json, re-sealed (as an adversary who knows the format would) or not."""
    if seal:
        config[ckpt.CONFIG_HASH] = ckpt.config_digest(config)
    (path / "config.json").write_text(json.dumps(config))


def test_refuses_config_that_does_not_match_the_weights(tmp_path):
    _, path = saved(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["arch"]["channels"] = [32, 32, 64, 96]
    rewrite_config(path, config)
    with pytest.raises(ValueError, match="do not match"):
        ckpt.load_checkpoint(path)
    config["arch"]["channels"] = [32, 32, 64, 64]
    config["tasks"] = ["superres"]  # the forecast encoder's weights become unexpected
    rewrite_config(path, config)
    with pytest.raises(ValueError, match="unexpected"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("edit", ["normalization.std", "arch.heads", "data.root", "files.model.safetensors"])
def test_refuses_an_edited_config(tmp_path, edit):
    _, path = saved(tmp_path)
    config = json.loads((path / "config.json").read_text())
    assert config["format_version"] == 2 and config[ckpt.CONFIG_HASH] == ckpt.config_digest(config)
    section, key = edit.split(".", 1)
    config[section][key] = {"normalization.std": 1.0, "arch.heads": 2, "data.root": "/elsewhere",
                            "files.model.safetensors": "0" * 64}[edit]
    rewrite_config(path, config, seal=False)
    with pytest.raises(ValueError, match="edited after it was saved"):
        ckpt.load_checkpoint(path)
    del config[ckpt.CONFIG_HASH]  # removing the hash does not help either
    rewrite_config(path, config, seal=False)
    with pytest.raises(ValueError, match="records no config_sha256"):
        ckpt.load_checkpoint(path)


def test_unknown_model_name_is_a_clear_error(tmp_path):
    _, path = saved(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["model"] = "transformer-xl"
    rewrite_config(path, config)
    with pytest.raises(ValueError, match="unknown model 'transformer-xl'"):
        ckpt.load_checkpoint(path)
    config["model"], config["arch"]["no_such_option"] = "flex", 3
    rewrite_config(path, config)
    with pytest.raises(ValueError, match="does not describe a model"):
        ckpt.load_checkpoint(path)


def as_version_1(path):
    """Turn a checkpoint into what format version 1 wrote: no config hash, no training_state.json hash."""
    config = json.loads((path / "config.json").read_text())
    del config[ckpt.CONFIG_HASH]
    config["format_version"] = 1
    config["files"].pop("training_state.json", None)
    (path / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return config


def test_version_1_loads_only_when_asked_with_one_warning_and_reseal_upgrades_it(tmp_path, capsys):
    model, path = saved(tmp_path)
    opt = torch.optim.AdamW(model.parameters())
    ckpt.save_training_state(path, model_state=model.state_dict(), optimizer=opt, info={"step": 3})
    as_version_1(path)
    with pytest.raises(ValueError, match="format version 1: it records no hash of itself"):
        ckpt.load_checkpoint(path)
    loaded, config = ckpt.load_checkpoint(path, allow_unverified=True)
    ckpt.read_config(path, allow_unverified=True)  # warned once per file, not once per read
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "format version 1" in err[0] and "reseal" in err[0], err
    assert config["format_version"] == 1
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k

    ckpt.reseal(path)
    config = json.loads((path / "config.json").read_text())
    assert config["format_version"] == 2 and "training_state.json" in config["files"]
    ckpt.load_checkpoint(path)
    assert ckpt.load_training_state(path)["info"]["step"] == 3
    assert capsys.readouterr().err == ""
    config["normalization"]["std"] = 1.0  # after resealing, edits are caught
    rewrite_config(path, config, seal=False)
    with pytest.raises(ValueError, match="edited"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("keep_hash", [True, False])
def test_setting_the_version_back_does_not_switch_the_tamper_check_off(tmp_path, keep_hash, capsys):
    _, path = saved(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["format_version"] = 1
    config["normalization"]["std"] *= 10
    if not keep_hash:
        del config[ckpt.CONFIG_HASH]
    rewrite_config(path, config, seal=False)
    for load in (ckpt.load_checkpoint, ckpt.read_config, ckpt.load_weights):
        with pytest.raises(ValueError) as info:
            load(path)
        msg = str(info.value)
        assert "format version 1" in msg and "reseal(" in msg and "allow_unverified=True" in msg, msg
        assert ckpt.ALLOW_UNVERIFIED in msg
    assert capsys.readouterr().err == ""
    del config["format_version"]  # no version at all: the same
    rewrite_config(path, config, seal=False)
    with pytest.raises(ValueError, match="format version 0"):
        ckpt.load_checkpoint(path)
    _, loaded = ckpt.load_checkpoint(path, allow_unverified=True)  # the user's explicit choice
    assert loaded["normalization"]["std"] == 10 * NORM["std"] and "warning" in capsys.readouterr().err


@pytest.mark.parametrize("version", ["2", 2.0, True, None, [2]])
def test_a_format_version_that_is_not_an_integer_is_a_clear_error(tmp_path, version):
    _, path = saved(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["format_version"] = version
    rewrite_config(path, config)
    with pytest.raises(ValueError, match=r"format_version must be an integer \(this flexcouple writes 2\), got"):
        ckpt.load_checkpoint(path, allow_unverified=True)


def test_the_shipped_model_is_sealed():
    import flexcouple
    config = ckpt.read_config(Path(flexcouple.__file__).parent / "shipped" / "flex-tiny-kolmogorov256")
    assert config["format_version"] == ckpt.FORMAT_VERSION and config[ckpt.CONFIG_HASH] == ckpt.config_digest(config)


def test_every_loader_of_the_command_line_opts_in_by_the_same_name(tmp_path):
    import shutil

    import flexcouple
    from coupling.cli import load_config
    from coupling.config import HybridConfig
    from coupling.surrogates import build_surrogate
    from flexcouple_cli import build_parser
    from flexcouple.evaluation.evaluate import load_predictor
    path = tmp_path / "v1"
    shutil.copytree(Path(flexcouple.__file__).parent / "shipped" / "flex-tiny-kolmogorov256", path)
    as_version_1(path)
    cfg = HybridConfig(checkpoint=str(path), backend="numpy")
    for load in (lambda: build_surrogate(cfg), lambda: load_predictor(str(path), "superres")):
        with pytest.raises(ValueError, match=ckpt.ALLOW_UNVERIFIED):
            load()
    assert build_surrogate(cfg.replace(allow_unverified=True)).factor == 4
    assert load_predictor(str(path), "superres", allow_unverified=True).kind == "checkpoint"
    toml = tmp_path / "h.toml"
    toml.write_text(cfg.replace(allow_unverified=True).to_toml())
    assert HybridConfig.from_toml(toml).allow_unverified
    assert cfg.replace(allow_unverified=True).config_hash() == cfg.config_hash()  # the run is the same run
    args = build_parser("run").parse_args(["run", "--checkpoint", str(path), ckpt.ALLOW_UNVERIFIED])
    assert load_config(args).allow_unverified
    args = build_parser("evaluate").parse_args(["evaluate", "--checkpoint", str(path), "--data", "d", "--task",
                                                "superres", "--out", "o", ckpt.ALLOW_UNVERIFIED])
    assert args.allow_unverified
    assert build_parser("demo").parse_args(["demo", ckpt.ALLOW_UNVERIFIED]).allow_unverified


def test_reseal_refuses_tampered_weights(tmp_path):
    _, path = saved(tmp_path)
    as_version_1(path)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        ckpt.reseal(path)
    assert json.loads((path / "config.json").read_text())["format_version"] == 1


def test_refuses_an_edited_training_state(tmp_path):
    model, path = saved(tmp_path)
    opt = torch.optim.AdamW(model.parameters())
    ckpt.save_training_state(path, model_state=model.state_dict(), optimizer=opt,
                             info={"step": 3, "train_config": {"lr": 1e-4}})
    meta = json.loads((path / "training_state.json").read_text())
    meta["info"]["train_config"]["lr"] = 1.0
    (path / "training_state.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="training_state.json does not match"):
        ckpt.load_training_state(path)


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
    with pytest.raises(FileNotFoundError, match="nowhere: it does not exist"):
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


def test_export_weights_ships_the_model_without_its_training_state(tmp_path):
    model, path = saved(tmp_path)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ckpt.save_training_state(path, model_state=model.state_dict(), optimizer=opt, info={"step": 1})
    shipped = ckpt.export_weights(path, tmp_path / "shipped")
    assert sorted(p.name for p in shipped.iterdir()) == ["config.json", "model.safetensors"]
    loaded, config = ckpt.load_checkpoint(shipped)  # sealed: loads without opting in
    assert not any(k.startswith("training_state") for k in config["files"])
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
