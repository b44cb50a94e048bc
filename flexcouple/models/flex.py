"""FLEX: a hybrid conv-encoder / ViT-bottleneck / conv-decoder with task-specific encoders.

Structure (arXiv 2505.17351 and its public code), for channels ``c_0..c_{L-1}`` (L = 4 levels):

- Shared encoder: 3x3 stem, then per level ``n_l`` ResBlocks (scale-shift conditioned on the
  embedding ``e = MLP(Fourier(t)) + MLP(Re / 40000)``) and one downsampling ResBlock (avg-pool), so a
  256^2 field reaches the 16^2 bottleneck. Every layer output is kept as a skip.
- Bottleneck: a ViT with patch size 1 (one token per bottleneck pixel, width ``c_{L-1}``), one extra
  condition token ``e``, a learned positional embedding, ``depth // 2`` pre-LN blocks, a middle block,
  and in the decoder ``depth // 2`` blocks fed UViT long skips (Linear(2D -> D) on the concatenation).
- Decoder: its own embedding ``e'`` (added to the condition token, and conditioning its ResBlocks),
  then ResBlocks fed ``concat(x, encoder_skip + task_skip)``, upsampling back to full resolution, and
  a zero-initialised GN-SiLU-conv output: the network starts by predicting 0.
- ``stem`` s > 1 (ours, for CPU budgets; the paper's code has s = 1): the network runs on the field
  folded space-to-depth (``pixel_unshuffle``: each s x s block of cells becomes s^2 channels), so
  its first level is on (H / s)^2 instead of H^2, and the output is unfolded (``pixel_shuffle``) back
  to H^2: every fine cell keeps its own output channel. On a CPU the top level's convolutions,
  norms and activations are most of a call (80% at 256^2 for ``c16``); s = 2 makes them a quarter.
- Task encoders (one per task: superres reads the upsampled coarse field, forecast the past
  snapshots): the same conv encoder with only the Reynolds-number embedding, no time, no transformer.
  Weak conditioning: their skips are ADDED to the shared encoder's layer outputs, so the shared
  encoder stays task-agnostic. Strong conditioning: their bottleneck is added to the transformer's
  output, and their skips are added once more to the skips the decoder reads.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Backbone, TaskFeatures, task_channels
from .layers import (EmbedSequential, FourierEmbedding, ResBlock, ScalarMLP, TransformerBlock, conv3x3,
                     group_norm, init_linear_xavier, interpolate_positions, zero_init)

__all__ = ["FLEX", "ConvEncoder"]


class ConvEncoder(nn.Module):
    """Stem conv + per level ``res_blocks[l]`` ResBlocks + a downsampling ResBlock.

    ``forward`` returns the output of every layer (the skips); with ``task_skips`` given, each is
    added to the matching layer output first (FLEX's weak conditioning).
    """

    def __init__(self, in_channels: int, channels: list[int], res_blocks: list[int], emb_dim: int,
                 dropout: float, periodic: bool):
        super().__init__()
        ch = channels[0]
        self.layers = nn.ModuleList([EmbedSequential([conv3x3(in_channels, ch, periodic)])])
        for level, out_ch in enumerate(channels):
            for _ in range(res_blocks[level]):
                self.layers.append(EmbedSequential([ResBlock(ch, out_ch, emb_dim, dropout, periodic)]))
                ch = out_ch
            self.layers.append(EmbedSequential([ResBlock(ch, ch, emb_dim, dropout, periodic, resample="down")]))

    def forward(self, x: torch.Tensor, emb: torch.Tensor,
                task_skips: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        skips = []
        for i, layer in enumerate(self.layers):
            x = layer(x, emb)
            if task_skips is not None:
                x = x + task_skips[i]
            skips.append(x)
        return skips


class TaskEncoder(nn.Module):
    """A task's conditioning encoder: the conv encoder with the Re embedding only (no time, no ViT)."""

    def __init__(self, in_channels: int, channels, res_blocks, dropout: float, periodic: bool):
        super().__init__()
        dim = channels[-1]
        self.reynolds_embed = ScalarMLP(dim)
        self.encoder = ConvEncoder(in_channels, channels, res_blocks, dim, dropout, periodic)
        init_linear_xavier(self)

    def forward(self, condition: torch.Tensor, reynolds_scaled: torch.Tensor) -> TaskFeatures:
        skips = self.encoder(condition, self.reynolds_embed(reynolds_scaled))
        return TaskFeatures(head=skips[-1], skips=skips)


class FLEX(Backbone):
    """The FLEX backbone; see the module docstring. Presets live in :mod:`flexcouple.models.presets`."""

    def __init__(self, *, channels: list[int], res_blocks: list[int], depth: int, heads: int,
                 mlp_ratio: float = 2.0, dropout: float = 0.1, tasks=("superres",), cond_snapshots: int = 2,
                 image_size: int = 256, periodic: bool = True, embed_seed: int = 0, stem: int = 1):
        super().__init__(tasks, cond_snapshots)
        if len(channels) != len(res_blocks):
            raise ValueError("channels and res_blocks need one entry per level")
        if isinstance(stem, bool) or not isinstance(stem, int) or stem < 1:
            raise ValueError(f"stem (the space-to-depth factor) must be an integer >= 1, got {stem!r}")
        self.stem = stem
        self.divisor = stem * 2 ** len(channels)
        if image_size % self.divisor:
            raise ValueError(f"image_size {image_size} must be divisible by {self.divisor}")
        dim = channels[-1]
        self.grid = (image_size // self.divisor,) * 2
        folded = stem * stem  # channels per input channel after the space-to-depth fold

        # shared encoder: embedding of (t, Re), conv encoder, ViT first half + middle block
        self.time_fourier = FourierEmbedding(dim, seed=embed_seed)
        self.time_embed = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
        self.reynolds_embed = ScalarMLP(dim)
        self.encoder = ConvEncoder(folded, channels, res_blocks, dim, dropout, periodic)
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], dim))
        self.vit_encoder = nn.ModuleList([TransformerBlock(dim, heads, mlp_ratio, dropout)
                                          for _ in range(depth // 2)])
        self.vit_middle = TransformerBlock(dim, heads, mlp_ratio, dropout)
        init_linear_xavier(self)  # Xavier Linear layers, as the reference initialises its encoder
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-2.0, b=2.0)

        self.task_encoders = nn.ModuleDict({
            task: TaskEncoder(task_channels(task, cond_snapshots) * folded, channels, res_blocks, dropout, periodic)
            for task in self.tasks})

        # decoder: its own embedding, ViT second half with long skips, conv decoder
        dec = nn.Module()
        dec.time_fourier = FourierEmbedding(dim, seed=embed_seed + 1)
        dec.time_embed = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
        dec.reynolds_embed = ScalarMLP(dim)
        dec.vit = nn.ModuleList([TransformerBlock(dim, heads, mlp_ratio, dropout, skip=True)
                                 for _ in range(depth // 2)])
        dec.norm = nn.LayerNorm(dim)
        # channels of the encoder skips the decoder consumes, in encoder order (the last
        # downsampling output is consumed by the first, upsampling, decoder block)
        skip_channels = [channels[0]]
        for level, c in enumerate(channels):
            skip_channels += [c] * res_blocks[level] + ([c] if level != len(channels) - 1 else [])
        blocks = [EmbedSequential([ResBlock(2 * dim, dim, dim, dropout, periodic, resample="up")])]
        ch = dim
        for level in reversed(range(len(channels))):
            out_ch = channels[level]
            for i in range(res_blocks[level] + 1):
                layers = [ResBlock(ch + skip_channels.pop(), out_ch, dim, dropout, periodic)]
                ch = out_ch
                if level and i == res_blocks[level]:
                    layers.append(ResBlock(ch, ch, dim, dropout, periodic, resample="up"))
                blocks.append(EmbedSequential(layers))
        dec.blocks = nn.ModuleList(blocks)
        dec.out = nn.Sequential(group_norm(ch), nn.SiLU(), zero_init(conv3x3(ch, folded, periodic)))
        init_linear_xavier(dec)
        self.decoder = dec

    def encode_condition(self, condition: torch.Tensor, reynolds: torch.Tensor, task: str) -> TaskFeatures:
        self.check_condition(condition, reynolds, task)
        return self.task_encoders[task](self._fold(condition), self.scaled_reynolds(reynolds))

    def _fold(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.stem) if self.stem > 1 else x

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, reynolds: torch.Tensor,
                features: TaskFeatures) -> torch.Tensor:
        re = self.scaled_reynolds(reynolds)
        emb = self.time_embed(self.time_fourier(t)) + self.reynolds_embed(re)
        skips = self.encoder(self._fold(x_t), emb, task_skips=features.skips)  # weak conditioning

        x = skips[-1]
        b, d, h, w = x.shape
        tokens = torch.cat([emb[:, None, :].to(x.dtype), x.flatten(2).transpose(1, 2)], dim=1)
        tokens = tokens + interpolate_positions(self.pos_embed, self.grid, 1, h, w).to(tokens.dtype)
        vit_skips = []
        for block in self.vit_encoder:
            tokens = block(tokens)
            vit_skips.append(tokens)
        tokens = self.vit_middle(tokens)

        dec = self.decoder
        dec_emb = dec.time_embed(dec.time_fourier(t)) + dec.reynolds_embed(re)
        tokens = torch.cat([tokens[:, :1] + dec_emb[:, None, :].to(tokens.dtype), tokens[:, 1:]], dim=1)
        for block in dec.vit:
            tokens = block(tokens, vit_skips.pop())
        tokens = dec.norm(tokens)[:, 1:]
        x = tokens.transpose(1, 2).reshape(b, d, h, w)
        x = x + features.head  # strong conditioning: the task bottleneck
        task_skips = list(features.skips)
        for block in dec.blocks:
            x = block(torch.cat([x, skips.pop() + task_skips.pop()], dim=1), dec_emb)
        x = dec.out(x)
        return F.pixel_shuffle(x, self.stem) if self.stem > 1 else x
