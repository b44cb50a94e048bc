"""UViT baseline as in the FLEX paper's code: a pure transformer on 8x8 patches with long skips.

- Shared encoder: patch embedding (conv, kernel = stride = patch), a condition token
  ``e = MLP(Fourier(t)) + MLP(Re / 40000)``, learned positions, ``depth // 2`` blocks and a middle block.
- Task encoders: the same ViT without time (the condition token is the Re embedding alone).
- Decoder: the task encoder's output tokens are added to the bottleneck tokens, the decoder embedding
  (Re part dropped per sample with probability 0.1 while training) to the condition token;
  ``depth // 2`` blocks with long skips ``encoder_skip + task_skip``; LayerNorm, a linear map back to
  patches, and a final 3x3 conv.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import Backbone, TaskFeatures, task_channels
from .layers import (FourierEmbedding, NoScaleDropout, ScalarMLP, TransformerBlock, conv3x3, init_linear_xavier,
                     interpolate_positions)

__all__ = ["UViT"]


class ViTEncoder(nn.Module):
    def __init__(self, in_channels, dim, patch, depth, heads, mlp_ratio, dropout, grid):
        super().__init__()
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.grid = grid
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid[0] * grid[1], dim))
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, mlp_ratio, dropout, gelu_approximate="none")
                                     for _ in range(depth // 2)])
        self.middle = TransformerBlock(dim, heads, mlp_ratio, dropout, gelu_approximate="none")
        init_linear_xavier(self)
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-2.0, b=2.0)

    def forward(self, x, cond_token):
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        tokens = torch.cat([cond_token[:, None, :].to(x.dtype), x.flatten(2).transpose(1, 2)], dim=1)
        tokens = tokens + interpolate_positions(self.pos_embed, self.grid, 1, h, w).to(tokens.dtype)
        skips = []
        for block in self.blocks:
            tokens = block(tokens)
            skips.append(tokens)
        return self.middle(tokens), skips


class UViT(Backbone):
    """The paper's UViT baseline, in the same two-stage backbone interface as FLEX."""

    def __init__(self, *, dim: int, depth: int, heads: int, patch: int = 8, mlp_ratio: float = 4.0,
                 dropout: float = 0.1, tasks=("superres",), cond_snapshots: int = 2, image_size: int = 256,
                 periodic: bool = True, embed_seed: int = 0):
        super().__init__(tasks, cond_snapshots)
        self.divisor = patch
        self.patch = patch
        if image_size % patch:
            raise ValueError(f"image_size {image_size} must be divisible by the patch size {patch}")
        grid = (image_size // patch,) * 2
        self.time_fourier = FourierEmbedding(dim, seed=embed_seed)
        self.time_embed = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
        self.reynolds_embed = ScalarMLP(dim)
        self.encoder = ViTEncoder(1, dim, patch, depth, heads, mlp_ratio, dropout, grid)
        init_linear_xavier(self.time_embed)
        init_linear_xavier(self.reynolds_embed)

        self.task_encoders = nn.ModuleDict()
        for task in self.tasks:
            enc = nn.Module()
            enc.reynolds_embed = ScalarMLP(dim)
            enc.encoder = ViTEncoder(task_channels(task, cond_snapshots), dim, patch, depth, heads, mlp_ratio,
                                     dropout, grid)
            init_linear_xavier(enc.reynolds_embed)
            self.task_encoders[task] = enc

        dec = nn.Module()
        dec.time_fourier = FourierEmbedding(dim, seed=embed_seed + 1)
        dec.time_embed = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
        dec.reynolds_embed = ScalarMLP(dim)
        dec.reynolds_drop = NoScaleDropout(0.1)
        dec.blocks = nn.ModuleList([TransformerBlock(dim, heads, mlp_ratio, dropout, skip=True,
                                                     gelu_approximate="none") for _ in range(depth // 2)])
        dec.norm = nn.LayerNorm(dim, eps=1e-6)
        dec.to_patches = nn.Linear(dim, patch * patch)
        init_linear_xavier(dec)
        dec.out = conv3x3(1, 1, periodic)
        self.decoder = dec

    def forward(self, x_t, t, reynolds, features: TaskFeatures) -> torch.Tensor:
        re = self.scaled_reynolds(reynolds)
        b, _, height, width = x_t.shape
        emb = self.time_embed(self.time_fourier(t)) + self.reynolds_embed(re)
        tokens, skips = self.encoder(x_t, emb)
        dec = self.decoder
        dec_emb = dec.time_embed(dec.time_fourier(t)) + dec.reynolds_drop(dec.reynolds_embed(re))
        tokens = tokens + features.head
        tokens = torch.cat([tokens[:, :1] + dec_emb[:, None, :].to(tokens.dtype), tokens[:, 1:]], dim=1)
        task_skips = list(features.skips)
        for block in dec.blocks:
            tokens = block(tokens, skips.pop() + task_skips.pop())
        patches = dec.to_patches(dec.norm(tokens)[:, 1:])  # (B, h*w, p*p)
        p, h, w = self.patch, height // self.patch, width // self.patch
        x = patches.reshape(b, h, w, p, p).permute(0, 1, 3, 2, 4).reshape(b, 1, height, width)
        return dec.out(x)
