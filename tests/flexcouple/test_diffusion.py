"""Residual diffusion: schedule, v-target, sampler maths (oracle), determinism, ensembles, overfitting."""
from __future__ import annotations

import math

import pytest
import torch

from flexcouple.diffusion import ResidualDiffusion, alpha_sigma, logsnr_schedule
from flexcouple.models import build_model
from flexcouple.models.base import Backbone, TaskFeatures


def test_cosine_logsnr_schedule():
    t = torch.linspace(0, 1, 101)
    logsnr = logsnr_schedule(t)
    assert logsnr[0].item() == pytest.approx(20.0, abs=1e-3) and logsnr[-1].item() == pytest.approx(-20.0, abs=1e-3)
    assert (logsnr[1:] < logsnr[:-1]).all()  # strictly decreasing: t = 1 is pure noise
    shifted = logsnr_schedule(t, shift=2.0)
    assert torch.allclose(shifted, logsnr - 2 * math.log(2.0), atol=1e-4)
    alpha, sigma = alpha_sigma(logsnr)
    assert torch.allclose(alpha ** 2 + sigma ** 2, torch.ones_like(alpha), atol=1e-6)
    assert torch.allclose(torch.log(alpha ** 2 / sigma ** 2).flatten(), logsnr, atol=1e-3)


class Oracle(Backbone):
    """Knows the true residual ``x0`` and returns the exact v = (alpha x_t - x0) / sigma."""

    def __init__(self, x0: torch.Tensor, tasks=("superres", "forecast")):
        super().__init__(tasks, 2)
        self.divisor = 1
        self.x0 = x0
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def encode_condition(self, condition, reynolds, task):
        return TaskFeatures(condition[:, :1], [])

    def forward(self, x_t, t, reynolds, features):
        alpha, sigma = alpha_sigma(logsnr_schedule(t))
        x0 = self.x0.repeat_interleave(x_t.shape[0] // self.x0.shape[0], dim=0)  # ensembles are sample-major
        return (alpha * x_t - x0) / sigma + 0 * self.dummy


@pytest.mark.parametrize("task", ["superres", "forecast"])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_sampler_returns_condition_plus_residual(task, steps):
    """With the exact v, DDIM (eta = 0) lands on the residual for any step count; output = base + residual."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 1, 8, 8, generator=g)
    condition = torch.randn(3, 1 if task == "superres" else 2, 8, 8, generator=g)
    model = ResidualDiffusion(Oracle(x0))
    out = model.sample(condition, 1000.0, steps=steps, ensemble=2, task=task, generator=g)
    base = condition if task == "superres" else condition[:, -1:]
    assert out.shape == (3, 2, 1, 8, 8)
    for k in range(2):
        assert torch.allclose(out[:, k], base + x0, atol=1e-4)


def test_v_target_is_zero_loss_for_the_oracle_in_both_tasks():
    g = torch.Generator().manual_seed(1)
    target = torch.randn(2, 1, 8, 8, generator=g)
    cond_sr, cond_fc = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 2, 8, 8, generator=g)
    # the oracle knows one residual per half: same target for both tasks means x0 differs by the bases
    x0 = torch.cat([target - cond_sr, target - cond_fc[:, -1:]])

    class TwoHalves(Oracle):
        def forward(self, x_t, t, reynolds, features):
            alpha, sigma = alpha_sigma(logsnr_schedule(t))
            return (alpha * x_t - self.x0) / sigma

    model = ResidualDiffusion(TwoHalves(x0))
    re = torch.tensor([1000.0, 2000.0])
    loss = model({"superres": {"condition": cond_sr, "target": target, "reynolds": re},
                  "forecast": {"condition": cond_fc, "target": target, "reynolds": re}},
                 t=torch.tensor([0.3, 0.7]), noise=torch.randn(2, 1, 8, 8, generator=g))
    assert loss.item() < 1e-4


def test_sampler_determinism_and_batched_ensembles():
    torch.manual_seed(0)
    model = build_model("flex", "tiny", ("superres",), image_size=32).eval()
    with torch.no_grad():  # a fresh model predicts exactly 0 (zero-init output): give it a real output
        model.backbone.decoder.out[-1].weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(5))
    cond, re = torch.randn(2, 1, 32, 32), torch.tensor([1000.0, 4000.0])
    a = model.sample(cond, re, ensemble=3, generator=torch.Generator().manual_seed(7))
    b = model.sample(cond, re, ensemble=3, generator=torch.Generator().manual_seed(7))
    c = model.sample(cond, re, ensemble=3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert (a[:, 0] - a[:, 1]).abs().max() > 1e-4  # members differ: the spread is the uncertainty
    # a batched ensemble equals the members run one at a time on the same noise
    noise = torch.randn(6, 1, 32, 32, generator=torch.Generator().manual_seed(9))
    batched = model.sample(cond, re, ensemble=3, noise=noise)
    for i in range(2):
        for k in range(3):
            single = model.sample(cond[i:i + 1], re[i:i + 1], noise=noise[3 * i + k:3 * i + k + 1])
            assert torch.allclose(batched[i, k], single[0, 0], atol=1e-5)



def test_cpu_ensembles_past_the_batch_size_run_member_by_member_with_the_same_result(monkeypatch):
    """Past CPU_SAMPLING_CELLS_PER_CALL an ensemble is sampled member by member (the task encoder once);
    the members are the batched ones, in the same order, from the same draws."""
    import flexcouple.diffusion as diffusion

    torch.manual_seed(0)
    model = build_model("flex", "tiny", ("superres",), image_size=32).eval()
    with torch.no_grad():
        model.backbone.decoder.out[-1].weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(5))
    cond, re = torch.randn(2, 1, 32, 32), torch.tensor([1000.0, 4000.0])
    calls = []
    encode = model.backbone.encode_condition
    monkeypatch.setattr(model.backbone, "encode_condition", lambda *a: calls.append(1) or encode(*a))
    batched = model.sample(cond, re, ensemble=3, generator=torch.Generator().manual_seed(7))
    monkeypatch.setattr(diffusion, "CPU_SAMPLING_CELLS_PER_CALL", 32 * 32)  # 2 x 3 x 32^2 cells: past it
    members = model.sample(cond, re, ensemble=3, generator=torch.Generator().manual_seed(7))
    assert members.shape == batched.shape == (2, 3, 1, 32, 32)
    assert torch.allclose(members, batched, atol=1e-5)
    assert len(calls) == 2  # the encoder ran once per call either way


def test_repeated_task_features_keep_the_channels_last_layout():
    x = torch.randn(2, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    rep = TaskFeatures(x, [x, torch.randn(2, 8, 4, 4)]).repeat(3)
    assert rep.head.is_contiguous(memory_format=torch.channels_last) and rep.head.shape[0] == 6
    assert torch.equal(rep.head[3:6], x[1:2].expand(3, -1, -1, -1))
    assert rep.skips[1].is_contiguous()  # an NCHW one stays NCHW

def test_regression_baseline_is_deterministic_base_plus_residual():
    torch.manual_seed(0)
    model = build_model("regression", "tiny", ("forecast",), image_size=32).eval()
    past = torch.randn(2, 2, 32, 32)
    out = model.sample(past, 2000.0, ensemble=2)
    assert out.shape == (2, 2, 1, 32, 32) and torch.equal(out[:, 0], out[:, 1])
    assert torch.allclose(out[:, 0], past[:, -1:])  # zero-initialised output: residual 0 at start


@pytest.mark.slow
def test_tiny_model_overfits_two_samples():
    """Two fields, each at 4 fixed (t, noise) draws: the L1 v-loss falls below a third in 40 steps."""
    torch.manual_seed(0)
    model = build_model("flex", "tiny", ("superres",), image_size=16, dropout=0.0)
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0, 2 * math.pi, 17)[:-1]
    target = torch.stack([torch.sin(2 * x[:, None] + x[None, :]), torch.cos(x[:, None] - 3 * x[None, :])])[:, None]
    cond = torch.nn.functional.avg_pool2d(target, 4).repeat_interleave(4, -2).repeat_interleave(4, -1)
    data = {"condition": cond, "target": target, "reynolds": torch.tensor([1000.0, 8000.0])}
    data = {k: v.repeat_interleave(4, 0) for k, v in data.items()}
    t, noise = torch.rand(8, generator=g), torch.randn(8, 1, 16, 16, generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(data, t=t, noise=noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 3, losses


def test_band_spectrum_holds_the_shell_energy_and_the_distance_is_exact_for_a_scaled_field():
    from flexcouple.diffusion import band_spectrum, log_spectral_distance
    n = 48
    x = torch.randn(3, 1, n, n, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    bands = band_spectrum(x)
    # independent sum: the power of every mode with 1 <= round(|k|) <= n // 3, per sample
    k = torch.fft.fftfreq(n, 1.0 / n)
    shell = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2).round()
    keep = (shell >= 1) & (shell <= n // 3)
    power = torch.fft.fft2(x.float(), norm="forward").abs().square()[:, 0]
    assert torch.allclose(bands.sum(dim=1), (power * keep).sum(dim=(-2, -1)), rtol=1e-5)
    assert bands.shape[1] == 6 and (bands > 0).all()  # edges 1, 3, 4, 7, 10, 15 up to n/3 = 16
    # a field twice as strong holds 4x the energy in every band: the distance is log 4 exactly
    assert torch.allclose(log_spectral_distance(2 * x, x), torch.full((3,), math.log(4.0)), rtol=1e-4)
    assert log_spectral_distance(x, x).max() < 1e-5
    # an empty field is far but finite (the floor), and the energy above n/3 is ignored
    assert torch.isfinite(log_spectral_distance(torch.zeros_like(x), x)).all()
    hi = torch.cos(2 * math.pi * (n // 2 - 1) * torch.arange(n) / n, ).to(x)[None, None, None, :].expand_as(x)
    assert log_spectral_distance(x + hi, x).max() < 1e-5


def test_finer_bands_see_a_deficit_and_an_excess_that_a_half_octave_band_averages_away():
    from flexcouple.diffusion import band_spectrum, log_spectral_distance
    n = 96
    x = torch.randn(2, 1, n, n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    k = torch.fft.fftfreq(n, 1.0 / n)
    shell = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2).round()
    # inside the half-octave band 21 <= |k| < 31: power halved on 21..25 and the same power added back
    # on 26..30, so that band's energy is unchanged
    fx = torch.fft.fft2(x)
    low, high = (shell >= 21) & (shell <= 25), (shell >= 26) & (shell <= 30)
    p_low = (fx.abs().square() * low).sum(dim=(-2, -1), keepdim=True)
    p_high = (fx.abs().square() * high).sum(dim=(-2, -1), keepdim=True)
    gain = torch.sqrt(1 + 0.5 * p_low / p_high)
    y = torch.fft.ifft2(fx * torch.where(low, math.sqrt(0.5), 1.0) * torch.where(high, gain, 1.0)).real
    assert torch.allclose(band_spectrum(y).sum(1), band_spectrum(x).sum(1), rtol=1e-4)
    assert log_spectral_distance(y, x).max() < 0.05          # half octaves: almost blind to it
    assert log_spectral_distance(y, x, 16).min() > 0.2       # 16 to the octave: seen
    fine = band_spectrum(x, 16)
    assert torch.allclose(fine.sum(1), band_spectrum(x).sum(1), rtol=1e-5) and fine.shape[1] > 20
    with pytest.raises(ValueError, match="bands_per_octave must be a positive integer"):
        band_spectrum(x, 0)


def test_the_spectral_term_on_the_sampler_output_is_the_distance_of_what_sample_returns():
    torch.manual_seed(0)
    model = build_model("flex", size="tiny", tasks=("superres",), image_size=32)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # off the zero-initialised output layer
        for p in model.parameters():
            p += 0.02 * torch.randn(p.shape, generator=g)
    model.eval()  # no dropout: the loss's sampler and sample() run the same network
    batch = {"condition": torch.randn(2, 1, 32, 32, generator=g),
             "target": torch.randn(2, 1, 32, 32, generator=g),
             "reynolds": torch.tensor([1000.0, 2000.0])}
    noise = torch.randn(2, 1, 32, 32, generator=g)
    kw = dict(t=torch.tensor([0.5, 0.9]), noise=noise)
    plain = model(batch, **kw)
    unrolled = model(batch, spectral_weight=1.0, spectral_bands=16, spectral_steps=2, **kw)
    from flexcouple.diffusion import log_spectral_distance
    with torch.no_grad():
        sample = model.sample(batch["condition"], batch["reynolds"], steps=2, noise=noise)[:, 0]
    expected = log_spectral_distance(sample, batch["target"], 16).mean()
    assert math.isclose(unrolled.item() - plain.item(), expected.item(), rel_tol=1e-3)
    model.zero_grad()
    (unrolled - plain).backward()
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0


def test_the_spectral_term_adds_to_the_loss_and_its_gradient_reaches_the_network():
    torch.manual_seed(0)
    model = build_model("flex", size="tiny", tasks=("superres",), image_size=32)
    g = torch.Generator().manual_seed(2)
    batch = {"condition": torch.randn(2, 1, 32, 32, generator=g), "target": torch.randn(2, 1, 32, 32, generator=g),
             "reynolds": torch.tensor([1000.0, 2000.0])}
    kw = dict(t=torch.tensor([0.5, 0.9]), noise=torch.randn(2, 1, 32, 32, generator=g))
    plain, spectral = model(batch, **kw), model(batch, spectral_weight=0.5, **kw)
    assert spectral.item() > plain.item()
    (spectral - plain).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and sum(float(gr.abs().sum()) for gr in grads) > 0
