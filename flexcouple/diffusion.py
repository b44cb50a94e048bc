"""Residual-space diffusion (FLEX): v-prediction, cosine logSNR schedule, DDIM sampling.

The model never generates the field itself, only the residual ``x0`` to a cheap base field:

- super-resolution: ``x0 = fine - upsampled(coarse)``, base = the condition (upsampled coarse field);
- forecasting: ``x0 = x(t+1) - x(t)``, base = the most recent past snapshot (last condition channel).

``space = "raw"`` (``flexcouple train --space raw``, recorded in the checkpoint) is the ablation of
that design choice: base = 0, the model generates the target field itself, conditioned as before.
:func:`model_base` is the one place that decides.

Noise schedule (continuous time ``t ~ U(0, 1)``, logSNR in ``[logsnr_min, logsnr_max] = [-20, 20]``)::

    b = atan(exp(-logsnr_max / 2)),  a = atan(exp(-logsnr_min / 2)) - b
    logsnr(t) = -2 log(tan(a t + b) * shift)
    alpha = sqrt(sigmoid(logsnr)),  sigma = sqrt(sigmoid(-logsnr))        (alpha^2 + sigma^2 = 1)

Training: ``x_t = alpha x0 + sigma eps``; the network predicts ``v = alpha eps - sigma x0``; L1 loss.
Optionally (``flexcouple train --spectral-loss W``) plus ``W`` times the log-spectral distance of the
predicted field ``base + x0_hat`` (``x0_hat = alpha x_t - sigma v``, what a 1-step sampler returns at
t = 1; with ``--spectral-steps S`` the S-step sample itself, differentiated through) to the target,
over bands of the radial spectrum (``--spectral-bands`` per octave, 2 by default): an L1 / L2 loss lets a few-step
sampler return the conditional mean, whose small scales hold a fraction of the true energy (the
dissipation range carries almost none of the squared error), and the spectrum is what the hybrid's
``spectrum_tail`` check and the full-band statistics measure.
Multi-task training puts both tasks through the shared network as one batch with the SAME ``t``
and the SAME ``eps`` for both halves, as the paper's code.

Sampling: deterministic DDIM (eta = 0) on ``t = 1, (n-1)/n, ..., 0``: from ``v`` the predicted residual
is ``x0 = alpha x_t - sigma v`` and the predicted noise ``eps = alpha v + sigma x_t``; the next state is
``alpha_s x0 + sigma_s eps``. The last step returns the predicted mean ``x0``; the output is
``base + x0``. Randomness lives only in the initial noise, so an ensemble of K members is K initial
noises, run as one batch of ``B K``.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn as nn

from solver.diagnostics import resolved_band


__all__ = ["logsnr_schedule", "alpha_sigma", "residual_base", "model_base", "SPACES", "check_space",
           "ResidualDiffusion", "as_task_batches", "prepare_sampling_inputs", "cat_features",
           "band_spectrum", "log_spectral_distance"]

#: what a trained model generates: the residual to the base field (FLEX, the default) or the field itself
SPACES = ("residual", "raw")


def logsnr_schedule(t: torch.Tensor, logsnr_min: float = -20.0, logsnr_max: float = 20.0,
                    shift: float = 1.0) -> torch.Tensor:
    """Cosine logSNR schedule (computed in float64: ``tan`` is steep near ``t = 1``)."""
    t64 = t.double()
    b = math.atan(math.exp(-0.5 * logsnr_max))
    a = math.atan(math.exp(-0.5 * logsnr_min)) - b
    return (-2.0 * torch.log(torch.tan(a * t64 + b) * shift)).to(t.dtype)


def alpha_sigma(logsnr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal and noise scales of a variance-preserving process at this logSNR, shaped (B, 1, 1, 1)."""
    l64 = logsnr.double()[:, None, None, None]
    return torch.sigmoid(l64).sqrt().to(logsnr.dtype), torch.sigmoid(-l64).sqrt().to(logsnr.dtype)


def residual_base(condition: torch.Tensor, task: str) -> torch.Tensor:
    """The field the residual is added to: the upsampled coarse field, or the last past snapshot."""
    return condition if task == "superres" else condition[:, -1:]


def check_space(space: str) -> str:
    """``space`` itself when it is one of :data:`SPACES`, else a ValueError that lists them."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(SPACES)} (residual: the model generates target - base, "
                         f"as FLEX; raw: the target field itself), got {space!r}")
    return space


def model_base(model: nn.Module, condition: torch.Tensor, task: str) -> torch.Tensor:
    """The base a model's output is added to: :func:`residual_base` in residual space, 0 in raw space
    (``model.space``, "residual" when absent). Training subtracts it from the target, sampling adds it."""
    if getattr(model, "space", "residual") == "raw":
        return torch.zeros_like(condition[:, -1:])
    return residual_base(condition, task)


def as_task_batches(model: nn.Module, batches: Mapping) -> dict:
    """Accept ``{task: batch}`` or, for a single-task model, one batch dict; check tasks and keys."""
    if "condition" in batches:
        if len(model.tasks) != 1:
            raise ValueError(f"this model has tasks {model.tasks}: pass a dict {{task: batch}}")
        batches = {model.tasks[0]: batches}
    for task, batch in batches.items():
        if task not in model.tasks:
            raise ValueError(f"this model was built for tasks {model.tasks}, not {task!r}")
        missing = {"condition", "target", "reynolds"} - set(batch)
        if missing:
            raise ValueError(f"batch for {task!r} lacks {sorted(missing)}")
    return dict(batches)


def prepare_sampling_inputs(model: nn.Module, condition: torch.Tensor, reynolds, task: str | None,
                            steps: int, ensemble: int) -> tuple[torch.Tensor, str]:
    """Checks shared by every ``sample``: returns ``reynolds`` as a (B,) float tensor and the task."""
    if task is None:
        if len(model.tasks) != 1:
            raise ValueError(f"this model has tasks {model.tasks}: say which with task=...")
        task = model.tasks[0]
    if task not in model.tasks:
        raise ValueError(f"this model was built for tasks {model.tasks}, not {task!r}")
    if not isinstance(condition, torch.Tensor) or condition.ndim != 4:
        raise ValueError("condition must be a (B, C, H, W) tensor, got "
                         f"{getattr(condition, 'shape', type(condition).__name__)}")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if int(ensemble) < 1:
        raise ValueError(f"ensemble must be >= 1, got {ensemble}")
    reynolds = torch.as_tensor(reynolds, dtype=torch.float32, device=condition.device)
    if reynolds.ndim == 0:
        reynolds = reynolds.expand(condition.shape[0])
    if reynolds.shape != (condition.shape[0],):
        raise ValueError(f"reynolds must be a number or have shape ({condition.shape[0]},), "
                         f"got {tuple(reynolds.shape)}")
    return reynolds, task


class ResidualDiffusion(nn.Module):
    """A backbone (FLEX, UNet or UViT) trained and sampled as a residual-space diffusion model.

    ``model(batches)`` returns the training loss (so DistributedDataParallel can wrap it);
    ``model.sample(condition, reynolds, ...)`` returns fields of shape (B, K, 1, H, W).
    """

    kind = "diffusion"

    def __init__(self, backbone: nn.Module, *, logsnr_shift: float = 1.0, logsnr_min: float = -20.0,
                 logsnr_max: float = 20.0, space: str = "residual"):
        super().__init__()
        self.backbone = backbone
        self.space = check_space(space)
        self.logsnr_shift, self.logsnr_min, self.logsnr_max = float(logsnr_shift), logsnr_min, logsnr_max
        self.config: dict = {}

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.backbone.tasks

    def schedule(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return alpha_sigma(logsnr_schedule(t, self.logsnr_min, self.logsnr_max, self.logsnr_shift))

    def forward(self, batches: Mapping, t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None, spectral_weight: float = 0.0, spectral_bands: int = 2,
                spectral_steps: int = 0) -> torch.Tensor:
        """L1 loss on ``v`` for one batch per task; ``t`` (B,) and ``noise`` (B, 1, H, W) are shared by tasks.
        ``spectral_weight`` > 0 adds that times the mean log-spectral distance (``spectral_bands`` bands
        per octave) of ``base + x0_hat``, the prediction at the drawn ``t``; with ``spectral_steps`` = S > 0
        instead of the S-step DDIM sample from ``noise`` (what the sampler returns, gradients through
        all S network calls): the field a hybrid run receives, not one noise level's estimate."""
        batches = as_task_batches(self, batches)
        first = next(iter(batches.values()))["target"]
        shape = first.shape
        for task, b in batches.items():
            if b["target"].shape != shape or b["target"].shape[1] != 1:
                raise ValueError(f"every task's target must have shape (B, 1, H, W) = {tuple(shape)} "
                                 f"(same t and noise for all tasks), got {tuple(b['target'].shape)} for {task!r}")
        n_tasks, device = len(batches), first.device
        if t is None:
            t = torch.rand(shape[0], generator=generator, device=_gen_device(generator, device)).to(device)
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=_gen_device(generator, device)).to(device)
        if t.shape != (shape[0],) or noise.shape != shape:
            raise ValueError(f"t must be ({shape[0]},) and noise {tuple(shape)}, "
                             f"got {tuple(t.shape)} and {tuple(noise.shape)}")
        features = cat_features([self.backbone.encode_condition(b["condition"], b["reynolds"], task)
                                 for task, b in batches.items()])
        x0 = torch.cat([b["target"] - model_base(self, b["condition"], task) for task, b in batches.items()])
        reynolds = torch.cat([b["reynolds"] for b in batches.values()])
        t_all, eps = t.repeat(n_tasks), noise.repeat(n_tasks, 1, 1, 1)
        alpha, sigma = self.schedule(t_all)
        x_t = alpha * x0 + sigma * eps
        v_target = alpha * eps - sigma * x0
        v = self.backbone(x_t, t_all, reynolds, features)
        loss = (v.float() - v_target.float()).abs().mean()
        if spectral_weight:
            base = torch.cat([model_base(self, b["condition"], task) for task, b in batches.items()])
            target = torch.cat([b["target"] for b in batches.values()])
            if spectral_steps:
                x0_hat = self._denoise(eps.to(x_t.dtype), reynolds, features, int(spectral_steps)).float()
            else:
                x0_hat = alpha * x_t.float() - sigma * v.float()
            distance = log_spectral_distance(base.float() + x0_hat, target.float(), spectral_bands)
            loss = loss + float(spectral_weight) * distance.mean()
        return loss

    @torch.no_grad()
    def sample(self, condition: torch.Tensor, reynolds, steps: int = 2, ensemble: int = 1,
               generator: torch.Generator | None = None, task: str | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """DDIM (eta = 0) samples ``base + residual``, shape (B, ensemble, 1, H, W).

        ``generator`` draws the initial noise (same generator state, same samples); ``noise`` of shape
        (B * ensemble, 1, H, W) replaces the draw. The task encoder runs once per call.
        """
        reynolds, task = prepare_sampling_inputs(self, condition, reynolds, task, steps, ensemble)
        b, _, h, w = condition.shape
        k, device = int(ensemble), condition.device
        features = self.backbone.encode_condition(condition, reynolds, task)
        if noise is None:
            noise = torch.randn((b * k, 1, h, w), generator=generator, device=_gen_device(generator, device))
        x = noise.to(device=device, dtype=condition.dtype)
        if x.shape != (b * k, 1, h, w):
            raise ValueError(f"noise must have shape {(b * k, 1, h, w)}, got {tuple(x.shape)}")
        if k > 1 and device.type == "cpu" and b * k * h * w > CPU_SAMPLING_CELLS_PER_CALL:
            # members one at a time, each the whole batch: the same draws, the same features
            x = x.reshape(b, k, 1, h, w)
            mean = torch.stack([self._denoise(x[:, m], reynolds, features, steps) for m in range(k)], dim=1)
        else:
            mean = self._denoise(x, reynolds.repeat_interleave(k), features.repeat(k), steps).reshape(b, k, 1, h, w)
        return mean + model_base(self, condition, task)[:, None]

    def _denoise(self, x, reynolds, features, steps: int) -> torch.Tensor:
        """The DDIM (eta = 0) steps from noise ``x`` at t = 1 to the mean at t = 0."""
        n, device = x.shape[0], x.device
        for i in range(int(steps), 0, -1):
            t = torch.full((n,), i / steps, device=device)
            alpha, sigma = self.schedule(t)
            alpha_s, sigma_s = self.schedule(torch.full_like(t, (i - 1) / steps))
            v = self.backbone(x, t, reynolds, features).to(x.dtype)
            mean = alpha * x - sigma * v
            eps = alpha * v + sigma * x
            x = alpha_s * mean + sigma_s * eps
        return mean


#: on CPU, an ensemble whose batch would hold more than this many cells is sampled member by member
#: (each member the whole batch, the task encoder still run once). Measured on this 2-core CPU, the
#: shipped model, 4 members against 4 single calls: batched 0.61x at 64^2, 0.98x at 128^2, 1.46x at
#: 256^2 (activations far beyond the caches); member by member 0.92x at 128^2, 0.98x at 256^2
CPU_SAMPLING_CELLS_PER_CALL = 128 * 128


def band_spectrum(x: torch.Tensor, bands_per_octave: int = 2) -> torch.Tensor:
    """Energy of (B, 1, n, n) periodic fields in bands of the radial wavenumber, (B, bands).

    The shells 1 <= |k| <= n / 3 (the mean left out; the 2/3-rule cut-off of a dealiased solver above,
    where the truth holds nothing), grouped ``b = bands_per_octave`` to the octave:
    ``floor(2^(j/b)) - 1 <= |k| < floor(2^((j+1)/b)) - 1``. ``b = 2`` (half octaves) is how the hybrid's
    spectrum checks group them (``coupling.checks.log_spectral_distance``); a large ``b`` (16) keeps the
    top octave's shells nearly apart, so a band cannot hide a deficit at its bottom behind an excess at
    its top, while the few-mode shells of the lowest octaves stay grouped.
    Only whole periodic fields have a meaningful radial spectrum: a crop's edges leak power into every
    shell, far above a dissipation range's (see ``TrainConfig.spectral_loss``)."""
    if int(bands_per_octave) < 1:
        raise ValueError(f"bands_per_octave must be a positive integer, got {bands_per_octave!r}")
    b = int(bands_per_octave)
    n = x.shape[-1]
    k_max = resolved_band(n)[1]
    power = torch.fft.fft2(x.float(), norm="forward").abs().square().sum(dim=1)
    k = torch.fft.fftfreq(n, 1.0 / n, device=x.device)
    shell = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2).round().long().clamp_max(k_max + 1)
    shells = torch.zeros(x.shape[0], k_max + 2, device=x.device).index_add_(1, shell.flatten(), power.flatten(1))
    edges = sorted({max(int(2.0 ** (j / b)) - 1, 1) for j in range(int(b * math.log2(k_max + 1)) + 2)})
    edges = [e for e in edges if e <= k_max] + [k_max + 1]
    return torch.stack([shells[:, a:z].sum(dim=1) for a, z in zip(edges[:-1], edges[1:])], dim=1)


def log_spectral_distance(pred: torch.Tensor, target: torch.Tensor, bands_per_octave: int = 2) -> torch.Tensor:
    """Per sample, sqrt(mean over the bands of :func:`band_spectrum` of (log E_pred - log E_target)^2), (B,).

    Energies are floored at 1e-12 of the target's peak band, so an empty band is far but finite."""
    ep, et = band_spectrum(pred, bands_per_octave), band_spectrum(target, bands_per_octave)
    floor = 1e-12 * et.amax(dim=1, keepdim=True).clamp_min(1e-30)
    d = torch.log(ep.clamp_min(floor)) - torch.log(et.clamp_min(floor))
    return torch.sqrt(d.square().mean(dim=1) + 1e-12)


def cat_features(parts: list):
    """Task features of several batches stacked along the batch axis (their class knows how)."""
    return type(parts[0]).cat(parts)


def _gen_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Draw on the generator's device (a CPU generator gives the same numbers whatever the model's device)."""
    return generator.device if generator is not None else device
