"""Metric correctness on cases whose answer is known in closed form."""
import math

import numpy as np
import pytest

from flexcouple.evaluation import metrics as M


def _smooth_field(n=64, seed=0):
    """A smooth periodic random field (a few low Fourier modes)."""
    rng = np.random.default_rng(seed)
    x = 2 * np.pi * np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    f = np.zeros((n, n))
    for kx in range(1, 5):
        for ky in range(-4, 5):
            a, b = rng.normal(size=2) / (kx * kx + ky * ky)
            f += a * np.cos(kx * X + ky * Y) + b * np.sin(kx * X + ky * Y)
    return f


# ----------------------------------------------------------------------------------------- fields
def test_identical_fields():
    f = _smooth_field()
    assert M.rfne(f, f) == 0.0
    assert M.ssim(f, f) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim(f, f, periodic=True) == pytest.approx(1.0, abs=1e-12)
    assert M.psnr(f, f) == np.inf
    assert M.max_error(f, f) == 0.0
    assert M.pearson(f, f) == pytest.approx(1.0)


def test_rfne_pearson_maxerror_known_values():
    f = _smooth_field()
    assert M.rfne(1.1 * f, f) == pytest.approx(0.1)
    assert M.rfne(np.zeros_like(f), f) == pytest.approx(1.0)
    assert M.pearson(-2 * f + 3, f) == pytest.approx(-1.0)
    g = f.copy()
    g[3, 7] += 0.25
    assert M.max_error(g, f) == pytest.approx(0.25)
    # batch axes give one value per field
    assert M.rfne(np.stack([f, 1.5 * f]), np.stack([f, f])) == pytest.approx([0.0, 0.5])


def test_torch_inputs_are_accepted():
    torch = pytest.importorskip("torch")
    f = _smooth_field()
    assert M.rfne(torch.tensor(1.1 * f, dtype=torch.float32), torch.tensor(f)) == pytest.approx(0.1, rel=1e-6)


def test_rfne_of_training_and_evaluation_agree():
    """Training's validation RFNE (torch) and evaluation's (numpy) are one definition: the same values
    on random fields, and on a zero truth 0 for a zero prediction and +inf for any other."""
    torch = pytest.importorskip("torch")
    from flexcouple.training import rfne as train_rfne

    rng = np.random.default_rng(3)
    pred, true = rng.normal(size=(5, 1, 12, 12)), rng.normal(size=(5, 1, 12, 12))
    true[1] = 0.0                # zero truth, nonzero prediction
    pred[2], true[2] = 0.0, 0.0  # zero truth, zero prediction
    pred[3] = true[3]            # exact prediction
    want = M.rfne(pred, true)
    got = train_rfne(torch.tensor(pred), torch.tensor(true))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64 and tuple(got.shape) == want.shape == (5, 1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert want[1, 0] == np.inf and want[2, 0] == 0.0 and want[3, 0] == 0.0
    assert np.all(np.isfinite(want[[0, 4]])) and np.all(want[[0, 4]] > 0)
    # float32 tensors (training's dtype) agree to float32 precision and keep their dtype
    got32 = train_rfne(torch.tensor(pred, dtype=torch.float32), torch.tensor(true, dtype=torch.float32))
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want, rtol=1e-5)
    # one 2D field each: a 0-d result, the same cases
    for p, t, expected in ((np.ones((4, 4)), np.zeros((4, 4)), np.inf), (np.zeros((4, 4)), np.zeros((4, 4)), 0.0)):
        assert M.rfne(p, t) == expected == float(train_rfne(torch.tensor(p), torch.tensor(t)))
    with pytest.raises(ValueError, match="shapes differ"):
        train_rfne(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5))


def test_psnr_of_a_known_perturbation():
    f = _smooth_field()
    r = f.max() - f.min()
    # a constant offset d gives MSE = d^2, so PSNR = 20 log10(R / d)
    d = 0.01 * r
    assert M.psnr(f + d, f) == pytest.approx(40.0)
    assert M.psnr(f + d, f, data_range=2 * r) == pytest.approx(20 * math.log10(200.0))


def test_ssim_of_a_constant_offset_matches_the_luminance_term():
    # a constant offset leaves variances and covariance unchanged, so the index is the luminance
    # term (2 mu (mu + d) + C1) / (mu^2 + (mu + d)^2 + C1) at each point; with a constant field it
    # is the same everywhere and the mean equals it exactly.
    n, mu, d, r = 32, 1.0, 0.3, 2.0
    true = np.full((n, n), mu)
    c1 = (0.01 * r) ** 2
    expected = (2 * mu * (mu + d) + c1) / (mu**2 + (mu + d) ** 2 + c1)
    assert M.ssim(true + d, true, data_range=r) == pytest.approx(expected, rel=1e-12)


def test_ssim_of_white_noise_matches_the_structure_term():
    # pred = true + independent noise of variance s^2 on a field of zero local mean and variance v:
    # locally  SSIM ~ (2 v + C2) / (2 v + s^2 + C2) (luminance term ~ 1); check within a few percent
    # and that it decreases with the noise level.
    rng = np.random.default_rng(1)
    true = 10.0 + rng.normal(0, 1.0, (256, 256))  # a large mean keeps the luminance term near 1
    values = []
    for s in (0.1, 0.5, 1.0):
        pred = true + rng.normal(0, s, true.shape)
        values.append(float(M.ssim(pred, true, data_range=8.0, periodic=True)))
    assert values[0] > values[1] > values[2]
    # the Gaussian window's effective sample is small, so local variances are biased low; the
    # ordering and the noiseless limit are what is exact, the magnitude is checked loosely
    c2 = (0.03 * 8.0) ** 2
    assert values[2] == pytest.approx((2 + c2) / (3 + c2), rel=0.08)


def test_ssim_border_and_periodic_conventions():
    f = _smooth_field(48)
    g = np.roll(f, 1, axis=0)
    # the periodic index sees a rolled periodic field the same wherever the roll is
    a = M.ssim(g, f, periodic=True)
    b = M.ssim(np.roll(g, 17, axis=1), np.roll(f, 17, axis=1), periodic=True)
    assert a == pytest.approx(b, rel=1e-12)
    with pytest.raises(ValueError, match="larger than"):
        M.ssim(np.ones((8, 8)), np.ones((8, 8)))


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        M.rfne(np.ones((4, 4)), np.ones((4, 5)))


# ---------------------------------------------------------------------------------------- spectra
@pytest.mark.parametrize("kx,ky", [(3, 0), (0, 5), (3, 4), (-2, 7)])
def test_single_fourier_mode_lands_in_its_shell(kx, ky):
    n = 32
    x = 2 * np.pi * np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    amp = 1.7
    omega = amp * np.cos(kx * X + ky * Y)
    k, E = M.energy_spectrum(omega)
    shell = int(math.floor(math.hypot(kx, ky) + 0.5))
    # psi = omega / |k|^2, |u|^2 = |grad psi|^2 = amp^2 sin^2(...) / |k|^2, mean = amp^2 / (2 |k|^2)
    energy = amp**2 / (4 * (kx * kx + ky * ky))
    assert E[shell] == pytest.approx(energy, rel=1e-12)
    assert np.sum(np.delete(E, shell)) < 1e-20
    # Parseval: the spectrum sums to mean(|u|^2) / 2 computed from the velocity in physical space
    u, v = M.velocity_from_vorticity(omega)
    assert E.sum() == pytest.approx(0.5 * np.mean(u**2 + v**2), rel=1e-12)


def test_spectrum_parseval_for_a_random_field_and_odd_grid():
    for n in (33, 64):
        f = np.random.default_rng(n).normal(size=(n, n))
        if n % 2 == 0:
            # the Nyquist modes have no representable derivative (sin(n x / 2) vanishes on the
            # grid), so the velocity drops them: compare on a field without them
            f_hat = np.fft.fft2(f)
            f_hat[n // 2, :] = 0
            f_hat[:, n // 2] = 0
            f = np.fft.ifft2(f_hat).real
        u, v = M.velocity_from_vorticity(f)
        _, E = M.energy_spectrum(f)
        assert E.sum() == pytest.approx(0.5 * np.mean(u**2 + v**2), rel=1e-10)
        _, S = M.scalar_spectrum(f)
        assert S.sum() == pytest.approx(0.5 * np.mean((f - f.mean()) ** 2) + 0.5 * f.mean() ** 2, rel=1e-10)


def test_velocity_from_vorticity_taylor_green():
    # omega = 2 cos x cos y  <->  psi = cos x cos y, u = dpsi/dy = -cos x sin y, v = sin x cos y
    n = 32
    x = 2 * np.pi * np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    u, v = M.velocity_from_vorticity(2 * np.cos(X) * np.cos(Y))
    np.testing.assert_allclose(u, -np.cos(X) * np.sin(Y), atol=1e-12)
    np.testing.assert_allclose(v, np.sin(X) * np.cos(Y), atol=1e-12)


def test_spectrum_error_is_zero_for_equal_fields_and_sees_missing_fine_scales():
    f = np.random.default_rng(3).normal(size=(2, 64, 64))
    e = M.spectrum_error(f, f)
    assert e["band"] == 0.0 and e["top_octave"] == 0.0
    # remove every scale above k = 16: the top octave (16, 32] is destroyed, the band only partly
    w_hat = np.fft.fft2(f)
    k = np.fft.fftfreq(64, 1 / 64)
    KX, KY = np.meshgrid(k, k, indexing="ij")
    w_hat[..., np.sqrt(KX**2 + KY**2) > 16.5] = 0
    low = np.fft.ifft2(w_hat).real
    e = M.spectrum_error(low, f)
    assert e["top_octave"] > e["band"] > 0.1
    assert M.spectrum_error(low, f, average=False)["band"].shape == (2,)


# -------------------------------------------------------------------------------------- ensembles
def test_point_ensemble_crps_is_the_mae():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(16, 16))
    pred = truth + rng.normal(size=truth.shape)
    np.testing.assert_allclose(M.crps(pred[None], truth), np.abs(pred - truth))
    # K identical members are still a point forecast, with the plain (not the fair) estimator
    np.testing.assert_allclose(M.crps(np.repeat(pred[None], 5, 0), truth), np.abs(pred - truth), atol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        M.crps(pred[None], truth, fair=True)


def test_crps_matches_the_pairwise_definition_and_the_gaussian_closed_form():
    rng = np.random.default_rng(1)
    members = rng.normal(size=(7, 50))
    truth = rng.normal(size=50)
    k = members.shape[0]
    pair = np.abs(members[:, None] - members[None]).sum(axis=(0, 1))
    skill = np.abs(members - truth).mean(axis=0)
    np.testing.assert_allclose(M.crps(members, truth), skill - pair / (2 * k * k))
    np.testing.assert_allclose(M.crps(members, truth, fair=True), skill - pair / (2 * k * (k - 1)))
    # the fair CRPS of a large ensemble from N(0, 1) at y = 0 tends to the closed form
    # CRPS(N(0,1), 0) = 2 phi(0) - 1/sqrt(pi) = (sqrt(2) - 1) / sqrt(pi)
    big = rng.normal(size=(4000, 1))
    assert M.crps(big, np.zeros(1), fair=True)[0] == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi), rel=0.05)


def test_calibrated_ensemble_spread_skill_coverage_and_flat_ranks():
    # truth and members drawn from the same distribution, independently at each point
    rng = np.random.default_rng(2)
    k, n = 39, 40000
    centre = rng.normal(size=n) * 3.0  # a point-dependent predictable part
    members = centre + rng.normal(size=(k, n))
    truth = centre + rng.normal(size=n)
    ss = M.spread_skill(members, truth)
    assert ss["spread_skill_ratio"] == pytest.approx(1.0, abs=0.03)
    # without the (K+1)/K correction a small ensemble looks over-confident
    small = M.spread_skill(members[:3], truth)
    assert small["spread_skill_ratio"] == pytest.approx(1.0, abs=0.05)
    assert small["spread"] / small["skill_rmse"] == pytest.approx(math.sqrt(3 / 4), abs=0.05)
    for p in (0.5, 0.9):
        assert M.expected_coverage(k, p) == pytest.approx(p)
        assert M.coverage(members, truth, p) == pytest.approx(p, abs=0.01)
    # a 5-member ensemble cannot reach 90 %: a calibrated one covers (K-1)/(K+1) = 2/3
    assert M.expected_coverage(5, 0.9) == pytest.approx(4 / 6)
    assert M.coverage(members[:5], truth, 0.9) == pytest.approx(4 / 6, abs=0.01)
    counts = M.rank_histogram(members, truth, rng=0)
    assert counts.sum() == n and len(counts) == k + 1
    assert M.rank_histogram_flatness(counts) < 2.0
    out = M.ensemble_metrics(members[:, :1000], truth[:1000])
    assert set(out) >= {"crps", "crps_fair", "spread_skill_ratio", "coverage_50", "coverage_90", "rank_histogram"}


def test_overconfident_ensemble_is_detected():
    rng = np.random.default_rng(3)
    k, n = 19, 20000
    members = 0.3 * rng.normal(size=(k, n))  # spread far too small
    truth = rng.normal(size=n)
    assert M.spread_skill(members, truth)["spread_skill_ratio"] < 0.5
    assert M.coverage(members, truth, 0.9) < 0.5
    counts = M.rank_histogram(members, truth)
    assert counts[0] + counts[-1] > 0.5 * n  # U-shaped
    assert M.rank_histogram_flatness(counts) > 100


def test_rank_histogram_breaks_ties_at_random():
    members = np.zeros((3, 10000))
    counts = M.rank_histogram(members, np.zeros(10000), rng=1)
    assert np.all(np.abs(counts / 10000 - 0.25) < 0.02)


# -------------------------------------------------------------------------------------- forecasts
def test_metrics_against_lead_and_decorrelation_time():
    f = _smooth_field(32)
    t = 6
    true = np.stack([f] * t)
    noise = np.random.default_rng(4).normal(size=f.shape)
    pred = np.stack([f + 0.2 * i * noise for i in range(t)])
    out = M.metrics_against_lead(pred, true)
    assert out["rfne"].shape == (t,)
    assert out["rfne"][0] == 0 and np.all(np.diff(out["rfne"]) > 0)
    assert np.all(np.diff(out["correlation"]) < 0)
    times = 0.5 * np.arange(1, t + 1)
    assert M.decorrelation_time([1.0, 0.99, 0.97, 0.93], [1, 2, 3, 4]) == pytest.approx(3.5)
    assert M.decorrelation_time([0.9, 0.8], [1, 2]) == 1.0
    assert M.decorrelation_time([1.0, 0.99], [1, 2]) == math.inf
    assert np.isfinite(M.decorrelation_time(out["correlation"], times)) or out["correlation"][-1] >= 0.95
