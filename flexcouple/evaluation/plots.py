"""Figures for evaluation reports (matplotlib, Agg backend; every function writes one PNG and
returns its path).

Fields are (x, y) arrays (axis 0 = x), drawn with x to the right and y up (``imshow(f.T,
origin="lower")``) on the box [0, 2pi)^2. Panels that show the same quantity share one colour scale,
so a prediction can be compared to the truth by eye; the error and the ensemble spread get their own.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from flexcouple.evaluation.metrics import as_numpy  # noqa: E402
from solver.io import atomic_path  # noqa: E402

EXTENT = (0.0, 2 * math.pi, 0.0, 2 * math.pi)


def _save(fig, path) -> Path:
    path = Path(path)
    # constrained-layout figures are laid out already; a tight bounding box would draw them twice
    with atomic_path(path) as tmp:  # the temporary's name has no suffix: the format is given
        fig.savefig(tmp, format=path.suffix[1:] or "png", dpi=110,
                    bbox_inches=None if fig.get_layout_engine() is not None else "tight",
                    pil_kwargs={"compress_level": 1})  # fast zlib: a few 100 kB more, seconds less
    plt.close(fig)
    return path


def _show(ax, field, cmap, vmin, vmax, title):
    im = ax.imshow(as_numpy(field).T, origin="lower", extent=EXTENT, cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def plot_fields(path, truth, prediction, condition=None, std=None, title: str = "",
                label: str = "vorticity") -> Path:
    """Truth / input / prediction / error / ensemble std of one field, side by side.

    Truth, input and prediction share a symmetric colour scale set by the truth; the error
    (prediction - truth) has its own symmetric scale, the std a sequential one from 0.
    """
    truth, prediction = as_numpy(truth), as_numpy(prediction)
    vmax = float(np.max(np.abs(truth))) or 1.0
    panels = [("truth", truth, "RdBu_r", -vmax, vmax)]
    if condition is not None:
        panels.append(("input", as_numpy(condition), "RdBu_r", -vmax, vmax))
    panels.append(("prediction", prediction, "RdBu_r", -vmax, vmax))
    error = prediction - truth
    emax = float(np.max(np.abs(error))) or 1.0
    panels.append(("error", error, "PuOr_r", -emax, emax))
    if std is not None:
        std = as_numpy(std)
        panels.append(("ensemble std", std, "magma", 0.0, float(std.max()) or 1.0))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.3), squeeze=False,
                             layout="constrained")
    shared = None
    for ax, (name, field, cmap, lo, hi) in zip(axes[0], panels):
        im = _show(ax, field, cmap, lo, hi, name)
        if cmap == "RdBu_r":
            shared = im
        else:
            fig.colorbar(im, ax=ax, shrink=0.85, pad=0.01)
    if shared is not None:
        n_shared = sum(p[2] == "RdBu_r" for p in panels)
        fig.colorbar(shared, ax=list(axes[0][:n_shared]), shrink=0.85, pad=0.01, label=label)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_spectra(path, spectra: Mapping[str, tuple], title: str = "Energy spectrum",
                 ylabel: str = "E(k)", k_max: int | None = None) -> Path:
    """Spectra E(k) overlaid on log-log axes; ``spectra`` maps a label to (k, E). The k = 0 shell
    is left out; ``k_max`` draws the resolved-band limit and shades its top octave."""
    return plot_spectra_panels(path, {title: spectra}, ylabel=ylabel, k_max=k_max)


def plot_spectra_panels(path, panels: Mapping[str, Mapping[str, tuple]], ylabel: str | Mapping[str, str] = "E(k)",
                        k_max: int | None = None, title: str = "") -> Path:
    """Several spectrum panels side by side (e.g. one per split); each panel as ``plot_spectra``.
    The first curve of a panel (the truth) is drawn solid black, the others dashed."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.8), squeeze=False,
                             layout="constrained")
    for ax, (name, spectra) in zip(axes[0], panels.items()):
        for i, (label, (k, e)) in enumerate(spectra.items()):
            k, e = np.asarray(k), np.asarray(e)
            keep = (k > 0) & (e > 0)
            ax.loglog(k[keep], e[keep], label=label, lw=2.0 if i == 0 else 1.3,
                      color="k" if i == 0 else None, ls="-" if i == 0 else "--")
        if k_max:
            ax.axvspan(k_max / 2, k_max, color="0.9", zorder=0, label="top octave")
        # labelled major decades only: minor log tick labels cost most of the drawing time
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(numticks=6))
        ax.set_xlabel("wavenumber k")
        ax.set_ylabel(ylabel if isinstance(ylabel, str) else ylabel.get(name, "E(k)"))
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(True, which="major", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_against_lead(path, times: Sequence[float], curves: Mapping[str, Mapping[str, Sequence[float]]],
                      metrics: Sequence[str] = ("rfne", "correlation", "ssim", "spectrum_band"),
                      threshold: float = 0.95, title: str = "") -> Path:
    """Forecast metrics against lead time, one panel per metric, one line per model; the
    correlation panel marks the 0.95 threshold that defines the decorrelation time."""
    metrics = [m for m in metrics if any(m in c for c in curves.values())]
    if not metrics:
        raise ValueError("no metric to plot: none of the requested metrics is in the curves")
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.8 * len(metrics), 3.3), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for name, c in curves.items():
            if m in c:
                ax.plot(times, np.asarray(c[m], dtype=float), marker="o", ms=3, label=name)
        if m == "correlation":
            ax.axhline(threshold, color="0.4", ls=":", lw=1, label=f"{threshold}")
        ax.set_xlabel("lead time")
        ax.set_title(m, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_calibration(path, spread, error, rank_counts=None, title: str = "", bins: int = 12) -> Path:
    """Spread against error, and the rank histogram.

    ``spread`` and ``error`` are paired samples (ensemble std and |ensemble mean - truth| per point or
    per field). They are binned by spread; in each bin the RMS error is drawn against the RMS
    spread, corrected by sqrt((K+1)/K) upstream if wanted: a calibrated ensemble lies on the diagonal.
    """
    spread, error = as_numpy(spread).ravel(), as_numpy(error).ravel()
    n_panels = 2 if rank_counts is not None else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 3.8), squeeze=False, layout="constrained")
    ax = axes[0][0]
    edges = np.unique(np.quantile(spread, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, spread, side="right") - 1, 0, max(len(edges) - 2, 0))
    rms_s, rms_e = [], []
    for b in range(max(len(edges) - 1, 1)):
        sel = which == b
        if sel.any():
            rms_s.append(math.sqrt(np.mean(spread[sel] ** 2)))
            rms_e.append(math.sqrt(np.mean(error[sel] ** 2)))
    ax.plot(rms_s, rms_e, "o-", label="binned")
    top = max(max(rms_s, default=1.0), max(rms_e, default=1.0)) * 1.05
    ax.plot([0, top], [0, top], color="0.5", ls=":", label="calibrated")
    ax.set_xlabel("RMS ensemble spread")
    ax.set_ylabel("RMS error of the ensemble mean")
    ax.set_title("spread vs error", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    if rank_counts is not None:
        counts = np.asarray(rank_counts, dtype=float)
        freq = counts / counts.sum()
        ax = axes[0][1]
        ax.bar(np.arange(len(freq)), freq, color="tab:blue", width=0.9)
        ax.axhline(1.0 / len(freq), color="k", ls=":", label="flat")
        ax.set_xlabel("rank of the truth among the members")
        ax.set_ylabel("frequency")
        ax.set_title("rank histogram", fontsize=10)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_metric_bars(path, table: Mapping[str, Mapping[str, float]], metric: str, title: str = "") -> Path:
    """One metric across models (rows) and groups (e.g. Reynolds numbers or splits) as grouped bars.
    ``table[model][group] = value``."""
    models = list(table)
    groups = sorted({g for row in table.values() for g in row}, key=str)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.0 + 0.6 * len(groups) * max(len(models), 1)), 3.6))
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(groups))
    for i, m in enumerate(models):
        vals = [table[m].get(g, np.nan) for g in groups]
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=m)
    ax.set_xticks(x)
    ax.set_xticklabels([str(g) for g in groups], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(title or metric, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)
