"""Non-learned baselines: bicubic and spectral interpolation (super-resolution), persistence (forecast).

Interpolation upsamples the coarse field with ``flexcouple.data.coarsen.upsample``, the same function
the data sets use. The super-resolution condition is, by the data contract, already the bicubic
upsampled coarse field, so ``bicubic`` without ``coarse=`` returns the condition; ``spectral`` needs the
coarse field itself (``coarse=``, shape (B, 1, h, w)). Persistence predicts ``x(t+1) = x(t)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from flexcouple.diffusion import prepare_sampling_inputs, residual_base

__all__ = ["InterpolationModel", "METHODS"]

METHODS = {"bicubic": "superres", "spectral": "superres", "persistence": "forecast"}


class InterpolationModel(nn.Module):
    kind = "interpolation"

    def __init__(self, method: str, periodic: bool = False):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown interpolation baseline {method!r}; choose from {sorted(METHODS)}")
        self.method = method
        self.periodic = periodic  # grid-aligned periodic bicubic instead of the paper's image bicubic
        self.tasks = (METHODS[method],)
        self.config: dict = {}

    def forward(self, *args, **kwargs):
        raise ValueError(f"the {self.method} baseline has no parameters: there is nothing to train")

    @torch.no_grad()
    def sample(self, condition, reynolds, steps: int = 2, ensemble: int = 1, generator=None, task=None,
               noise=None, coarse: torch.Tensor | None = None) -> torch.Tensor:
        """The interpolated (or persisted) field, shape (B, ensemble, 1, H, W)."""
        _, task = prepare_sampling_inputs(self, condition, reynolds, task, 1, ensemble)
        b, _, h, w = condition.shape
        if self.method == "persistence" or (self.method == "bicubic" and coarse is None and not self.periodic):
            out = residual_base(condition, task)
        else:
            if coarse is None:
                raise ValueError(f"{self.method} interpolation needs the coarse field: pass coarse=(B, 1, h, w)")
            from flexcouple.data.coarsen import upsample
            kwargs = {"periodic": True} if (self.method == "bicubic" and self.periodic) else {}
            out = upsample(coarse.to(condition.dtype), (h, w), method=self.method, **kwargs)
        return out[:, None].expand(b, int(ensemble), 1, h, w).contiguous()
