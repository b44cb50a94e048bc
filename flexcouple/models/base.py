"""What every denoising backbone (FLEX, UNet, UViT) shares: tasks, conditioning features, input checks.

A backbone is called in two stages, which the sampler exploits:

1. ``features = backbone.encode_condition(condition, reynolds, task)``: the task-specific encoder
   reads the conditioning field (upsampled coarse field, or the past snapshots). It does not see the
   diffusion time, so the sampler runs it once per call, not once per step, and once per condition,
   not once per ensemble member.
2. ``v = backbone(x_t, t, reynolds, features)``: the shared encoder / bottleneck / decoder predicts
   from the noisy residual ``x_t`` at time ``t``. Several tasks go through it as one batch, their
   features concatenated (multi-task training, as the paper: same ``t``, same noise for both halves).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["TASKS", "TaskFeatures", "Backbone", "task_channels", "REYNOLDS_SCALE"]

TASKS = ("superres", "forecast")
# the network sees Re / 40000, as the paper's code
REYNOLDS_SCALE = 40000.0


def task_channels(task: str, cond_snapshots: int) -> int:
    """Channels of a task's conditioning field: 1 (upsampled coarse) or the number of past snapshots."""
    if task == "superres":
        return 1
    if task == "forecast":
        return cond_snapshots
    raise ValueError(f"unknown task {task!r}; choose from {TASKS}")


def _repeat_rows(x: torch.Tensor, k: int) -> torch.Tensor:
    """Each row of ``x`` ``k`` times in a row, in ``x``'s memory layout (channels-last activations stay
    channels-last: the sampling path's convolutions make them so, and mixing layouts costs copies)."""
    out = x.repeat_interleave(k, dim=0)
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


@dataclass
class TaskFeatures:
    """A task encoder's output: its bottleneck ``head`` and its per-layer ``skips``."""

    head: torch.Tensor
    skips: list[torch.Tensor]

    def repeat(self, k: int) -> "TaskFeatures":
        """Each sample's features ``k`` times in a row (sample-major), for a batched ensemble."""
        if k == 1:
            return self
        return TaskFeatures(_repeat_rows(self.head, k), [_repeat_rows(s, k) for s in self.skips])

    @staticmethod
    def cat(parts: list["TaskFeatures"]) -> "TaskFeatures":
        """Features of several batches (e.g. the two tasks) stacked along the batch axis."""
        if len(parts) == 1:
            return parts[0]
        return TaskFeatures(torch.cat([p.head for p in parts]),
                            [torch.cat(s) for s in zip(*[p.skips for p in parts])])


class Backbone(nn.Module):
    """Base class: holds the task list and checks inputs; subclasses build the network."""

    #: the field size must be divisible by this (2 ** number of downsamplings, or the patch size)
    divisor: int = 16

    def __init__(self, tasks: tuple[str, ...], cond_snapshots: int):
        super().__init__()
        tasks = tuple(tasks)
        if not tasks or any(t not in TASKS for t in tasks) or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {tasks}")
        if cond_snapshots < 1:
            raise ValueError(f"cond_snapshots must be >= 1, got {cond_snapshots}")
        self.tasks = tasks
        self.cond_snapshots = cond_snapshots

    def check_condition(self, condition: torch.Tensor, reynolds: torch.Tensor, task: str) -> None:
        if task not in self.tasks:
            raise ValueError(f"this model was built for tasks {self.tasks}, not {task!r}")
        if not isinstance(condition, torch.Tensor) or condition.ndim != 4:
            raise ValueError("condition must be a (B, C, H, W) tensor, got "
                             f"{getattr(condition, 'shape', type(condition).__name__)}")
        c = task_channels(task, self.cond_snapshots)
        if condition.shape[1] != c:
            raise ValueError(f"task {task!r} expects {c} condition channel(s), got {condition.shape[1]}")
        h, w = condition.shape[-2:]
        if h % self.divisor or w % self.divisor:
            raise ValueError(f"field size {h}x{w} must be divisible by {self.divisor} for this model; "
                             "crop or pad the field")
        if reynolds.shape != (condition.shape[0],):
            raise ValueError(f"reynolds must have shape ({condition.shape[0]},), got {tuple(reynolds.shape)}")

    def encode_condition(self, condition: torch.Tensor, reynolds: torch.Tensor, task: str) -> "TaskFeatures":
        """The baselines' task encoders: an ``encoder`` and a Reynolds-number embedding (FLEX
        overrides this with its own task encoders)."""
        self.check_condition(condition, reynolds, task)
        enc = self.task_encoders[task]
        head, skips = enc.encoder(condition, enc.reynolds_embed(self.scaled_reynolds(reynolds)))
        return TaskFeatures(head, skips)

    @staticmethod
    def scaled_reynolds(reynolds: torch.Tensor) -> torch.Tensor:
        return reynolds.float() / REYNOLDS_SCALE
