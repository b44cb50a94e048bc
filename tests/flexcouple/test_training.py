"""Training loop: runs, checkpoints, exact resume (also after Ctrl-C), determinism, data parallel."""
from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from flexcouple import checkpoint as ckpt
from flexcouple.training import TrainConfig, step_indices, train


class SyntheticFlow(torch.utils.data.Dataset):
    """Periodic smooth fields with the data sets' item contract (condition, target, reynolds).

    superres: condition = the target block-averaged by 4 and repeated back (a coarse view);
    forecast: the field drifts by one cell per step, the condition is the ``past`` previous snapshots.
    """

    normalization = {"mean": 0.0, "std": 1.0}

    def __init__(self, task: str, n: int = 8, size: int = 32, past: int = 2, seed: int = 0, fail_at=None):
        self.task, self.n, self.size, self.past, self.seed = task, n, size, past, seed
        self.fail_at, self.calls = fail_at, 0

    def __len__(self):
        return self.n

    def field(self, i: int, shift: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1000 + i)
        x = torch.arange(self.size) * 2 * math.pi / self.size
        out = torch.zeros(self.size, self.size)
        for _ in range(3):
            kx, ky = torch.randint(1, 4, (2,), generator=g).tolist()
            phase = float(torch.rand(1, generator=g)) * 2 * math.pi
            out += torch.sin(kx * (x[:, None] + shift * 2 * math.pi / self.size) + ky * x[None, :] + phase)
        return out[None]

    def __getitem__(self, i):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a step
        reynolds = torch.tensor(1000.0 * (1 + i % 4))
        if self.task == "superres":
            target = self.field(i)
            coarse = torch.nn.functional.avg_pool2d(target[None], 4)[0]
            condition = coarse.repeat_interleave(4, -2).repeat_interleave(4, -1)
        else:
            condition = torch.cat([self.field(i, s) for s in range(self.past)])
            target = self.field(i, self.past)
        return {"condition": condition, "target": target, "reynolds": reynolds}


def sets(tasks, **kw):
    return {t: SyntheticFlow(t, **kw) for t in tasks}


def small_config(tmp_path, **kw) -> TrainConfig:
    base = dict(out=str(tmp_path / "run"), task="both", model="flex", size="tiny", steps=4, batch_size=2,
                lr=1e-3, warmup=1, checkpoint_every=2, val_every=2, val_batches=1, progress=False, dropout=0.0)
    base.update(kw)
    return TrainConfig(**base)


def test_step_indices_are_epoch_permutations():
    seen = sorted(sum((step_indices(10, 3, s, seed=1) for s in range(3)), []))
    assert len(seen) == 9 and len(set(seen)) == 9  # one epoch: no repeats (drop-last)
    assert step_indices(10, 3, 4, seed=1) == step_indices(10, 3, 4, seed=1)
    assert step_indices(10, 3, 3, seed=1) != step_indices(10, 3, 3, seed=2)
    with pytest.raises(ValueError, match="fewer than the batch size"):
        step_indices(2, 3, 0, seed=0)


@pytest.mark.parametrize("model", ["flex", "unet", "uvit", "regression"])
def test_train_writes_a_loadable_checkpoint(tmp_path, model):
    cfg = small_config(tmp_path, model=model, task="superres", steps=2, match_params=model in ("unet", "uvit"))
    summary = train(cfg, sets(["superres"]), sets(["superres"], seed=9))
    assert math.isfinite(summary["final_loss"]) and "val_rfne_superres" in summary
    loaded, config = ckpt.load_checkpoint(cfg.out)
    assert config["normalization"] == {"mean": 0.0, "std": 1.0} and config["training"]["step"] == 2
    item = SyntheticFlow("superres")[0]
    out = loaded.sample(item["condition"][None], item["reynolds"][None], generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, 1, 32, 32) and torch.isfinite(out).all()


def test_refuses_to_overwrite_and_needs_same_batch_to_resume(tmp_path):
    cfg = small_config(tmp_path, task="superres", steps=1, val_every=100)
    train(cfg, sets(["superres"]))
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, sets(["superres"]))
    with pytest.raises(ValueError, match="batch-size"):
        train(small_config(tmp_path, task="superres", steps=2, batch_size=4), sets(["superres"]), resume=True)


def weights(out):
    state = ckpt.load_training_state(out)
    return state["model"], ckpt.load_weights(out)


def test_exact_resume_and_determinism(tmp_path):
    """4 steps straight == 2 steps + resume; == interrupted by Ctrl-C at step 3 + resume; == a rerun."""
    straight = small_config(tmp_path / "a", dropout=0.1)
    train(straight, sets(["superres", "forecast"]), sets(["superres"]))
    rerun = small_config(tmp_path / "b", dropout=0.1)
    train(rerun, sets(["superres", "forecast"]), sets(["superres"]))
    half = small_config(tmp_path / "c", dropout=0.1, steps=2)
    train(half, sets(["superres", "forecast"]))
    resumed = small_config(tmp_path / "c", dropout=0.1)
    train(resumed, sets(["superres", "forecast"]), resume=True)
    # Ctrl-C while loading the 3rd step's batch (1 probe item + 2 per step): 2 steps done, the 3rd redone
    broken = {"superres": SyntheticFlow("superres", fail_at=6), "forecast": SyntheticFlow("forecast")}
    with pytest.raises(KeyboardInterrupt):
        train(small_config(tmp_path / "d", dropout=0.1), broken)
    assert ckpt.load_training_state(tmp_path / "d" / "run")["info"]["step"] == 2
    train(small_config(tmp_path / "d", dropout=0.1), sets(["superres", "forecast"]), resume=True)

    ref_model, ref_ema = weights(straight.out)
    for other in (rerun.out, resumed.out, str(tmp_path / "d" / "run")):
        model, ema = weights(other)
        for k in ref_model:
            assert torch.equal(model[k], ref_model[k]), (other, k)
            assert torch.equal(ema[k], ref_ema[k]), (other, k)
    first = ckpt.load_training_state(straight.out)
    assert first["info"]["step"] == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = TrainConfig(out=out, task="both", model="flex", size="tiny", steps=2, batch_size=4, lr=1e-3, warmup=1,
                      checkpoint_every=10, val_every=10, progress=False, dropout=0.0, device="cpu")
    train(cfg, sets(["superres", "forecast"]))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_process_gloo_step_equals_one_process(tmp_path):
    """Same global batch (4 per task), same t and noise: 2 gloo ranks x 2 samples == 1 rank x 4 samples."""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    mp.spawn(_ddp_worker, args=(1, _free_port(), one), nprocs=1, join=True)
    mp.spawn(_ddp_worker, args=(2, _free_port(), two), nprocs=2, join=True)
    m1, _ = weights(one)
    m2, _ = weights(two)
    worst = max(float((m1[k] - m2[k]).abs().max()) for k in m1)
    assert worst < 1e-5, worst


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A real (tiny) data set from the solver, in the data helper's layout."""
    from flexcouple.data.config import load_preset
    from flexcouple.data.generate import generate

    cfg = load_preset("tiny").replace(n=32, snapshots=5, spinup=0.5, train=2, valid=1, test=1,
                                      reynolds=[100.0, 150.0], resolution_tolerance=1.0, coarsen_factors=[4], ood=[])
    out = tmp_path_factory.mktemp("train_data") / "ds"
    generate(cfg, out, comm=None, progress=False, log=lambda m: None)
    return out


def test_cli_trains_on_a_generated_data_set(generated, tmp_path, capsys):
    from flexcouple_cli import main

    out = tmp_path / "run"
    args = ["train", "--data", str(generated), "--task", "both", "--crop", "32", "--steps", "2", "--batch-size", "2",
            "--val-every", "2", "--val-batches", "1", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    model, config = ckpt.load_checkpoint(out)
    assert config["data"]["root"] == str(generated.resolve()) and config["data"]["superres_options"]["factor"] == 4
    assert config["normalization"]["std"] > 0 and model.tasks == ("superres", "forecast")
    assert "val_rfne_forecast" in capsys.readouterr().out
    assert main(args) == 1  # refuses to overwrite
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--steps", "3", "--resume", "--workers", "1"]) == 0  # the last --steps wins
    assert ckpt.load_training_state(out)["info"]["step"] == 3
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 1
    assert "generate" in capsys.readouterr().err


def test_a_fine_tuning_on_other_crops_than_its_init_model_resumes(generated, tmp_path):
    """--init from a model trained on 16^2 crops, fine-tuned on 32^2 (the data's whole fields) and
    continued with --resume: the run's own crop counts, not the one the --init model was built for."""
    from flexcouple_cli import main

    common = ["train", "--data", str(generated), "--task", "superres", "--batch-size", "2", "--val-every", "100",
              "--no-progress", "--checkpoint-every", "2"]
    assert main(common + ["--crop", "16", "--steps", "2", "--out", str(tmp_path / "a")]) == 0
    tune = common + ["--crop", "32", "--init", str(tmp_path / "a"), "--out", str(tmp_path / "b")]
    assert main(tune + ["--steps", "2"]) == 0
    assert main(tune + ["--steps", "4", "--resume"]) == 0
    assert ckpt.load_training_state(tmp_path / "b")["info"]["step"] == 4
    assert main(tune + ["--steps", "6", "--resume", "--crop", "16", "--override"]) == 1  # another crop: refused


def test_resume_takes_the_stored_settings_and_refuses_conflicting_flags(generated, tmp_path, capsys, monkeypatch):
    from flexcouple import training
    from flexcouple_cli import main

    out = tmp_path / "run"
    first = ["train", "--data", str(generated), "--task", "superres", "--crop", "16", "--steps", "20",
             "--checkpoint-every", "5", "--batch-size", "2", "--lr", "1e-3", "--warmup", "2", "--optimizer", "lion",
             "--val-every", "100", "--no-progress", "--dropout", "0.1"]
    straight = tmp_path / "straight"
    assert main(first + ["--out", str(straight)]) == 0
    capsys.readouterr()
    # Ctrl-C while loading step 16's batch (2 items per step): the checkpoint at step 15 lies between two
    # loss lines (every 10 steps)
    read, calls = training.EpochIndexed.__getitem__, []

    def interrupted(self, item):
        calls.append(item)
        if len(calls) > 30:
            raise KeyboardInterrupt
        return read(self, item)

    with monkeypatch.context() as m:
        m.setattr(training.EpochIndexed, "__getitem__", interrupted)
        assert main(first + ["--out", str(out)]) == 130
    assert ckpt.load_training_state(out)["info"]["step"] == 15
    wall_interrupted = ckpt.load_training_state(out)["info"]["wall_s"]
    assert wall_interrupted > 0
    capsys.readouterr()
    for flag, value in (("--lr", "2e-4"), ("--optimizer", "adamw"), ("--crop", "32"), ("--factor", "2")):
        assert main(["train", "--out", str(out), "--resume", flag, value]) == 1
        err = capsys.readouterr().err
        assert f"{flag} " in err and "--override" in err and "Traceback" not in err, err
    # the README's line (with --data, without --crop) and no flags at all both continue the run exactly
    assert main(["train", "--data", str(generated), "--out", str(out), "--resume", "--steps", "20",
                 "--no-progress"]) == 0
    ref = ckpt.load_training_state(straight)["info"]
    got = ckpt.load_training_state(out)["info"]
    assert got["step"] == 20 and got["train_config"]["optimizer"] == "lion" and got["train_config"]["lr"] == 1e-3
    assert got["wall_s"] > wall_interrupted  # the training time is summed over the resume
    losses = lambda info: [(h["step"], h["loss"]) for h in info["history"] if "loss" in h]  # noqa: E731
    assert losses(got) == losses(ref) and losses(got)[-1][0] == 20  # the step-20 line spans the resume
    ref_w, got_w = ckpt.load_weights(straight), ckpt.load_weights(out)
    assert all(torch.equal(ref_w[k], got_w[k]) for k in ref_w)
    # --override accepts a change by name; a crop the model cannot take is still refused clearly
    assert main(["train", "--out", str(out), "--resume", "--override", "--steps", "22", "--lr", "5e-4",
                 "--no-progress"]) == 0
    assert ckpt.load_training_state(out)["info"]["train_config"]["lr"] == 5e-4
    assert main(["train", "--out", str(out), "--resume", "--override", "--steps", "23", "--crop", "32"]) == 1
    assert "--crop" in capsys.readouterr().err
    assert main(["train", "--data", str(generated), "--out", str(tmp_path / "new"), "--override"]) == 1
    assert "only applies with --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script(generated, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("flexcouple")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    proc = subprocess.run([str(script), "train", "--data", str(generated), "--task", "superres", "--crop", "32",
                           "--steps", "1", "--batch-size", "2", "--out", str(tmp_path / "run"), "--no-progress",
                           "--val-every", "1", "--val-batches", "1"], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"val_rfne_superres"' in proc.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bf16 autocast path)")
def test_bf16_training_on_gpu(tmp_path):
    cfg = small_config(tmp_path, steps=3, device="cuda", val_every=3)
    summary = train(cfg, sets(["superres", "forecast"]), sets(["superres", "forecast"], seed=3))
    assert math.isfinite(summary["final_loss"]) and math.isfinite(summary["val_rfne_forecast"])
    model, _ = ckpt.load_checkpoint(cfg.out, device="cuda")
    out = model.sample(torch.randn(2, 2, 32, 32, device="cuda"), 1000.0, ensemble=4, task="forecast")
    assert out.shape == (2, 4, 1, 32, 32) and out.device.type == "cuda"


def test_a_full_disk_gives_one_line_no_temporary_and_the_rerun_works(generated, tmp_path, capsys, monkeypatch):
    """safetensors reports a full disk as its own SafetensorError; it is told as every other full disk."""
    from safetensors import SafetensorError

    from flexcouple_cli import main

    def save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    out = tmp_path / "run"
    args = ["train", "--data", str(generated), "--crop", "32", "--steps", "1", "--batch-size", "2",
            "--val-every", "1", "--val-batches", "1", "--out", str(out), "--no-progress"]
    with monkeypatch.context() as m:
        m.setattr(ckpt, "save_file", save_file)
        assert main(args) == 1
    err = capsys.readouterr().err
    assert f"no space left on device while writing {out / 'model.safetensors'}" in err
    assert "free space and rerun" in err and "Traceback" not in err and "SafetensorError" not in err
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert main(args) == 0  # space freed
    ckpt.load_checkpoint(out)


def test_a_file_given_as_the_data_set_is_named_as_a_file(tmp_path, capsys):
    from flexcouple_cli import main

    (tmp_path / "a_file").write_text("")
    assert main(["train", "--data", str(tmp_path / "a_file"), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and "does not exist" not in err


def test_spectral_loss_trains_reports_the_distance_and_refuses_what_it_cannot_weight(tmp_path):
    cfg = small_config(tmp_path, task="superres", steps=2, spectral_loss=0.3)
    summary = train(cfg, sets(["superres"]), sets(["superres"], seed=9))
    assert math.isfinite(summary["final_loss"]) and summary["val_lsd_superres"] > 0
    for bad in (-0.1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="spectral_loss must be a finite number >= 0"):
            small_config(tmp_path, spectral_loss=bad)
    with pytest.raises(ValueError, match="regression baseline has none"):
        small_config(tmp_path, model="regression", spectral_loss=0.1)
    with pytest.raises(ValueError, match="val_every must be >= 1"):
        small_config(tmp_path, val_every=0)
    # the sampler-aware term with finer bands trains too; its shape flags need a weight
    cfg = small_config(tmp_path, task="superres", steps=2, spectral_loss=0.3, spectral_bands=16, spectral_steps=2,
                       out=str(tmp_path / "unrolled"))
    assert math.isfinite(train(cfg, sets(["superres"]), sets(["superres"], seed=9))["final_loss"])
    with pytest.raises(ValueError, match="give it a weight with --spectral-loss"):
        small_config(tmp_path, spectral_steps=2)
    with pytest.raises(ValueError, match="spectral_bands must be >= 1 and spectral_steps >= 0"):
        small_config(tmp_path, spectral_loss=0.1, spectral_bands=0)

    # a data set that crops (its `crop` below its grid `n`, as the real ones say it) is refused before
    # anything is written
    ds = SyntheticFlow("superres", n=64)
    ds.crop = 32
    with pytest.raises(ValueError, match="--crop 64"):
        train(small_config(tmp_path, task="superres", out=str(tmp_path / "crop"), spectral_loss=0.3),
              {"superres": ds})
    assert not (tmp_path / "crop").exists()


def test_fine_tuning_from_an_unverified_checkpoint_needs_the_opt_in(generated, tmp_path, capsys):
    """``train --init`` of a format-version-1 checkpoint (no hash of its config) is refused, naming
    ``--allow-unverified``, and runs with it, as every other loader of the command line."""
    import shutil

    from flexcouple_cli import main
    from tests.flexcouple.test_checkpoint import as_version_1
    common = ["train", "--data", str(generated), "--task", "superres", "--batch-size", "2", "--crop", "16",
              "--val-every", "100", "--no-progress", "--steps", "2"]
    assert main(common + ["--out", str(tmp_path / "a")]) == 0
    shutil.copytree(tmp_path / "a", tmp_path / "v1", ignore=shutil.ignore_patterns("training_state*"))
    as_version_1(tmp_path / "v1")
    capsys.readouterr()
    assert main(common + ["--init", str(tmp_path / "v1"), "--out", str(tmp_path / "b")]) == 1
    assert ckpt.ALLOW_UNVERIFIED in capsys.readouterr().err
    assert main(common + ["--init", str(tmp_path / "v1"), "--out", str(tmp_path / "c"), ckpt.ALLOW_UNVERIFIED]) == 0
    assert ckpt.load_training_state(tmp_path / "c")["info"]["train_config"]["allow_unverified"] is True
