"""UNet baseline as in the FLEX paper's code: a guided-diffusion UNet, conv bottleneck, no ViT.

- Shared encoder: stem, 5 levels of ResBlocks (channel multipliers (1, 2, 4, 4, 8), blocks
  (1, 2, 2, 2, 6)), self-attention blocks at the two coarsest levels (1/8 and 1/16 resolution), a
  downsampling ResBlock between levels, and a middle of two ResBlocks. Embedding width is twice the
  base width: ``e = MLP(Fourier(t)) + MLP(Re / 40000)``.
- Task encoders: the same conv stack without attention and without time, downsampling by a strided
  conv (the reference's choice); their middle output is added to the decoder input and their skips to
  the encoder skips the decoder reads (strong conditioning only: this baseline has no weak one).
- Decoder: ResBlocks on ``concat(h, skip + task_skip)``, attention at the coarse levels, upsampling
  ResBlocks, zero-initialised output conv.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Backbone, TaskFeatures, task_channels
from .layers import EmbedSequential, FourierEmbedding, ResBlock, ScalarMLP, conv3x3, group_norm, zero_init

__all__ = ["UNet"]


class SpatialAttention(nn.Module):
    """Self-attention over all pixels of a feature map (GN, 1x1 qkv, zero-initialised 1x1 projection)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels are not divisible by {heads} heads")
        self.heads = heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        # split q, k, v first, then heads (the "new" attention order of the reference)
        q, k, v = (z.reshape(b, self.heads, c // self.heads, h * w).transpose(-1, -2)
                   for z in self.qkv(self.norm(flat)).chunk(3, dim=1))
        a = F.scaled_dot_product_attention(q, k, v).transpose(-1, -2).reshape(b, c, h * w)
        return (flat + self.proj(a)).reshape(b, c, h, w)


class UNetEncoder(nn.Module):
    def __init__(self, in_channels, width, mult, res_blocks, attention_levels, emb_dim, dropout, periodic,
                 heads, resblock_down: bool):
        super().__init__()
        ch = width * mult[0]
        self.layers = nn.ModuleList([EmbedSequential([conv3x3(in_channels, ch, periodic)])])
        self.skip_channels = [ch]
        for level, m in enumerate(mult):
            for _ in range(res_blocks[level]):
                layers = [ResBlock(ch, width * m, emb_dim, dropout, periodic, skip_kernel=1)]
                ch = width * m
                if level in attention_levels:
                    layers.append(SpatialAttention(ch, heads))
                self.layers.append(EmbedSequential(layers))
                self.skip_channels.append(ch)
            if level != len(mult) - 1:
                down = (ResBlock(ch, ch, emb_dim, dropout, periodic, resample="down", skip_kernel=1)
                        if resblock_down else conv3x3(ch, ch, periodic, stride=2))
                self.layers.append(EmbedSequential([down]))
                self.skip_channels.append(ch)
        self.middle = EmbedSequential([ResBlock(ch, ch, emb_dim, dropout, periodic, skip_kernel=1),
                                       ResBlock(ch, ch, emb_dim, dropout, periodic, skip_kernel=1)])

    def forward(self, x, emb):
        skips = []
        for layer in self.layers:
            x = layer(x, emb)
            skips.append(x)
        return self.middle(x, emb), skips


class UNet(Backbone):
    """The paper's UNet baseline, in the same two-stage backbone interface as FLEX."""

    def __init__(self, *, width: int, mult=(1, 2, 4, 4, 8), res_blocks=(1, 2, 2, 2, 6), heads: int = 4,
                 attention_levels=None, dropout: float = 0.1, forecast_dropout: float = 0.15,
                 tasks=("superres",), cond_snapshots: int = 2, image_size: int = 256, periodic: bool = True,
                 embed_seed: int = 0):
        super().__init__(tasks, cond_snapshots)
        levels = len(mult)
        self.divisor = 2 ** (levels - 1)
        if image_size % self.divisor:
            raise ValueError(f"image_size {image_size} must be divisible by {self.divisor}")
        # the reference attends at 1/8 and 1/16 resolution (its "32, 16" at 256^2): the two coarsest levels
        attention_levels = tuple(range(levels - 2, levels)) if attention_levels is None else tuple(attention_levels)
        emb_dim = 2 * width
        self.time_fourier = FourierEmbedding(width, seed=embed_seed)
        self.time_embed = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.reynolds_embed = ScalarMLP(emb_dim, hidden=emb_dim)
        self.encoder = UNetEncoder(1, width, mult, res_blocks, attention_levels, emb_dim, dropout, periodic,
                                   heads, resblock_down=True)

        self.task_encoders = nn.ModuleDict()
        for task in self.tasks:
            enc = nn.Module()
            enc.reynolds_embed = ScalarMLP(emb_dim, hidden=emb_dim)
            enc.encoder = UNetEncoder(task_channels(task, cond_snapshots), width, mult, res_blocks, (), emb_dim,
                                      forecast_dropout if task == "forecast" else dropout, periodic, heads,
                                      resblock_down=False)
            self.task_encoders[task] = enc

        dec = nn.Module()
        dec.time_fourier = FourierEmbedding(width, seed=embed_seed + 1)
        dec.time_embed = nn.Sequential(nn.Linear(width, 2 * emb_dim), nn.SiLU(), nn.Linear(2 * emb_dim, emb_dim))
        dec.reynolds_embed = ScalarMLP(emb_dim, hidden=emb_dim)
        skip_channels = list(self.encoder.skip_channels)
        ch = width * mult[-1]
        blocks = []
        for level in reversed(range(levels)):
            for i in range(res_blocks[level] + 1):
                layers = [ResBlock(ch + skip_channels.pop(), width * mult[level], emb_dim, dropout, periodic,
                                   skip_kernel=1)]
                ch = width * mult[level]
                if level in attention_levels:
                    layers.append(SpatialAttention(ch, heads))
                if level and i == res_blocks[level]:
                    layers.append(ResBlock(ch, ch, emb_dim, dropout, periodic, resample="up", skip_kernel=1))
                blocks.append(EmbedSequential(layers))
        dec.blocks = nn.ModuleList(blocks)
        dec.out = nn.Sequential(group_norm(ch), nn.SiLU(), zero_init(conv3x3(ch, 1, periodic)))
        self.decoder = dec

    def forward(self, x_t, t, reynolds, features: TaskFeatures) -> torch.Tensor:
        re = self.scaled_reynolds(reynolds)
        emb = self.time_embed(self.time_fourier(t)) + self.reynolds_embed(re)
        h, skips = self.encoder(x_t, emb)
        dec = self.decoder
        dec_emb = dec.time_embed(dec.time_fourier(t)) + dec.reynolds_embed(re)
        h = h + features.head
        task_skips = list(features.skips)
        for block in dec.blocks:
            h = block(torch.cat([h, skips.pop() + task_skips.pop()], dim=1), dec_emb)
        return dec.out(h)

