"""Coarsening and upsampling: spectral exactness, projections, the paper's stride/bicubic path."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flexcouple.data.coarsen import coarsen, spectral_resample, upsample


def band_limited(n, kmax, seed=0, lead=()):
    """A random real periodic field with modes |kx|, |ky| <= kmax only, sampled on an n x n grid."""
    rng = np.random.default_rng(seed)
    x = 2 * np.pi * np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    field = np.zeros(lead + (n, n))
    for kx in range(-kmax, kmax + 1):
        for ky in range(0, kmax + 1):
            a, b = rng.normal(size=lead + (1, 1)), rng.normal(size=lead + (1, 1))
            field = field + a * np.cos(kx * X + ky * Y) + b * np.sin(kx * X + ky * Y)
    return field


def analytic(n, kmax, seed=0):
    """Same as band_limited but returns a callable to evaluate at any resolution."""
    rng = np.random.default_rng(seed)
    coeffs = [(kx, ky, rng.normal(), rng.normal()) for kx in range(-kmax, kmax + 1) for ky in range(0, kmax + 1)]

    def at(m):
        x = 2 * np.pi * np.arange(m) / m
        X, Y = np.meshgrid(x, x, indexing="ij")
        return sum(a * np.cos(kx * X + ky * Y) + b * np.sin(kx * X + ky * Y) for kx, ky, a, b in coeffs)

    return at


def test_spectral_upsample_of_band_limited_field_is_exact():
    f = analytic(16, kmax=7, seed=1)  # 7 < 16/2: representable on the coarse grid
    fine = upsample(f(16), 4, method="spectral")
    np.testing.assert_allclose(fine, f(64), atol=1e-11)
    # non-square target shape too
    np.testing.assert_allclose(upsample(f(16), (32, 48), method="spectral")[::2, ::3], f(16), atol=1e-12)


def test_spectral_coarsen_of_band_limited_field_equals_stride_and_exact_samples():
    f = analytic(64, kmax=7, seed=2)
    fine = f(64)
    np.testing.assert_allclose(coarsen(fine, 4, "spectral"), f(16), atol=1e-11)
    np.testing.assert_allclose(coarsen(fine, 4, "spectral"), coarsen(fine, 4, "stride"), atol=1e-11)


def test_spectral_coarsen_removes_aliasing_that_stride_keeps():
    n, f = 64, 4
    x = 2 * np.pi * np.arange(n) / n
    X, _ = np.meshgrid(x, x, indexing="ij")
    high = np.cos(20 * X)  # k = 20 > coarse Nyquist 8: aliases to k = 4 under striding
    assert np.abs(coarsen(high, f, "spectral")).max() < 1e-12
    np.testing.assert_allclose(coarsen(high, f, "stride"), np.cos(4 * X[::f, ::f]), atol=1e-12)


def test_coarsen_then_spectral_upsample_is_a_projection():
    rng = np.random.default_rng(3)
    fine = rng.normal(size=(2, 64, 64))
    proj = upsample(coarsen(fine, 4, "spectral"), 4, method="spectral")
    proj2 = upsample(coarsen(proj, 4, "spectral"), 4, method="spectral")
    np.testing.assert_allclose(proj2, proj, atol=1e-12)
    # orthogonal: the removed part is orthogonal to the kept part
    assert abs(np.sum((fine - proj) * proj)) < 1e-9 * np.sum(fine**2)
    # and it really removed something (white noise has most energy above the coarse Nyquist)
    assert np.sum(proj**2) < 0.2 * np.sum(fine**2)


def test_spectral_upsample_interpolates_even_with_nyquist_content():
    rng = np.random.default_rng(4)
    coarse = rng.normal(size=(3, 16, 16))  # full spectrum including the Nyquist row and column
    fine = upsample(coarse, 4, method="spectral")
    np.testing.assert_allclose(fine[..., ::4, ::4], coarse, atol=1e-12)
    assert np.isrealobj(fine)


def test_stride_equals_slicing_numpy_and_torch():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(coarsen(a, 8, "stride"), a[..., ::8, ::8])
    t = torch.from_numpy(a).reshape(2, 2, 32, 32)
    assert torch.equal(coarsen(t, 8, "stride"), t[..., ::8, ::8])


def test_torch_matches_numpy_and_keeps_dtype():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(2, 1, 32, 32)).astype(np.float32)
    t = torch.from_numpy(a)
    for method in ("spectral", "stride"):
        c_np, c_t = coarsen(a, 4, method), coarsen(t, 4, method)
        assert c_np.dtype == np.float32 and c_t.dtype == torch.float32
        assert c_t.shape == (2, 1, 8, 8)
        np.testing.assert_allclose(c_t.numpy(), c_np, atol=1e-5)
    for method in ("spectral", "bicubic"):
        u_np, u_t = upsample(a[..., ::4, ::4], 4, method), upsample(t[..., ::4, ::4], 4, method)
        assert u_t.dtype == torch.float32 and u_t.shape == (2, 1, 32, 32)
        np.testing.assert_allclose(u_t.numpy(), u_np, atol=1e-5)
    u = upsample(t[..., ::4, ::4], 4, "bicubic", periodic=True)
    np.testing.assert_allclose(u.numpy(), upsample(a[..., ::4, ::4], 4, "bicubic", periodic=True), atol=1e-5)


def test_bicubic_is_the_papers_torch_interpolate():
    rng = np.random.default_rng(7)
    t = torch.from_numpy(rng.normal(size=(3, 1, 8, 8)))
    expected = F.interpolate(t, scale_factor=8, mode="bicubic", align_corners=False)
    assert torch.equal(upsample(t, 8, "bicubic"), expected)
    # numpy (..., H, W) goes through the same kernel
    np.testing.assert_allclose(upsample(t[:, 0].numpy(), (64, 64), "bicubic"), expected[:, 0].numpy(), atol=1e-14)


def test_periodic_bicubic_is_grid_aligned_periodic_and_converges():
    rng = np.random.default_rng(8)
    coarse = rng.normal(size=(16, 16))
    fine = upsample(coarse, 4, "bicubic", periodic=True)
    np.testing.assert_allclose(fine[::4, ::4], coarse, atol=1e-13)  # interpolates the samples
    # periodic: shifting the input by one coarse cell shifts the output by f fine cells
    np.testing.assert_allclose(upsample(np.roll(coarse, 1, 0), 4, "bicubic", periodic=True),
                               np.roll(fine, 4, 0), atol=1e-13)
    # a smooth periodic field converges; with torch's a = -0.75 the kernel is first order
    # (Keys 1981: only a = -1/2 reaches O(h^3)), so halving h roughly halves the error
    f = analytic(16, kmax=1, seed=9)
    err32 = np.abs(upsample(f(32), 4, "bicubic", periodic=True) - f(128)).max()
    err64 = np.abs(upsample(f(64), 4, "bicubic", periodic=True) - f(256)).max()
    assert err32 < 0.1 and 1.6 < err32 / err64 < 2.5


def test_spectral_resample_identity_and_mixed_axes():
    a = band_limited(16, 5, seed=10)
    np.testing.assert_array_equal(spectral_resample(a, (16, 16)), a)
    b = spectral_resample(a, (32, 12))  # refine x, coarsen y (5 < 12/2 so nothing is lost)
    np.testing.assert_allclose(spectral_resample(b, (16, 16)), a, atol=1e-12)


@pytest.mark.parametrize("bad, match", [
    (lambda a: coarsen(a, 3), "not divisible"),
    (lambda a: coarsen(a, 0), "positive integer"),
    (lambda a: coarsen(a, 2, "average"), "unknown coarsening method"),
    (lambda a: upsample(a, 2, "nearest"), "unknown upsampling method"),
    (lambda a: upsample(a, (40, 40), "bicubic", periodic=True), "integer factors"),
    (lambda a: upsample(a, (16,), "spectral"), "pair"),
    (lambda a: coarsen(a[0], 2), "at least 2 dimensions"),
    (lambda a: coarsen([[1.0]], 1), "numpy array or a torch tensor"),
])
def test_bad_input_raises_clear_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        bad(np.zeros((16, 16)))
