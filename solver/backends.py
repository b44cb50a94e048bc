"""FFT backends: one interface over numpy, scipy.fft, pyfftw, cupy and mpi4py-fft.

Every backend transforms real fields of shape ``(..., nx, ny)`` to their half spectrum
``(..., nx, ny // 2 + 1)`` and back, batched over leading axes, with numpy's normalisation
(forward unscaled, inverse divided by ``nx * ny``). Under MPI (``comm`` given) fields are slabs of
axis 0 in physical space and slabs of axis 1 in spectral space (mpi4py-fft's slab decomposition);
the backend knows which part of the global arrays this rank holds.
"""
from __future__ import annotations

import os

import numpy as np

BACKENDS = ("numpy", "scipy", "pyfftw", "cupy")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine (missing package or no GPU)."""


def cupy_available() -> tuple[bool, str]:
    """Whether cupy can run here, and why not. cupy imports without a GPU; the first kernel fails."""
    try:
        import cupy
    except ImportError:
        return False, "cupy is not installed (pip install 'flexcouple[gpu]')"
    try:
        cupy.zeros(1).sum().item()
        return True, ""
    except Exception as exc:  # CUDARuntimeError and friends: no driver / no device
        return False, f"cupy is installed but no usable CUDA GPU was found ({type(exc).__name__}: {exc})"


def default_threads() -> int:
    """FFT threads: OMP_NUM_THREADS if set, else 1. Threaded FFTW on a loaded machine (other ranks,
    other jobs) waits on its slowest thread: measured here, 2 threads on 2 busy cores ran a step 5x
    slower than 1 thread. Ask for more with ``threads=`` when the cores are yours."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


class FFTBackend:
    """Serial backend. Subclasses set ``xp`` and implement ``_forward`` / ``_backward``."""

    xp = np
    name = "base"
    distributed = False

    def __init__(self, shape: tuple[int, int], real_dtype, threads: int | None = None):
        self.shape = tuple(int(s) for s in shape)
        self.real_dtype = np.dtype(real_dtype)
        self.complex_dtype = np.result_type(self.real_dtype, np.complex64)
        self.threads = threads or default_threads()
        nx, ny = self.shape
        self.spectral_shape = (nx, ny // 2 + 1)
        # the global index ranges this process holds, in physical and spectral space
        self.physical_slice = (slice(0, nx), slice(0, ny))
        self.spectral_slice = (slice(0, nx), slice(0, ny // 2 + 1))

    @property
    def local_shape(self) -> tuple[int, int]:
        return tuple(s.stop - s.start for s in self.physical_slice)

    @property
    def local_spectral_shape(self) -> tuple[int, int]:
        return tuple(s.stop - s.start for s in self.spectral_slice)

    # --- transforms -------------------------------------------------------------------------
    def forward(self, field):
        """Real (..., nx, ny) -> complex half spectrum (..., nx, ny//2+1), unnormalised."""
        return self._forward(field)

    def backward(self, spectrum):
        """Inverse of ``forward`` (divides by nx * ny); leaves its input intact."""
        return self._backward(spectrum)

    # --- hot path: no copies, no normalisation ---------------------------------------------
    # The solver fills a buffer and transforms it in place of the plan; the result may be an internal
    # buffer of the backend, valid until the next call with the same batch shape.
    def spectral_buffer(self, lead=()):
        return self.xp.empty(tuple(lead) + self.local_spectral_shape, dtype=self.complex_dtype)

    def real_buffer(self, lead=()):
        return self.xp.empty(tuple(lead) + self.local_shape, dtype=self.real_dtype)

    def backward_unscaled(self, spectrum):
        """Inverse transform without the 1 / (nx ny) factor; may overwrite its input."""
        return self._backward(spectrum) * (self.shape[0] * self.shape[1])

    def forward_view(self, field):
        """Forward transform; the result may be a buffer that the next call overwrites."""
        return self._forward(field)

    # --- array helpers ----------------------------------------------------------------------
    def to_numpy(self, a):
        return np.asarray(a)

    # --- reductions over all ranks (trivial here) ------------------------------------------
    def allsum(self, value):
        return float(value)

    def allmax(self, value):
        return float(value)

    def allsum_array(self, a):
        return self.to_numpy(a)

    def allmax_array(self, a):
        return np.asarray(a, dtype=np.float64)


class NumpyBackend(FFTBackend):
    name = "numpy"

    def _forward(self, field):
        return np.fft.rfft2(field, axes=(-2, -1)).astype(self.complex_dtype, copy=False)

    def _backward(self, spectrum):
        return np.fft.irfft2(spectrum, s=self.shape, axes=(-2, -1)).astype(self.real_dtype, copy=False)

    def backward_unscaled(self, spectrum):
        out = np.fft.irfft2(spectrum, s=self.shape, axes=(-2, -1), norm="forward")
        return out.astype(self.real_dtype, copy=False)


class ScipyBackend(FFTBackend):
    name = "scipy"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import scipy.fft

        self._fft = scipy.fft

    def _forward(self, field):
        return self._fft.rfft2(field, axes=(-2, -1), workers=self.threads)

    def _backward(self, spectrum):
        return self._fft.irfft2(spectrum, s=self.shape, axes=(-2, -1), workers=self.threads)

    def backward_unscaled(self, spectrum):
        return self._fft.irfft2(spectrum, s=self.shape, axes=(-2, -1), workers=self.threads, norm="forward",
                                overwrite_x=True)


class PyFFTWBackend(FFTBackend):
    """FFTW plans made once per batch shape (FFTW_MEASURE) and reused; threaded."""

    name = "pyfftw"

    def __init__(self, *args, planner_effort: str = "FFTW_MEASURE", **kwargs):
        super().__init__(*args, **kwargs)
        try:
            import pyfftw
        except ImportError as exc:  # pragma: no cover - pyfftw is a hard dependency
            raise BackendUnavailable("the pyfftw backend needs pyfftw (pip install pyfftw)") from exc
        self._pyfftw = pyfftw
        self._effort = planner_effort
        self._plans: dict = {}

    def _plan(self, direction: str, lead: tuple):
        key = (direction, lead)
        plan = self._plans.get(key)
        if plan is None:
            fw = self._pyfftw
            real = fw.empty_aligned(lead + self.shape, dtype=self.real_dtype)
            cplx = fw.empty_aligned(lead + self.spectral_shape, dtype=self.complex_dtype)
            if direction == "forward":
                plan = fw.FFTW(real, cplx, axes=(-2, -1), direction="FFTW_FORWARD",
                               flags=(self._effort,), threads=self.threads)
            else:
                plan = fw.FFTW(cplx, real, axes=(-2, -1), direction="FFTW_BACKWARD",
                               flags=(self._effort, "FFTW_DESTROY_INPUT"), threads=self.threads)
            self._plans[key] = plan
        return plan

    def _forward(self, field):
        return self.forward_view(field).copy()

    def _backward(self, spectrum):
        out = self.backward_unscaled(spectrum).copy()
        out *= 1.0 / (self.shape[0] * self.shape[1])
        return out

    def spectral_buffer(self, lead=()):
        return self._plan("backward", tuple(lead)).input_array

    def real_buffer(self, lead=()):
        return self._plan("forward", tuple(lead)).input_array

    def forward_view(self, field):
        plan = self._plan("forward", tuple(field.shape[:-2]))
        if field is not plan.input_array:
            plan.input_array[...] = field
        plan.execute()
        return plan.output_array

    def backward_unscaled(self, spectrum):
        plan = self._plan("backward", tuple(spectrum.shape[:-2]))
        if spectrum is not plan.input_array:
            plan.input_array[...] = spectrum
        plan.execute()
        return plan.output_array


class CupyBackend(FFTBackend):
    name = "cupy"

    def __init__(self, *args, **kwargs):
        ok, why = cupy_available()
        if not ok:
            raise BackendUnavailable(f"the cupy backend is unavailable: {why}. Use backend='pyfftw' on a CPU.")
        super().__init__(*args, **kwargs)
        import cupy

        self.xp = cupy

    def _forward(self, field):
        return self.xp.fft.rfft2(field, axes=(-2, -1))

    def _backward(self, spectrum):
        return self.xp.fft.irfft2(spectrum, s=self.shape, axes=(-2, -1))

    def backward_unscaled(self, spectrum):
        return self.xp.fft.irfft2(spectrum, s=self.shape, axes=(-2, -1), norm="forward")

    def to_numpy(self, a):
        return self.xp.asnumpy(a) if isinstance(a, self.xp.ndarray) else np.asarray(a)

    def allsum(self, value):
        return float(value)

    def allmax(self, value):
        return float(value)


class MPIBackend(FFTBackend):
    """Slab-decomposed real 2D FFT over an mpi4py communicator, by mpi4py-fft.

    Physical fields are split along axis 0 (x), spectra along axis 1 (ky), as mpi4py-fft lays them
    out. A stack of fields (k, nx, ny) goes through one transform over its last two axes, so its k
    transposes travel in one all-to-all message instead of k.
    """

    name = "mpi"
    distributed = True

    def __init__(self, shape, real_dtype, comm, serial_backend: str = "numpy", threads: int | None = None):
        super().__init__(shape, real_dtype, threads=threads)
        try:
            from mpi4py_fft import PFFT
        except ImportError as exc:  # pragma: no cover
            raise BackendUnavailable("MPI runs need mpi4py-fft (pip install mpi4py-fft; it needs libfftw3-dev)") from exc
        nx, ny = self.shape
        if nx % comm.size or (ny // 2 + 1) < comm.size:
            raise ValueError(f"n = {nx} cannot be split into {comm.size} slabs: use a rank count that divides n")
        fft_backend = {"numpy": "numpy", "scipy": "scipy", "pyfftw": "pyfftw"}.get(serial_backend)
        if fft_backend is None:
            raise ValueError(f"backend {serial_backend!r} cannot run under MPI; use numpy, scipy or pyfftw")
        self.comm = comm
        self.name = f"mpi-{serial_backend}"
        self._PFFT, self._fft_backend = PFFT, fft_backend
        self._pfft = PFFT(comm, self.shape, axes=(0, 1), dtype=self.real_dtype, grid=(-1,), backend=fft_backend)
        self._stacked: dict = {}
        self.physical_slice = tuple(self._pfft.local_slice(False))
        self.spectral_slice = tuple(self._pfft.local_slice(True))
        from mpi4py import MPI

        self._MPI = MPI

    def _stack_transform(self, count: int):
        """One slab transform of a (count, nx, ny) stack over its last two axes, split like a single field."""
        pfft = self._stacked.get(count)
        if pfft is None:
            pfft = self._PFFT(self.comm, (count,) + self.shape, axes=(1, 2), dtype=self.real_dtype,
                              grid=(1, -1, 1), backend=self._fft_backend)
            self._stacked[count] = pfft
        return pfft

    def _forward(self, field):
        lead = field.shape[:-2]
        out = np.empty(lead + self.local_spectral_shape, dtype=self.complex_dtype)
        if len(lead) == 1:
            self._stack_transform(lead[0]).forward(np.ascontiguousarray(field), out, normalize=False)
            return out
        for idx in np.ndindex(*lead):
            self._pfft.forward(np.ascontiguousarray(field[idx]), out[idx], normalize=False)
        return out

    def _backward(self, spectrum, normalize=True):
        lead = spectrum.shape[:-2]
        out = np.empty(lead + self.local_shape, dtype=self.real_dtype)
        if len(lead) == 1:
            self._stack_transform(lead[0]).backward(np.ascontiguousarray(spectrum), out, normalize=normalize)
            return out
        for idx in np.ndindex(*lead):
            self._pfft.backward(np.ascontiguousarray(spectrum[idx]), out[idx], normalize=normalize)
        return out

    def backward_unscaled(self, spectrum):
        return self._backward(spectrum, normalize=False)

    def allsum(self, value):
        return self.comm.allreduce(float(value), op=self._MPI.SUM)

    def allmax(self, value):
        return self.comm.allreduce(float(value), op=self._MPI.MAX)

    def allsum_array(self, a):
        a = np.ascontiguousarray(a)
        out = np.empty_like(a)
        self.comm.Allreduce(a, out, op=self._MPI.SUM)
        return out

    def allmax_array(self, a):
        a = np.ascontiguousarray(a, dtype=np.float64)
        out = np.empty_like(a)
        self.comm.Allreduce(a, out, op=self._MPI.MAX)
        return out


def make_backend(name: str, shape, real_dtype, comm=None, threads: int | None = None) -> FFTBackend:
    """Build the FFT backend ``name`` for real fields of ``shape``; distributed when ``comm`` has >1 rank."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if comm is not None and comm.size > 1:
        if name == "cupy":
            raise ValueError("the cupy backend does not run under MPI here; use numpy, scipy or pyfftw with comm")
        return MPIBackend(shape, real_dtype, comm, serial_backend=name, threads=threads)
    cls = {"numpy": NumpyBackend, "scipy": ScipyBackend, "pyfftw": PyFFTWBackend, "cupy": CupyBackend}[name]
    return cls(shape, real_dtype, threads=threads)
