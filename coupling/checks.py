"""Drift checks: is a surrogate's field trustworthy enough to become the solver's state or an output?

Each check is a small class with a ``name``, a ``value(ctx)`` (a number; larger is worse) and a
threshold; ``evaluate`` returns a :class:`CheckResult` (name, value, threshold, passed, rule).

Thresholds, in this order:

1. fixed by the user (``[checks.thresholds]`` in the config);
2. adaptive, from the solver's own history: over the last ``window`` intervals the *solver* computed,
   the same statistic taken on the solver's step gives a sample; the threshold is
   ``max(floor, median + k_mad * 1.4826 MAD)`` (1.4826 MAD estimates a standard deviation robustly).
   Used once ``MIN_SAMPLES`` solver samples exist (after the all-solver warm-up);
3. calibrated on held-out data (``[checks] calibration``, written by ``flexcouple calibrate``,
   :mod:`coupling.calibration`), where the mode has no solver history for that statistic yet;
4. the check's default fixed threshold, where the mode has no solver history for that statistic
   (``superres``: the fine solver never runs there, unless re-anchoring bursts) and no calibration.

The statistics, for a candidate field w at time t after the trusted field w0 at t - dt:

- ``finite``: number of NaN/Inf values in the mean and the spread (threshold 0);
- ``max_vorticity``: max|w| / max over the recent trusted fields of max|w|;
- ``energy_budget``: |E(w) - E(w0) - dt/2 (dE/dt(w0) + dE/dt(w))| / E(w0), with dE/dt the solver's own
  budget -2 nu Z - 2 alpha E + <u.f> (trapezoid rule over the interval); ``enstrophy_budget`` the same
  with Z and dZ/dt = -2 nu P - 2 alpha Z + <w curl f>;
- ``tendency``: ||w - w0 - dt/2 (f(w0) + f(w))|| / ||dt/2 (f(w0) + f(w))||, f the solver's right-hand
  side: the change must follow the equations (trapezoid rule);
- ``coarse_forecast`` (leapfrog): ||R w - S(R w0)|| / ||S(R w0) - R w0||, with R the restriction to
  n / 4 and S the solver there over the interval: the large scales must move as the equations say;
- ``spectrum_resolved`` / ``spectrum_tail``: log-spectral distance sqrt(mean (log E_w - log E_ref)^2) over half-octave bands
  over the resolved band 1 <= k <= k_r and over the tail k_r < k <= k_max (the dealiased cut-off),
  against the running spectrum of the solver (superres: the resolved band against the coarse
  solver's own field at the same time);
- ``superres_consistency``: ||restrict(w) - coarse|| / ||coarse|| on the coarse grid (spectral
  truncation): the output must agree with the solver state it was made from;
- ``ensemble_spread``: mean(std) / rms(mean): the model saying it does not know;
- ``solid_velocity``: the velocity must be uniform (at rest, up to the mean flow) inside penalised
  solids (chi > 1/2): rms |u - <u>_solid| there over rms |u - <u>| everywhere.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from solver import diagnostics
from solver.resample import coarsen

MIN_SAMPLES = 4
MAD_SCALE = 1.4826


@dataclass
class CheckResult:
    name: str
    value: float
    threshold: float
    passed: bool
    rule: str  # "fixed" | "adaptive" | "calibrated" | "default"

    def as_dict(self) -> dict:
        return {"name": self.name, "value": _num(self.value), "threshold": _num(self.threshold),
                "passed": bool(self.passed), "rule": self.rule}


def _num(x: float):
    x = float(x)
    return x if math.isfinite(x) else str(x)


@dataclass
class CheckContext:
    """What a check may look at. Fields are global (n, n) float64 arrays."""

    candidate: np.ndarray
    previous: np.ndarray | None               # the trusted field dt earlier (None: unknown)
    dt: float
    diagnostics: "FieldDiagnostics"
    std: np.ndarray | None = None
    coarse: np.ndarray | None = None          # superres: the coarse solver state it was made from
    recent_max: float | None = None           # max |w| over the recent trusted fields
    reference_spectrum: np.ndarray | None = None   # running spectrum of the solver (fine grid shells)
    forecast: bool = False                    # the candidate is a forecast of ``previous`` dt later


class DriftCheck:
    """Base class: ``name``, ``default`` threshold, ``floor`` of the adaptive rule, ``adaptive``."""

    name = "check"
    default = 0.0
    floor = 0.0
    adaptive = True

    def applies(self, ctx: CheckContext) -> bool:
        return True

    def value(self, ctx: CheckContext) -> float:
        raise NotImplementedError


class Finite(DriftCheck):
    name, default, adaptive = "finite", 0.0, False

    def value(self, ctx):
        bad = int(np.count_nonzero(~np.isfinite(ctx.candidate)))
        if ctx.std is not None:
            bad += int(np.count_nonzero(~np.isfinite(ctx.std)))
        return float(bad)


class MaxVorticity(DriftCheck):
    name, default, floor = "max_vorticity", 1.5, 1.25

    def applies(self, ctx):
        return bool(ctx.recent_max)

    def value(self, ctx):
        return float(np.max(np.abs(ctx.candidate))) / ctx.recent_max


class EnergyBudget(DriftCheck):
    name, default, floor = "energy_budget", 0.1, 0.02
    quantity = "energy"

    def applies(self, ctx):
        return ctx.previous is not None and ctx.diagnostics.has_budgets

    def value(self, ctx):
        q0, r0 = ctx.diagnostics.budget(ctx.previous, self.quantity)
        q1, r1 = ctx.diagnostics.budget(ctx.candidate, self.quantity)
        return abs(q1 - q0 - 0.5 * ctx.dt * (r0 + r1)) / max(abs(q0), 1e-300)


class EnstrophyBudget(EnergyBudget):
    name, default, floor = "enstrophy_budget", 0.2, 0.05
    quantity = "enstrophy"


class Tendency(DriftCheck):
    """Does the change over the interval follow the equations? The trapezoid rule says
    w - w0 ~ dt/2 (f(w0) + f(w)) with f the solver's right-hand side, up to O(dt^3): a field
    that did not move (persistence), moved the wrong way (a shift) or is noise fails it."""

    name, default, floor = "tendency", 1.0, 0.3

    def applies(self, ctx):
        return ctx.previous is not None and ctx.diagnostics.has_budgets

    def value(self, ctx):
        d = ctx.diagnostics
        expected = 0.5 * ctx.dt * (d.tendency(ctx.previous) + d.tendency(ctx.candidate))
        change = ctx.candidate - ctx.previous
        return float(np.linalg.norm(change - expected) / max(np.linalg.norm(expected), 1e-300))


class CoarseForecast(DriftCheck):
    """Do the large scales move as the equations move them? The solver on a coarse grid (n / 4,
    at least 32^2; cheap next to a surrogate call) advances the restricted trusted field over the
    interval; the candidate restricted to that grid must agree, relative to how far the large scales
    moved: ||R w - S(R w0)|| / ||S(R w0) - R w0||. Persistence scores 1; a shift or noise more."""

    name, default, floor = "coarse_forecast", 0.5, 0.15

    def applies(self, ctx):
        return ctx.previous is not None and ctx.forecast

    def value(self, ctx):
        predicted, start, restricted = ctx.diagnostics.coarse_forecast(ctx.previous, ctx.candidate, ctx.dt)
        return float(np.linalg.norm(restricted - predicted) / max(np.linalg.norm(predicted - start), 1e-300))


class SpectrumResolved(DriftCheck):
    name, default, floor = "spectrum_resolved", 1.0, 0.15
    band = "resolved"

    def applies(self, ctx):
        return ctx.reference_spectrum is not None or (self.band == "resolved" and ctx.coarse is not None)

    def value(self, ctx):
        d = ctx.diagnostics
        e = d.spectrum(ctx.candidate)
        if self.band == "resolved" and ctx.coarse is not None:
            ref = d.spectrum_of_coarse(ctx.coarse)
        else:
            ref = ctx.reference_spectrum
        lo, hi = d.band(self.band)
        return log_spectral_distance(e[lo:hi + 1], ref[lo:hi + 1])


class SpectrumTail(SpectrumResolved):
    name, default, floor = "spectrum_tail", 1.5, 0.3
    band = "tail"

    def applies(self, ctx):
        return ctx.reference_spectrum is not None


class SuperresConsistency(DriftCheck):
    name, default, adaptive = "superres_consistency", 0.1, False

    def applies(self, ctx):
        return ctx.coarse is not None

    def value(self, ctx):
        restricted = coarsen(ctx.candidate, ctx.candidate.shape[-1] // ctx.coarse.shape[-1], "spectral")
        return float(np.linalg.norm(restricted - ctx.coarse) / max(np.linalg.norm(ctx.coarse), 1e-300))


class EnsembleSpread(DriftCheck):
    name, default, adaptive = "ensemble_spread", 0.5, False

    def applies(self, ctx):
        return ctx.std is not None

    def value(self, ctx):
        rms = float(np.sqrt(np.mean(ctx.candidate ** 2)))
        return float(np.mean(ctx.std)) / max(rms, 1e-300)


class SolidVelocity(DriftCheck):
    """No-slip solids hold the fluid at rest. The vorticity carries the velocity only up to the mean
    flow (which the solver tracks apart, and which changes in a driven channel), so the check asks
    that the velocity be uniform inside the solid: rms |u - <u>_solid| over the solid, relative to
    rms |u - <u>| over the whole domain."""

    name, default, floor = "solid_velocity", 0.1, 0.02

    def applies(self, ctx):
        return ctx.diagnostics.solid is not None

    def value(self, ctx):
        u, v = (np.asarray(c) for c in ctx.diagnostics.velocity(ctx.candidate))
        inside = ctx.diagnostics.solid > 0.5
        dev_in = (u[inside] - u[inside].mean()) ** 2 + (v[inside] - v[inside].mean()) ** 2
        dev_all = (u - u.mean()) ** 2 + (v - v.mean()) ** 2
        return float(np.sqrt(dev_in.mean()) / max(np.sqrt(dev_all.mean()), 1e-300))


ALL_CHECKS = (Finite, MaxVorticity, EnergyBudget, EnstrophyBudget, Tendency, CoarseForecast, SpectrumResolved, SpectrumTail,
              SuperresConsistency, EnsembleSpread, SolidVelocity)


def log_spectral_distance(e: np.ndarray, ref: np.ndarray) -> float:
    """sqrt(mean over half-octave bands of (log E_band - log E_ref,band)^2).

    Shells are summed in half-octave bands first: single low-k shells hold a handful of modes and
    fluctuate by tens of per cent from one eddy turnover to the next, which is weather, not drift.
    Energies are floored at 1e-30 of the reference peak (a band with no energy is far, not NaN).
    """
    e, ref = np.asarray(e, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    edges = np.unique(np.floor(2.0 ** (np.arange(0, 2 * np.log2(len(e)) + 2) / 2)).astype(int) - 1)
    edges = edges[edges < len(e)]
    edges = np.append(edges, len(e)) if edges[-1] != len(e) else edges
    be = np.add.reduceat(e, edges[:-1])
    br = np.add.reduceat(ref, edges[:-1])
    floor = 1e-30 * max(float(np.max(br)), 1e-300)
    return float(np.sqrt(np.mean((np.log(np.maximum(be, floor)) - np.log(np.maximum(br, floor))) ** 2)))


def forecast_factor(n: int) -> int:
    """The coarse-forecast check's restriction factor: onto n / 4, at least 32^2 (none below that)."""
    m = max(32, n // 4) if n >= 32 else n
    return max(1, n // m)


# ------------------------------------------------------------------------------------------------
class FieldDiagnostics:
    """Spectra, budgets, tendencies and velocities of global fields: the functions of
    :mod:`solver.diagnostics` on the run's equation (so the budget terms are the solver's own), on the
    fine grid and, for super-resolution, on the coarse one; and the coarse forecast of the forecast
    check, the one part that runs a solver."""

    def __init__(self, n: int, solver_kwargs: dict, coarse_n: int | None = None):
        from solver.equations import VorticityEquation
        self._kwargs = dict(solver_kwargs)
        self._forecast_sim = None
        self.eq = VorticityEquation.serial(n, **self._kwargs)
        self.n = n
        self.solid = None if self.eq.solid_fraction is None else np.asarray(self.eq.solid_fraction)
        self.has_budgets = self.eq.flow.boundary_kind in ("periodic", "free-slip")
        self.coarse_n = coarse_n
        self._coarse_eq = VorticityEquation.serial(coarse_n, **self._kwargs) if coarse_n else None
        # the fine grid's resolved band, and where the tail begins: what the coarse grid carries
        # (superres), else the upper half of the resolved band
        self.k_max = diagnostics.resolved_band(n)[1]
        self.k_resolved = diagnostics.resolved_band(coarse_n)[1] if coarse_n else self.k_max // 2

    def band(self, which: str) -> tuple[int, int]:
        return (1, self.k_resolved) if which == "resolved" else (self.k_resolved + 1, self.k_max)

    def spectrum(self, w: np.ndarray) -> np.ndarray:
        return diagnostics.spectrum(self.eq, self.eq.spectral_of(w))[1]

    def spectrum_of_coarse(self, coarse: np.ndarray) -> np.ndarray:
        """The coarse field's spectrum, zero above the coarse grid's shells (the fine spectrum's length)."""
        e = np.zeros(diagnostics.spectrum_shells(self.n))
        ec = diagnostics.spectrum(self._coarse_eq, self._coarse_eq.spectral_of(coarse))[1]
        m = min(len(e), len(ec))
        e[:m] = ec[:m]
        return e

    def budget(self, w: np.ndarray, quantity: str) -> tuple[float, float]:
        w_hat = self.eq.spectral_of(w)
        if quantity == "energy":
            b = diagnostics.energy_budget(self.eq, w_hat)
            return b["energy"], b["dE_dt"]
        b = diagnostics.enstrophy_budget(self.eq, w_hat)
        return b["enstrophy"], b["dZ_dt"]

    def coarse_forecast(self, w0: np.ndarray, w1: np.ndarray, dt: float):
        """(S(R w0), R w0, R w1): the coarse solver's forecast of the restricted field, its start, and
        the restricted candidate (R: spectral truncation onto n / 4, at least 32^2)."""
        from solver import NavierStokes2D
        factor = forecast_factor(self.n)
        if self._forecast_sim is None:
            self._forecast_sim = NavierStokes2D(self.n // factor, **dict(self._kwargs, backend="numpy", dtype="float64"))
        r0, r1 = coarsen(w0, factor, "spectral"), coarsen(w1, factor, "spectral")
        return np.asarray(self._forecast_sim.advance(r0, dt)), r0, r1

    def tendency(self, w: np.ndarray) -> np.ndarray:
        return np.asarray(self.eq.physical_of(self.eq.tendency(self.eq.spectral_of(w))))

    def velocity(self, w: np.ndarray):
        """(u, v), the mean flow of penalised runs included."""
        u, v = self.eq.velocity_fluctuation(self.eq.spectral_of(w))
        u0, v0 = self.eq.mean_velocity
        return self.eq.grid.restrict(u) + u0, self.eq.grid.restrict(v) + v0


class CheckSuite:
    """The configured checks, their solver-history samples, and the decision rule."""

    def __init__(self, *, disabled=(), thresholds=None, floors=None, k_mad: float = 5.0, window: int = 32,
                 calibrated=None):
        self.checks = [c() for c in ALL_CHECKS if c.name not in set(disabled)]
        self.fixed = dict(thresholds or {})
        self.calibrated = dict(calibrated or {})
        self.floors = dict(floors or {})
        self.k_mad = float(k_mad)
        self.samples: dict[str, deque] = {c.name: deque(maxlen=int(window)) for c in self.checks}

    def record_solver(self, ctx: CheckContext) -> None:
        """Add the solver's own values for the interval ending at ``ctx.candidate`` (a solver field)."""
        for c in self.checks:
            if c.adaptive and c.applies(ctx):
                v = c.value(ctx)
                if math.isfinite(v):
                    self.samples[c.name].append(v)

    def threshold(self, check: DriftCheck) -> tuple[float, str]:
        if check.name in self.fixed:
            return float(self.fixed[check.name]), "fixed"
        s = self.samples[check.name]
        if check.adaptive and len(s) >= MIN_SAMPLES:
            a = np.asarray(s)
            med = float(np.median(a))
            mad = MAD_SCALE * float(np.median(np.abs(a - med)))
            floor = float(self.floors.get(check.name, check.floor))
            return max(floor, med + self.k_mad * mad), "adaptive"
        if check.name in self.calibrated:
            return float(self.calibrated[check.name]), "calibrated"
        return float(check.default), "default"

    def evaluate(self, ctx: CheckContext) -> list[CheckResult]:
        results = []
        for c in self.checks:
            if not c.applies(ctx):
                continue
            try:
                v = float(c.value(ctx))
            except (ValueError, FloatingPointError, ZeroDivisionError, np.linalg.LinAlgError):
                v = math.inf
            thr, rule = self.threshold(c)
            results.append(CheckResult(c.name, v, thr, bool(v <= thr), rule))  # NaN fails
        return results

    def state(self) -> dict:
        return {k: list(v) for k, v in self.samples.items()}

    def load_state(self, state: dict) -> None:
        for k, v in state.items():
            if k in self.samples:
                self.samples[k].clear()
                self.samples[k].extend(float(x) for x in v)


@dataclass
class RunningSpectrum:
    """Mean of the last ``window`` solver spectra (the reference of the spectrum checks)."""

    window: int = 8
    spectra: list = field(default_factory=list)

    def add(self, e: np.ndarray) -> None:
        self.spectra.append(np.asarray(e, dtype=np.float64))
        del self.spectra[:-self.window]

    @property
    def value(self) -> np.ndarray | None:
        return np.mean(self.spectra, axis=0) if self.spectra else None
