"""Coarsening and upsampling of periodic 2D fields (numpy ``(..., H, W)`` or torch ``(..., H, W)``).

Coarsening (``spectral`` truncation or ``stride``) and spectral resampling are the solver's
(:mod:`solver.resample`, where the grid convention is written) and are re-exported here. This module
adds upsampling, whose bicubic kinds need torch:

- ``bicubic`` (default ``periodic=False``): ``torch.nn.functional.interpolate(mode="bicubic",
  align_corners=False)``, exactly as the FLEX paper. It treats the field as an image: borders are
  clamped and coarse pixel centres map to fine positions ``(i + 1/2) f - 1/2``, i.e. shifted by
  ``(f - 1) / 2`` fine cells from the grid above. The network learns the residual, so it absorbs this.
- ``bicubic`` with ``periodic=True``: the same Keys cubic-convolution kernel (``a = -0.75``, torch's),
  but grid-aligned (coarse point ``i`` at fine point ``i f``) and periodic (wraps). Integer factors only.
  With ``a = -0.75`` the kernel interpolates but is only first-order accurate (Keys 1981: ``a = -1/2``
  is the third-order choice); we keep torch's value so both bicubic variants share one kernel.
- ``spectral``: zero-padding of the Fourier series (trigonometric interpolation). Exact for periodic
  fields band-limited below the coarse Nyquist; it interpolates (``upsample(c)[::f, ::f] == c``), and
  ``upsample(coarsen(x))`` is the orthogonal projection onto the coarse-resolvable modes.
"""
from __future__ import annotations

import numpy as np

from solver.resample import COARSEN_METHODS, coarsen, spectral_resample  # noqa: F401  (re-exported)
from solver.resample import _check_field, _float_dtype, _is_torch

__all__ = ["coarsen", "upsample", "spectral_resample"]

UPSAMPLE_METHODS = ("bicubic", "spectral")


def _target_shape(field, factor_or_shape) -> tuple[int, int]:
    h, w = field.shape[-2:]
    if isinstance(factor_or_shape, (int, np.integer)) and not isinstance(factor_or_shape, bool):
        if factor_or_shape < 1:
            raise ValueError(f"upsampling factor must be a positive integer, got {factor_or_shape}")
        return h * int(factor_or_shape), w * int(factor_or_shape)
    try:
        shape = tuple(int(s) for s in factor_or_shape)
    except TypeError:
        raise ValueError(f"factor_or_shape must be an integer factor or an (H, W) pair, got {factor_or_shape!r}") from None
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"target shape must be a pair of positive sizes (H, W), got {factor_or_shape!r}")
    return shape


def upsample(field, factor_or_shape, method: str = "bicubic", *, periodic: bool = False):
    """Upsample the last two axes by an integer factor or to an ``(H, W)`` shape.

    ``method="bicubic"``: torch bicubic interpolation (``align_corners=False``, as the FLEX paper) or,
    with ``periodic=True``, grid-aligned periodic cubic convolution. ``method="spectral"``: zero-padding
    of the Fourier series, exact for band-limited periodic fields. Same kind and dtype as the input.
    """
    _check_field(field)
    shape = _target_shape(field, factor_or_shape)
    if method == "spectral":
        return spectral_resample(field, shape)
    if method != "bicubic":
        raise ValueError(f"unknown upsampling method {method!r}; choose one of {UPSAMPLE_METHODS}")
    if periodic:
        return _periodic_bicubic(field, shape)
    return _torch_bicubic(field, shape)


def superres_condition(coarse, size: int, method: str, periodic_bicubic: bool = False):
    """The condition of super-resolution, made the one way training, evaluation and a hybrid run make
    it: the coarse field (or a crop's coarse patch) brought to ``size`` x ``size`` by ``method``
    (spectral zero-padding; bicubic periodic where the data set says so, else image-like as the FLEX
    paper's pipeline)."""
    return upsample(coarse, (size, size), method, periodic=method == "bicubic" and bool(periodic_bicubic))


def _torch_bicubic(field, shape):
    """``F.interpolate(mode="bicubic", align_corners=False)`` on any (..., h, w) input."""
    import torch
    import torch.nn.functional as F

    torch_in = _is_torch(field)
    dtype = _float_dtype(field)
    x = field.to(dtype) if torch_in else torch.from_numpy(np.ascontiguousarray(field, dtype=dtype))
    lead = tuple(x.shape[:-2])
    h, w = x.shape[-2:]
    x4 = x.reshape((-1, 1, h, w))
    y = F.interpolate(x4, size=tuple(shape), mode="bicubic", align_corners=False)
    y = y.reshape(lead + tuple(shape))
    return y if torch_in else y.numpy()


def _keys_weights(t: float, a: float = -0.75) -> tuple[float, float, float, float]:
    """Cubic-convolution weights (Keys 1981, torch's a = -0.75) of the samples at -1, 0, 1, 2."""
    def near(s):  # |s| <= 1
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s):  # 1 < |s| < 2
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a

    return far(1 + t), near(t), near(1 - t), far(2 - t)


def _periodic_bicubic(field, shape):
    h, w = field.shape[-2:]
    h_out, w_out = shape
    if h_out % h or w_out % w:
        raise ValueError(f"periodic bicubic upsampling needs integer factors; {h}x{w} -> {h_out}x{w_out} is not")
    torch_in = _is_torch(field)
    dtype = _float_dtype(field)
    x = field.to(dtype) if torch_in else np.asarray(field, dtype=dtype)
    x = _cubic_last_axis(x, w_out // w, torch_in)
    x = _cubic_last_axis(x.swapaxes(-1, -2) if not torch_in else x.transpose(-1, -2), h_out // h, torch_in)
    x = x.swapaxes(-1, -2) if not torch_in else x.transpose(-1, -2)
    return x.contiguous() if torch_in else np.ascontiguousarray(x)


def _cubic_last_axis(x, factor: int, torch_in: bool):
    """Periodic grid-aligned cubic convolution along the last axis: out[i f + r] from x[i-1 .. i+2]."""
    if factor == 1:
        return x
    if torch_in:
        import torch
        roll, stack = torch.roll, torch.stack
        shifted = [roll(x, shifts=-m, dims=-1) for m in (-1, 0, 1, 2)]
    else:
        roll, stack = np.roll, np.stack
        shifted = [roll(x, -m, axis=-1) for m in (-1, 0, 1, 2)]
    phases = []
    for r in range(factor):
        wts = _keys_weights(r / factor)
        phases.append(sum(wt * s for wt, s in zip(wts, shifted)))
    y = stack(phases, -1)  # (..., n, factor)
    return y.reshape(tuple(x.shape[:-1]) + (x.shape[-1] * factor,))
