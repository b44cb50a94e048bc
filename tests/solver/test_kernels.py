"""The fused numba kernels do the numpy path's arithmetic: equal fields (bit for bit in float64), the
same CFL bookkeeping, a numpy fallback where they cannot run, and clear errors for a bad choice."""
import numpy as np
import pytest

from solver import NavierStokes2D, kernels, random_field
from solver.time_stepping import ETDRK4

needs_numba = pytest.mark.skipif(kernels.numba is None, reason="numba is not installed (the numpy path is then the only one)")


def solver(monkeypatch, choice, **kw):
    monkeypatch.setenv("FLEXCOUPLE_KERNELS", choice)
    return NavierStokes2D(**kw)


CASES = [
    dict(n=64, reynolds=1000.0, forcing="kolmogorov", drag=0.1, backend="pyfftw"),
    dict(n=48, reynolds=500.0, boundary="free-slip", backend="numpy"),
    dict(n=64, reynolds=200.0, boundary="channel", backend="scipy", pressure_gradient=1.0),
    dict(n=64, reynolds=300.0, boundary="cylinder", backend="pyfftw"),
]


@needs_numba
@pytest.mark.parametrize("case", CASES, ids=["kolmogorov", "free-slip", "channel", "cylinder"])
def test_fused_kernels_reproduce_the_numpy_path_bit_for_bit_in_float64(monkeypatch, case):
    boundary = "free-slip" if case.get("boundary") == "free-slip" else "periodic"
    omega0 = random_field(case["n"], seed=3, boundary=boundary)
    ref = solver(monkeypatch, "numpy", **case)
    fused = solver(monkeypatch, "numba", **case)
    assert (ref.kernels, fused.kernels) == ("numpy", "numba")
    a = ref.advance(omega0, 0.3)
    b = fused.advance(omega0, 0.3)
    assert np.array_equal(a, b)
    # the speed bound for the CFL condition comes out of the fused products pass
    assert fused.equation.speed == ref.equation.speed > 0
    assert ref.last_stats["steps"] == fused.last_stats["steps"]
    if case.get("boundary") == "channel":  # the mean flow enters the products
        np.testing.assert_array_equal(ref.mean_velocity, fused.mean_velocity)
        assert abs(fused.mean_velocity[0]) > 0


@needs_numba
def test_fused_kernels_agree_to_round_off_in_float32(monkeypatch):
    case = dict(n=64, reynolds=1000.0, forcing="kolmogorov", drag=0.1, backend="pyfftw", dtype="float32")
    omega0 = random_field(64, seed=4).astype(np.float32)
    a = solver(monkeypatch, "numpy", **case).advance(omega0, 0.2)
    b = solver(monkeypatch, "numba", **case).advance(omega0, 0.2)
    assert a.dtype == b.dtype == np.float32
    assert np.max(np.abs(a - b)) / np.max(np.abs(a)) < 1e-5


@needs_numba
def test_a_strided_state_falls_back_to_the_numpy_path_with_the_same_result(monkeypatch):
    """ETDRK4 on a non-contiguous state runs the numpy stages; the result is the fused one's."""
    lin = -np.linspace(0.0, 3.0, 40).reshape(5, 8)

    def explicit(v, out):
        np.multiply(v, v, out=out)
        out *= -0.1
        return out

    v = (np.random.default_rng(0).standard_normal((5, 16)) + 1j).astype(np.complex128)
    strided = v[:, ::2]
    assert not strided.flags.c_contiguous
    fused = ETDRK4(lin, explicit, fused=True).step(strided, 0.01).copy()
    plain = ETDRK4(lin, explicit, fused=False).step(np.ascontiguousarray(strided), 0.01).copy()
    via_fused_kernels = ETDRK4(lin, explicit, fused=True).step(np.ascontiguousarray(strided), 0.01)
    assert np.array_equal(fused, plain) and np.array_equal(via_fused_kernels, plain)


def test_the_numpy_choice_and_the_default(monkeypatch):
    monkeypatch.setenv("FLEXCOUPLE_KERNELS", "numpy")
    assert kernels.use_fused(np) is False
    monkeypatch.delenv("FLEXCOUPLE_KERNELS")
    assert kernels.use_fused(np) is (kernels.numba is not None)
    assert kernels.use_fused(object()) is False  # a GPU array module keeps its own path


def test_a_bad_choice_is_refused_with_the_valid_ones(monkeypatch):
    monkeypatch.setenv("FLEXCOUPLE_KERNELS", "fortran")
    with pytest.raises(ValueError, match="auto, numba, numpy"):
        NavierStokes2D(32, 100.0)


def test_insisting_on_numba_without_it_says_how_to_fix_it(monkeypatch):
    monkeypatch.setattr(kernels, "numba", None)
    monkeypatch.setenv("FLEXCOUPLE_KERNELS", "numba")
    with pytest.raises(ImportError, match="pip install numba"):
        NavierStokes2D(32, 100.0)
    monkeypatch.setenv("FLEXCOUPLE_KERNELS", "auto")
    assert NavierStokes2D(32, 100.0).kernels == "numpy"  # the default falls back quietly


def test_insisting_on_numba_for_a_gpu_array_module_is_refused(monkeypatch):
    monkeypatch.setenv("FLEXCOUPLE_KERNELS", "numba")
    with pytest.raises(ValueError, match="CPU backend"):
        kernels.use_fused(object())


def test_a_complex_coefficient_is_refused():
    with pytest.raises(ValueError, match="real"):
        kernels.real_coefficient(np.array([1 + 1j]), np.float64)
    assert kernels.flat(np.zeros((4, 4))[:, ::2]) is None
    assert kernels.flat(np.zeros((2, 3), dtype=np.complex64)).dtype == np.float32


@needs_numba
def test_the_fused_speed_bound_sees_a_nan(monkeypatch):
    sim = solver(monkeypatch, "numba", n=32, reynolds=100.0)
    w = sim.to_spectral(random_field(32, seed=0))
    w[3, 2] = np.nan
    sim.equation.explicit(w, record_speed=True)
    assert np.isnan(sim.equation.speed)
