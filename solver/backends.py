"""FFT backends: one interface over numpy, scipy.fft, pyfftw, cupy, and two distributed transforms.

Every backend transforms real fields of shape ``(..., nx, ny)`` to their half spectrum
``(..., nx, ny // 2 + 1)`` and back, batched over leading axes, with numpy's normalisation
(forward unscaled, inverse divided by ``nx * ny``). Under MPI (``comm`` given) fields are slabs of
axis 0 in physical space and slabs of axis 1 in spectral space (mpi4py-fft's slab decomposition);
the backend knows which part of the global arrays this rank holds. The distributed transform is ours
(:class:`SlabBackend`, the default) or mpi4py-fft's (:class:`MPIBackend`), chosen by the environment
variable FLEXCOUPLE_MPI_TRANSFORM ("slab" or "mpi4py-fft"); both give the serial fields to round-off.
Ours exchanges blocks through shared memory on one node (FLEXCOUPLE_MPI_EXCHANGE, see SlabBackend).
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

    def forward_view(self, field, columns: int | None = None):
        """Forward transform; the result may be a buffer that the next call overwrites.

        ``columns``: only the first ``columns`` columns of the half spectrum (the lowest |ky|, on this
        rank's global index) are needed; the others may then hold any finite values (a backend may
        skip their transforms along x). None: all of them."""
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


class PlannedBackend(FFTBackend):
    """A backend whose hot path (``forward_view``, ``backward_unscaled``) works in its plans' own
    buffers: the copying, normalised transforms are built on it once here."""

    def _forward(self, field):
        return self.forward_view(field).copy()

    def _backward(self, spectrum):
        out = self.backward_unscaled(spectrum).copy()
        out *= 1.0 / (self.shape[0] * self.shape[1])
        return out


class PyFFTWBackend(PlannedBackend):
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

    def spectral_buffer(self, lead=()):
        return self._plan("backward", tuple(lead)).input_array

    def real_buffer(self, lead=()):
        return self._plan("forward", tuple(lead)).input_array

    def forward_view(self, field, columns: int | None = None):
        lead = tuple(field.shape[:-2])
        plan = self._plan("forward", lead)
        if field is not plan.input_array:
            plan.input_array[...] = field
        if columns is None or columns >= self.spectral_shape[1]:
            plan.execute()
        else:
            rows, cols = self._pruned_plans(lead, columns)
            rows.execute()
            cols.execute()
        return plan.output_array

    def _pruned_plans(self, lead: tuple, columns: int):
        """The forward transform in two passes that skips the columns past ``columns``: real-to-complex
        along y on every row, then along x on the first ``columns`` columns only (in place). In the
        full plan's own buffers, which hold data when this is planned: saved and restored around the
        planning (FFTW_MEASURE overwrites the arrays it plans on)."""
        key = ("forward_pruned", lead, columns)
        plans = self._plans.get(key)
        if plans is None:
            fw = self._pyfftw
            full = self._plan("forward", lead)
            real, cplx = full.input_array, full.output_array
            saved = real.copy()
            view = cplx[..., :columns]
            plans = (fw.FFTW(real, cplx, axes=(-1,), direction="FFTW_FORWARD", flags=(self._effort,),
                             threads=self.threads),
                     fw.FFTW(view, view, axes=(-2,), direction="FFTW_FORWARD", flags=(self._effort,),
                             threads=self.threads))
            real[...] = saved
            self._plans[key] = plans
        return plans

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


#: SlabBackend's shared-memory buffers: (id(comm), buffer, shape, dtype) -> (comm, window, per-rank views)
_SHARED_BUFFERS: dict = {}


def free_shared_buffers(comm) -> None:
    """Free the slab transform's shared-memory windows on ``comm`` (collective over it)."""
    for key in [key for key, entry in _SHARED_BUFFERS.items() if entry[0] is comm]:
        _SHARED_BUFFERS.pop(key)[1].Free()


def _blocks(n: int, size: int) -> list[slice]:
    """``n`` indices split into ``size`` contiguous blocks, the first ``n % size`` one longer
    (mpi4py-fft's distribution, so both transforms lay out the same slabs)."""
    q, r = divmod(n, size)
    starts = [rank * q + min(rank, r) for rank in range(size + 1)]
    return [slice(starts[i], starts[i + 1]) for i in range(size)]


class SlabBackend(PlannedBackend):
    """Slab-decomposed real 2D FFT over an mpi4py communicator, with its own transposes.

    Same layout as :class:`MPIBackend` (fields: slabs of axis 0; spectra: slabs of axis 1), built
    from three steps into buffers made once per batch shape: the real FFT along y of the local rows
    (one FFTW plan over the whole stack), the exchange of blocks between ranks, and the complex FFT
    along x in place. The exchange (``exchange``, FLEXCOUPLE_MPI_EXCHANGE):

    * "shared" (the default when every rank runs on one node): the buffers that the ranks exchange
      from live in one MPI-3 shared-memory window, and each rank copies the blocks it needs straight
      out of the other ranks' buffers between two barriers: one copy per block, where an ``Alltoallv``
      makes four (pack, into and out of MPI's shared cells, unpack);
    * "alltoallv" (across nodes): one ``Alltoallv`` of contiguous packed blocks (no derived datatypes).

    A rank's own block never goes through MPI. ``MPIBackend`` (mpi4py-fft) copies every field
    into and out of its own arrays and transposes with ``Alltoallw`` of subarray datatypes: on 2 ranks
    at n = 256 those copies and that exchange cost about as much as the FFTs themselves.
    ``serial_backend`` "pyfftw" plans with FFTW (FFTW_MEASURE); "numpy" and "scipy" use scipy.fft.
    """

    distributed = True

    def __init__(self, shape, real_dtype, comm, serial_backend: str = "pyfftw", threads: int | None = None):
        super().__init__(shape, real_dtype, threads=threads)
        if serial_backend not in ("numpy", "scipy", "pyfftw"):
            raise ValueError(f"backend {serial_backend!r} cannot run under MPI; use numpy, scipy or pyfftw")
        nx, ny = self.shape
        if nx % comm.size or (ny // 2 + 1) < comm.size:
            raise ValueError(f"n = {nx} cannot be split into {comm.size} slabs: use a rank count that divides n")
        self.comm = comm
        self.name = f"slab-{serial_backend}"
        self._fftw = None
        if serial_backend == "pyfftw":
            import pyfftw

            self._fftw = pyfftw
        self._rows = _blocks(nx, comm.size)
        self._cols = _blocks(ny // 2 + 1, comm.size)
        self.physical_slice = (self._rows[comm.rank], slice(0, ny))
        self.spectral_slice = (slice(0, nx), self._cols[comm.rank])
        self._plans: dict = {}
        from mpi4py import MPI

        self._MPI = MPI
        self.exchange = mpi_exchange(comm)

    # --- the plan of one batch size: buffers, FFTW plans and the all-to-all's counts ------------
    def _plan(self, lead: tuple) -> dict:
        plan = self._plans.get(lead)
        if plan is not None:
            return plan
        k = int(np.prod(lead)) if lead else 1
        nx, ny = self.shape
        nyc, p, rank = ny // 2 + 1, self.comm.size, self.comm.rank
        nxl, w = nx // p, self._cols[rank].stop - self._cols[rank].start
        widths = [c.stop - c.start for c in self._cols]
        empty = self._fftw.empty_aligned if self._fftw else np.empty
        plan = {
            "k": k,
            # each direction has its own input and output (as the serial FFTW plans): the solver fills
            # the input of one transform while it still reads the output of the other
            "real_in": empty((k, nxl, ny), dtype=self.real_dtype),    # forward: physical slab in
            "real": empty((k, nxl, ny), dtype=self.real_dtype),       # backward: physical slab out
            "cols": empty((k, nx, w), dtype=self.complex_dtype),      # forward: spectral slab out
        }
        if self.exchange == "shared":
            # the two buffers read across ranks live in shared memory: rows after the FFT along y
            # (read by the forward exchange), the spectral slab in (read by the backward one)
            plan["peer_rows"] = self._shared("rows", [(k, nxl, nyc)] * p)
            plan["peer_cols_in"] = self._shared("cols_in", [(k, nx, wd) for wd in widths])
            plan["rows"], plan["cols_in"] = plan["peer_rows"][rank], plan["peer_cols_in"][rank]
        else:
            plan["rows"] = empty((k, nxl, nyc), dtype=self.complex_dtype)
            plan["cols_in"] = empty((k, nx, w), dtype=self.complex_dtype)
            # the Alltoallv's flat buffers, large enough for either direction; forward: to rank d the
            # local rows' columns of block d, from every rank its rows of ours. This rank's own block
            # is copied directly, not through MPI (count 0, its slot left unused).
            plan["send"] = np.empty(k * nx * max(widths), dtype=self.complex_dtype)
            plan["recv"] = np.empty(k * nx * max(widths), dtype=self.complex_dtype)
            plan["fwd_send"] = self._counts([k * nxl * wd for wd in widths], rank)
            plan["fwd_recv"] = self._counts([k * nxl * w] * p, rank)
            plan["bwd_send"], plan["bwd_recv"] = plan["fwd_recv"], plan["fwd_send"]
        if self._fftw:
            fw, flags = self._fftw, ("FFTW_MEASURE",)
            plan["y_fwd"] = fw.FFTW(plan["real_in"], plan["rows"], axes=(2,), direction="FFTW_FORWARD",
                                    flags=flags, threads=self.threads)
            plan["y_bwd"] = fw.FFTW(plan["rows"], plan["real"], axes=(2,), direction="FFTW_BACKWARD",
                                    flags=flags + ("FFTW_DESTROY_INPUT",), threads=self.threads)
            plan["x_fwd"] = fw.FFTW(plan["cols"], plan["cols"], axes=(1,), direction="FFTW_FORWARD",
                                    flags=flags, threads=self.threads)
            plan["x_bwd"] = fw.FFTW(plan["cols_in"], plan["cols_in"], axes=(1,), direction="FFTW_BACKWARD",
                                    flags=flags, threads=self.threads)
        self._plans[lead] = plan
        return plan

    @staticmethod
    def _counts(counts: list[int], own: int):
        """(counts, displacements) of an Alltoallv, with the slot of rank ``own`` kept but sent empty."""
        counts = np.asarray(counts, dtype=np.int64)
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
        counts[own] = 0
        return counts, displs

    def _shared(self, name: str, shapes) -> list:
        """One complex buffer per rank shaped ``shapes[rank]``, all in one shared-memory window
        (collective): every rank's, as numpy arrays this rank can read. Kept in ``_SHARED_BUFFERS`` and
        reused by every slab backend of this communicator with the same buffer, shape and dtype, so
        that a run that builds a solver per trajectory does not leave a window behind for each."""
        dtype = np.dtype(self.complex_dtype)
        mine = shapes[self.comm.rank]
        key = (id(self.comm), name, mine, dtype.str)
        entry = _SHARED_BUFFERS.get(key)
        if entry is not None and entry[0] is self.comm:
            return entry[2]
        MPI = self._MPI
        info = MPI.Info.Create()
        info.Set("alloc_shared_noncontig", "true")  # each rank's part page-aligned, on its own pages
        win = MPI.Win.Allocate_shared(int(np.prod(mine)) * dtype.itemsize, dtype.itemsize, info=info, comm=self.comm)
        info.Free()
        views = []
        for r, shape in enumerate(shapes):
            buf, _ = win.Shared_query(r)
            views.append(np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape))
        _SHARED_BUFFERS[key] = (self.comm, win, views)  # the communicator is held: its id stays unique
        return views

    def close(self):
        """Free the shared-memory windows of every slab backend on this communicator (collective);
        those backends cannot transform afterwards (new ones can)."""
        self._plans.clear()
        free_shared_buffers(self.comm)

    def _exchange(self, plan, send_counts, recv_counts):
        if self.comm.size > 1:
            self.comm.Alltoallv([plan["send"], send_counts], [plan["recv"], recv_counts])

    # --- the three steps ----------------------------------------------------------------------
    def _fft_y(self, plan):
        if self._fftw:
            plan["y_fwd"].execute()
        else:
            import scipy.fft

            plan["rows"][...] = scipy.fft.rfft(plan["real_in"], axis=2, workers=1)

    def _ifft_y(self, plan):
        if self._fftw:
            plan["y_bwd"].execute()
        else:
            import scipy.fft

            plan["real"][...] = scipy.fft.irfft(plan["rows"], n=self.shape[1], axis=2, norm="forward", workers=1)

    def _fft_x(self, plan, inverse: bool):
        key = "cols_in" if inverse else "cols"
        if self._fftw:
            plan["x_bwd" if inverse else "x_fwd"].execute()
        else:
            import scipy.fft

            f = scipy.fft.ifft if inverse else scipy.fft.fft
            plan[key][...] = f(plan[key], axis=1, norm="forward" if inverse else "backward", workers=1)

    def _block(self, buf, counts_displs, rank, shape):
        """Rank ``rank``'s block of a flat exchange buffer, as an array of ``shape``."""
        start = counts_displs[1][rank]
        return buf[start: start + int(np.prod(shape))].reshape(shape)

    def _rows_to_cols(self, plan):
        """(k, nx/p, nyc) rows of this rank -> (k, nx, w) columns of this rank, through one Alltoallv
        (this rank's own block copied directly)."""
        k, me = plan["k"], self.comm.rank
        rows, cols = plan["rows"], plan["cols"]
        nxl, w = rows.shape[1], cols.shape[2]
        if self.exchange == "shared":
            self.comm.Barrier()  # every rank's rows are written
            for s, r in enumerate(self._rows):
                cols[:, r, :] = plan["peer_rows"][s][:, :, self._cols[me]]
            self.comm.Barrier()  # and read: no rank writes its rows again before
            return
        for d, c in enumerate(self._cols):
            if d != me:
                self._block(plan["send"], plan["fwd_send"], d, (k, nxl, c.stop - c.start))[...] = rows[:, :, c]
        self._exchange(plan, plan["fwd_send"], plan["fwd_recv"])
        for s, r in enumerate(self._rows):
            cols[:, r, :] = rows[:, :, self._cols[me]] if s == me else \
                self._block(plan["recv"], plan["fwd_recv"], s, (k, nxl, w))

    def _cols_to_rows(self, plan):
        """The inverse exchange: (k, nx, w) columns -> (k, nx/p, nyc) rows."""
        k, me = plan["k"], self.comm.rank
        rows, cols = plan["rows"], plan["cols_in"]
        nxl, w = rows.shape[1], cols.shape[2]
        if self.exchange == "shared":
            self.comm.Barrier()
            for s, c in enumerate(self._cols):
                rows[:, :, c] = plan["peer_cols_in"][s][:, self._rows[me], :]
            self.comm.Barrier()
            return
        for d, r in enumerate(self._rows):
            if d != me:
                self._block(plan["send"], plan["bwd_send"], d, (k, nxl, w))[...] = cols[:, r, :]
        self._exchange(plan, plan["bwd_send"], plan["bwd_recv"])
        for s, c in enumerate(self._cols):
            rows[:, :, c] = cols[:, self._rows[me], :] if s == me else \
                self._block(plan["recv"], plan["bwd_recv"], s, (k, nxl, c.stop - c.start))

    # --- the backend interface ------------------------------------------------------------------
    # the hot path fills the plans' own input buffers (no copy in), as the serial FFTW backend's
    def spectral_buffer(self, lead=()):
        plan = self._plan(tuple(lead))
        return plan["cols_in"].reshape(tuple(lead) + plan["cols_in"].shape[1:])

    def real_buffer(self, lead=()):
        plan = self._plan(tuple(lead))
        return plan["real_in"].reshape(tuple(lead) + plan["real_in"].shape[1:])

    @staticmethod
    def _fill(buf, a):
        """Copy ``a`` into a plan buffer unless it is that buffer (or a view of all of it)."""
        if not (a.ctypes.data == buf.ctypes.data and a.size == buf.size and a.flags.c_contiguous):
            buf[...] = a.reshape(buf.shape)

    def forward_view(self, field, columns: int | None = None):
        lead = tuple(field.shape[:-2])
        plan = self._plan(lead)
        self._fill(plan["real_in"], field)
        self._fft_y(plan)
        self._rows_to_cols(plan)
        self._fft_x(plan, inverse=False)
        return plan["cols"].reshape(lead + plan["cols"].shape[1:])

    def backward_unscaled(self, spectrum):
        lead = tuple(spectrum.shape[:-2])
        plan = self._plan(lead)
        self._fill(plan["cols_in"], spectrum)
        self._fft_x(plan, inverse=True)
        self._cols_to_rows(plan)
        self._ifft_y(plan)
        return plan["real"].reshape(lead + plan["real"].shape[1:])

    allsum, allmax = MPIBackend.allsum, MPIBackend.allmax  # the same reductions over self.comm
    allsum_array, allmax_array = MPIBackend.allsum_array, MPIBackend.allmax_array


#: the distributed transform: "slab" (SlabBackend, ours) or "mpi4py-fft" (MPIBackend)
MPI_TRANSFORMS = ("slab", "mpi4py-fft")


def mpi_transform() -> str:
    """FLEXCOUPLE_MPI_TRANSFORM, "slab" by default (the faster one, see benchmarks/bench_solver.py)."""
    name = os.environ.get("FLEXCOUPLE_MPI_TRANSFORM", "slab")
    if name not in MPI_TRANSFORMS:
        raise ValueError(f"FLEXCOUPLE_MPI_TRANSFORM={name!r}: choose one of {', '.join(MPI_TRANSFORMS)}")
    return name


#: how SlabBackend moves blocks between ranks: "shared" (one node) or "alltoallv"; "auto" picks
MPI_EXCHANGES = ("auto", "shared", "alltoallv")


def mpi_exchange(comm) -> str:
    """FLEXCOUPLE_MPI_EXCHANGE for ``comm`` (collective): "auto" (the default) is "shared" when all
    ranks share one node's memory, else "alltoallv"; "shared" insists (an error across nodes)."""
    name = os.environ.get("FLEXCOUPLE_MPI_EXCHANGE", "auto").strip().lower() or "auto"
    if name not in MPI_EXCHANGES:
        raise ValueError(f"FLEXCOUPLE_MPI_EXCHANGE={name!r}: choose one of {', '.join(MPI_EXCHANGES)}")
    if name == "alltoallv" or comm.size == 1:
        return "alltoallv"
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    one_node = comm.allreduce(node.size, op=MPI.MIN) == comm.size
    node.Free()
    if one_node:
        return "shared"
    if name == "shared":
        raise ValueError("FLEXCOUPLE_MPI_EXCHANGE=shared needs every rank on one node; these ranks span "
                         "several: unset it (auto picks alltoallv)")
    return "alltoallv"


def make_backend(name: str, shape, real_dtype, comm=None, threads: int | None = None) -> FFTBackend:
    """Build the FFT backend ``name`` for real fields of ``shape``; distributed when ``comm`` has >1 rank."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if threads is not None and (not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1 (FFT threads per process), got {threads!r}")
    if comm is not None and comm.size > 1:
        if name == "cupy":
            raise ValueError("the cupy backend does not run under MPI here; use numpy, scipy or pyfftw with comm")
        cls = SlabBackend if mpi_transform() == "slab" else MPIBackend
        return cls(shape, real_dtype, comm, serial_backend=name, threads=threads)
    cls = {"numpy": NumpyBackend, "scipy": ScipyBackend, "pyfftw": PyFFTWBackend, "cupy": CupyBackend}[name]
    return cls(shape, real_dtype, threads=threads)
