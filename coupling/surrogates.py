"""What the running solver calls: the ``Surrogate`` protocol, FLEX behind it, and stand-ins.

A surrogate works on whole (global) vorticity fields as numpy float64 arrays, in the solver's
units and layout (axis 0 = x):

- ``superres(coarse, reynolds, *, ensemble=1)``: coarse (n_c, n_c) -> fine (n, n), n = factor * n_c;
- ``forecast(history, reynolds, *, ensemble=1)``: history (k, n, n), oldest first, spaced by
  ``lead_time`` -> the field ``lead_time`` after the last one.

Both return a :class:`Prediction`. Two keyword arguments make ensembles reproducible and shareable
over MPI ranks: ``members`` (which member indices to draw; default ``range(ensemble)``) and ``call``
(the call's index in the run). Member ``m`` of call ``c`` is drawn from the seed
``(seed, c, m)`` alone, so the answer does not depend on how members are spread over ranks, nor on
whether the run was interrupted and resumed. ``time`` (the output time) is passed for the oracle.

A surrogate may carry a ``digest`` (FLEX: its checkpoint's content digest): a run records it and
resumes only with the same model. Every call gets its own copy of the input.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from coupling.config import PRECISIONS

__all__ = ["Prediction", "Surrogate", "FlexSurrogate", "InterpolationSurrogate", "SolverSurrogate",
           "PersistenceSurrogate", "SurrogateMisfit", "default_checkpoint", "member_seed"]


class SurrogateMisfit(ValueError):
    """A surrogate that does not fit the run (task, factor, lead time, grid); raised before any work."""


@dataclass
class Prediction:
    """A surrogate's answer: the ensemble ``mean`` (n, n) and its ``std`` (None for one member);
    ``members`` (K, n, n) when the caller asked for the individual members."""

    mean: np.ndarray
    std: np.ndarray | None = None
    members: np.ndarray | None = None

    @classmethod
    def from_members(cls, members: np.ndarray, keep: bool = False) -> "Prediction":
        members = np.asarray(members, dtype=np.float64)
        std = members.std(axis=0) if members.shape[0] > 1 else None
        return cls(members.mean(axis=0), std, members if keep else None)


@runtime_checkable
class Surrogate(Protocol):
    """The protocol the coupling layer calls (see the module docstring)."""

    factor: int | None          # super-resolution factor (None: does not super-resolve)
    lead_time: float | None     # forecast lead in time units (None: does not forecast)
    history_length: int         # past fields a forecast conditions on
    grid_divisor: int           # the fine grid n must be divisible by this

    def superres(self, coarse: np.ndarray, reynolds: float, *, ensemble: int = 1, **kw) -> Prediction: ...

    def forecast(self, history: np.ndarray, reynolds: float, *, ensemble: int = 1, **kw) -> Prediction: ...


def member_seed(seed: int, call: int, member: int) -> int:
    """The seed of ensemble member ``member`` in surrogate call ``call`` (64-bit, order-free)."""
    return int(np.random.SeedSequence([int(seed), int(call), int(member)]).generate_state(1, np.uint64)[0]
               & 0x7FFF_FFFF_FFFF_FFFF)


def _members(ensemble: int, members: Sequence[int] | None) -> list[int]:
    if not isinstance(ensemble, (int, np.integer)) or ensemble < 1:
        raise ValueError(f"ensemble must be a positive integer, got {ensemble!r}")
    return list(range(ensemble)) if members is None else [int(m) for m in members]


def _check_square(field: np.ndarray, what: str, ndim: int = 2) -> np.ndarray:
    field = np.asarray(field)
    if np.iscomplexobj(field):
        raise ValueError(f"{what} must be real, got a complex array")
    field = np.asarray(field, dtype=np.float64)
    if field.ndim != ndim or field.shape[-1] != field.shape[-2]:
        raise ValueError(f"{what} must be a square {'(n, n)' if ndim == 2 else '(k, n, n)'} array, got shape {field.shape}")
    return field


# ------------------------------------------------------------------------------------------ FLEX
DEFAULT_MODEL = "flex-tiny-kolmogorov256"  # superres x4 and forecasts, 2.4M parameters
SUPERRES_X2_MODEL = "flex-c24s4-superres256x2"  # superres x2 only, 1.4M parameters, with its calibration.json
CALIBRATION_FILE = "calibration.json"  # a model folder may carry the calibration of its checks


def shipped_model(name: str = DEFAULT_MODEL) -> Path:
    """The folder of a model shipped in flexcouple/shipped/."""
    import flexcouple
    return Path(flexcouple.__file__).resolve().parent / "shipped" / name


def default_checkpoint() -> Path:
    """The shipped default model (flexcouple/shipped/flex-tiny-kolmogorov256)."""
    return shipped_model(DEFAULT_MODEL)


def model_calibration(checkpoint: str | os.PathLike) -> Path | None:
    """The calibration a model folder carries (``<folder>/calibration.json``), or None."""
    path = Path(checkpoint) / CALIBRATION_FILE
    return path if path.is_file() else None


class FlexSurrogate:
    """A FLEX checkpoint of ours as a :class:`Surrogate`.

    It rebuilds the training pipeline the checkpoint records: super-resolution conditions are the
    coarse field brought to the fine grid as the data set did it (spectral zero-padding, or bicubic),
    normalised with the training statistics; forecasts condition on the last ``cond_snapshots``
    fields. Sampling is FLEX's DDIM with ``steps`` steps; each member's initial noise comes from
    :func:`member_seed`, so a member is the same whoever draws it.
    """

    def __init__(self, model, config: dict, *, device: str = "cpu", steps: int = 2, ensemble: int = 1,
                 seed: int = 0, source: str = "", member_batch: int | None = None, precision: str = "float32"):
        from flexcouple.checkpoint import config_digest
        self.model = model
        self.config = config
        # the checkpoint's content: its config, which holds the SHA-256 of its verified weights
        self.digest = config_digest(config)
        self.device = device
        self.steps = int(steps)
        self.ensemble = int(ensemble)
        self.seed = int(seed)
        self.source = source
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
        # bfloat16: the network under autocast (convolutions and matmuls in bf16, the sampler's
        # arithmetic and the output in float32); a 2-step c16 call at 256^2 measured 1.57x faster on
        # an Intel CPU with AMX, deviating from float32 by 1.9% of the residual's rms, but 7-8x slower
        # on an AMD EPYC without AVX512-BF16 (bf16 emulated): float32 stays the default
        self.precision = precision
        # members per network call: on CPUs a batch of K members measured slower than K single calls
        # (benchmarks/results/coupling_overhead.json), so one at a time; on GPUs all at once
        self.member_batch = member_batch or (1 if str(device) == "cpu" else 1 << 30)
        norm = config["normalization"]
        self.mean, self.std_norm = float(norm["mean"]), float(norm["std"])
        self.tasks = tuple(config.get("tasks", ()))
        data = config.get("data") or {}
        sr = dict(data.get("superres_options") or {})
        fc = dict(data.get("forecast_options") or {})
        self.factor = int(sr["factor"]) if "superres" in self.tasks and "factor" in sr else None
        self.upsample = sr.get("upsample", "bicubic")
        self.periodic_bicubic = bool(sr.get("periodic_bicubic", False))
        self.lead_time = float(fc["lead_time"]) if "forecast" in self.tasks and "lead_time" in fc else None
        self.history_length = int(config.get("cond_snapshots", 2))
        backbone = getattr(model, "backbone", None)
        self.grid_divisor = int(getattr(backbone, "divisor", 16))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, device: str = "cpu", steps: int = 2,
                        ensemble: int = 1, seed: int = 0, member_batch: int | None = None,
                        allow_unverified: bool = False, precision: str = "float32") -> "FlexSurrogate":
        """Load one of our checkpoints (None: the shipped default) once, on ``device``
        (``allow_unverified``: see flexcouple.checkpoint)."""
        from flexcouple.checkpoint import load_checkpoint
        path = Path(path) if path else default_checkpoint()
        if not path.exists():
            raise FileNotFoundError(f"no FLEX checkpoint at {path}" + (
                " (the shipped default model is missing from this installation)" if not path.name else ""))
        _check_device(device)
        model, config = load_checkpoint(path, device=device, allow_unverified=allow_unverified)
        if not config.get("normalization"):
            raise SurrogateMisfit(f"checkpoint {path} has no normalization; it cannot be used in a run")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        return cls(model, config, device=device, steps=steps, ensemble=ensemble, seed=seed, source=str(path),
                   member_batch=member_batch, precision=precision)

    # -- fitting the run ---------------------------------------------------------------------
    def check_fits(self, mode: str, n: int, factor: int | None = None, lead_time: float | None = None) -> None:
        """Refuse a run this checkpoint was not made for (raises SurrogateMisfit, before any work)."""
        where = self.source or "the checkpoint"
        if mode == "superres":
            if "superres" not in self.tasks:
                raise SurrogateMisfit(f"{where} was trained for {', '.join(self.tasks)}, not super-resolution; "
                                      "use mode = 'leapfrog' or a super-resolution checkpoint")
            if self.factor is None:
                raise SurrogateMisfit(f"{where} does not record its super-resolution factor (data.superres_options)")
            if factor != self.factor:
                raise SurrogateMisfit(f"{where} super-resolves by x{self.factor}, but the run asks for factor "
                                      f"{factor}; set factor = {self.factor} in [grid]")
        if mode == "leapfrog":
            if "forecast" not in self.tasks:
                raise SurrogateMisfit(f"{where} was trained for {', '.join(self.tasks)}, not forecasting; "
                                      "use mode = 'superres' or a forecasting checkpoint")
            if self.lead_time is None:
                raise SurrogateMisfit(f"{where} does not record its forecast lead time "
                                      "(data.forecast_options.lead_time); retrain with this flexcouple")
        if n % self.grid_divisor:
            raise SurrogateMisfit(f"{where} needs a fine grid divisible by {self.grid_divisor}, got n = {n}")

    # -- calls ------------------------------------------------------------------------------
    def _normalize(self, x):
        return (x - self.mean) / self.std_norm

    def _sample(self, condition: np.ndarray, reynolds: float, task: str, ensemble: int, members, call: int):
        import torch
        ids = _members(ensemble, members)
        h, w = condition.shape[-2:]
        cond = torch.as_tensor(self._normalize(condition), dtype=torch.float32, device=self.device)[None]
        # one initial noise per member, from its own seed (independent of batching and ranks)
        noise = torch.stack([torch.randn((1, h, w), generator=torch.Generator().manual_seed(
            member_seed(self.seed, call, m))) for m in ids]).to(self.device)
        reynolds_t = torch.tensor([float(reynolds)], device=self.device)
        parts = []
        autocast = torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16,
                                  enabled=self.precision == "bfloat16")
        with torch.inference_mode(), autocast:
            for i in range(0, len(ids), self.member_batch):
                chunk = noise[i:i + self.member_batch]
                out = self.model.sample(cond, reynolds_t, steps=self.steps, ensemble=len(chunk), task=task,
                                        noise=chunk)
                parts.append(out[0, :, 0].double().cpu().numpy())
        fields = np.concatenate(parts) * self.std_norm + self.mean
        return Prediction.from_members(fields, keep=members is not None)

    def superres(self, coarse, reynolds, *, ensemble: int = 1, members=None, call: int = 0, **_) -> Prediction:
        from flexcouple.data.coarsen import superres_condition
        coarse = _check_square(coarse, "coarse vorticity")
        if self.factor is None:
            raise SurrogateMisfit("this checkpoint does not super-resolve")
        cond = superres_condition(coarse, coarse.shape[-1] * self.factor, self.upsample, self.periodic_bicubic)
        return self._sample(np.asarray(cond)[None], reynolds, "superres", ensemble, members, call)

    def forecast(self, history, reynolds, *, ensemble: int = 1, members=None, call: int = 0, **_) -> Prediction:
        history = _check_square(history, "history", ndim=3)
        if history.shape[0] < self.history_length:
            raise ValueError(f"forecast needs {self.history_length} past fields, got {history.shape[0]}")
        return self._sample(history[-self.history_length:], reynolds, "forecast", ensemble, members, call)


def _check_device(device: str) -> None:
    """A CUDA device that is not there is an error, never a silent CPU fallback."""
    if device == "cpu":
        return
    import torch
    if not str(device).startswith("cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for, but torch sees no CUDA GPU here; "
                           "use device = 'cpu' or run on a GPU machine")
    index = int(str(device).split(":")[1]) if ":" in str(device) else 0
    if index >= torch.cuda.device_count():
        raise RuntimeError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")


# ------------------------------------------------------------------------------------ stand-ins
class InterpolationSurrogate:
    """Super-resolution by interpolation, ``method`` "spectral" (Fourier zero-padding, exact for
    band-limited periodic fields) or "bicubic" (periodic Keys cubic convolution). Deterministic: an
    ensemble is K copies (std 0)."""

    lead_time = None
    history_length = 1
    grid_divisor = 1

    def __init__(self, factor: int, method: str = "spectral"):
        if method not in ("spectral", "bicubic"):
            raise ValueError(f"method must be 'spectral' or 'bicubic', got {method!r}")
        if not isinstance(factor, (int, np.integer)) or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}")
        self.factor, self.method = int(factor), method

    def superres(self, coarse, reynolds, *, ensemble: int = 1, members=None, **_) -> Prediction:
        from flexcouple.data.coarsen import upsample
        coarse = _check_square(coarse, "coarse vorticity")
        fine = np.asarray(upsample(coarse, self.factor, self.method, periodic=self.method == "bicubic"))
        ids = _members(ensemble, members)
        return Prediction.from_members(np.repeat(fine[None], len(ids), axis=0), keep=members is not None)

    def forecast(self, history, reynolds, **_) -> Prediction:
        raise SurrogateMisfit("interpolation does not forecast")


class PersistenceSurrogate:
    """Forecast = the last field (the forecasting baseline; ``lead_time`` as given)."""

    factor = None
    history_length = 1
    grid_divisor = 1

    def __init__(self, lead_time: float):
        self.lead_time = float(lead_time)

    def superres(self, coarse, reynolds, **_) -> Prediction:
        raise SurrogateMisfit("persistence does not super-resolve")

    def forecast(self, history, reynolds, *, ensemble: int = 1, members=None, **_) -> Prediction:
        history = _check_square(history, "history", ndim=3)
        ids = _members(ensemble, members)
        return Prediction.from_members(np.repeat(history[-1][None], len(ids), axis=0), keep=members is not None)


class SolverSurrogate:
    """The oracle: the fine solver itself (for tests, and as the upper bound of any surrogate).

    ``forecast`` advances the last history field by ``lead_time`` with the fine solver, exactly as
    the solver would. ``superres`` ignores the coarse input's small scales: it returns the fine
    solver's own field at the call's ``time``, integrated from ``omega0`` output by output, so a
    ``superres`` run with the oracle reproduces the pure fine run.
    """

    history_length = 1
    grid_divisor = 1

    def __init__(self, n: int, solver_kwargs: dict, *, lead_time: float | None = None, factor: int | None = None,
                 omega0: np.ndarray | None = None):
        from solver import NavierStokes2D
        self.sim = NavierStokes2D(n, **solver_kwargs)
        self.lead_time = None if lead_time is None else float(lead_time)
        self.factor = factor
        self._t = 0.0
        self._state = None if omega0 is None else np.asarray(omega0, dtype=np.float64)

    def reset(self, omega0: np.ndarray) -> None:
        """Start the super-resolution oracle's own fine run from ``omega0`` at t = 0."""
        self._state, self._t = np.asarray(omega0, dtype=np.float64), 0.0

    def forecast(self, history, reynolds, *, ensemble: int = 1, members=None, **_) -> Prediction:
        if self.lead_time is None:
            raise SurrogateMisfit("this oracle was built without a lead_time")
        history = _check_square(history, "history", ndim=3)
        out = self.sim.advance(history[-1], self.lead_time)
        ids = _members(ensemble, members)
        return Prediction.from_members(np.repeat(np.asarray(out)[None], len(ids), axis=0), keep=members is not None)

    def superres(self, coarse, reynolds, *, ensemble: int = 1, members=None, time: float | None = None,
                 **_) -> Prediction:
        if self._state is None or time is None:
            raise SurrogateMisfit("the super-resolution oracle needs omega0 and the call's time")
        if time < self._t - 1e-12:
            raise ValueError(f"the oracle cannot go back in time (at {self._t}, asked for {time})")
        if time > self._t + 1e-12:
            self._state = np.asarray(self.sim.advance(self._state, time - self._t))  # autonomous
            self._t = float(time)
        ids = _members(ensemble, members)
        return Prediction.from_members(np.repeat(self._state[None], len(ids), axis=0), keep=members is not None)


def build_surrogate(config, *, omega0=None, comm=None):
    """The surrogate a config names (FLEX from the config's checkpoint, else the shipped model); whether
    it fits the run is :func:`check_fit`'s to say."""
    kind = config.surrogate_kind
    if kind == "flex":
        device = _rank_device(config.device, comm)
        sur = FlexSurrogate.from_checkpoint(config.checkpoint or None, device=device,
                                            steps=config.sample_steps, ensemble=config.ensemble, seed=config.seed,
                                            allow_unverified=config.allow_unverified, precision=config.precision)
        return sur
    if kind in ("spectral", "bicubic"):
        return InterpolationSurrogate(config.factor, kind)
    if kind == "persistence":
        return PersistenceSurrogate(config.lead_time)
    if kind == "oracle":
        return SolverSurrogate(config.n, config.solver_kwargs(), lead_time=config.lead_time or None,
                               factor=config.factor, omega0=omega0)
    raise ValueError(f"unknown surrogate {kind!r}")


def check_fit(config, surrogate) -> None:
    """Refuse, before any work, a surrogate that does not fit the run of ``config`` (a HybridConfig)."""
    if surrogate is None:
        raise ValueError(f"mode {config.mode!r} needs a surrogate")
    if hasattr(surrogate, "check_fits"):
        surrogate.check_fits(config.mode, config.n, factor=config.factor)
    if config.mode == "superres" and getattr(surrogate, "factor", None) != config.factor:
        raise ValueError(f"the surrogate super-resolves by {getattr(surrogate, 'factor', None)}, the run asks for "
                         f"factor {config.factor}")
    if config.mode == "leapfrog":
        lead = getattr(surrogate, "lead_time", None)
        if not lead or not lead > 0:
            raise ValueError("leapfrog needs a surrogate with a positive lead_time")
    div = int(getattr(surrogate, "grid_divisor", 1) or 1)
    if config.n % div:
        raise ValueError(f"the surrogate needs n divisible by {div}, got n = {config.n}")


def _rank_device(device: str, comm) -> str:
    """On GPUs each rank takes local_rank mod count (explicit 'cuda:i' is kept as given)."""
    if device != "cuda":
        return device
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA GPU here; use device = 'cpu'")
    local_rank = int(os.environ.get("MPI_LOCALRANKID", os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK",
                                    comm.rank if comm is not None else 0)))
    return f"cuda:{local_rank % torch.cuda.device_count()}"


def torch_threads_per_rank(requested: int, ranks: int) -> int:
    """Threads for torch on each rank so that ranks do not oversubscribe the cores."""
    if requested:
        return int(requested)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, math.floor(cores / max(1, ranks)))
