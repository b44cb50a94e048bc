"""Model shapes for every model and task, parameter-count presets, any resolution, periodic seams, errors."""
from __future__ import annotations

import pytest
import torch

from flexcouple.models import backbone_parameters, build_model, count_parameters

# The reference code's parameter counts (ViniciusMikuni/FLEX, counted with its own modules on the
# meta device at image size 256; the paper quotes 49.7M / 199.2M / 949.8M and 58.3M / 233.8M / 1089.8M).
REFERENCE = {
    ("flex", "small", 1): 49_718_529, ("flex", "small", 2): 58_315_969,
    ("flex", "medium", 1): 199_170_561, ("flex", "medium", 2): 233_836_225,
    ("flex", "big", 1): 949_803_905, ("flex", "big", 2): 1_089_812_225,
    ("unet", "small", 2): 56_303_425, ("uvit", "small", 2): 53_326_154,
}
TASK_SETS = {1: ("superres",), 2: ("superres", "forecast")}


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_parameter_counts_match_the_reference(key):
    name, size, n_tasks = key
    count = backbone_parameters(name, size, TASK_SETS[n_tasks], image_size=256)
    assert abs(count - REFERENCE[key]) <= 0.02 * REFERENCE[key]
    assert count == REFERENCE[key]  # in fact exact: same layers, same widths


def test_tiny_is_cpu_sized_and_matching_is_fair():
    for tasks in TASK_SETS.values():
        n = backbone_parameters("flex", "tiny", tasks, image_size=64)
        assert 1_000_000 <= n <= 3_000_000
    flex = count_parameters(build_model("flex", "tiny", TASK_SETS[2], image_size=64))
    for name in ("unet", "uvit"):
        matched = count_parameters(build_model(name, "tiny", TASK_SETS[2], image_size=64, match_params="flex"))
        assert abs(matched - flex) <= 0.03 * flex, (name, matched, flex)
    assert count_parameters(build_model("bicubic", tasks=("superres",))) == 0


def batch(task, b=2, size=32, snapshots=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = 1 if task == "superres" else snapshots
    return {"condition": torch.randn(b, c, size, size, generator=g),
            "target": torch.randn(b, 1, size, size, generator=g),
            "reynolds": torch.tensor([1000.0, 8000.0][:b])}


@pytest.mark.parametrize("name", ["flex", "unet", "uvit", "regression"])
@pytest.mark.parametrize("tasks", [("superres",), ("forecast",), ("superres", "forecast")])
def test_shapes_for_every_model_and_task(name, tasks):
    torch.manual_seed(0)
    model = build_model(name, "tiny", tasks, image_size=32, cond_snapshots=3)
    batches = {t: batch(t, snapshots=3) for t in tasks}
    loss = model(batches)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads), "every parameter takes part in the loss"
    for t in tasks:
        out = model.sample(batches[t]["condition"], batches[t]["reynolds"], ensemble=3, task=t,
                           generator=torch.Generator().manual_seed(1))
        assert out.shape == (2, 3, 1, 32, 32) and torch.isfinite(out).all()


def test_any_resolution_divisible_by_16():
    torch.manual_seed(0)
    model = build_model("flex", "tiny", ("superres",), image_size=32).eval()
    for shape in [(32, 32), (64, 48), (16, 16)]:
        out = model.sample(torch.randn(1, 1, *shape), 4000.0, generator=torch.Generator().manual_seed(0))
        assert out.shape == (1, 1, 1, *shape) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="divisible by 16"):
        model.sample(torch.randn(1, 1, 40, 32), 4000.0)


def _perturb_decoder_outputs(model):
    """Zero-initialised output convs make a fresh model predict 0; give them weights to test equivariance."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "out_conv" in name or "decoder.out" in name or "proj" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("name", ["flex", "unet"])
def test_periodic_fields_have_no_seams(name):
    """With circular padding the network commutes with periodic shifts by multiples of 16 (its total
    downsampling) once the positional embedding is switched off: no border is treated differently, so
    a periodic field has no seam. Zero padding breaks this (the check can fail)."""
    shift = 16
    results = {}
    for periodic in (True, False):
        torch.manual_seed(0)
        model = build_model(name, "tiny", ("superres",), image_size=32, periodic=periodic).eval()
        _perturb_decoder_outputs(model)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "pos_embed" in n:
                    p.zero_()
        x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
        cond = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(2))
        re, t = torch.tensor([2000.0]), torch.tensor([0.5])
        with torch.no_grad():
            f = model.backbone(x, t, re, model.backbone.encode_condition(cond, re, "superres"))
            rolled = lambda z: torch.roll(z, (shift, -shift), dims=(-2, -1))  # noqa: E731
            g = model.backbone(rolled(x), t, re, model.backbone.encode_condition(rolled(cond), re, "superres"))
        assert f.abs().max() > 1e-3  # the check is not vacuous
        results[periodic] = float((rolled(f) - g).abs().max() / f.abs().max())
    assert results[True] < 1e-4, results
    assert results[False] > 1e-3, results


def test_interpolation_baselines():
    from flexcouple.data.coarsen import upsample

    coarse = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    condition = upsample(coarse, (32, 32), method="bicubic")
    bicubic = build_model("bicubic", tasks=("superres",))
    assert torch.equal(bicubic.sample(condition, 1000.0)[:, 0], condition)
    spectral = build_model("spectral", tasks=("superres",))
    out = spectral.sample(condition, 1000.0, ensemble=2, coarse=coarse)
    assert out.shape == (2, 2, 1, 32, 32)
    assert torch.allclose(out[:, 0, :, ::4, ::4], coarse, atol=1e-5)  # trigonometric interpolation interpolates
    with pytest.raises(ValueError, match="coarse"):
        spectral.sample(condition, 1000.0)
    past = torch.randn(2, 2, 32, 32)
    assert torch.equal(build_model("persistence", tasks=("forecast",)).sample(past, 1000.0)[:, 0], past[:, -1:])
    with pytest.raises(ValueError, match="nothing to train"):
        bicubic({"condition": condition})


def test_bad_inputs_are_refused_with_clear_messages():
    model = build_model("flex", "tiny", ("superres",), image_size=32)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", "tiny")
    with pytest.raises(ValueError, match="unknown size"):
        build_model("flex", "huge")
    with pytest.raises(ValueError, match="tasks"):
        build_model("flex", "tiny", ("denoise",))
    with pytest.raises(ValueError, match="divisible by 16"):
        build_model("flex", "tiny", image_size=40)
    with pytest.raises(ValueError, match="match_params"):
        build_model("flex", "tiny", match_params="flex")
    with pytest.raises(ValueError, match="condition channel"):
        model.sample(torch.randn(1, 2, 32, 32), 1000.0)
    with pytest.raises(ValueError, match="not 'forecast'"):
        model.sample(torch.randn(1, 1, 32, 32), 1000.0, task="forecast")
    with pytest.raises(ValueError, match="reynolds"):
        model.sample(torch.randn(2, 1, 32, 32), [1000.0, 2000.0, 3000.0])
    with pytest.raises(ValueError, match="steps"):
        model.sample(torch.randn(1, 1, 32, 32), 1000.0, steps=0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model.sample(torch.randn(32, 32), 1000.0)
    with pytest.raises(ValueError, match="lacks"):
        model({"superres": {"condition": torch.randn(1, 1, 32, 32)}})
    both = build_model("flex", "tiny", ("superres", "forecast"), image_size=32)
    with pytest.raises(ValueError, match="same t and noise"):
        both({"superres": batch("superres", b=2), "forecast": batch("forecast", b=1)})
