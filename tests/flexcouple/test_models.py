"""Model shapes for every model and task, parameter-count presets, any resolution, periodic seams, errors."""
from __future__ import annotations

import os

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


@pytest.mark.parametrize("name", ["flex", "uvit"])
def test_any_resolution_divisible_by_16(name):
    """Trained at 32^2, run on other sizes: the positional embedding is resized to the token grid."""
    torch.manual_seed(0)
    model = build_model(name, "tiny", ("superres",), image_size=32).eval()
    for shape in [(32, 32), (64, 48), (16, 16)]:
        out = model.sample(torch.randn(1, 1, *shape), 4000.0, generator=torch.Generator().manual_seed(0))
        assert out.shape == (1, 1, 1, *shape) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="divisible by"):
        model.sample(torch.randn(1, 1, 36, 32), 4000.0)


def _perturb_decoder_outputs(model):
    """Zero-initialised output convs make a fresh model predict 0; give them weights to test equivariance."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "out_conv" in name or "decoder.out" in name or "proj" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def _shift_response(model, shift: int, size: int = 64):
    """(output, max |S f(x) - f(S x)| / max |f(x)|) of the backbone on fixed size^2 inputs, S a periodic
    shift by ``shift`` cells, with the decoder outputs perturbed (not zero) and the positional
    embedding switched off (it is not shift-invariant by design)."""
    _perturb_decoder_outputs(model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "pos_embed" in n:
                p.zero_()
    bb = model.backbone
    x = torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(1))
    cond = torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(2))
    re, t = torch.tensor([2000.0]), torch.tensor([0.5])
    with torch.no_grad():
        f = bb(x, t, re, bb.encode_condition(cond, re, "superres"))
        rolled = lambda z: torch.roll(z, (shift, -shift), dims=(-2, -1))  # noqa: E731
        g = bb(rolled(x), t, re, bb.encode_condition(rolled(cond), re, "superres"))
    return f, float((rolled(f) - g).abs().max() / f.abs().max())


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
        f, results[periodic] = _shift_response(model, shift)
        assert f.abs().max() > 1e-3  # the check is not vacuous
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


def test_same_outputs_as_the_reference_code_fixture():
    """Our FLEX, given the reference code's weights (renamed by convert_reference_state), reproduces the
    outputs that code gave (tests/flexcouple/make_reference_fixture.py, run once against
    ViniciusMikuni/FLEX): a backbone pass and a 2-step sample per task, and the multi-task training loss.

    Tolerance: measured where the fixture was made, the backbone passes and the loss are bit-identical
    and the samples (outputs up to 4) differ by 3.6e-7 (the noise schedule's arithmetic is ordered
    differently). atol 1e-5 leaves room for another CPU's float32 kernels; the wrong padding
    (periodic instead of the reference's zeros) moves the outputs by 0.5.
    """
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from flexcouple.models.reference import convert_reference_state
    from tests.flexcouple.make_reference_fixture import OUTPUTS, WEIGHTS, dequantize

    with safe_open(WEIGHTS, "pt") as f:
        metadata = f.metadata()
    states = dequantize(load_file(WEIGHTS), metadata)
    c = json.loads(metadata["config"])
    io = load_file(OUTPUTS)
    ours = build_model("flex", "tiny", ("superres", "forecast"), image_size=c["image_size"],
                       cond_snapshots=c["cond_snapshots"], periodic=False,
                       arch={k: c[k] for k in ("channels", "res_blocks", "depth", "heads")}).eval()
    ours.load_state_dict(convert_reference_state(states["encoder"], states["decoder"], states["superres_encoder"],
                                                 states["forecast_encoder"]), strict=True)
    re = io["reynolds"]
    with torch.no_grad():
        for task, cond in (("superres", io["low"]), ("forecast", io["past"])):
            features = ours.backbone.encode_condition(cond, re, task)
            got = ours.backbone(io["x_t"], io["t"], re, features)
            assert torch.allclose(got, io[f"backbone_{task}"], rtol=0, atol=1e-5), task
            assert io[f"backbone_{task}"].std() > 0.1  # not a trivial (zero-initialised) output
            got = ours.sample(cond, re, steps=2, noise=io["noise"], task=task)[:, 0]
            assert torch.allclose(got, io[f"sample_{task}"], rtol=0, atol=1e-5), task
        got = ours({"superres": {"condition": io["low"], "target": io["past"][:, -1:], "reynolds": re},
                    "forecast": {"condition": io["past"], "target": io["future"], "reynolds": re}},
                   t=io["loss_t"], noise=io["loss_noise"])
    assert got.item() == pytest.approx(io["loss"].item(), rel=1e-5, abs=0)


REFERENCE_CODE = os.environ.get("FLEXCOUPLE_REFERENCE")  # a checkout of github.com/ViniciusMikuni/FLEX


@pytest.mark.skipif(not REFERENCE_CODE, reason="set FLEXCOUPLE_REFERENCE to a checkout of ViniciusMikuni/FLEX "
                                               "(never committed here) to compare at the 'small' size; "
                                               "the tiny fixture test above runs always")
def test_same_outputs_as_the_reference_code_with_converted_weights():
    """Our FLEX with the reference's weights (renamed) reproduces its samples and its training loss."""
    pytest.importorskip("einops", reason="the reference code needs einops")
    from flexcouple.models.reference import convert_reference_state
    from tests.flexcouple.make_reference_fixture import import_reference

    ref_diffusion, ref_flex = import_reference(REFERENCE_CODE)
    torch.manual_seed(0)
    modules = ref_flex.FLEX(image_size=32, model_size="small", cond_snapshots=2)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move the zero-initialised convs off zero so the outputs are not trivial
        for module in modules:
            for p in module.parameters():
                p += 0.02 * torch.randn(p.shape, generator=g)
    enc, sr_enc, fc_enc, dec = modules
    ref = ref_diffusion.DiffusionModel(enc, dec, sr_enc, fc_enc, n_T=2, prediction_type="v", logsnr_shift=1.0).eval()
    ours = build_model("flex", "small", ("superres", "forecast"), image_size=32, periodic=False).eval()
    ours.load_state_dict(convert_reference_state(enc.state_dict(), dec.state_dict(), sr_enc.state_dict(),
                                                 fc_enc.state_dict()), strict=True)
    low, past, future = torch.randn(2, 1, 32, 32), torch.randn(2, 2, 32, 32), torch.randn(2, 1, 32, 32)
    re, noise = torch.tensor([1000.0, 8000.0]), torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        for task, cond in (("superres", low), ("forecast", past)):
            expected = ref.sample(2, (1, 32, 32), cond, re[:, None] / 40000, "cpu", superres=task == "superres",
                                  snapshots_i=noise.clone())
            got = ours.sample(cond, re, steps=2, noise=noise, task=task)[:, 0]
            assert torch.allclose(got, expected, atol=1e-5), task
        torch.manual_seed(5)
        expected = ref(low, past, future, re[:, None] / 40000)
        torch.manual_seed(5)  # the reference draws t, then eps, from the global RNG
        t, eps = torch.rand(2), torch.randn(2, 1, 32, 32)
        got = ours({"superres": {"condition": low, "target": past[:, -1:], "reynolds": re},
                    "forecast": {"condition": past, "target": future, "reynolds": re}}, t=t, noise=eps)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_wrap_pad_is_circular_padding_with_an_exact_gradient():
    import torch.nn.functional as F

    from flexcouple.models.layers import wrap_pad

    for shape in [(1, 1, 2, 2), (2, 3, 4, 7)]:
        x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        assert torch.equal(wrap_pad(x), F.pad(x, (1, 1, 1, 1), mode="circular"))
        assert torch.autograd.gradcheck(wrap_pad, (x,))


def test_periodic_conv_without_padding_equals_the_padded_one_with_its_gradients():
    """periodic_conv3x3 (zero-border convolution plus the four halo terms) is conv(wrap_pad(x)),
    values and gradients, on fields from 1 x 1 up, one input channel (both layouts contiguous) included."""
    import torch.nn.functional as F

    from flexcouple.models.layers import periodic_conv3x3, wrap_pad

    g = torch.Generator().manual_seed(0)
    for (c, h, w) in [(1, 1, 1), (3, 2, 3), (1, 5, 4), (4, 8, 8), (2, 3, 1)]:
        x = torch.randn(2, c, h, w, dtype=torch.float64, generator=g, requires_grad=True)
        weight = torch.randn(5, c, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
        bias = torch.randn(5, dtype=torch.float64, generator=g, requires_grad=True)
        ours, padded = periodic_conv3x3(x, weight, bias), F.conv2d(wrap_pad(x), weight, bias)
        assert (ours - padded).abs().max() < 1e-12, (c, h, w)
        up = torch.randn(ours.shape, dtype=torch.float64, generator=g)
        for a, b in zip(torch.autograd.grad(ours, (x, weight, bias), up),
                        torch.autograd.grad(padded, (x, weight, bias), up)):
            assert (a - b).abs().max() < 1e-12, (c, h, w)


def test_silu_wrap_pad_equals_activation_dropout_and_padding_apart():
    """_SiLUWrapPad(x, keep) is wrap_pad(silu(x) * keep), values and (gradcheck) gradients, with and
    without a mask, and leaves the incoming gradient as it was."""
    import torch.nn.functional as F

    from flexcouple.models.layers import _SiLUWrapPad, wrap_pad

    g = torch.Generator().manual_seed(1)
    for shape in [(1, 1, 1, 1), (2, 3, 4, 7), (1, 2, 5, 3)]:
        x = torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=True)
        mask = (torch.rand(*shape, dtype=torch.float64, generator=g) > 0.3).double() / 0.7
        for keep in (None, mask):
            expected = wrap_pad(F.silu(x) if keep is None else F.silu(x) * keep)
            got = _SiLUWrapPad.apply(x, keep)
            assert (got - expected).abs().max() < 1e-15, shape
            assert torch.autograd.gradcheck(lambda t: _SiLUWrapPad.apply(t, keep), (x,))
            up = torch.randn(got.shape, dtype=torch.float64, generator=g)
            before = up.clone()
            (a,), (b,) = torch.autograd.grad(got, (x,), up), torch.autograd.grad(expected, (x,), up)
            assert (a - b).abs().max() < 1e-14 and torch.equal(up, before)


def test_periodic_conv_function_equals_autograd_through_padding_and_conv():
    """_PeriodicConv3x3 (the training path: the input's gradient as a periodic convolution, no padded
    gradient) equals conv(wrap_pad(a)) differentiated by autograd, a = x or silu(x) * keep: values and
    gradients of x, weight and bias; gradcheck on all three; without a bias too."""
    import torch.nn.functional as F

    from flexcouple.models.layers import _PeriodicConv3x3, wrap_pad

    g = torch.Generator().manual_seed(3)
    for (c, h, w) in [(1, 1, 1), (3, 2, 5), (2, 6, 4)]:
        x = torch.randn(2, c, h, w, dtype=torch.float64, generator=g, requires_grad=True)
        weight = torch.randn(4, c, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
        mask = (torch.rand(2, c, h, w, dtype=torch.float64, generator=g) > 0.3).double() / 0.7
        for bias in (torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True), None):
            for silu, keep in ((False, None), (True, None), (True, mask)):
                a = (F.silu(x) * (1 if keep is None else keep)) if silu else x
                expected = F.conv2d(wrap_pad(a), weight, bias)
                got = _PeriodicConv3x3.apply(x, weight, bias, keep, silu)
                assert (got - expected).abs().max() < 1e-12
                inputs = (x, weight) if bias is None else (x, weight, bias)
                up = torch.randn(got.shape, dtype=torch.float64, generator=g)
                for ga, gb in zip(torch.autograd.grad(got, inputs, up), torch.autograd.grad(expected, inputs, up)):
                    assert (ga - gb).abs().max() < 1e-12, (c, h, w, silu)
                assert torch.autograd.gradcheck(
                    lambda *t: _PeriodicConv3x3.apply(t[0], t[1], t[2] if len(t) > 2 else None, keep, silu), inputs)


@pytest.mark.parametrize("periodic", [True, False])
def test_resblock_fused_activation_path_equals_the_plain_one(periodic, monkeypatch):
    """In training (dropout drawn), a ResBlock through silu_dropout_conv gives the plain
    conv(dropout(silu(.))) path's output and gradients from the same seed (the same dropout draws)."""
    import torch.nn.functional as F

    from flexcouple.models import layers

    block = layers.ResBlock(8, 16, 12, dropout=0.3, periodic=periodic).double()
    for p in block.parameters():  # out_conv starts at zero: give every weight a value
        torch.nn.init.normal_(p, std=0.2)
    block.train()
    x = torch.randn(2, 8, 12, 10, dtype=torch.float64, requires_grad=True)
    emb = torch.randn(2, 12, dtype=torch.float64)

    def run():
        torch.manual_seed(7)
        out = block(x, emb)
        return [out] + list(torch.autograd.grad(out.square().sum(), [x] + list(block.parameters())))

    fused = run()
    monkeypatch.setattr(layers, "silu_dropout_conv",
                        lambda conv, h, dropout=None: conv(dropout(F.silu(h)) if dropout is not None else F.silu(h)))
    plain = run()
    for a, b in zip(fused, plain):
        assert (a - b).abs().max() <= 1e-10 * (1 + b.abs().max())
    assert not torch.equal(fused[0], block(x, emb))  # dropout is drawn: a new seed changes the output
    monkeypatch.undo()
    block.eval()  # no dropout: the fused path without a mask equals the sampling path (no gradients)
    with torch.no_grad():
        sampled = block(x, emb)
    assert (block(x, emb) - sampled).abs().max() <= 1e-12 * (1 + sampled.abs().max())


@pytest.mark.parametrize("size", [16, 128])  # below and above PeriodicConv2d.HALO_MIN_CELLS
def test_periodic_conv_sampling_path_matches_the_training_path(size):
    """Without gradients (sampling) PeriodicConv2d runs channels-last, padded or with halo terms by
    size; it gives the training path's result, and its cached channels-last weight follows the weight."""
    from flexcouple.models.layers import PeriodicConv2d

    torch.manual_seed(0)
    for c_in in (1, 8):
        conv = PeriodicConv2d(c_in, 8, 3, padding=0)
        x = torch.randn(2, c_in, size, size)
        trained = conv(x)  # gradients enabled: the training path (_PeriodicConv3x3)
        with torch.no_grad():
            fast = conv(x)
        assert fast.is_contiguous(memory_format=torch.channels_last)
        assert (fast - trained).abs().max() < 1e-5 * trained.abs().max()
        with torch.no_grad():
            conv.weight.mul_(-2.0)  # an in-place change (as an optimizer step): the cache must follow
            again = conv(x)
        assert (again - conv(x).detach()).abs().max() < 1e-5 * trained.abs().max()
        assert (again + 2.0 * (trained - conv.bias.view(1, -1, 1, 1))
                - conv.bias.view(1, -1, 1, 1)).abs().max() < 1e-4 * trained.abs().max()
    with torch.inference_mode():  # also under inference_mode (the coupling's surrogate calls)
        assert torch.isfinite(conv(x)).all()


def test_periodic_conv_built_under_inference_mode_samples():
    """Weights made under inference_mode have no version counter: the sampling path copies them each call."""
    from flexcouple.models.layers import PeriodicConv2d

    with torch.inference_mode():
        conv = PeriodicConv2d(2, 4, 3, padding=0)
        x = torch.randn(1, 2, 8, 8)
        a = conv(x)
        conv.weight.zero_()
        assert torch.equal(conv(x), conv.bias.view(1, -1, 1, 1).expand_as(a))


def test_periodic_conv_trains_under_cpu_autocast():
    """Under autocast (bf16 on CPU here; CUDA's is the same switch) the training path steps aside for
    the library's backward: a ResBlock's forward and backward run and give finite gradients."""
    from flexcouple.models import layers

    block = layers.ResBlock(4, 8, 6, dropout=0.1, periodic=True)
    block.train()
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x, torch.randn(2, 6))
    out.float().square().sum().backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in block.parameters())


def test_hybrid_budget_sizes_are_tiny_with_fewer_channels():
    from flexcouple.models.presets import PRESETS
    tasks = ("superres", "forecast")
    counts = {s: backbone_parameters("flex", s, tasks, image_size=64) for s in ("c16", "c24", "tiny")}
    assert counts["c16"] < counts["c24"] < counts["tiny"]
    for size in ("c16", "c24"):
        assert {k: v for k, v in PRESETS["flex"][size].items() if k != "channels"} == \
            {k: v for k, v in PRESETS["flex"]["tiny"].items() if k != "channels"}
    with pytest.raises(ValueError, match="unknown size 'c16' for unet"):
        build_model("unet", "c16", ("superres",), image_size=64)


def test_a_space_to_depth_stem_folds_the_field_and_keeps_every_fine_cell():
    """c16s2 is c16 on the field folded 2x2 (pixel_unshuffle): output on the fine grid, the first level
    on the half grid, periodic shifts by its total downsampling (32) commute, and gradients reach every
    fine cell's output; bad stems are refused."""
    from flexcouple.models.presets import PRESETS
    assert {k: v for k, v in PRESETS["flex"]["c16s2"].items() if k != "stem"} == PRESETS["flex"]["c16"]
    torch.manual_seed(0)
    model = build_model("flex", "c16s2", ("superres",), image_size=64).eval()
    bb = model.backbone
    assert bb.stem == 2 and bb.divisor == 32 and bb.grid == (2, 2)
    f, shift_error = _shift_response(model, 32)
    assert f.shape == (1, 1, 64, 64) and f.abs().max() > 1e-3
    assert shift_error < 1e-4
    # the four cells of a 2x2 block are four output channels, not one value repeated
    blocks = torch.nn.functional.pixel_unshuffle(f, 2)[0]
    assert float((blocks[0] - blocks[3]).abs().max()) > 1e-3
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    cond = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    re, t = torch.tensor([2000.0]), torch.tensor([0.5])
    bb(x, t, re, bb.encode_condition(cond, re, "superres"))[0, 0, 5, 6].backward()
    assert x.grad[0, 0, 5, 6] != 0
    with pytest.raises(ValueError, match="must be divisible by 32"):
        build_model("flex", "c16s2", ("superres",), image_size=48)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="stem"):
            build_model("flex", "c16", ("superres",), image_size=64, arch={"stem": bad})


@pytest.mark.parametrize("size, base", [("c16s4", "c16"), ("c24s4", "c24")])
def test_the_stem_4_presets_fold_4x4_and_shift_by_their_downsampling(size, base):
    """c16s4 / c24s4: c16 / c24 on the field folded 4x4, so a 256^2 field's first level is 64^2 and the
    total downsampling 64: shifts by 64 commute, 16 fine cells per folded cell stay distinct."""
    from flexcouple.models.presets import PRESETS
    assert {k: v for k, v in PRESETS["flex"][size].items() if k != "stem"} == PRESETS["flex"][base]
    torch.manual_seed(0)
    model = build_model("flex", size, ("superres",), image_size=128).eval()
    bb = model.backbone
    assert bb.stem == 4 and bb.divisor == 64 and bb.grid == (2, 2)
    f, shift_error = _shift_response(model, 64, size=128)
    assert f.shape == (1, 1, 128, 128) and f.abs().max() > 1e-3 and shift_error < 1e-4
    cells = torch.nn.functional.pixel_unshuffle(f, 4)[0]
    assert float((cells[0] - cells[15]).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="must be divisible by 64"):
        build_model("flex", size, ("superres",), image_size=96)
