"""FLEX and its baselines behind one constructor.

>>> model = build_model("flex", "tiny", tasks=("superres", "forecast"), image_size=64)
>>> loss = model({"superres": batch_sr, "forecast": batch_fc})          # training loss
>>> fields = model.sample(condition, reynolds, steps=2, ensemble=4, task="superres")  # (B, 4, 1, H, W)

Names: ``flex`` (residual diffusion with the FLEX backbone), ``unet`` and ``uvit`` (the paper's
baselines in the same diffusion wrapper), ``regression`` (the FLEX backbone trained deterministically),
``bicubic`` / ``spectral`` (interpolation) and ``persistence`` (forecast baseline). Sizes: ``tiny``
(ours, CPU), ``small`` / ``medium`` / ``big`` (the paper's).
"""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from flexcouple.diffusion import ResidualDiffusion, check_space
from .base import TASKS, TaskFeatures
from .interpolation import METHODS as INTERPOLATION_METHODS, InterpolationModel
from .presets import PRESETS, backbone_parameters, build_backbone, match_parameters
from .regression import RegressionModel

__all__ = ["build_model", "count_parameters", "model_from_config", "MODEL_NAMES", "SIZES", "TASKS",
           "TaskFeatures", "backbone_parameters", "match_parameters", "ResidualDiffusion", "RegressionModel",
           "InterpolationModel"]

MODEL_NAMES = ("flex", "unet", "uvit", "regression") + tuple(INTERPOLATION_METHODS)
SIZES = ("c8s2", "c16s4", "c24s4", "c16s2", "c16", "c24", "tiny", "small", "medium", "big")


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; fixed Fourier-feature frequencies are buffers, not counted."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def build_model(name: str, size: str = "tiny", tasks: Sequence[str] = ("superres",), image_size: int = 256,
                cond_snapshots: int = 2, *, periodic: bool = True, dropout: float | None = None,
                match_params: str | int | None = None, arch: dict | None = None,
                logsnr_shift: float = 1.0, space: str = "residual") -> nn.Module:
    """Build a model with ``.sample(condition, reynolds, steps=2, ensemble=1, generator=None, task=None)``.

    ``periodic``: circular padding (periodic fields, no seams). ``dropout``: overrides the preset's
    (0.1). ``match_params``: for ``unet`` / ``uvit``, ``"flex"`` or a number: the baseline's width is
    chosen so its parameter count is closest to FLEX's at the same size and tasks (or to the number).
    ``arch``: explicit overrides of the preset (what a checkpoint stores). ``space``: "residual" (the
    model generates target - base, FLEX) or "raw" (the target itself; trained models only). The returned module carries
    ``.config``, everything needed to build it again.
    """
    if isinstance(tasks, str):
        tasks = (tasks,)
    tasks = tuple(tasks)
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES}")
    if image_size < 1 or cond_snapshots < 1:
        raise ValueError(f"image_size and cond_snapshots must be positive, got {image_size}, {cond_snapshots}")
    config = {"model": name, "size": size, "tasks": list(tasks), "image_size": int(image_size),
              "cond_snapshots": int(cond_snapshots), "periodic": bool(periodic), "dropout": dropout,
              "logsnr_shift": float(logsnr_shift), "arch": dict(arch or {}), "space": check_space(space)}
    if name in INTERPOLATION_METHODS:
        if space != "residual":
            raise ValueError(f"the {name} baseline has no trained network: space {space!r} does not apply")
        model = InterpolationModel(name, periodic=False)
        if tasks != model.tasks:
            raise ValueError(f"the {name} baseline does the task {model.tasks[0]!r} only, not {tasks}")
        model.config = config
        return model
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {SIZES}")
    if size not in PRESETS[name]:
        raise ValueError(f"unknown size {size!r} for {name}; choose from {list(PRESETS[name])}")
    arch = dict(arch or {})
    if match_params is not None:
        if name not in ("unet", "uvit"):
            raise ValueError("match_params applies to the baselines 'unet' and 'uvit'")
        target = (backbone_parameters("flex", size, tasks, image_size, cond_snapshots)
                  if match_params == "flex" else int(match_params))
        arch.update(match_parameters(name, size, target, tasks, image_size, cond_snapshots))
    if dropout is not None:
        arch["dropout"] = float(dropout)
        if name == "unet":
            arch["forecast_dropout"] = float(dropout)
    full_arch = {k: (list(v) if isinstance(v, tuple) else v) for k, v in PRESETS[name][size].items()}
    full_arch.update(arch)
    config["arch"] = full_arch
    backbone = build_backbone(name, size, tasks, image_size, cond_snapshots, arch, periodic=periodic)
    model = RegressionModel(backbone, space=space) if name == "regression" else ResidualDiffusion(
        backbone, logsnr_shift=logsnr_shift, space=space)
    model.config = config
    return model


def model_from_config(config: dict) -> nn.Module:
    """Rebuild a model (with fresh weights) from its ``.config`` (as stored in a checkpoint)."""
    try:
        return build_model(config["model"], config["size"], tuple(config["tasks"]), config["image_size"],
                           config["cond_snapshots"], periodic=config.get("periodic", True),
                           dropout=config.get("dropout"), arch=config.get("arch"),
                           logsnr_shift=config.get("logsnr_shift", 1.0),
                           space=config.get("space", "residual"))  # checkpoints before raw space: residual
    except KeyError as exc:
        raise ValueError(f"model config lacks the entry {exc}; it was not written by flexcouple") from None
    except TypeError as exc:  # e.g. an arch entry the backbone does not take, or a mistyped value
        raise ValueError(f"model config does not describe a model flexcouple can build "
                         f"({config.get('model')!r}, size {config.get('size')!r}): {exc}") from None
