"""Spectral resampling of periodic 2D fields (numpy ``(..., H, W)``, or torch tensors a caller hands in).

Grid convention (the solver's): fine point ``i`` sits at ``x_i = 2 pi i / n``. Both coarsening methods
put coarse point ``i`` at the fine point ``i * factor``, so ``coarsen(..., "stride")`` and
``coarsen(..., "spectral")`` live on the same coarse grid and differ only in how they treat the modes
the coarse grid cannot represent:

- ``stride``: ``x[..., ::f, ::f]``, what the FLEX paper does. Modes above the coarse Nyquist alias
  onto resolved ones.
- ``spectral``: an ideal low-pass filter (keep ``|k_x| < n_c / 2`` and ``|k_y| < n_c / 2``, the coarse
  Nyquist mode itself dropped) followed by sampling. Equivalently: truncate the Fourier series. No
  aliasing; for a field that is already band-limited below the coarse Nyquist both methods agree.

:func:`spectral_resample` to a larger grid is zero-padding of the Fourier series (trigonometric
interpolation): exact for periodic fields band-limited below the coarse Nyquist; it interpolates
(``spectral_resample(c, (n, n))[::f, ::f] == c``), and resampling ``coarsen(x)`` back up is the
orthogonal projection onto the coarse-resolvable modes. The image-like bicubic upsampling of the
FLEX paper needs torch and lives in ``flexcouple.data.coarsen``.
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np

__all__ = ["coarsen", "spectral_resample", "spectral_upsample", "COARSEN_METHODS"]

COARSEN_METHODS = ("spectral", "stride")


def _is_torch(field: Any) -> bool:
    """A torch tensor, told without importing torch (the solver never does): if the caller made
    one, torch is already in ``sys.modules``."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(field, torch.Tensor)


def _check_field(field: Any, name: str = "field") -> None:
    if not (isinstance(field, np.ndarray) or _is_torch(field)):
        raise ValueError(f"{name} must be a numpy array or a torch tensor, got {type(field).__name__}")
    if field.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (..., H, W), got shape {tuple(field.shape)}")


def _float_dtype(field: Any):
    """numpy/torch floating dtype of the result (integers are promoted to float64)."""
    if _is_torch(field):
        torch = sys.modules["torch"]
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


def spectral_upsample(field, factor: int):
    """:func:`spectral_resample` onto the grid ``factor`` times finer on both axes."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"upsampling factor must be a positive integer, got {factor!r}")
    _check_field(field)
    return spectral_resample(field, tuple(int(s) * int(factor) for s in field.shape[-2:]))


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
        torch = sys.modules["torch"]
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
