"""Size presets of FLEX and its baselines, and parameter-count matching.

``small`` / ``medium`` / ``big`` are the paper code's presets; at image size 256 our modules have
exactly the reference's parameter counts (FLEX 49,718,529 / 199,170,561 / 949,803,905 super-resolution
only; 58,315,969 / 233,836,225 / 1,089,812,225 multi-task; tests/flexcouple/test_models.py checks
them). ``tiny`` is ours, for CPUs: 2.4M parameters (super-resolution), 2.9M (multi-task). ``c24`` and
``c16`` are tiny with 3/4 and 1/2 of its channels (1.6M and 0.7M multi-task), sized to a hybrid run's
budget: a 1-step call at 256^2 costs 0.27 and 0.15 s on one core against tiny's 0.35 s
(``benchmarks/results/costmodel.json``); FLEX (and its regression twin) only.

Counting uses the ``meta`` device: no memory is allocated, so even ``big`` counts in a second.
"""
from __future__ import annotations

import torch

from .flex import FLEX
from .unet import UNet
from .uvit import UViT

__all__ = ["BACKBONES", "PRESETS", "build_backbone", "backbone_parameters", "match_parameters"]

BACKBONES = {"flex": FLEX, "unet": UNet, "uvit": UViT}

PRESETS: dict[str, dict[str, dict]] = {
    "flex": {
        "tiny": dict(channels=[32, 32, 64, 64], res_blocks=[1, 1, 1, 1], depth=5, heads=4),
        "c24": dict(channels=[24, 24, 48, 48], res_blocks=[1, 1, 1, 1], depth=5, heads=4),
        "c16": dict(channels=[16, 16, 32, 32], res_blocks=[1, 1, 1, 1], depth=5, heads=4),
        # c16 on the field folded 2x2 space-to-depth: its top level on (n/2)^2 (FLEX's ``stem``)
        "c16s2": dict(channels=[16, 16, 32, 32], res_blocks=[1, 1, 1, 1], depth=5, heads=4, stem=2),
        # c16s2 with half its channels
        "c8s2": dict(channels=[8, 8, 16, 16], res_blocks=[1, 1, 1, 1], depth=5, heads=4, stem=2),
        # folded 4x4 (its top level on (n/4)^2, half the coarse grid of an x2 call): c16 and c24
        "c16s4": dict(channels=[16, 16, 32, 32], res_blocks=[1, 1, 1, 1], depth=5, heads=4, stem=4),
        "c24s4": dict(channels=[24, 24, 48, 48], res_blocks=[1, 1, 1, 1], depth=5, heads=4, stem=4),
        "small": dict(channels=[64, 128, 128, 256], res_blocks=[2, 3, 3, 3], depth=13, heads=4),
        "medium": dict(channels=[64, 128, 256, 512], res_blocks=[2, 3, 3, 4], depth=13, heads=8),
        "big": dict(channels=[128, 256, 512, 1152], res_blocks=[2, 3, 3, 3], depth=21, heads=16),
    },
    "unet": {
        "tiny": dict(width=12, res_blocks=[1, 1, 1, 1, 2]),
        "small": dict(width=32),
        "medium": dict(width=64),
        "big": dict(width=128),
    },
    "uvit": {
        "tiny": dict(dim=112, depth=7, heads=4),
        "small": dict(dim=384, depth=13, heads=8),
        "medium": dict(dim=768, depth=13, heads=12),
        "big": dict(dim=1152, depth=29, heads=16),
    },
}
PRESETS["regression"] = PRESETS["flex"]  # the deterministic baseline uses the FLEX backbone


def _arch(name: str, size: str, overrides: dict | None) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(PRESETS)}")
    if size not in PRESETS[name]:
        raise ValueError(f"unknown size {size!r} for {name}; choose from {list(PRESETS[name])}")
    arch = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in PRESETS[name][size].items()}
    arch.update(overrides or {})
    return arch


def build_backbone(name: str, size: str, tasks, image_size: int, cond_snapshots: int,
                   arch: dict | None = None, **options) -> torch.nn.Module:
    """The backbone ``name`` at preset ``size``, with ``arch`` overriding preset entries."""
    cls = BACKBONES["flex" if name == "regression" else name]
    return cls(**_arch(name, size, arch), tasks=tuple(tasks), cond_snapshots=cond_snapshots,
               image_size=image_size, **options)


def backbone_parameters(name: str, size: str, tasks, image_size: int = 256, cond_snapshots: int = 2,
                        arch: dict | None = None, **options) -> int:
    """Trainable parameter count, built on the meta device (no memory, fast even for ``big``)."""
    with torch.device("meta"):
        model = build_backbone(name, size, tasks, image_size, cond_snapshots, arch, **options)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def match_parameters(name: str, size: str, target: int, tasks, image_size: int = 256, cond_snapshots: int = 2,
                     **options) -> dict:
    """The width override of baseline ``name`` whose parameter count is closest to ``target``.

    The width is the fairest knob: depth and layout stay those of the preset. UNet: base width in
    steps of 1; UViT: token width in steps of its head count.
    """
    if name == "unet":
        key, step = "width", 1  # attention sits at 4x and 8x the width: any width splits into 4 heads
    elif name == "uvit":
        key, step = "dim", PRESETS["uvit"][size]["heads"]
    else:
        raise ValueError(f"parameter matching is for the baselines 'unet' and 'uvit', not {name!r}")
    count = lambda v: backbone_parameters(name, size, tasks, image_size, cond_snapshots, {key: v}, **options)  # noqa: E731
    lo, hi = step, step
    while count(hi) < target:  # parameter count grows monotonically (about quadratically) with width
        lo, hi = hi, hi * 2
    while hi - lo > step:  # bisect on multiples of step
        mid = (lo + hi) // (2 * step) * step
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    best = min((lo, hi), key=lambda v: abs(count(v) - target))
    return {key: best}
