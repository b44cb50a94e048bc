"""FlexSurrogate on a (small, untrained) checkpoint of ours: loading, fitting the run, members
independent of batching, refusals; the stand-ins."""
import numpy as np
import pytest

from coupling import (FlexSurrogate, HybridConfig, HybridSimulation, InterpolationSurrogate, PersistenceSurrogate,
                      Prediction, SurrogateMisfit)
from solver import random_field


def test_loads_with_its_training_pipeline(checkpoint):
    sur = FlexSurrogate.from_checkpoint(checkpoint, steps=2)
    assert (sur.factor, sur.lead_time, sur.history_length, sur.upsample) == (2, 0.25, 2, "spectral")
    coarse = random_field(16, seed=1)
    pred = sur.superres(coarse, 1000.0)
    assert isinstance(pred, Prediction) and pred.mean.shape == (32, 32) and pred.std is None
    assert np.all(np.isfinite(pred.mean))
    hist = np.stack([random_field(32, seed=s) for s in (1, 2)])
    fc = sur.forecast(hist, 1000.0, ensemble=3)
    assert fc.mean.shape == (32, 32) and fc.std.shape == (32, 32) and fc.std.mean() > 0


def test_a_member_is_the_same_whoever_draws_it(checkpoint):
    sur = FlexSurrogate.from_checkpoint(checkpoint, member_batch=3)  # one batched network call
    coarse = random_field(16, seed=2)
    batched = sur.superres(coarse, 800.0, ensemble=3, members=[0, 1, 2], call=7)
    for m in range(3):
        alone = sur.superres(coarse, 800.0, ensemble=1, members=[m], call=7)
        np.testing.assert_allclose(alone.members[0], batched.members[m], rtol=0, atol=1e-4)
    other_call = sur.superres(coarse, 800.0, members=[0], call=8)
    assert not np.allclose(other_call.members[0], batched.members[0])


def test_misfits_are_refused_before_any_work(checkpoint, tmp_path):
    sur = FlexSurrogate.from_checkpoint(checkpoint)
    with pytest.raises(SurrogateMisfit, match="x2"):
        sur.check_fits("superres", 32, factor=4)
    with pytest.raises(SurrogateMisfit, match="divisible by 16"):
        sur.check_fits("superres", 40, factor=2)
    cfg = HybridConfig(mode="superres", n=64, factor=4, backend="numpy", checkpoint=str(checkpoint))
    with pytest.raises(ValueError, match="factor"):
        HybridSimulation(cfg)
    with pytest.raises(FileNotFoundError, match="no FLEX checkpoint"):
        FlexSurrogate.from_checkpoint(tmp_path / "nothing")
    with pytest.raises(RuntimeError, match="no CUDA GPU|does not exist"):
        FlexSurrogate.from_checkpoint(checkpoint, device="cuda:7")


def test_a_forecast_only_checkpoint_cannot_super_resolve(tmp_path):
    from flexcouple.checkpoint import save_checkpoint
    from flexcouple.models import build_model
    model = build_model("flex", "tiny", tasks=("forecast",), image_size=32)
    save_checkpoint(tmp_path / "fc", model, {"normalization": {"mean": 0.0, "std": 1.0},
                                             "data": {"forecast_options": {"lead_time": 0.5}}})
    sur = FlexSurrogate.from_checkpoint(tmp_path / "fc")
    with pytest.raises(SurrogateMisfit, match="not super-resolution"):
        sur.check_fits("superres", 32, factor=2)
    sur.check_fits("leapfrog", 32)


def test_flex_in_the_loop_end_to_end(checkpoint, tmp_path):
    """An untrained FLEX inside a real run: every call decided and logged, the run completes."""
    cfg = HybridConfig(mode="leapfrog", n=32, reynolds=100.0, t_end=2.0, output_interval=0.5, backend="numpy",
                       spinup=1.0, warmup=2, ensemble=2, checkpoint=str(checkpoint), harvest_enabled=True)
    res = HybridSimulation(cfg, out=tmp_path).run()
    called = [d for d in res.decisions if d["called"]]
    assert called and all("checks" in d and "wall" in d for d in called)
    assert res.fields.shape == (5, 32, 32) and np.all(np.isfinite(res.fields))
    assert res.summary["accepted"] + sum(res.summary["rejected"].values()) == res.summary["calls"]


def test_stand_ins():
    coarse = random_field(16, seed=3)
    for method in ("spectral", "bicubic"):
        p = InterpolationSurrogate(2, method).superres(coarse, 100.0, ensemble=2)
        assert p.mean.shape == (32, 32) and np.allclose(p.mean[::2, ::2], coarse)
        assert np.all(p.std == 0)
    hist = np.stack([random_field(16, seed=s) for s in (1, 2)])
    assert np.array_equal(PersistenceSurrogate(0.5).forecast(hist, 1.0).mean, hist[-1])
    with pytest.raises(ValueError, match="complex"):
        InterpolationSurrogate(2).superres(coarse.astype(complex), 100.0)
    with pytest.raises(ValueError, match="square"):
        InterpolationSurrogate(2).superres(coarse[:, :8], 100.0)


def test_bfloat16_precision_stays_close_to_float32_and_a_bad_precision_is_refused(checkpoint):
    import torch
    full = FlexSurrogate.from_checkpoint(checkpoint)
    half = FlexSurrogate.from_checkpoint(checkpoint, precision="bfloat16")
    with torch.no_grad():  # off the untrained, zero output layer: the network's residual is not trivially 0
        g = torch.Generator().manual_seed(3)
        for a, b in zip(full.model.parameters(), half.model.parameters()):
            noise = 0.02 * torch.randn(a.shape, generator=g)
            a += noise
            b += noise
    coarse = random_field(16, seed=4)
    x, y = full.superres(coarse, 1000.0, call=1).mean, half.superres(coarse, 1000.0, call=1).mean
    assert y.dtype == np.float64 and np.all(np.isfinite(y))
    residual = x - np.asarray(InterpolationSurrogate(2).superres(coarse, 1000.0).mean)
    assert np.abs(residual).max() > 1e-3  # the network adds something, so the comparison means something
    assert 0 < np.sqrt(np.mean((x - y) ** 2)) < 0.05 * np.sqrt(np.mean(residual ** 2))
    with pytest.raises(ValueError, match="precision must be 'float32' or 'bfloat16'"):
        FlexSurrogate.from_checkpoint(checkpoint, precision="float16")
    with pytest.raises(ValueError, match="surrogate precision must be one of float32, bfloat16"):
        HybridConfig(precision="half").validate()
    assert HybridConfig(precision="bfloat16").config_hash() != HybridConfig().config_hash()
