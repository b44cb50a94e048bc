"""Optimisers and schedules for training: Lion, AdamW, cosine learning rate with warm-up, EMA.

Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), the paper's default::

    c = beta1 m + (1 - beta1) g            # interpolate momentum and gradient
    p = p (1 - lr wd) - lr sign(c)         # decoupled weight decay, unit-size signed step
    m = beta2 m + (1 - beta2) g            # momentum update with the slower beta2

Because every coordinate moves by exactly ``lr``, Lion wants a learning rate 3-10x smaller than AdamW
(the paper's code: 1e-5 with betas (0.9, 0.98)).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["Lion", "build_optimizer", "cosine_lr", "EMA"]


class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.sign(m * beta1 + p.grad * (1 - beta1)), alpha=-group["lr"])
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)
        return loss


def build_optimizer(name: str, params, lr: float, betas=None, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``"adamw"`` (betas default (0.9, 0.999)) or ``"lion"`` (betas default (0.9, 0.98), as the paper)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas or (0.9, 0.999)), weight_decay=weight_decay)
    if name == "lion":
        return Lion(params, lr=lr, betas=tuple(betas or (0.9, 0.98)), weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose 'adamw' or 'lion'")


def cosine_lr(step: int, base_lr: float, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_ratio * base_lr`` at ``total``.

    A pure function of the step: resuming needs no scheduler state.
    """
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class EMA:
    """Exponential moving average of a model's floating-point state: ``ema = d ema + (1 - d) w``."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.state[k].lerp_(v.detach(), 1 - self.decay)
            else:
                self.state[k].copy_(v)

    def load(self, state: dict) -> None:
        for k, v in state.items():
            self.state[k].copy_(v)
