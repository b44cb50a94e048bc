"""solver.resample: the spectral coarsening and resampling the solver, the data sets and the hybrid share."""
import numpy as np
import pytest

from solver.resample import coarsen, spectral_resample, spectral_upsample


def test_upsampling_interpolates_and_coarsening_it_back_is_exact():
    rng = np.random.default_rng(0)
    coarse = coarsen(rng.standard_normal((3, 32, 32)), 2)
    fine = spectral_upsample(coarse, 2)
    assert fine.shape == (3, 32, 32)
    np.testing.assert_allclose(fine[..., ::2, ::2], coarse, atol=1e-12)
    np.testing.assert_allclose(coarsen(fine, 2), coarse, atol=1e-12)
    np.testing.assert_array_equal(spectral_upsample(coarse, 2), spectral_resample(coarse, (32, 32)))


def test_a_torch_tensor_stays_a_tensor():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 16, 16, dtype=torch.float64)
    y = spectral_upsample(x, 2)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 32, 32)
    np.testing.assert_allclose(y.numpy(), spectral_upsample(x.numpy(), 2), atol=1e-12)


@pytest.mark.parametrize("bad, message", [(0, "positive integer"), (1.5, "positive integer"), (True, "positive integer")])
def test_a_bad_factor_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        spectral_upsample(np.zeros((4, 4)), bad)
    with pytest.raises(ValueError, match=message):
        coarsen(np.zeros((4, 4)), bad)


def test_a_field_that_is_not_an_array_is_refused():
    with pytest.raises(ValueError, match="numpy array or a torch tensor"):
        spectral_resample([[1.0, 2.0], [3.0, 4.0]], (4, 4))
