"""Metrics for super-resolved and forecast flow fields, and for the ensembles that FLEX samples.

All functions work on de-normalised (physical) fields, as numpy arrays; torch tensors are converted.
A field is a 2D array whose last two axes are (x, y); any leading axes are a batch, and per-field
metrics return one value per field (an array of the leading shape).

Field metrics (pred = prediction, true = reference, sums over the grid points of one field)
- RFNE  = ||pred - true||_F / ||true||_F (relative Frobenius-norm error; the FLEX paper's metric); a
  zero reference gives 0 for a zero prediction, +inf otherwise. :func:`rfne_of` is the one definition,
  for numpy and torch alike (training's validation RFNE uses it on tensors).
- PSNR  = 10 log10(R^2 / MSE), with the data range R = max(true) - min(true) of the reference field
  (per field) unless ``data_range`` is given. Identical fields give +inf.
- SSIM  = mean over the field of the local index of Wang et al. (2004),
  ((2 mu_p mu_t + C1)(2 s_pt + C2)) / ((mu_p^2 + mu_t^2 + C1)(s_p^2 + s_t^2 + C2)),
  with local statistics from a Gaussian window (sigma 1.5, truncated at 3.5 sigma: an 11x11 window),
  C1 = (0.01 R)^2, C2 = (0.03 R)^2, population (not sample) covariances, and R as for PSNR. This is
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=R)``: reflecting borders and a 5-point border excluded
  from the mean. ``periodic=True`` wraps the window around instead and averages over every point
  (for periodic fields, where a border is not special).
- max-norm error = max |pred - true|; Pearson correlation of the two fields (means removed).

Spectra: ``energy_spectrum`` is the isotropic kinetic-energy spectrum of a vorticity field on the
periodic box [0, 2pi)^2, E(k) = sum over the shell k - 1/2 <= |k| < k + 1/2 of |u_hat|^2 / 2 with
u = (d psi/dy, -d psi/dx), lap psi = -omega and u_hat the normalised Fourier coefficients
(u_hat = FFT(u) / N), so that sum_k E(k) = mean(|u|^2) / 2 (Parseval).

Ensembles (members along axis 0, the truth without it; K members)
- CRPS, the exact estimator for an ensemble read as an empirical distribution:
  CRPS = mean_i |x_i - y| - sum_ij |x_i - x_j| / (2 K^2); the fair (unbiased) estimator divides the
  second sum by 2 K (K - 1) instead (Ferro 2014), so that its expectation does not depend on K.
  A one-member ensemble has CRPS = |x - y| (the fair estimator needs K >= 2).
- spread-skill ratio = sqrt((K+1)/K) * sqrt(mean var) / sqrt(mean (ensemble mean - y)^2), with the
  unbiased member variance. For a calibrated ensemble (truth exchangeable with the members) the
  mean squared error of the ensemble mean is (K+1)/K times the expected variance (Fortin et al.
  2014), so the corrected ratio is 1; under 1 the spread is too small (over-confident), over 1 it
  is too large (under-confident).
- coverage of the central p-interval [q_(1-p)/2, q_(1+p)/2], with member quantiles on the Weibull
  plotting positions i / (K+1) (the i-th smallest member estimates the i/(K+1) quantile), so that a
  calibrated ensemble covers the truth with probability p whenever K >= 2/(1-p) - 1; smaller
  ensembles cannot reach p and ``expected_coverage`` says what a calibrated one of that size reaches.
- rank histogram: the rank of the truth among the members (ties broken at random), K + 1 bins; flat
  for a calibrated ensemble, U-shaped when over-confident, dome-shaped when over-dispersive.

Forecasts: ``metrics_against_lead`` evaluates every field metric at each lead time and
``decorrelation_time`` is the time until the correlation with the truth first falls below 0.95
(Kochkov et al. 2021), linearly interpolated between the lead times that bracket the crossing.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from solver import diagnostics
from solver.diagnostics import wavenumbers

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def as_numpy(x) -> np.ndarray:
    """A float64 numpy copy of an array or a torch tensor (detached, on the CPU)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred, true = as_numpy(pred), as_numpy(true)
    if pred.shape != true.shape:
        raise ValueError(f"prediction and reference shapes differ: {pred.shape} vs {true.shape}")
    if pred.ndim < 2:
        raise ValueError(f"fields need at least 2 axes (x, y); got shape {pred.shape}")
    return pred, true


def _data_range(true: np.ndarray, data_range) -> np.ndarray:
    if data_range is not None:
        return np.broadcast_to(np.asarray(data_range, dtype=np.float64), true.shape[:-2])
    return true.max(axis=(-2, -1)) - true.min(axis=(-2, -1))


# ----------------------------------------------------------------------------------------- fields
def rfne_of(pred, true):
    """The definition of RFNE, ||pred - true||_F / ||true||_F per field (over the last two axes), for
    numpy arrays and torch tensors alike (only operators both share; a tensor stays a tensor, on its
    device and in its dtype: training's ``flexcouple.training.rfne`` is this function).

    A zero reference gives 0 for a zero prediction (no error) and +inf for any other (an error of
    infinite relative size), never a clamped finite number; NaN inputs give NaN."""
    if tuple(pred.shape) != tuple(true.shape):
        raise ValueError(f"prediction and reference shapes differ: {tuple(pred.shape)} vs {tuple(true.shape)}")
    if len(pred.shape) < 2:
        raise ValueError(f"fields need at least 2 axes (x, y); got shape {tuple(pred.shape)}")
    num = ((pred - true) ** 2).sum(axis=(-2, -1)) ** 0.5
    den = (true**2).sum(axis=(-2, -1)) ** 0.5
    with np.errstate(divide="ignore"):  # numpy's warning for x / 0 = inf; torch never warns
        return num / (den + (num == 0))  # num == 0: 0 / (den + 1) = 0, so also 0 / 0 = 0


def rfne(pred, true) -> np.ndarray:
    """Relative Frobenius-norm error ||pred - true|| / ||true|| per field, in float64 numpy
    (:func:`rfne_of`, the definition, on the inputs as numpy arrays)."""
    return rfne_of(*_pair(pred, true))


def mse(pred, true) -> np.ndarray:
    pred, true = _pair(pred, true)
    return np.mean((pred - true) ** 2, axis=(-2, -1))


def psnr(pred, true, data_range=None) -> np.ndarray:
    """Peak signal-to-noise ratio in dB; R = max(true) - min(true) per field unless given."""
    pred, true = _pair(pred, true)
    r = _data_range(true, data_range)
    err = np.mean((pred - true) ** 2, axis=(-2, -1))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(r**2 / err)


def max_error(pred, true) -> np.ndarray:
    """Max-norm (L-infinity) error per field."""
    pred, true = _pair(pred, true)
    return np.max(np.abs(pred - true), axis=(-2, -1))


def pearson(pred, true) -> np.ndarray:
    """Pearson correlation coefficient of the two fields (over the grid points of each field)."""
    pred, true = _pair(pred, true)
    p = pred - pred.mean(axis=(-2, -1), keepdims=True)
    t = true - true.mean(axis=(-2, -1), keepdims=True)
    num = np.sum(p * t, axis=(-2, -1))
    den = np.sqrt(np.sum(p * p, axis=(-2, -1)) * np.sum(t * t, axis=(-2, -1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def ssim(pred, true, data_range=None, periodic: bool = False) -> np.ndarray:
    """Mean structural similarity index per field (Gaussian window, Wang et al. 2004)."""
    pred, true = _pair(pred, true)
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # half the window: points whose window is whole
    if not periodic and min(pred.shape[-2:]) <= 2 * pad:
        raise ValueError(f"SSIM needs fields larger than {2 * pad + 1} points per side; got {pred.shape[-2:]}")
    r = _data_range(true, data_range)[..., None, None]
    c1, c2 = (SSIM_K1 * r) ** 2, (SSIM_K2 * r) ** 2
    mode = "wrap" if periodic else "reflect"

    def blur(a):
        return ndimage.gaussian_filter(a, SSIM_SIGMA, mode=mode, truncate=SSIM_TRUNCATE, axes=(-2, -1))

    mu_p, mu_t = blur(pred), blur(true)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(true * true) - mu_t**2
    cov = blur(pred * true) - mu_p * mu_t
    index = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    if not periodic:
        index = index[..., pad:-pad, pad:-pad]
    return index.mean(axis=(-2, -1))


def field_metrics(pred, true, data_range=None, periodic: bool = True) -> dict[str, np.ndarray]:
    """Every per-field metric, each an array over the leading (batch) axes."""
    return {
        "rfne": rfne(pred, true),
        "mse": mse(pred, true),
        "psnr": psnr(pred, true, data_range),
        "ssim": ssim(pred, true, data_range, periodic=periodic),
        "max_error": max_error(pred, true),
        "correlation": pearson(pred, true),
    }


# ---------------------------------------------------------------------------------------- spectra
# one definition each, the solver's (solver.diagnostics); these take torch tensors too
def energy_spectrum(vorticity, length: float = 2 * math.pi) -> tuple[np.ndarray, np.ndarray]:
    """:func:`solver.diagnostics.energy_spectrum` of numpy arrays or torch tensors."""
    return diagnostics.energy_spectrum(as_numpy(vorticity), length)


def scalar_spectrum(field, length: float = 2 * math.pi) -> tuple[np.ndarray, np.ndarray]:
    """:func:`solver.diagnostics.scalar_spectrum` of numpy arrays or torch tensors."""
    return diagnostics.scalar_spectrum(as_numpy(field), length)


def field_band(shape: tuple[int, int]) -> tuple[int, int]:
    """The shells an evaluation compares: a data set's snapshots are truncations of a finer run (or
    another solver's fields), resolved to the Nyquist square (``solver.diagnostics.resolved_band``
    with ``dealiased=False``)."""
    return diagnostics.resolved_band(min(shape), dealiased=False)


def velocity_from_vorticity(vorticity, length: float = 2 * math.pi) -> tuple[np.ndarray, np.ndarray]:
    """Velocity (u, v) = (d psi/dy, -d psi/dx) with lap psi = -omega on a periodic box.

    The mean flow (k = 0) is not determined by the vorticity and is set to zero; on an even grid the
    Nyquist modes drop out of the derivatives (sin(n x / 2) vanishes on the grid points).
    """
    w = as_numpy(vorticity)
    nx, ny = w.shape[-2:]
    kx, ky = wavenumbers((nx, ny), length)
    k2 = kx**2 + ky**2
    k2[0, 0] = 1.0
    psi_hat = np.fft.rfft2(w, axes=(-2, -1)) / k2
    psi_hat[..., 0, 0] = 0.0
    u = np.fft.irfft2(1j * ky * psi_hat, s=(nx, ny), axes=(-2, -1))
    v = np.fft.irfft2(-1j * kx * psi_hat, s=(nx, ny), axes=(-2, -1))
    return u, v


LOG_FLOOR = 1e-12  # energies below this fraction of the reference spectrum's peak count as the floor


def spectrum_error(pred, true, observable: str = "vorticity", length: float = 2 * math.pi,
                   average: bool = True) -> dict[str, np.ndarray | float]:
    """Relative L2 distance of log E(k): ||log E_pred - log E_true|| / ||log E_true||.

    Over the resolved band (``field_band``) and over its top octave k_max/2 < k <= k_max, where a
    super-resolution model shows whether it puts the fine scales back. ``average=True`` compares the
    batch-averaged spectra (one number); ``False`` gives one value per field. Energies are clipped
    from below at 1e-12 of the reference's peak, so a prediction with no energy in a shell (spectral
    interpolation above the coarse Nyquist wavenumber) gets a large but finite error. The value
    depends on the units of E through the denominator, so compare models on the same data only.
    """
    pred, true = _pair(pred, true)
    spectrum = energy_spectrum if observable == "vorticity" else scalar_spectrum
    k, e_pred = spectrum(pred, length)
    _, e_true = spectrum(true, length)
    if average:
        e_pred = e_pred.reshape(-1, len(k)).mean(axis=0)
        e_true = e_true.reshape(-1, len(k)).mean(axis=0)
    return log_spectrum_distance(k, e_pred, e_true, field_band(pred.shape[-2:])[1])


def log_spectrum_distance(k, e_pred, e_true, k_max: int) -> dict[str, np.ndarray | float]:
    """The distances of ``spectrum_error`` from spectra already computed (shells ``k``, band 1..k_max).
    Works on (..., len(k)) arrays, so batch-averaged spectra from several processes combine first."""
    k, e_pred, e_true = np.asarray(k), as_numpy(e_pred), as_numpy(e_true)
    floor = LOG_FLOOR * e_true.max(axis=-1, keepdims=True)
    log_p = np.log(np.maximum(e_pred, floor))
    log_t = np.log(np.maximum(e_true, floor))

    def rel(mask):
        num = np.sqrt(np.sum((log_p - log_t)[..., mask] ** 2, axis=-1))
        return num / np.sqrt(np.sum(log_t[..., mask] ** 2, axis=-1))

    band = (k >= 1) & (k <= k_max)
    top = (k > k_max / 2) & (k <= k_max)
    return {"band": rel(band), "top_octave": rel(top)}


# -------------------------------------------------------------------------------------- ensembles
def _ensemble(members, truth) -> tuple[np.ndarray, np.ndarray]:
    members, truth = as_numpy(members), as_numpy(truth)
    if members.shape[1:] != truth.shape:
        raise ValueError(f"members must be (K, *truth.shape); got {members.shape} for truth {truth.shape}")
    return members, truth


def crps(members, truth, fair: bool = False) -> np.ndarray:
    """Pointwise CRPS of an ensemble (members along axis 0); see the module docstring.

    Uses sum_ij |x_i - x_j| = 2 sum_i (2i - K - 1) x_(i) over the sorted members, O(K log K).
    """
    members, truth = _ensemble(members, truth)
    k = members.shape[0]
    if fair and k < 2:
        raise ValueError("the fair CRPS needs an ensemble of at least 2 members")
    skill = np.mean(np.abs(members - truth), axis=0)
    ranks = np.arange(1, k + 1, dtype=np.float64).reshape((k,) + (1,) * truth.ndim)
    pair_sum = 2.0 * np.sum((2 * ranks - k - 1) * np.sort(members, axis=0), axis=0)
    return skill - pair_sum / (2.0 * k * (k - 1 if fair else k))


def spread_skill(members, truth) -> dict[str, float]:
    """Spread, skill (RMSE of the ensemble mean) and their corrected ratio over all points."""
    members, truth = _ensemble(members, truth)
    k = members.shape[0]
    if k < 2:
        raise ValueError("spread-skill needs an ensemble of at least 2 members")
    mean_var = float(np.mean(np.var(members, axis=0, ddof=1)))
    mse_mean = float(np.mean((members.mean(axis=0) - truth) ** 2))
    return spread_skill_from_sums(mean_var, mse_mean, k)


def spread_skill_from_sums(mean_var: float, mse_mean: float, k: int) -> dict[str, float]:
    """The ratio from the mean unbiased member variance and the MSE of the ensemble mean (these two
    are averages over points, so shards of a data set combine exactly before this step)."""
    spread, skill = math.sqrt(mean_var), math.sqrt(mse_mean)
    ratio = math.sqrt((k + 1) / k) * spread / skill if skill > 0 else float("nan")
    return {"spread": spread, "skill_rmse": skill, "spread_skill_ratio": ratio}


def central_interval(members, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the central p-interval from the members (Weibull plotting positions)."""
    if not 0 < p < 1:
        raise ValueError(f"interval probability must be in (0, 1); got {p}")
    members = as_numpy(members)
    lo, hi = np.quantile(members, [(1 - p) / 2, (1 + p) / 2], axis=0, method="weibull")
    return lo, hi


def coverage(members, truth, p: float) -> float:
    """Fraction of points whose truth lies in the ensemble's central p-interval."""
    members, truth = _ensemble(members, truth)
    lo, hi = central_interval(members, p)
    return float(np.mean((truth >= lo) & (truth <= hi)))


def expected_coverage(k: int, p: float) -> float:
    """Coverage that a calibrated K-member ensemble reaches for the central p-interval: the truth's
    rank is uniform over the K + 1 gaps, the interval spans positions q (K+1) clipped to [1, K]."""
    lo = min(max((1 - p) / 2 * (k + 1), 1.0), float(k))
    hi = min(max((1 + p) / 2 * (k + 1), 1.0), float(k))
    return (hi - lo) / (k + 1)


def rank_histogram(members, truth, rng: np.random.Generator | int = 0) -> np.ndarray:
    """Counts of the truth's rank among the K members (0 .. K), ties broken uniformly at random."""
    members, truth = _ensemble(members, truth)
    rng = np.random.default_rng(rng)
    below = np.sum(members < truth, axis=0)
    ties = np.sum(members == truth, axis=0)
    ranks = below + rng.integers(0, ties + 1)
    return np.bincount(ranks.ravel(), minlength=members.shape[0] + 1).astype(np.int64)


def rank_histogram_flatness(counts) -> float:
    """Chi-square statistic of the rank counts against a flat histogram, divided by its degrees of
    freedom (about 1 when flat and the ranks are independent; correlated points inflate it)."""
    counts = np.asarray(counts, dtype=np.float64)
    expected = counts.sum() / len(counts)
    return float(np.sum((counts - expected) ** 2 / expected) / (len(counts) - 1))


def ensemble_metrics(members, truth, rng: np.random.Generator | int = 0) -> dict:
    """CRPS (plain and fair), spread-skill, 50% / 90% coverage and the rank histogram."""
    members, truth = _ensemble(members, truth)
    k = members.shape[0]
    out = {"members": k, "crps": float(np.mean(crps(members, truth)))}
    if k >= 2:
        out["crps_fair"] = float(np.mean(crps(members, truth, fair=True)))
        out.update(spread_skill(members, truth))
        for p in (0.5, 0.9):
            out[f"coverage_{int(p * 100)}"] = coverage(members, truth, p)
            out[f"expected_coverage_{int(p * 100)}"] = expected_coverage(k, p)
        out["rank_histogram"] = rank_histogram(members, truth, rng).tolist()
    return out


# -------------------------------------------------------------------------------------- forecasts
def metrics_against_lead(pred, true, data_range=None, periodic: bool = True) -> dict[str, np.ndarray]:
    """Field metrics at each lead time: pred and true are (T, ..., nx, ny); each result is (T,),
    averaged over the other leading axes."""
    pred, true = _pair(pred, true)
    if pred.ndim < 3:
        raise ValueError(f"forecasts need a lead-time axis first: (T, ..., nx, ny); got {pred.shape}")
    out = field_metrics(pred, true, data_range, periodic)
    return {name: v.reshape(v.shape[0], -1).mean(axis=1) for name, v in out.items()}


def decorrelation_time(correlation, times, threshold: float = 0.95) -> float:
    """First time at which the correlation falls below ``threshold``, interpolated linearly between
    the bracketing lead times; +inf when it never does within the horizon (a censored value)."""
    corr = np.asarray(correlation, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if corr.shape != times.shape or corr.ndim != 1:
        raise ValueError(f"correlation and times must be 1D and equal in length; got {corr.shape}, {times.shape}")
    below = np.flatnonzero(corr < threshold)
    if below.size == 0:
        return float("inf")
    i = int(below[0])
    if i == 0:
        return float(times[0])
    c0, c1 = corr[i - 1], corr[i]
    return float(times[i - 1] + (c0 - threshold) / (c0 - c1) * (times[i] - times[i - 1]))
