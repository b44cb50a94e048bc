"""Coarsening and upsampling of periodic 2D fields (numpy ``(..., H, W)`` or torch ``(..., H, W)``).

Grid convention (the solver's): fine point ``i`` sits at ``x_i = 2 pi i / n``. Both coarsening methods
put coarse point ``i`` at the fine point ``i * factor``, so ``coarsen(..., "stride")`` and
``coarsen(..., "spectral")`` live on the same coarse grid and differ only in how they treat the modes
the coarse grid cannot represent:

- ``stride``: ``x[..., ::f, ::f]``, what the FLEX paper does. Modes above the coarse Nyquist alias
  onto resolved ones.
- ``spectral``: an ideal low-pass filter (keep ``|k_x| < n_c / 2`` and ``|k_y| < n_c / 2``, the coarse
  Nyquist mode itself dropped) followed by sampling. Equivalently: truncate the Fourier series. No
  aliasing; for a field that is already band-limited below the coarse Nyquist both methods agree.

Upsampling:

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

from typing import Any, Sequence

import numpy as np

__all__ = ["coarsen", "upsample", "spectral_resample"]

COARSEN_METHODS = ("spectral", "stride")
UPSAMPLE_METHODS = ("bicubic", "spectral")


def _is_torch(field: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of flexcouple
        return False
    return isinstance(field, torch.Tensor)


def _check_field(field: Any, name: str = "field") -> None:
    if not (isinstance(field, np.ndarray) or _is_torch(field)):
        raise ValueError(f"{name} must be a numpy array or a torch tensor, got {type(field).__name__}")
    if field.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (..., H, W), got shape {tuple(field.shape)}")


def _float_dtype(field: Any):
    """numpy/torch floating dtype of the result (integers are promoted to float64)."""
    if _is_torch(field):
        import torch
        return field.dtype if field.is_floating_point() else torch.float64
    return field.dtype if np.issubdtype(field.dtype, np.floating) else np.float64


def coarsen(field, factor: int, method: str = "spectral"):
    """Coarsen the last two axes by an integer ``factor`` onto the grid ``x_i = 2 pi i f / n``.

    ``method="spectral"`` truncates the Fourier series at the coarse Nyquist (no aliasing);
    ``method="stride"`` is plain subsampling ``field[..., ::f, ::f]`` as in the FLEX paper.
    Returns the same kind (numpy/torch) and floating dtype as the input.
    """
    _check_field(field)
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"coarsening factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    h, w = field.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"grid {h}x{w} is not divisible by the coarsening factor {factor}; "
                         f"choose a factor that divides both sizes")
    if method == "stride":
        out = field[..., ::factor, ::factor]
        return out.contiguous() if _is_torch(out) else np.ascontiguousarray(out)
    if method == "spectral":
        return spectral_resample(field, (h // factor, w // factor))
    raise ValueError(f"unknown coarsening method {method!r}; choose one of {COARSEN_METHODS}")


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


def spectral_resample(field, shape: Sequence[int]):
    """Resample a periodic field to ``shape`` by truncating or zero-padding its Fourier series.

    Modes with ``|k| < min(n_in, n_out) / 2`` are kept on each axis. When the input grid is the
    smaller one and has an even size, its Nyquist mode (ambiguous between ``+n/2`` and ``-n/2``) is
    split evenly between the two, which makes upsampling interpolate the input samples exactly.
    When the output is the smaller one, its Nyquist mode is dropped, so the result is real and
    truncation is a projection.
    """
    _check_field(field)
    h_in, w_in = field.shape[-2:]
    h_out, w_out = (int(s) for s in shape)
    torch_in = _is_torch(field)
    if torch_in:
        import torch
        xp_fft = torch.fft
        dtype = _float_dtype(field)
        x = field.to(dtype)
    else:
        xp_fft = np.fft
        dtype = _float_dtype(field)
        x = np.asarray(field, dtype=dtype)
    if (h_in, w_in) == (h_out, w_out):
        return x.clone() if torch_in else x.copy()

    # norm="forward": coefficients are mode amplitudes, so they carry over between grid sizes as is
    spec = xp_fft.rfft2(x, norm="forward")
    lead = tuple(field.shape[:-2])
    out_shape = lead + (h_out, w_out // 2 + 1)
    if torch_in:
        out = torch.zeros(out_shape, dtype=spec.dtype, device=spec.device)
    else:
        out = np.zeros(out_shape, dtype=spec.dtype)

    # axis -2 (full FFT): kept wavenumbers and where they sit in each array
    kx_in, kx_out, kx_weight = _axis_map(h_in, h_out)
    # axis -1 (half spectrum): non-negative wavenumbers only
    nky = min((w_in + 1) // 2, (w_out + 1) // 2)  # |k| < min/2
    ky = list(range(nky))
    ky_weight = [1.0] * nky
    if w_out > w_in and w_in % 2 == 0:
        # the input's last-axis Nyquist mode; irfft2 mirrors the half we place at +w_in/2
        ky.append(w_in // 2)
        ky_weight.append(0.5)
    ky = np.asarray(ky)
    ky_weight = np.asarray(ky_weight)

    weight = kx_weight[:, None] * ky_weight[None, :]
    if torch_in:
        src_x = torch.as_tensor(kx_in, device=spec.device)
        dst_x = torch.as_tensor(kx_out, device=spec.device)
        ky_t = torch.as_tensor(ky, device=spec.device)
        block = spec.index_select(-2, src_x).index_select(-1, ky_t)
        block = block * torch.as_tensor(weight, dtype=block.real.dtype, device=spec.device)
        # destinations are distinct (a split Nyquist mode goes to +n/2 and -n/2 of the finer grid)
        out[..., dst_x[:, None], ky_t[None, :]] = block
        res = torch.fft.irfft2(out, s=(h_out, w_out), norm="forward")
        return res.to(dtype)
    block = spec[..., kx_in[:, None], ky[None, :]] * weight
    out[..., kx_out[:, None], ky[None, :]] = block
    return np.fft.irfft2(out, s=(h_out, w_out), norm="forward").astype(dtype, copy=False)


def _axis_map(n_in: int, n_out: int):
    """For one full-FFT axis: (source index, destination index, weight) of every kept mode."""
    n_min = min(n_in, n_out)
    kmax = (n_min - 1) // 2  # keep |k| <= kmax, i.e. |k| < n_min / 2
    ks = list(range(0, kmax + 1)) + list(range(-kmax, 0))
    src = [k % n_in for k in ks]
    dst = [k % n_out for k in ks]
    wts = [1.0] * len(ks)
    if n_out > n_in and n_in % 2 == 0:
        # split the input's Nyquist mode between +n_in/2 and -n_in/2 on the finer grid
        k = n_in // 2
        src += [k, k]
        dst += [k % n_out, (-k) % n_out]
        wts += [0.5, 0.5]
    return np.asarray(src), np.asarray(dst), np.asarray(wts)


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
