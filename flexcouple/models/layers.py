"""Building blocks shared by FLEX and its baselines (UNet, UViT).

- ``ResBlock``: the guided-diffusion residual block used by FLEX and the UNet:
  ``h = conv(SiLU(GN(x)))``, then scale-shift conditioning ``GN(h) * (1 + scale) + shift`` with
  ``(scale, shift) = Linear(SiLU(emb))``, then ``conv(dropout(SiLU(.)))`` with the last conv
  zero-initialised, so every block starts as the identity (plus a channel projection).
  With ``resample="down"`` / ``"up"`` both branches are average-pooled / nearest-upsampled by 2.
- ``TransformerBlock``: pre-LayerNorm ViT block, with the optional UViT long skip
  ``x = Linear(concat(x, skip))`` (2D -> D) before attention.
- ``FourierEmbedding``: random Fourier features of the diffusion time ``sqrt(2) cos(2 pi (f t + phi))``
  with fixed (buffer, not trained) frequencies ``f ~ N(0, 1)`` and phases ``phi ~ U(0, 1)``.
- ``ScalarMLP``: ``Linear(1, 2D) - SiLU - Linear(2D, D)``, how a scalar (the Reynolds number) enters.

Convolutions take ``periodic``: circular padding, so a periodic field has no border and no seam.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "conv3x3", "periodic_conv3x3", "wrap_pad", "silu_dropout_conv", "group_norm", "zero_init", "FourierEmbedding",
    "ScalarMLP", "ResBlock", "Attention", "TransformerBlock", "EmbedSequential", "NoScaleDropout", "interpolate_positions",
]


class _WrapPad(torch.autograd.Function):
    """Periodic padding by one cell on both spatial axes, with a hand-written backward.

    PyTorch's generic circular pad differentiates through many slices; here each direction is one
    full-size copy plus the thin wrapped edges: the forward writes the field into the centre of a new
    buffer and copies the opposite edges and corners around it; the backward takes the centre of the
    incoming gradient and folds the border cells back onto the edges they came from.
    """

    @staticmethod
    def forward(ctx, x):
        return _wrap_padded(x)

    @staticmethod
    def backward(ctx, g):
        gx = g[..., 1:-1, 1:-1].clone()
        col_first = g[..., :, -1]  # padded column W+1 holds x column 0 (rows 0 and H+1: wrapped rows)
        col_last = g[..., :, 0]    # padded column 0 holds x column W-1
        gx[..., :, 0] += col_first[..., 1:-1]
        gx[..., :, -1] += col_last[..., 1:-1]
        gx[..., 0, :] += g[..., -1, 1:-1]  # padded row H+1 holds x row 0
        gx[..., -1, :] += g[..., 0, 1:-1]  # padded row 0 holds x row H-1
        # the four padded corners hold x's opposite corners
        gx[..., 0, 0] += col_first[..., -1]
        gx[..., -1, 0] += col_first[..., 0]
        gx[..., 0, -1] += col_last[..., -1]
        gx[..., -1, -1] += col_last[..., 0]
        return gx


def _wrap_padded(x: torch.Tensor, memory_format=torch.contiguous_format) -> torch.Tensor:
    """A new buffer holding ``x`` wrapped by one cell on each side (no autograd)."""
    h, w = x.shape[-2:]
    out = torch.empty(x.shape[:-2] + (h + 2, w + 2), dtype=x.dtype, device=x.device, memory_format=memory_format)
    out[..., 1:-1, 1:-1] = x
    return _fill_halo(out)


def _fill_halo(out: torch.Tensor) -> torch.Tensor:
    """Copy the opposite edges of ``out``'s centre into its one-cell border (in place); returns ``out``."""
    out[..., 0, 1:-1] = out[..., -2, 1:-1]
    out[..., -1, 1:-1] = out[..., 1, 1:-1]
    out[..., :, 0] = out[..., :, -2]  # columns last, so the corners wrap diagonally
    out[..., :, -1] = out[..., :, 1]
    return out


def wrap_pad(x: torch.Tensor) -> torch.Tensor:
    """``x`` padded periodically by one cell on each side of the last two axes."""
    return _WrapPad.apply(x)


def _silu_wrap_padded(x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """A new buffer holding ``SiLU(x) * keep`` wrapped by one cell on each side (no autograd)."""
    h, w = x.shape[-2:]
    out = torch.empty(x.shape[:-2] + (h + 2, w + 2), dtype=x.dtype, device=x.device)
    centre = out[..., 1:-1, 1:-1]
    torch.ops.aten.silu.out(x, out=centre)
    if keep is not None:
        centre.mul_(keep)
    return _fill_halo(out)


class _SiLUWrapPad(torch.autograd.Function):
    """``wrap_pad(SiLU(x) * keep)`` (``keep``: a dropout mask already scaled by 1 / (1 - p), or None)
    written straight into the padded buffer.

    ``wrap_pad`` after the activation copies every activation once more; here the activation (and
    the dropout mask) is computed into the centre of the padded buffer and the halo copied from it.
    The backward folds the padded gradient as ``_WrapPad`` does (into a new tensor: the incoming one
    is not modified), masks it in place and applies SiLU's derivative: one temporary fewer than
    autograd through the three. The same values as ``wrap_pad(dropout(F.silu(x)))`` with the same
    mask, to round-off (tested). (Reading the padded gradient's centre in place and adding the halo
    as thin strips after measured no faster: the strided reads and the strips' calls cost what the
    copy saves.)
    """

    @staticmethod
    def forward(ctx, x, keep):
        ctx.save_for_backward(x, keep)
        return _silu_wrap_padded(x, keep)

    @staticmethod
    def backward(ctx, g):
        x, keep = ctx.saved_tensors
        gx = _WrapPad.backward(ctx, g)  # a new tensor: the centre, the halo folded onto the edges
        if keep is not None:
            gx.mul_(keep)
        return torch.ops.aten.silu_backward(gx, x), None


class _PeriodicConv3x3(torch.autograd.Function):
    """``conv(wrap_pad(a))`` (3x3, stride 1) with ``a = SiLU(x) * keep`` (``silu``; ``keep`` a scaled
    dropout mask or None) or ``a = x``, differentiated without a padded gradient.

    Through autograd, the convolution's backward makes the gradient of the padded input, (H+2) x
    (W+2) cells, which ``wrap_pad``'s backward then folds onto the edges. The gradient of a periodic
    convolution is itself a periodic convolution: ``conv(wrap_pad(g), w')`` with ``w'`` the kernel
    flipped in space and transposed in channels, H x W cells, and nothing to fold; the weight's
    gradient is the library's, on the padded input kept from the forward. Equal to autograd through
    the parts to round-off (tested, with gradcheck).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, keep, silu):
        padded = _silu_wrap_padded(x, keep) if silu else _wrap_padded(x)
        ctx.silu, ctx.has_bias = silu, bias is not None
        ctx.save_for_backward(padded, weight, x if silu else None, keep)
        return F.conv2d(padded, weight, bias)

    @staticmethod
    def backward(ctx, g):
        padded, weight, x, keep = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g = g.contiguous()
        gx = gw = gb = None
        if need_w or (need_b and ctx.has_bias):
            _, gw, gb = torch.ops.aten.convolution_backward(
                g, padded, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], [0, 0], [1, 1], False,
                [0, 0], 1, [False, need_w, need_b and ctx.has_bias])
        if need_x:
            gx = F.conv2d(_wrap_padded(g), weight.transpose(0, 1).flip(-2, -1))
            if ctx.silu:
                if keep is not None:
                    gx.mul_(keep)
                gx = torch.ops.aten.silu_backward(gx, x)
        return gx, gw, gb, None, None


def _autocast(x: torch.Tensor) -> bool:
    """Whether autocast is on for ``x``'s device (``_PeriodicConv3x3`` then steps aside: under autocast
    the convolution's output, hence its gradient, is in the low precision and the saved input not)."""
    return torch.is_autocast_enabled(x.device.type)


def silu_dropout_conv(conv: nn.Conv2d, x: torch.Tensor, dropout: nn.Dropout | None = None) -> torch.Tensor:
    """``conv(dropout(F.silu(x)))``; for a periodic 3x3 convolution in training (gradients on), the
    activation, the dropout and the periodic padding in one buffer (``_SiLUWrapPad``), differentiated
    by ``_PeriodicConv3x3``. A ``tiny`` FLEX training step (batch 4, 2 CPU threads, variants shuffled
    in one process), the fused buffer alone against the three apart: 1.72 against 1.93 s at 128^2,
    9.49 against 10.88 s at 256^2, no change at 64^2; with ``_PeriodicConv3x3``'s backward on top:
    0.59 / 1.67 / 9.20 s against 0.63 / 1.83 / 9.90 s (64^2 / 128^2 / 256^2). Elsewhere the three apart."""
    if isinstance(conv, PeriodicConv2d) and conv.stride == (1, 1) and torch.is_grad_enabled() and x.dim() == 4:
        keep = None
        if dropout is not None and dropout.training and dropout.p > 0:
            if dropout.p >= 1:
                keep = torch.zeros_like(x)
            else:  # as nn.Dropout draws it: one Bernoulli(1 - p) per element, scaled by 1 / (1 - p)
                keep = torch.empty_like(x).bernoulli_(1 - dropout.p).div_(1 - dropout.p)
        if _autocast(x):  # mixed precision: the library's backward (ours would mix dtypes)
            return F.conv2d(_SiLUWrapPad.apply(x, keep), conv.weight, conv.bias, 1, 0)
        return _PeriodicConv3x3.apply(x, conv.weight, conv.bias, keep, True)
    h = F.silu(x)
    return conv(dropout(h) if dropout is not None else h)


def periodic_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 3x3 convolution (stride 1) of a periodic field, without padding the field.

    ``conv(wrap_pad(x))`` copies every activation into a padded buffer before each convolution; here
    the convolution runs on ``x`` itself with the library's implicit zero border, and then the halo's
    contributions are added on the four edges: the row above row 0 is row H-1 and the row below row
    H-1 is row 0 (each wrapped along the width, so the corners come with them), the column left of
    column 0 is column W-1 and right of column W-1 is column 0 (zero beyond the rows: the corners
    are in the row terms). Each is a thin convolution with one row or column of the kernel. The same
    sum as ``conv(wrap_pad(x))`` in another order (equal to round-off, tested); autograd differentiates
    it as it is (the in-place adds are on the convolution's output, which its backward does not need).
    """
    y = F.conv2d(x, weight, bias, 1, 1)
    above = torch.cat([x[..., -1:, -1:], x[..., -1:, :], x[..., -1:, :1]], dim=-1)  # (B, C, 1, W + 2)
    below = torch.cat([x[..., :1, -1:], x[..., :1, :], x[..., :1, :1]], dim=-1)
    y[..., :1, :] += F.conv2d(above, weight[..., :1, :])
    y[..., -1:, :] += F.conv2d(below, weight[..., 2:, :])
    y[..., :, :1] += F.conv2d(x[..., :, -1:], weight[..., :, :1], padding=(1, 0))
    y[..., :, -1:] += F.conv2d(x[..., :, :1], weight[..., :, 2:], padding=(1, 0))
    return y


class PeriodicConv2d(nn.Conv2d):
    """3x3 convolution over a periodic field: circular padding by one cell.

    Same parameters (names, shapes) as ``nn.Conv2d(..., padding=1)``. Two ways to the same result
    (equal to round-off, tested), each where it measured faster on this CPU
    (``benchmarks/bench_flex_speed.py``):

    * with gradients (training): ``conv(wrap_pad(x))`` in the input's layout, differentiated by
      ``_PeriodicConv3x3`` (no padded gradient to fold);
    * without (sampling, ``torch.no_grad`` / ``inference_mode``) on CPU: channels-last, with a
      channels-last copy of the weight cached until the weight changes (oneDNN then convolves without
      reordering), and ``periodic_conv3x3`` (no padded copy) on fields of ``HALO_MIN_CELLS`` and more,
      a channels-last wrap-padded copy below. 2-step ``tiny`` sampling, against the NCHW padded path:
      0.130 / 0.141 s at 64^2, 0.264 / 0.358 s at 128^2, 0.978 / 1.206 s at 256^2. (Channels-last in
      training was slower here, and so was the thin halo convolutions' backward.)
    """

    #: below this many cells a field is padded (a cheap copy there) rather than convolved with halo terms
    #: (four thin convolutions, whose per-call overhead dominates on small fields)
    HALO_MIN_CELLS = 96 * 96

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1) and x.device.type == "cpu" and not torch.is_grad_enabled() and x.dim() == 4:
            weight = self._inference_weight()
            if x.shape[-2] * x.shape[-1] >= self.HALO_MIN_CELLS:
                return periodic_conv3x3(x, weight, self.bias)
            return F.conv2d(_wrap_padded(x, torch.channels_last), weight, self.bias, 1, 0)
        if self.stride == (1, 1) and x.dim() == 4 and not _autocast(x):
            return _PeriodicConv3x3.apply(x, self.weight, self.bias, None, False)
        return F.conv2d(wrap_pad(x), self.weight, self.bias, self.stride, 0)

    def _inference_weight(self) -> torch.Tensor:
        """The weight in channels-last layout, remade when the weight changes (optimizer step, load,
        move): keyed on its storage, version counter, dtype and device."""
        w = self.weight
        try:
            key = (w.data_ptr(), w._version, w.dtype, w.device)
        except RuntimeError:  # an inference tensor (made under inference_mode) has no version counter
            key = None
        if key is None or self.__dict__.get("_inference_key") != key:
            # canonical channels-last strides even where one input channel makes both layouts contiguous
            # (``contiguous`` would keep NCHW strides there, and oneDNN would then stay in NCHW)
            self.__dict__["_inference_weight_cl"] = torch.empty_like(
                w, memory_format=torch.channels_last, requires_grad=False).copy_(w.detach())
            self.__dict__["_inference_key"] = key
        return self.__dict__["_inference_weight_cl"]


def conv3x3(in_channels: int, out_channels: int, periodic: bool, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution; circular padding for periodic fields (no seams), zero padding otherwise."""
    if periodic:
        return PeriodicConv2d(in_channels, out_channels, 3, stride=stride, padding=0)
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (as the paper's code); fewer when ``channels`` is not a multiple of 32."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


def zero_init(module: nn.Module) -> nn.Module:
    """Zero every parameter: a residual branch ending in this module starts switched off."""
    for p in module.parameters():
        p.detach().zero_()
    return module


class FourierEmbedding(nn.Module):
    """Random Fourier features of a scalar ``t``: ``sqrt(2) cos(2 pi f t + 2 pi phi)``.

    The frequencies and phases are buffers drawn from a fixed seed, so two models built alike have
    the same embedding and a checkpoint carries it (they are saved with the weights).
    """

    def __init__(self, dim: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", 2 * math.pi * torch.randn(dim, generator=g))
        self.register_buffer("phases", 2 * math.pi * torch.rand(dim, generator=g))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        y = torch.outer(t.float(), self.freqs.float()) + self.phases.float()
        return y.cos() * math.sqrt(2)


class ScalarMLP(nn.Sequential):
    """``Linear(1, hidden) - SiLU - Linear(hidden, dim)``: embeds one scalar per sample."""

    def __init__(self, dim: int, hidden: int | None = None):
        hidden = hidden or 2 * dim
        super().__init__(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, value: torch.Tensor) -> torch.Tensor:  # value: (B,)
        return super().forward(value.reshape(-1, 1).to(self[0].weight.dtype))


class NoScaleDropout(nn.Module):
    """Drops a whole sample's vector (no 1/(1-p) rescaling): the UViT decoder uses it on the Re embedding."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device).bernoulli_(1 - self.rate)
        return x * keep.to(x.dtype)


class ResBlock(nn.Module):
    """Residual block conditioned on an embedding by scale and shift (guided-diffusion style).

    ``skip_kernel`` is the kernel of the projection used when the channel count changes: 3 in FLEX,
    1 in the UNet baseline (the two reference codes differ there).
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, dropout: float, periodic: bool,
                 resample: str | None = None, skip_kernel: int = 3):
        super().__init__()
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        self.resample = resample
        self.in_norm = group_norm(in_channels)
        self.in_conv = conv3x3(in_channels, out_channels, periodic)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_channels)
        self.out_norm = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = zero_init(conv3x3(out_channels, out_channels, periodic))
        if in_channels == out_channels:
            self.skip = nn.Identity()
        elif skip_kernel == 3:
            self.skip = conv3x3(in_channels, out_channels, periodic)
        else:
            self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.resample is None:
            h = silu_dropout_conv(self.in_conv, self.in_norm(x))
        else:
            # resample between the activation and the conv, as in the reference, so the conv sees the new grid
            h = self.in_conv(self._resample(F.silu(self.in_norm(x))))
            x = self._resample(x)
        scale, shift = self.emb_proj(F.silu(emb)).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
        h = self.out_norm(h) * (1 + scale) + shift
        h = silu_dropout_conv(self.out_conv, h, self.dropout)
        return self.skip(x) + h


class EmbedSequential(nn.ModuleList):
    """A sequence of layers; those that take the embedding (ResBlocks) get it."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class Attention(nn.Module):
    """Multi-head self-attention (no qkv bias, as the reference), computed with SDPA."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-LN transformer block; with ``skip=True`` it first fuses a UViT long skip: Linear(2D -> D)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float, skip: bool = False,
                 gelu_approximate: str = "tanh"):
        super().__init__()
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate=gelu_approximate),
                                 nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def interpolate_positions(pos_embed: torch.Tensor, grid: tuple[int, int], extras: int,
                          height: int, width: int) -> torch.Tensor:
    """Positional embedding for a ``height x width`` token grid from one learned on ``grid``.

    The extra (condition) tokens keep theirs; the grid part is resized bicubically, as ViTs do when
    fine-tuned at a new resolution, so a model trained on crops runs on full fields.
    """
    if (height, width) == tuple(grid):
        return pos_embed
    head, body = pos_embed[:, :extras], pos_embed[:, extras:]
    d = body.shape[-1]
    body = body.reshape(1, grid[0], grid[1], d).permute(0, 3, 1, 2)
    body = F.interpolate(body.float(), size=(height, width), mode="bicubic", align_corners=False)
    body = body.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, height * width, d)
    return torch.cat([head, body], dim=1)


def init_linear_xavier(module: nn.Module) -> None:
    """The ViT initialisation the reference applies: Xavier-uniform Linear weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
