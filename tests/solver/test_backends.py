"""One API over the FFT backends: equal results to rounding; clear errors where one cannot run."""
import numpy as np
import pytest

from solver import BackendUnavailable, NavierStokes2D, cupy_available, random_field
from solver.backends import make_backend

CUPY_OK, CUPY_WHY = cupy_available()
CPU_BACKENDS = ["numpy", "scipy", "pyfftw"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("lead", [(), (3,)])
def test_transforms_round_trip_and_match_numpy(backend, lead):
    be = make_backend(backend, (32, 48), "float64")
    field = np.random.default_rng(0).standard_normal(lead + (32, 48))
    spec = be.forward(field)
    np.testing.assert_allclose(spec, np.fft.rfft2(field), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(be.backward(spec.copy()), field, atol=1e-12)
    buf = be.spectral_buffer(lead)
    buf[...] = spec
    np.testing.assert_allclose(be.backward_unscaled(buf) / (32 * 48), field, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("lead", [(), (2,)])
def test_forward_view_with_columns_gives_those_columns(backend, lead):
    """forward_view(field, columns=c): the first c columns of the half spectrum (pyfftw skips the
    others' transforms along x; planned while the input buffer holds the field, which survives)."""
    be = make_backend(backend, (24, 36), "float64")
    field = np.random.default_rng(2).standard_normal(lead + (24, 36))
    expected = np.fft.rfft2(field)
    for columns in (13, 1, 19, None):
        buf = be.real_buffer(lead)
        buf[...] = field
        got = be.forward_view(buf, columns=columns)
        c = expected.shape[-1] if columns is None else columns
        np.testing.assert_allclose(got[..., :c], expected[..., :c], rtol=1e-12, atol=1e-10)
        assert np.isfinite(got).all()


@pytest.mark.parametrize("backend", ["scipy", "pyfftw"])
@pytest.mark.parametrize("boundary", ["periodic", "free-slip", "cylinder"])
def test_backends_give_equal_fields(backend, boundary):
    n = 64
    omega0 = random_field(n, seed=1, boundary="free-slip" if boundary == "free-slip" else "periodic")
    kwargs = dict(forcing="kolmogorov", drag=0.1, boundary=boundary)
    ref = NavierStokes2D(n, 800.0, **kwargs).advance(omega0, 0.5)
    out = NavierStokes2D(n, 800.0, backend=backend, **kwargs).advance(omega0, 0.5)
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-12


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_float32_backends(backend):
    be = make_backend(backend, (32, 32), "float32")
    field = np.random.default_rng(0).standard_normal((32, 32)).astype(np.float32)
    spec = be.forward(field)
    assert spec.dtype == np.complex64
    back = be.backward(spec.copy())
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, field, atol=1e-5)


@pytest.mark.skipif(CUPY_OK, reason="a GPU is present: the unavailable path cannot be exercised")
def test_cupy_backend_says_why_it_is_unavailable():
    with pytest.raises(BackendUnavailable, match="cupy"):
        NavierStokes2D(32, 100.0, backend="cupy")


@pytest.mark.gpu
@pytest.mark.skipif(not CUPY_OK, reason=f"no usable GPU for the cupy backend: {CUPY_WHY}")
def test_cupy_backend_matches_numpy():
    import cupy

    n = 64
    omega0 = random_field(n, seed=1)
    ref = NavierStokes2D(n, 800.0, forcing="kolmogorov", drag=0.1).advance(omega0, 0.5)
    sim = NavierStokes2D(n, 800.0, forcing="kolmogorov", drag=0.1, backend="cupy")
    out = cupy.asnumpy(sim.advance(cupy.asarray(omega0), 0.5))
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-12
    assert sim.energy(cupy.asarray(out)) == pytest.approx(
        NavierStokes2D(n, 800.0).energy(ref), rel=1e-10)


def test_an_unknown_mpi_transform_is_refused(monkeypatch):
    from solver.backends import mpi_transform

    monkeypatch.setenv("FLEXCOUPLE_MPI_TRANSFORM", "fftw-mpi")
    with pytest.raises(ValueError, match="FLEXCOUPLE_MPI_TRANSFORM='fftw-mpi': choose one of slab, mpi4py-fft"):
        mpi_transform()
    monkeypatch.delenv("FLEXCOUPLE_MPI_TRANSFORM")
    assert mpi_transform() == "slab"
