"""Training FLEX and its baselines: one readable loop (nanoGPT style), data-parallel, resumable.

``flexcouple train --data DIR --task superres|forecast|both --model flex|unet|uvit|regression --size tiny``

What one step does (global batch ``B`` split over ``W`` processes)::

    lr        = warm-up then cosine (a function of the step)
    batches   = the step's samples: a permutation of each data set per epoch, drawn from (seed, epoch),
                so the data order is a function of the step (exact resume, same order for any W)
    t, noise  = drawn for the GLOBAL batch from (seed, step); each process takes its slice
    loss      = L1 on v (diffusion) or on the residual (regression); multi-task: both tasks share t, noise
    backward, all-reduce (DDP), clip the gradient norm to 1.0, AdamW or Lion step, EMA update

Dropout draws from the global torch RNG, re-seeded from (seed, step, rank) at every step: resuming
needs no RNG state and a run is deterministic for a seed. bf16 autocast on CUDA (``--no-amp`` turns
it off); full precision on CPU. Checkpoints (EMA weights for inference + raw weights, optimizer
moments for resume; safetensors + JSON) every ``--checkpoint-every`` steps, at the end and on Ctrl-C.
Validation RFNE (``||pred - true|| / ||true||`` on de-normalised vorticity, EMA weights, 2-step
sampler) every ``--val-every`` steps.

Multi-process: ``torchrun --nproc-per-node N -m flexcouple_cli train ...`` (gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import argparse
import copy
import inspect
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Mapping

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from flexcouple.diffusion import check_space
from flexcouple.evaluation.metrics import rfne_of
from flexcouple.models import SIZES
from solver.paths import check_readable, check_writable

__all__ = ["TrainConfig", "train", "add_arguments", "run", "step_indices", "step_noise", "rfne"]

TASK_CHOICES = {"superres": ("superres",), "forecast": ("forecast",), "both": ("superres", "forecast")}


@dataclass
class TrainConfig:
    """Every setting of a run; stored in the checkpoint, so a run can be read and repeated."""

    out: str = "runs/flex"            # checkpoint directory
    task: str = "superres"            # superres | forecast | both
    model: str = "flex"               # flex | unet | uvit | regression
    size: str = "tiny"                # tiny | small | medium | big
    cond_snapshots: int = 2           # past snapshots the forecast task conditions on
    match_params: bool = False        # baselines: width chosen to match FLEX's parameter count
    space: str = "residual"           # residual (generate target - base, FLEX) | raw (the target itself)
    dropout: float | None = None      # override the preset's dropout (0.1)
    steps: int = 2000                 # optimisation steps in total
    batch_size: int = 8               # global batch (over all processes), per task
    optimizer: str = "adamw"          # adamw | lion
    lr: float = 2e-4                  # peak learning rate (paper: 1e-5 with Lion, minFLEX 2e-4 AdamW)
    betas: tuple[float, float] | None = None
    weight_decay: float = 0.0
    warmup: int = 100                 # linear warm-up steps
    min_lr_ratio: float = 0.0         # cosine decays to this fraction of lr
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    spectral_loss: float = 0.0        # weight of the log-spectral distance term (diffusion models only)
    spectral_bands: int = 2           # its bands per octave (2: half octaves; 16: the top octave nearly by shell)
    spectral_steps: int = 0           # 0: on the prediction at the drawn t; S: on the S-step DDIM sample
    checkpoint_every: int = 500
    val_every: int = 500
    val_batches: int = 4
    sample_steps: int = 2
    seed: int = 0
    workers: int = 0                  # DataLoader worker processes
    device: str = "auto"              # auto | cpu | cuda
    amp: bool = True                  # bf16 autocast on CUDA (never on CPU)
    init: str = ""                    # fine-tune: start from this checkpoint's weights (and keep its units)
    allow_unverified: bool = False    # --init: also a checkpoint whose config.json records no hash of itself
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.task not in TASK_CHOICES:
            raise ValueError(f"task must be one of {list(TASK_CHOICES)}, got {self.task!r}")
        if self.model not in ("flex", "unet", "uvit", "regression"):
            raise ValueError(f"model must be flex, unet, uvit or regression, got {self.model!r}")
        check_space(self.space)
        for name in ("steps", "batch_size", "checkpoint_every", "val_every", "val_batches", "sample_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.grad_clip <= 0:
            raise ValueError("lr and grad_clip must be positive")
        if not (math.isfinite(self.spectral_loss) and self.spectral_loss >= 0):
            raise ValueError(f"spectral_loss must be a finite number >= 0, got {self.spectral_loss}")
        if self.spectral_bands < 1 or self.spectral_steps < 0:
            raise ValueError(f"spectral_bands must be >= 1 and spectral_steps >= 0, got {self.spectral_bands} "
                             f"and {self.spectral_steps}")
        if not self.spectral_loss and (self.spectral_bands != 2 or self.spectral_steps):
            raise ValueError("--spectral-bands and --spectral-steps shape the spectral loss term; give it a weight "
                             "with --spectral-loss W (> 0) or leave them out")
        if self.spectral_loss and self.model == "regression":
            raise ValueError("spectral_loss weights a term of the diffusion loss; the regression baseline has "
                             "none: use --model flex, unet or uvit, or drop --spectral-loss")

    @property
    def tasks(self) -> tuple[str, ...]:
        return TASK_CHOICES[self.task]


# ---- determinism helpers -----------------------------------------------------------------------

def _mix(*numbers: int) -> int:
    """A 63-bit seed from several integers (distinct inputs give unrelated streams)."""
    h = 0x9E3779B97F4A7C15
    for n in numbers:
        h = (h ^ (int(n) + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


def step_indices(n_items: int, batch_size: int, step: int, seed: int, stream: int = 0) -> list[int]:
    """The global batch of data-set indices at ``step``: epoch-wise permutations, drop-last."""
    per_epoch = n_items // batch_size
    if per_epoch < 1:
        raise ValueError(f"the data set has {n_items} items, fewer than the batch size {batch_size}")
    epoch, i = divmod(step, per_epoch)
    perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(_mix(seed, stream, epoch)))
    return perm[i * batch_size:(i + 1) * batch_size].tolist()


def step_noise(step: int, seed: int, batch_size: int, shape: tuple[int, int, int]):
    """Diffusion time ``t`` (B,) and noise (B, C, H, W) of the GLOBAL batch at ``step``."""
    g = torch.Generator().manual_seed(_mix(seed, 7919, step))
    return torch.rand(batch_size, generator=g), torch.randn((batch_size,) + tuple(shape), generator=g)


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields this process's slice of each step's global batch, from ``start`` to ``stop``.

    Items are ``(epoch, index)`` pairs: the data set draws its random crops from (seed, epoch, index),
    so every epoch sees new crops, in DataLoader workers too, and a resumed run sees the same ones.
    """

    def __init__(self, n_items, batch_size, seed, stream, start, stop, rank, world):
        if n_items < batch_size:  # before any step, not deep inside the loop
            raise ValueError(f"the data set has {n_items} items, fewer than the batch size {batch_size}; "
                             "use a smaller --batch-size or more data")
        self.args = (n_items, batch_size, seed, stream)
        self.start, self.stop, self.rank, self.local = start, stop, rank, batch_size // world

    def __iter__(self):
        n_items, batch_size, seed, stream = self.args
        for step in range(self.start, self.stop):
            epoch = step // (n_items // batch_size)
            idx = step_indices(n_items, batch_size, step, seed, stream)
            yield [(epoch, i) for i in idx[self.rank * self.local:(self.rank + 1) * self.local]]

    def __len__(self):
        return self.stop - self.start


class EpochIndexed(torch.utils.data.Dataset):
    """Reads ``(epoch, index)`` items: sets the data set's epoch (its crops) before reading."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        epoch, index = item
        if hasattr(self.dataset, "set_epoch") and getattr(self.dataset, "epoch", None) != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def rfne(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """RFNE per field (the last two axes), ``||pred - true||_F / ||true||_F``, on the tensors' device:
    :func:`flexcouple.evaluation.metrics.rfne_of`, the one definition that evaluation also uses
    (a zero truth gives 0 for a zero prediction, +inf otherwise)."""
    return rfne_of(pred, true)


# ---- distributed ---------------------------------------------------------------------------------

def _setup(config: TrainConfig) -> tuple[torch.device, int, int]:
    """Device, rank, world size; initialises torch.distributed when launched by torchrun."""
    want_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if want_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local), rank, world
    return torch.device("cpu"), rank, world


def _to(batch: Mapping, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# ---- the loop -------------------------------------------------------------------------------------

def train(config: TrainConfig, train_sets: Mapping, val_sets: Mapping | None = None, *,
          normalization: Mapping | None = None, data_info: Mapping | None = None, resume: bool = False) -> dict:
    """Train ``config.model`` on ``train_sets`` ({task: Dataset}); returns a summary dict.

    Items are dicts of float32 tensors ``condition`` (C, H, W), ``target`` (1, H, W), ``reynolds`` ().
    """
    from flexcouple import checkpoint as ckpt
    from flexcouple.models import build_model, count_parameters
    from flexcouple.optim import EMA, build_optimizer, cosine_lr

    device, rank, world = _setup(config)
    tasks = config.tasks
    missing = [t for t in tasks if t not in train_sets]
    if missing:
        raise ValueError(f"task {config.task!r} needs training data for {missing}")
    if config.batch_size % world:
        raise ValueError(f"batch size {config.batch_size} is not divisible by {world} processes")
    first = train_sets[tasks[0]][0]
    image_size = int(first["target"].shape[-1])
    crop, grid = (getattr(train_sets[tasks[0]], name, None) for name in ("crop", "n"))
    if config.spectral_loss and crop is not None and crop != grid:
        raise ValueError(f"--spectral-loss needs whole periodic fields (a crop's edges leak power into every "
                         f"wavenumber shell, far above the small scales'): train on --crop {grid}, the data "
                         f"set's grid, not {crop}")
    normalization = dict(normalization or getattr(train_sets[tasks[0]], "normalization", None) or {})
    if not {"mean", "std"} <= set(normalization):
        raise ValueError("the training data set provides no normalization {'mean', 'std'}")
    out = Path(config.out)
    if not resume and (out / ckpt.CONFIG_FILE).exists():
        raise FileExistsError(f"{out} already holds a checkpoint: pass --resume to continue it or choose another --out")

    torch.manual_seed(config.seed)  # identical initial weights on every process
    if config.init:
        # fine-tuning: the checkpoint's network (all its tasks, trained here on ``tasks`` only) and its
        # normalisation, so the fine-tuned model speaks the same units as the one it came from
        model, init_cfg = ckpt.load_checkpoint(config.init, allow_unverified=config.allow_unverified)
        model = model.to(device).train()
        not_in_model = [t for t in tasks if t not in init_cfg["tasks"]]
        if not_in_model:
            raise ValueError(f"--init {config.init} has tasks {init_cfg['tasks']}; it cannot be fine-tuned for "
                             f"{not_in_model}")
        normalization = dict(init_cfg["normalization"])
        if init_cfg.get("space", "residual") != config.space:
            raise ValueError(f"--init {config.init} generates in {init_cfg.get('space', 'residual')} space, "
                             f"not {config.space}: pass --space {init_cfg.get('space', 'residual')}")
    else:
        model = build_model(config.model, config.size, tasks, image_size, config.cond_snapshots,
                            match_params="flex" if config.match_params else None, dropout=config.dropout,
                            space=config.space).to(device)
    optimizer = build_optimizer(config.optimizer, model.parameters(), config.lr, config.betas, config.weight_decay)
    ema = EMA(model, config.ema_decay)
    start, history, resumed_loss, wall_before = 0, [], {"sum": 0.0, "n": 0}, 0.0
    if resume:
        stored = ckpt.read_config(out)
        if stored.get("arch") != model.config["arch"] or stored.get("tasks") != list(model.config["tasks"]) \
                or stored.get("model") != config.model or stored.get("space", "residual") != config.space:
            raise ValueError(f"{out} holds a different model ({stored.get('model')}, {stored.get('tasks')}, "
                             f"{stored.get('space', 'residual')} space); resume with the same --model/--size/--task/--space")
        # the fields this run trained on: its crop, else the data set's grid (the model's own image_size
        # is the --init model's for a fine-tuned run, whatever the fine-tuning's crop)
        data = stored.get("data") or {}
        trained_on = data.get("crop") or (data.get("dataset") or {}).get("n") or stored.get("image_size")
        if trained_on != image_size:
            raise ValueError(f"{out} was trained on {trained_on}^2 crops, the data now gives "
                             f"{image_size}^2; resume with the run's --crop")
        state = ckpt.load_training_state(out)
        old = state["info"].get("train_config", {})
        if old.get("batch_size") != config.batch_size or old.get("seed") != config.seed:
            raise ValueError("resume needs the same --batch-size and --seed as the original run (data order "
                             f"and noise are functions of them): {old.get('batch_size')}, {old.get('seed')}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ema.load(ckpt.load_weights(out))
        start, history = int(state["info"]["step"]), list(state["info"].get("history", []))
        resumed_loss = state["info"].get("loss_accumulator") or {"sum": 0.0, "n": 0}
        wall_before = float(state["info"].get("wall_s", 0.0))  # the training time before this resume
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model
    amp = config.amp and device.type == "cuda"

    loaders = [torch.utils.data.DataLoader(
        EpochIndexed(train_sets[task]), num_workers=config.workers, pin_memory=device.type == "cuda",
        batch_sampler=StepBatchSampler(len(train_sets[task]), config.batch_size, config.seed, stream, start,
                                       config.steps, rank, world)) for stream, task in enumerate(tasks)]
    n_params = count_parameters(model)

    def save(step: int, interrupted: bool = False) -> None:
        # the partial loss average since the last log line travels with the checkpoint, so the first
        # loss logged after a resume is the uninterrupted run's (all ranks reach a regular save)
        nonlocal loss_sum
        if world > 1 and not interrupted:  # every rank continues from the mean, as a resumed run does
            mean = torch.tensor([loss_sum / max(loss_n, 1)], device=device)
            dist.all_reduce(mean)
            loss_sum = float(mean) / world * loss_n
        partial = (loss_sum, loss_n)
        if rank != 0:
            return
        info = {"step": step, "train_config": asdict(config), "history": history, "world_size": world,
                "loss_accumulator": {"sum": partial[0], "n": partial[1]}, "wall_s": wall()}
        ckpt.save_checkpoint(out, model, {"normalization": normalization, "data": dict(data_info or {}),
                                          "training": {"step": step, "ema_decay": config.ema_decay,
                                                       "optimizer": config.optimizer}}, state_dict=ema.state)
        ckpt.save_training_state(out, model_state=model.state_dict(), optimizer=optimizer, info=info)

    eval_model = copy.deepcopy(model).eval() if (val_sets and rank == 0) else None
    bar = None
    if rank == 0 and config.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=config.steps, initial=start, desc=f"{config.model}-{config.size} {config.task}",
                   dynamic_ncols=True)
    spectral = {"spectral_weight": config.spectral_loss, "spectral_bands": config.spectral_bands,
                "spectral_steps": config.spectral_steps} if config.spectral_loss else {}
    done, t_last, done_since = start, time.perf_counter(), 0
    t_begin = t_last

    def wall() -> float:
        """Seconds in the training loop, summed over resumes (recorded with every checkpoint)."""
        return wall_before + time.perf_counter() - t_begin

    loss_sum, loss_n = float(resumed_loss["sum"]), int(resumed_loss["n"])
    try:
        for step, local_batches in zip(range(start, config.steps), zip(*loaders)):
            lr = cosine_lr(step, config.lr, config.warmup, config.steps, config.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batches = {task: _to(b, device) for task, b in zip(tasks, local_batches)}
            shape = tuple(batches[tasks[0]]["target"].shape[1:])
            t, noise = step_noise(step, config.seed, config.batch_size, shape)
            local = config.batch_size // world
            t, noise = (x[rank * local:(rank + 1) * local].to(device) for x in (t, noise))
            torch.manual_seed(_mix(config.seed, step, rank))  # dropout: a function of (seed, step, rank)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = ddp(batches, t=t, noise=noise, **spectral)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            ema.update(model)
            done = completed = step + 1
            loss_sum += float(loss.detach())
            loss_n += 1
            done_since += 1
            if bar is not None:
                bar.update(1)
            if completed % 10 == 0 or completed == config.steps:
                if world > 1:  # the mean loss over all processes (every rank reaches this line)
                    mean = torch.tensor([loss_sum / loss_n], device=device)
                    dist.all_reduce(mean)
                    loss_sum, loss_n = float(mean) / world, 1
                now = time.perf_counter()
                rate = done_since * config.batch_size * len(tasks) / max(now - t_last, 1e-9)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_sum / loss_n:.4f}", lr=f"{lr:.2e}", gnorm=f"{float(grad_norm):.2f}",
                                    samples_s=f"{rate:.1f}")
                history.append({"step": completed, "loss": loss_sum / loss_n, "lr": lr,
                                "samples_per_s": rate})
                loss_sum, loss_n, t_last, done_since = 0.0, 0, now, 0
            if eval_model is not None and completed % config.val_every == 0:
                eval_model.load_state_dict(ema.state)
                metrics = validate(eval_model, val_sets, normalization, config, device)
                history.append({"step": completed, **metrics})
                if bar is not None:
                    bar.write(f"step {completed}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            if completed % config.checkpoint_every == 0 and completed < config.steps:
                save(completed)
        save(done)
    except KeyboardInterrupt:
        save(done, interrupted=True)  # the completed steps; the interrupted one is redone on resume
        if rank == 0:
            print(f"\ninterrupted: checkpoint at step {done} in {out}; continue with --resume")
        raise
    finally:
        if bar is not None:
            bar.close()
    summary = {"steps": config.steps, "parameters": n_params, "out": str(out), "world_size": world, "wall_s": wall(),
               "final_loss": next((h["loss"] for h in reversed(history) if "loss" in h), None),
               "history": history}
    if eval_model is not None:
        eval_model.load_state_dict(ema.state)
        summary.update(validate(eval_model, val_sets, normalization, config, device))
    return summary


@torch.no_grad()
def validate(model, val_sets: Mapping, normalization: Mapping, config: TrainConfig, device) -> dict:
    """Mean RFNE per task on the first ``val_batches`` batches, de-normalised, fixed sampler noise; on
    whole fields also the log-spectral distance (half-octave bands, :func:`log_spectral_distance`)."""
    from flexcouple.diffusion import log_spectral_distance
    metrics = {}
    for task in model.tasks:
        if task not in val_sets:
            continue
        loader = torch.utils.data.DataLoader(val_sets[task], batch_size=config.batch_size, shuffle=False)
        g = torch.Generator().manual_seed(_mix(config.seed, 104729))
        errors, distances = [], []
        # a crop's radial spectrum is its edges' leakage, not the flow's: the distance only on whole fields
        crop = getattr(val_sets[task], "crop", None)
        whole = crop is None or crop == getattr(val_sets[task], "n", crop)
        for i, batch in enumerate(loader):
            if i >= config.val_batches:
                break
            batch = _to(batch, device)
            pred = model.sample(batch["condition"], batch["reynolds"], steps=config.sample_steps, generator=g,
                                task=task)[:, 0]
            denorm = lambda x: x * normalization["std"] + normalization["mean"]  # noqa: E731
            errors.append(rfne(denorm(pred), denorm(batch["target"])))
            if whole:
                distances.append(log_spectral_distance(denorm(pred), denorm(batch["target"])))
        if errors:
            metrics[f"val_rfne_{task}"] = float(torch.cat(errors).mean())
        if distances:
            metrics[f"val_lsd_{task}"] = float(torch.cat(distances).mean())
    return metrics


# ---- command line -------------------------------------------------------------------------------------

# The settings a run stores. Flags default to "not given" (argparse.SUPPRESS), so that on --resume
# the stored settings are the defaults and only flags the user typed can conflict with them.
DATA_DEFAULTS = {"data": None, "crop": 64, "factor": None, "upsample": "bicubic", "coarse_source": "truncation",
                 "lead": 1}
RESUME_FREE = {"out", "steps", "checkpoint_every", "val_every", "val_batches", "workers", "device", "progress",
               "allow_unverified"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    unset = argparse.SUPPRESS

    def flag(name, default, help_text=None, **kw):
        note = f"default: {default}" if default is not None else "default: none"
        parser.add_argument(name, default=unset, help=f"{help_text} ({note})" if help_text else f"({note})", **kw)

    flag("--data", None, "data set directory (from `flexcouple generate`); on --resume, the run's")
    parser.add_argument("--out", default=d.out, help="checkpoint directory (default: %(default)s)")
    flag("--task", d.task, choices=list(TASK_CHOICES))
    flag("--model", d.model, choices=["flex", "unet", "uvit", "regression"])
    flag("--size", d.size, choices=list(SIZES), help_text="c16 / c24: tiny with 1/2 and 3/4 of its channels; c16s2: c16 on the field folded 2x2 space-to-depth, c8s2 with half its channels; c16s4 / c24s4: c16 / c24 folded 4x4 (FLEX only)")
    flag("--crop", 64, "training crop size, divisible by 16", type=int)
    flag("--cond-snapshots", d.cond_snapshots, type=int)
    flag("--factor", None, "super-resolution factor (none: the data set's largest coarsening factor)", type=int)
    flag("--upsample", "bicubic", "how the coarse field is brought to the fine grid (bicubic is the paper's)",
         choices=["bicubic", "spectral"])
    flag("--coarse-source", "truncation", "super-resolution inputs: the fine field coarsened (truncation), the "
         "coarse-solver states stored with the data set (solver: what a hybrid run feeds the model), or both",
         choices=["truncation", "solver", "both"])
    flag("--lead", 1, "forecast lead in snapshot intervals", type=int)
    parser.add_argument("--match-params", action="store_true", default=unset,
                        help="baselines: match FLEX's parameter count")
    flag("--dropout", None, "override the preset's dropout", type=float)
    flag("--space", d.space, "what the model generates: residual (target - base: the upsampled coarse field or "
         "the last snapshot; FLEX) or raw (the target field itself, base 0; the ablation)",
         choices=["residual", "raw"])
    flag("--steps", d.steps, type=int)
    flag("--batch-size", d.batch_size, "global batch per task", type=int)
    flag("--optimizer", d.optimizer, choices=["adamw", "lion"])
    flag("--lr", d.lr, type=float)
    flag("--weight-decay", d.weight_decay, type=float)
    flag("--warmup", d.warmup, type=int)
    flag("--ema-decay", d.ema_decay, type=float)
    flag("--grad-clip", d.grad_clip, type=float)
    flag("--spectral-loss", d.spectral_loss, "add this weight times the log-spectral distance (half-octave "
         "bands) of the predicted field to the target: few-step samplers otherwise lose the small scales' energy",
         type=float)
    flag("--spectral-bands", d.spectral_bands, "bands per octave of that distance (2: half octaves; 16 keeps the "
         "top octave's shells nearly apart, so a deficit and an excess inside one band cannot cancel)", type=int)
    flag("--spectral-steps", d.spectral_steps, "0: the distance of the prediction at the drawn noise level; S: of "
         "the S-step DDIM sample the model returns in use (gradients through all S calls; S times dearer)", type=int)
    flag("--checkpoint-every", d.checkpoint_every, type=int)
    flag("--val-every", d.val_every, type=int)
    flag("--val-batches", d.val_batches, type=int)
    flag("--seed", d.seed, type=int)
    flag("--workers", d.workers, type=int)
    flag("--device", d.device, choices=["auto", "cpu", "cuda"])
    flag("--init", None, "fine-tune: start from this checkpoint (its network, tasks and normalisation; "
         "e.g. on a hybrid run's harvest/)")
    parser.add_argument("--allow-unverified", action="store_true", default=unset, help="--init: also load a "
                        "checkpoint whose config.json records no hash of itself (format version 1)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", default=unset, help="no bf16 autocast on CUDA")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=unset)
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out exactly, with its stored settings as the defaults")
    parser.add_argument("--override", action="store_true",
                        help="with --resume: accept flags that differ from the stored settings (the continued "
                             "run is then no longer the uninterrupted run)")


def stored_settings(out: str | os.PathLike) -> dict:
    """The settings of the run in checkpoint ``out`` (flag dests: TrainConfig fields, data, crop, factor,
    upsample, lead), read from its verified JSON files only."""
    from flexcouple import checkpoint as ckpt

    config = ckpt.read_config(out)
    info = ckpt.read_training_info(out)
    settings = {k: v for k, v in (info.get("train_config") or {}).items() if k != "extra"}
    data = config.get("data") or {}
    settings.update({"data": data.get("root"), "crop": data.get("crop")})
    sr, fc = data.get("superres_options") or {}, data.get("forecast_options") or {}
    if "factor" in sr:
        settings["factor"] = sr["factor"]
    if "upsample" in sr:
        settings["upsample"] = sr["upsample"]
    if "coarse_source" in sr:
        settings["coarse_source"] = sr["coarse_source"]
    if "lead" in fc:
        settings["lead"] = fc["lead"]
    return {k: v for k, v in settings.items() if v is not None or k == "dropout"}


def resolve_settings(args: argparse.Namespace) -> dict:
    """Defaults, then (on --resume) the stored run's settings, then the flags given; a given flag that
    contradicts the stored run is refused by name unless --override."""
    names = {f.name for f in fields(TrainConfig)} | set(DATA_DEFAULTS)
    given = {k: v for k, v in vars(args).items() if k in names}
    settings = {**{k: v for k, v in asdict(TrainConfig()).items() if k != "extra"}, **DATA_DEFAULTS}
    if getattr(args, "resume", False):
        stored = stored_settings(args.out)
        conflicts = {k: (stored[k], v) for k, v in given.items()
                     if k in stored and k not in RESUME_FREE | {"data"} and stored[k] != v}
        if conflicts and not getattr(args, "override", False):
            listed = ", ".join(f"--{k.replace('_', '-')} {v!r} (the run has {old!r})" for k, (old, v) in conflicts.items())
            raise ValueError(f"--resume: {listed} would change the run in {args.out}; drop the flag(s) to "
                             "continue it exactly, or add --override to change them")
        settings.update(stored)
    elif getattr(args, "override", False):
        raise ValueError("--override only applies with --resume")
    settings.update(given)
    if settings["data"] is None:
        raise ValueError("--data DIR is required (the data set from `flexcouple generate`)")
    return settings


def _make_dataset(cls, root, split, **kwargs):
    accepted = inspect.signature(cls).parameters
    return cls(root, split, **{k: v for k, v in kwargs.items() if k in accepted})


def load_datasets(root: str, tasks, crop: int | None, cond_snapshots: int, *, factor: int | None = None,
                  upsample: str = "bicubic", coarse_source: str = "truncation", lead: int = 1):
    """Training and validation sets of the data helper, {task: Dataset}, plus provenance.

    ``factor`` (None: the data set's largest), ``upsample`` and ``coarse_source`` shape the super-resolution pairs;
    ``lead`` is the forecast lead in snapshot intervals. All three are recorded in the checkpoint, so
    the coupling layer rebuilds exactly the pipeline the model was trained on."""
    from flexcouple.data import datasets as ds

    root_path = check_readable(root, "data set directory", directory=True,
                               hint="; create one with `flexcouple generate`")
    train_sets, val_sets = {}, {}
    for task in tasks:
        cls = ds.SuperResDataset if task == "superres" else ds.ForecastDataset
        kwargs = ({"crop": crop, "factor": factor, "upsample": upsample, "coarse_source": coarse_source}
                  if task == "superres"
                  else {"past": cond_snapshots, "lead": lead, "crop": crop})
        train_sets[task] = _make_dataset(cls, root, "train", **kwargs)
        try:
            val_sets[task] = _make_dataset(cls, root, "valid", **kwargs)
        except (FileNotFoundError, ValueError, KeyError):  # a data set without a validation split
            val_sets[task] = None
    val_sets = {k: v for k, v in val_sets.items() if v is not None}
    info = {"root": str(root_path.resolve()), "crop": crop, "splits": {"train": "train", "val": "valid"}}
    meta = getattr(train_sets[tasks[0]], "meta", None)
    if isinstance(meta, Mapping):  # the data set's own record: its config, generation, statistics
        info["dataset"] = {k: v for k, v in json.loads(json.dumps(meta, default=str)).items()
                           if len(json.dumps(v)) < 20000}
    for task, d in train_sets.items():
        info[f"{task}_options"] = {k: getattr(d, k) for k in ("factor", "coarsen_method", "upsample", "coarse_source",
                                                              "periodic_bicubic", "past", "lead")
                                   if isinstance(getattr(d, k, None), (int, float, str))}
        if task == "forecast":  # the lead in time units, for the coupling layer
            interval = (info.get("dataset", {}).get("config") or {}).get("interval")
            if interval is not None:
                info[f"{task}_options"]["lead_time"] = float(interval) * d.lead
    return train_sets, val_sets, info


def run(args: argparse.Namespace) -> int:
    settings = resolve_settings(args)
    config = TrainConfig(**{f.name: settings[f.name] for f in fields(TrainConfig) if f.name in settings})
    if settings["crop"] is not None and settings["crop"] % 16:
        raise ValueError(f"--crop {settings['crop']} must be divisible by 16 (4 downsamplings)")
    if settings["lead"] < 1:
        raise ValueError(f"--lead must be >= 1 (snapshot intervals), got {settings['lead']}")
    check_writable(config.out, "--out", directory=True)
    train_sets, val_sets, info = load_datasets(settings["data"], config.tasks, settings["crop"],
                                               config.cond_snapshots, factor=settings["factor"],
                                               upsample=settings["upsample"], coarse_source=settings["coarse_source"],
                                               lead=settings["lead"])
    normalization = getattr(train_sets[config.tasks[0]], "normalization", None)
    if config.init:  # keep what the start checkpoint knows about the tasks not trained here
        from flexcouple.checkpoint import read_config
        start_data = read_config(config.init, allow_unverified=config.allow_unverified).get("data") or {}
        for task in ("superres", "forecast"):
            if task not in config.tasks and start_data.get(f"{task}_options"):
                info[f"{task}_options"] = start_data[f"{task}_options"]
        info["init"] = str(Path(config.init).resolve())
    summary = train(config, train_sets, val_sets, normalization=normalization, data_info=info, resume=args.resume)
    if dist.is_initialized():
        dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        printable = {k: v for k, v in summary.items() if k != "history"}
        print(json.dumps(printable, indent=2))
    return 0

