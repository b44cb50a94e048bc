"""Surrogates for the coupling tests: broken in every way a real one can be, and a noisy ensemble."""
from __future__ import annotations

import time

import numpy as np

from coupling.surrogates import Prediction, SolverSurrogate, member_seed


class Broken:
    """A forecasting (``lead_time``) and super-resolving (``factor``) surrogate that fails as told:
    "nan", "huge", "shape", "raise", "sleep", "shift", "noise", "dtype", "none"."""

    history_length = 1
    grid_divisor = 1

    def __init__(self, how: str, *, lead_time: float = 0.25, factor: int = 2, n: int = 32, solver_kwargs=None,
                 sleep: float = 2.0):
        self.how, self.lead_time, self.factor, self.sleep = how, lead_time, factor, sleep
        self.calls = 0
        self.oracle = SolverSurrogate(n, solver_kwargs, lead_time=lead_time) if solver_kwargs else None

    def _answer(self, field: np.ndarray) -> Prediction | object:
        self.calls += 1
        how = self.how
        if how == "nan":
            out = field.copy()
            out[3, 5] = np.nan
            return Prediction(out)
        if how == "huge":
            return Prediction(field * 1e6)
        if how == "shape":
            return Prediction(field[:-2, :])
        if how == "dtype":
            return Prediction(field.astype(np.complex128))
        if how == "none":
            return None
        if how == "raise":
            raise RuntimeError("the model crashed")
        if how == "sleep":
            time.sleep(self.sleep)
            return Prediction(field)
        if how == "shift":  # plausible: the right field, moved by a quarter of the box
            return Prediction(np.roll(field, field.shape[0] // 4, axis=0))
        if how == "noise":  # plausible: random phases with the right energy spectrum
            rng = np.random.default_rng(self.calls)
            f_hat = np.fft.rfft2(field)
            return Prediction(np.fft.irfft2(np.abs(f_hat) * np.exp(2j * np.pi * rng.random(f_hat.shape)), s=field.shape))
        raise ValueError(how)

    def forecast(self, history, reynolds, **kw):
        truth = self.oracle.forecast(history, reynolds).mean if self.oracle else history[-1]
        return self._answer(truth)

    def superres(self, coarse, reynolds, **kw):
        from flexcouple.data.coarsen import upsample
        return self._answer(np.asarray(upsample(coarse, self.factor, "spectral")))


class NoisyEnsemble:
    """Super-resolution = spectral interpolation + small member noise from ``member_seed`` (so a
    member is the same whoever draws it): exercises ensembles and the MPI strategies."""

    lead_time = None
    history_length = 1
    grid_divisor = 1

    def __init__(self, factor: int, amplitude: float = 0.01, seed: int = 0):
        self.factor, self.amplitude, self.seed = factor, amplitude, seed

    def superres(self, coarse, reynolds, *, ensemble=1, members=None, call=0, **kw):
        from flexcouple.data.coarsen import upsample
        fine = np.asarray(upsample(np.asarray(coarse, dtype=np.float64), self.factor, "spectral"))
        ids = range(ensemble) if members is None else members
        scale = self.amplitude * np.sqrt(np.mean(fine ** 2))
        fields = np.stack([fine + scale * np.random.default_rng(member_seed(self.seed, call, m)).standard_normal(fine.shape)
                           for m in ids])
        return Prediction.from_members(fields, keep=members is not None)


class NearOracle(SolverSurrogate):
    """A good super-resolution model: the fine solver's own field (the oracle's) times 1.005 plus noise
    of 0.2% of its rms, drawn from the call's number: close to the truth, never equal to it."""

    def superres(self, coarse, reynolds, *, call=0, **kw):
        exact = super().superres(coarse, reynolds, **kw).mean
        rng = np.random.default_rng(1000 + int(call))
        return Prediction(1.005 * exact + 0.002 * np.sqrt(np.mean(exact ** 2)) * rng.standard_normal(exact.shape))
