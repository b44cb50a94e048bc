"""Autoregressive forecast rollouts with a conditional sampler.

FLEX forecasts one interval ahead from the ``past`` most recent snapshots (oldest first). A rollout of
T steps repeats this, each time appending the forecast to the history and dropping the oldest
snapshot. The paper feeds the *ensemble mean* back (``feed="mean"``): one trajectory, whose ensemble
spread at each step is the one-step uncertainty around it. ``feed="members"`` instead evolves each
member on its own history (K independent trajectories), whose spread grows with lead time and is the
one to compare with the error of a long forecast.

Everything here works in the model's normalised units; de-normalising is the caller's business.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    """members: (B, T, K, H, W) sampled forecasts; mean: (B, T, H, W) their ensemble mean.
    Step t (0-based) is the forecast t + 1 intervals after the last conditioning snapshot."""

    members: torch.Tensor
    mean: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        """Ensemble standard deviation (unbiased), (B, T, H, W); zeros for one member."""
        if self.members.shape[2] < 2:
            return torch.zeros_like(self.mean)
        return self.members.std(dim=2, unbiased=True)


def sample_fields(model, condition: torch.Tensor, reynolds: torch.Tensor, *, steps: int, ensemble: int,
                  generator: torch.Generator | None, task: str) -> torch.Tensor:
    """Call ``model.sample`` and return (B, K, H, W) for a single-channel target.

    Accepts the documented (B, K, 1, H, W) output and the equivalent (B, K, H, W); anything else is
    refused rather than silently reshaped.
    """
    out = model.sample(condition, reynolds, steps=steps, ensemble=ensemble, generator=generator, task=task)
    b, h, w = condition.shape[0], condition.shape[-2], condition.shape[-1]
    if out.ndim == 5 and out.shape[2] == 1:
        out = out[:, :, 0]
    if tuple(out.shape) != (b, ensemble, h, w):
        raise ValueError(f"model.sample returned shape {tuple(out.shape)}; expected ({b}, {ensemble}, 1, {h}, {w}) "
                         f"for a batch of {b}, an ensemble of {ensemble} and {h}x{w} fields")
    return out


@torch.no_grad()
def rollout(model, history: torch.Tensor, reynolds: torch.Tensor, n_steps: int, *, steps: int = 2,
            ensemble: int = 1, generator: torch.Generator | None = None, feed: str = "mean",
            progress: bool = False) -> Rollout:
    """Forecast ``n_steps`` intervals ahead from ``history`` (B, P, H, W), oldest snapshot first.

    ``feed="mean"`` (the paper) conditions every step on the ensemble mean of the previous one;
    ``feed="members"`` carries K separate histories. ``generator`` makes the rollout reproducible.
    """
    if history.ndim != 4:
        raise ValueError(f"history must be (B, past, H, W); got shape {tuple(history.shape)}")
    if n_steps < 1:
        raise ValueError(f"a rollout needs at least 1 step; got {n_steps}")
    if feed not in ("mean", "members"):
        raise ValueError(f"feed must be 'mean' or 'members'; got {feed!r}")
    b, p, h, w = history.shape
    reynolds = torch.as_tensor(reynolds, dtype=history.dtype, device=history.device).reshape(b)
    steps_iter = range(n_steps)
    if progress:
        from tqdm.auto import tqdm
        steps_iter = tqdm(steps_iter, desc="rollout", leave=False)
    members, means = [], []
    if feed == "mean":
        state = history
        for _ in steps_iter:
            x = sample_fields(model, state, reynolds, steps=steps, ensemble=ensemble, generator=generator,
                              task="forecast")
            mean = x.mean(dim=1)
            members.append(x)
            means.append(mean)
            state = torch.cat([state[:, 1:], mean[:, None]], dim=1)
    else:
        # K histories per sample, member-major within each sample: (B*K, P, H, W)
        state = history.repeat_interleave(ensemble, dim=0)
        re_k = reynolds.repeat_interleave(ensemble)
        for _ in steps_iter:
            x = sample_fields(model, state, re_k, steps=steps, ensemble=1, generator=generator,
                              task="forecast")[:, 0]
            state = torch.cat([state[:, 1:], x[:, None]], dim=1)
            x = x.reshape(b, ensemble, h, w)
            members.append(x)
            means.append(x.mean(dim=1))
    return Rollout(members=torch.stack(members, dim=1), mean=torch.stack(means, dim=1))
