"""Deterministic regression baseline with the FLEX backbone.

The same network and the same residual target as the diffusion model, trained to predict the residual
directly (L1, as the diffusion loss): the shared encoder is fed zeros at time ``t = 0`` and all the
information comes through the task encoder. This isolates what diffusion adds over plain regression.
It has no spread: an "ensemble" repeats the one prediction. ``space = "raw"``: it predicts the target
field itself (base 0), as the raw-space diffusion model.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

from flexcouple.diffusion import as_task_batches, check_space, model_base, prepare_sampling_inputs
from .base import TaskFeatures

__all__ = ["RegressionModel"]


class RegressionModel(nn.Module):
    kind = "regression"

    def __init__(self, backbone: nn.Module, space: str = "residual"):
        super().__init__()
        self.backbone = backbone
        self.space = check_space(space)
        self.config: dict = {}

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.backbone.tasks

    def predict_residual(self, features: TaskFeatures, reynolds: torch.Tensor, shape) -> torch.Tensor:
        zeros = torch.zeros(shape, device=reynolds.device, dtype=features.head.dtype)
        return self.backbone(zeros, torch.zeros_like(reynolds), reynolds, features)

    def forward(self, batches: Mapping, t=None, noise=None, generator=None) -> torch.Tensor:
        """L1 loss of the predicted residual; ``t``, ``noise`` and ``generator`` are accepted and unused."""
        batches = as_task_batches(self, batches)
        features = TaskFeatures.cat([self.backbone.encode_condition(b["condition"], b["reynolds"], task)
                                     for task, b in batches.items()])
        x0 = torch.cat([b["target"] - model_base(self, b["condition"], task) for task, b in batches.items()])
        reynolds = torch.cat([b["reynolds"] for b in batches.values()]).float()
        pred = self.predict_residual(features, reynolds, x0.shape)
        return (pred.float() - x0.float()).abs().mean()

    @torch.no_grad()
    def sample(self, condition, reynolds, steps: int = 2, ensemble: int = 1, generator=None, task=None,
               noise=None) -> torch.Tensor:
        """``base + predicted residual``, shape (B, ensemble, 1, H, W); ``steps`` is ignored."""
        reynolds, task = prepare_sampling_inputs(self, condition, reynolds, task, 1, ensemble)
        b, _, h, w = condition.shape
        features = self.backbone.encode_condition(condition, reynolds, task)
        pred = self.predict_residual(features, reynolds, (b, 1, h, w)).to(condition.dtype)
        out = pred + model_base(self, condition, task)
        return out[:, None].expand(b, int(ensemble), 1, h, w).contiguous()
