r"""Pseudo-spectral 2D incompressible Navier-Stokes in vorticity-streamfunction form.

On [0, 2 pi)^2 (or a free-slip channel, or with penalised solids), with nu = 1 / Re:

    d omega / dt + u . grad(omega) = nu lap(omega) - alpha omega + curl(f)
                                     [ - curl( chi / eta (u - u_s) ) ]     (Brinkman penalisation)
    lap(psi) = -omega,    u = (d psi / dy, -d psi / dx).

Space: Fourier series, advection evaluated pseudo-spectrally in Basdevant's form
(d_xx - d_yy)(uv) + d_xy(v^2 - u^2), from 2 inverse FFTs (u, v) and 2 forward FFTs (uv, v^2 - u^2),
with the 2/3 rule. Time: ETDRK4 (the viscous and drag terms exactly, advection and forcing at fourth
order), adaptive CFL step or a fixed one, output times hit exactly. Penalisation is applied implicitly after each step (first-order splitting,
unconditionally stable; its accuracy needs dt <~ eta, which the default step limit enforces).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from solver import boundaries, forcings, kernels
from solver.backends import make_backend
from solver.grid import TWO_PI, SpectralGrid
from solver.mpi import agree
from solver.physics import FlowSpec
from solver.time_stepping import ETDRK4, adaptive_step, phi_functions


class SolverBlowUp(RuntimeError):
    """The solution became non-finite or the time step collapsed."""


@dataclass
class RunStats:
    steps: int = 0
    dt_min: float = math.inf
    dt_max: float = 0.0
    dt_sum: float = 0.0
    cfl_max: float = 0.0
    wall_time_s: float = 0.0
    h_adaptive: float | None = None  # the adaptive step in use, carried between output times of one run

    def record(self, dt: float, cfl: float, landing: bool = False):
        """``landing``: a step shortened to land on an output time; it is counted, but it does not
        set dt_min (which then says what the stability bound allowed)."""
        dt, cfl = float(dt), float(cfl)
        self.steps += 1
        if not landing:
            self.dt_min = min(self.dt_min, dt)
        self.dt_max = max(self.dt_max, dt)
        self.dt_sum += dt
        self.cfl_max = max(self.cfl_max, cfl)

    def as_dict(self) -> dict:
        return {
            "steps": self.steps,
            "dt_min": self.dt_min if self.steps and math.isfinite(self.dt_min) else self.dt_max or None,
            "dt_mean": self.dt_sum / self.steps if self.steps else None,
            "dt_max": self.dt_max if self.steps else None,
            "cfl_max": self.cfl_max,
            "wall_time_s": self.wall_time_s,
        }


class NavierStokes2D:
    """2D incompressible Navier-Stokes, pseudo-spectral, ETDRK4.

    Parameters
    ----------
    n : even grid size (n x n), >= 8.
    reynolds : Re > 0, nu = 1 / Re (``math.inf`` for an inviscid run).
    forcing : None, "kolmogorov" (f = (A sin(k_f y), 0)), or an (n, n) array of curl(f).
    forcing_wavenumber, forcing_amplitude : k_f and A of the Kolmogorov forcing.
    drag : linear drag alpha >= 0.
    boundary : "periodic"; "free-slip" (walls at y = 0 and y = 2 pi, exact sine series); penalised
        no-slip solids "channel" (walls of ``wall_thickness`` at y = 0 / 2 pi, driven by
        ``pressure_gradient``), "cylinder", "square" (an obstacle of size ``obstacle_size`` at
        ``obstacle_center`` in a free stream ``inflow_velocity`` with an outflow sponge); or a float
        array (n, n) of the solid fraction chi in [0, 1] (user mask, free stream ``inflow_velocity``).
    backend : "numpy", "scipy", "pyfftw" or "cupy".
    dtype : "float64" (default) or "float32".
    comm : an mpi4py communicator; with >1 rank each rank holds a slab of axis 0 (solver.backends.SlabBackend).
    dealias : 2/3-rule dealiasing of the advection term (default True).
    cfl : target CFL number dt * max(|u|/dx + |v|/dy) for the adaptive step.
    max_dt : upper bound on the adaptive step (default: eta for penalised boundaries, else none).
    penalization : eta of the Brinkman term.

    The flow settings are checked by :class:`solver.physics.FlowSpec` (every problem in one
    ValueError) and kept as ``self.flow``.
    """

    def __init__(
        self,
        n: int,
        reynolds: float,
        *,
        forcing=None,
        forcing_wavenumber: int = 4,
        forcing_amplitude: float = 1.0,
        drag: float = 0.0,
        boundary="periodic",
        backend: str = "numpy",
        dtype: str = "float64",
        comm=None,
        dealias: bool = True,
        cfl: float = 0.5,
        max_dt: float | None = None,
        penalization: float = 1e-2,
        wall_thickness: float = TWO_PI / 8,
        pressure_gradient: float = 0.0,
        obstacle_center=(TWO_PI / 4, math.pi),
        obstacle_size: float = math.pi / 8,
        inflow_velocity: float = 1.0,
        sponge_length: float = TWO_PI / 8,
        sponge_eta: float = 0.1,
        threads: int | None = None,
    ):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 8 or n % 2:
            raise ValueError(f"n must be an even integer >= 8 (FFT grid size), got {n!r}")
        n = int(n)
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        flow = FlowSpec(
            reynolds=reynolds, forcing=forcing, forcing_wavenumber=forcing_wavenumber,
            forcing_amplitude=forcing_amplitude, drag=drag, boundary=boundary, pressure_gradient=pressure_gradient,
            inflow_velocity=inflow_velocity, wall_thickness=wall_thickness, obstacle_center=obstacle_center,
            obstacle_size=obstacle_size, sponge_length=sponge_length, sponge_eta=sponge_eta,
            penalization=penalization, dealias=dealias, cfl=cfl, max_dt=max_dt).validate(n)
        self.flow = flow
        reynolds = float(reynolds)
        kind = flow.boundary_kind
        mask_array = None if kind != "mask" else np.asarray(boundary, dtype=np.float64)

        self.n = n
        self.reynolds = reynolds
        self.nu = 0.0 if math.isinf(reynolds) else 1.0 / reynolds
        self.drag = float(drag)
        self.boundary = kind
        self.dtype = dtype
        self.cfl = float(cfl)
        self.penalization = float(penalization)
        self.penalised = flow.penalised
        self.max_dt = float(max_dt) if max_dt is not None else (self.penalization if self.penalised else None)
        self.forcing_wavenumber = forcing_wavenumber
        self.forcing_amplitude = forcing_amplitude

        free_slip = kind == "free-slip"
        shape = (n, 2 * n if free_slip else n)
        self.backend = make_backend(backend, shape, dtype, comm=comm, threads=threads)
        self.backend_name = backend
        self.comm = comm
        self.spectral = SpectralGrid(n, self.backend, free_slip=free_slip, dealias=dealias)
        xp = self.backend.xp
        self.xp = xp
        g = self.spectral
        cdt = self.backend.complex_dtype
        rdt = self.backend.real_dtype

        # spectral operators on the device
        k2 = g.k2_np
        inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        self._ikx = xp.asarray((1j * g.kx_d_np).astype(cdt))
        self._iky = xp.asarray((1j * g.ky_d_np).astype(cdt))
        self._inv_k2 = xp.asarray(inv_k2.astype(rdt))
        # psi = omega / k^2: u_hat = i ky psi_hat, v_hat = -i kx psi_hat
        self._u_from_w = xp.asarray((1j * g.ky_d_np * inv_k2).astype(cdt))
        self._v_from_w = xp.asarray((-1j * g.kx_d_np * inv_k2).astype(cdt))
        scale = 1.0 / (g.nx * g.ny)
        full = g.k2_np.shape
        # (u, v) hat = multipliers * omega hat, the 1/(nx ny) of the inverse FFT folded in
        self._velocity_multipliers = xp.asarray(np.stack([
            np.broadcast_to(1j * g.ky_d_np * inv_k2, full),
            np.broadcast_to(-1j * g.kx_d_np * inv_k2, full)]).astype(cdt) * scale)
        # Basdevant: u . grad omega = (d_xx - d_yy)(uv) + d_xy(v^2 - u^2), in Fourier space
        # (ky^2 - kx^2) FFT(uv) - kx ky FFT(v^2 - u^2) (real, stored complex: see ETDRK4Coefficients)
        self._uv_coefficient = xp.asarray(np.ascontiguousarray(np.broadcast_to(g.ky_np**2 - g.kx_np**2, full)).astype(cdt))
        self._shear_coefficient = xp.asarray(np.ascontiguousarray(np.broadcast_to(-g.kx_np * g.ky_np, full)).astype(cdt))
        self._parseval = xp.asarray(g.parseval_np.astype(rdt))
        self.linear = -self.nu * k2 - self.drag
        self.linear = np.broadcast_to(self.linear, k2.shape)

        # forcing, as a vorticity source in spectral space (and f_x for the energy budget)
        xc, yc = g.computational_coordinates()
        if not flow.forced:
            curl_f = None
        elif isinstance(forcing, str):
            _, curl_f = forcings.kolmogorov(yc, forcing_wavenumber, forcing_amplitude, free_slip=free_slip)
        else:
            curl_f = g.extend(np.asarray(forcing, dtype=np.float64)[self.backend.physical_slice[0]])
        self._forcing_hat = None
        if curl_f is not None:
            self._forcing_hat = self.backend.forward(xp.asarray(curl_f.astype(rdt)))

        # penalisation: solid fraction, sponge, and the mean flow (not carried by the vorticity)
        self.mean_velocity = np.zeros(2)
        self.pressure_gradient = float(pressure_gradient)
        self._mean_flow_free = kind == "channel"
        self._chi = None
        if self.penalised:
            if kind == "mask":
                chi = mask_array[self.backend.physical_slice[0]]
            else:
                chi = boundaries.build_mask(kind, xc, yc, g.dx, wall_thickness=wall_thickness,
                                            center=obstacle_center, size=obstacle_size)
            sponge = None
            if kind != "channel":
                sponge = boundaries.sponge_mask(xc, yc, sponge_length, g.dx)
                self.mean_velocity = np.array([float(inflow_velocity), 0.0])
            self._chi = chi
            self._sponge = sponge
            self._sponge_eta = sponge_eta
        self.solid_fraction = self._chi

        # fused element-wise kernels (numba) on CPU backends: the numpy path's arithmetic in fewer passes
        self.kernels = "numba" if kernels.use_fused(xp) else "numpy"
        if self.kernels == "numba":
            # the velocity multipliers are i mu, i mv: the kernels take mu, mv
            self._fused = {"mu": kernels.real_coefficient(-1j * self._velocity_multipliers[0], rdt),
                           "mv": kernels.real_coefficient(-1j * self._velocity_multipliers[1], rdt),
                           "cu": kernels.real_coefficient(self._uv_coefficient, rdt),
                           "cs": kernels.real_coefficient(self._shear_coefficient, rdt),
                           "f": None if self._forcing_hat is None else kernels.flat(self._forcing_hat)}
        # the explicit terms are dealiased (the mask is folded into the ETDRK4 coefficients), so their
        # forward FFT needs only the columns (ky) up to the last one the mask keeps: the pyfftw backend
        # then skips the others' transforms along x (a third of that pass with the 2/3 rule)
        kept = np.flatnonzero(np.asarray(g.dealias_np).any(axis=0))
        self._dealias_columns = int(kept[-1]) + 1 if (len(kept) and not self.backend.distributed) else None
        self._stepper = ETDRK4(self.linear, self._explicit, xp=xp, dtype=rdt, factor=-g.dealias_np,
                               fused=self.kernels == "numba")
        # N(v) of each step's first stage, computed before the step to choose dt from the CFL bound
        self._nv_buffer = xp.empty(self.backend.local_spectral_shape, dtype=cdt)
        self._speed = 0.0  # max(|u|/dx + |v|/dy) of the last first-stage evaluation
        self.last_stats: dict = RunStats().as_dict()

    # ------------------------------------------------------------------------------------------
    # conversions and validation
    @property
    def local_rows(self) -> slice:
        """The rows (axis 0, x) of the global (n, n) field that this rank holds."""
        return self.backend.physical_slice[0]

    def _field_problem(self, omega, name="omega") -> str | None:
        """What is wrong with this rank's part of a field, or None."""
        expected = self.backend.local_shape if not self.spectral.free_slip else (self.backend.local_shape[0], self.n)
        shape = tuple(omega.shape) if hasattr(omega, "shape") else np.shape(omega)  # lists of lists too
        if shape != tuple(expected):
            where = f" (this rank's slab of a ({self.n}, {self.n}) field)" if self.backend.distributed else ""
            return f"{name} must have shape {tuple(expected)}{where}, got {shape}"
        kind = getattr(getattr(omega, "dtype", None), "kind", None) or np.asarray(omega).dtype.kind
        if kind == "c":
            return f"{name} is complex; the vorticity is a real field (pass its real part explicitly if meant)"
        if kind not in "biuf":
            return f"{name} must be a real numeric array, got dtype kind {kind!r}"
        if not bool(self.xp.all(self.xp.isfinite(self.xp.asarray(omega)))):
            return f"{name} contains NaN or Inf values"
        return None

    def _check_field(self, omega, name="omega"):
        """Refuse a bad field; under MPI every rank refuses together (a NaN in one slab must not leave
        the other ranks waiting in the first FFT)."""
        problem = self._field_problem(omega, name)
        if self.backend.distributed:
            agree(self.comm, problem)
        elif problem is not None:
            raise ValueError(problem)

    def to_spectral(self, omega):
        """Validated vorticity (local slab of the user grid) -> spectrum on the computational grid."""
        self._check_field(omega)
        w = self.xp.asarray(omega, dtype=self.backend.real_dtype)
        spec = self.backend.forward(self.spectral.extend(w))
        if self.spectral.free_slip:
            spec = self.spectral.project_odd(spec)
        return spec

    def to_physical(self, spec):
        return self.spectral.restrict(self.backend.backward(spec))

    # ------------------------------------------------------------------------------------------
    # the equation
    def _explicit(self, w_hat, record_speed: bool = False, out=None):
        """The explicit terms up to the factor -dealias folded into the ETDRK4 coefficients:
        returns FFT(u . grad omega) - curl f, so that N = -dealias * (that).

        Basdevant's form: with div u = 0 and omega = v_x - u_y,
        u . grad omega = d_x(u omega) + d_y(v omega) = (d_xx - d_yy)(uv) + d_xy(v^2 - u^2),
        so the advection needs the inverse FFTs of u and v only and the forward FFTs of uv and
        v^2 - u^2 (4 transforms, each pair through one batched plan, instead of 4 inverse and 1 forward).
        Both forms are the same product on the dealiased modes (tested to round-off).
        """
        xp = self.xp
        be = self.backend
        if self.kernels == "numba":
            fused = self._explicit_fused(w_hat, record_speed, out)
            if fused is not None:
                return fused
        # in place, one ufunc pass per operation, into the FFT plans' own buffers
        stack = be.spectral_buffer((2,))
        xp.multiply(self._velocity_multipliers, w_hat, out=stack)
        phys = be.backward_unscaled(stack)
        u, v = phys[0], phys[1]
        u0, v0 = self.mean_velocity
        if u0:
            u += u0
        if v0:
            v += v0
        if record_speed:
            self._speed = self._speed_bound(u, v)
        products = be.real_buffer((2,))
        xp.multiply(u, v, out=products[0])
        xp.multiply(v, v, out=products[1])
        u *= u
        products[1] -= u
        spec = be.forward_view(products, columns=self._dealias_columns)
        uv_hat, shear_hat = spec[0], spec[1]
        if out is None:
            out = xp.empty(be.local_spectral_shape, dtype=be.complex_dtype)
        xp.multiply(self._uv_coefficient, uv_hat, out=out)
        shear_hat *= self._shear_coefficient
        out += shear_hat
        if self._forcing_hat is not None:
            out -= self._forcing_hat
        return out

    def _explicit_fused(self, w_hat, record_speed: bool, out):
        """``_explicit`` in three compiled passes (velocity; products and speed; the combination), or
        None when an operand is not C-contiguous (a transform handing back strided views): the caller
        then runs the numpy path, which reads them as they are."""
        be = self.backend
        k = self._fused
        flat = kernels.flat
        if out is None:
            out = np.empty(be.local_spectral_shape, dtype=be.complex_dtype)
        stack = be.spectral_buffer((2,))
        w, o = flat(w_hat), flat(out)
        if w is None or o is None or flat(stack) is None:
            return None
        kernels.velocity(k["mu"], k["mv"], w, flat(stack[0]), flat(stack[1]))
        phys = be.backward_unscaled(stack)
        products = be.real_buffer((2,))
        u, v = flat(phys[0]), flat(phys[1])
        p0, p1 = flat(products[0]), flat(products[1])
        if u is None or v is None or p0 is None or p1 is None:
            return None
        # in the field's precision, as numpy's in-place add: a float64 scalar would widen a float32 kernel
        u0, v0 = (be.real_dtype.type(x) for x in self.mean_velocity)
        if record_speed:
            umax, vmax = kernels.products_and_speed(u, v, u0, v0, p0, p1)
            umax, vmax = be.allmax_array([umax, vmax])
            self._speed = umax / self.spectral.dx + vmax / self.spectral.dy
        else:
            kernels.products(u, v, u0, v0, p0, p1)
        spec = be.forward_view(products, columns=self._dealias_columns)
        uv_hat, shear_hat = flat(spec[0]), flat(spec[1])
        if uv_hat is None or shear_hat is None:
            return None
        if k["f"] is None:
            kernels.combine(k["cu"], k["cs"], uv_hat, shear_hat, o)
        else:
            kernels.combine_forced(k["cu"], k["cs"], uv_hat, shear_hat, k["f"], o)
        return out

    def _velocity_fluctuation(self, w_hat):
        """(u, v) - (U, V) on the computational grid, from the vorticity spectrum."""
        uv = self.backend.backward(self.xp.stack([self._u_from_w * w_hat, self._v_from_w * w_hat]))
        return uv[0], uv[1]

    def _penalise(self, w_hat, h: float):
        """Implicit Brinkman step u <- (u + h chi/eta u_s) / (1 + h chi/eta), then omega = curl u.

        Solids have u_s = 0; the sponge relaxes towards the free stream (U, 0).
        """
        xp = self.xp
        u0, v0 = self.mean_velocity
        u, v = self._velocity_fluctuation(w_hat)
        u, v = u + u0, v + v0
        rate = (h / self.penalization) * self._chi
        target_u = 0.0
        if self._sponge is not None:
            s = (h / self._sponge_eta) * self._sponge
            target_u = s * u0
            rate = rate + s
        denom = 1.0 / (1.0 + rate)
        u = (u + target_u) * denom
        v = v * denom
        uv_hat = self.backend.forward(xp.stack([u, v]))
        if self._mean_flow_free:
            # the k = 0 mode of the penalised velocity is the new mean flow
            n_total = self.spectral.nx * self.spectral.ny
            means = np.zeros(2)
            if self.backend.spectral_slice[0].start == 0 and self.backend.spectral_slice[1].start == 0:
                means = self.backend.to_numpy(uv_hat[:, 0, 0].real) / n_total
            self.mean_velocity = self.backend.allsum_array(np.asarray(means, dtype=np.float64))
        return self._ikx * uv_hat[1] - self._iky * uv_hat[0]

    def _advance_mean_flow(self, h: float):
        """dU/dt = G - alpha U (pressure-gradient-driven channel), exactly over a step."""
        if not self._mean_flow_free:
            return
        z = -self.drag * h
        phi1 = float(phi_functions(np.array([z]))[0][0])
        u0 = self.mean_velocity[0] * math.exp(z) + h * phi1 * self.pressure_gradient
        self.mean_velocity = np.array([u0, self.mean_velocity[1] * math.exp(z)])

    # ------------------------------------------------------------------------------------------
    # time integration
    def _integrate(self, w_hat, t0: float, t1: float, dt: float | None, stats: RunStats):
        # an infinite end would end the loop at once (its tolerance is infinite too): nothing integrated
        if not (math.isfinite(t0) and math.isfinite(t1)):
            raise ValueError(f"the start time ({t0}) and t_end ({t1}) must be finite numbers")
        if not t1 >= t0:
            raise ValueError(f"t_end ({t1}) must not be before the start time ({t0})")
        if dt is not None and not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"dt must be a positive finite number, got {dt!r}")
        # a run that blows up is reported by SolverBlowUp (with the time and the CFL number), not by
        # numpy's overflow warnings on the way
        with np.errstate(over="ignore", invalid="ignore"):
            return self._steps(w_hat, t0, t1, dt, stats)

    def _steps(self, w_hat, t: float, t1: float, dt: float | None, stats: RunStats):
        eps = 1e-12 * max(1.0, abs(t1))
        h_current = stats.h_adaptive
        while t1 - t > eps:
            nv = self._explicit(w_hat, record_speed=True, out=self._nv_buffer)
            speed = self._speed
            if not math.isfinite(speed):
                raise SolverBlowUp(
                    f"the solution blew up (non-finite velocity) at t = {t:.6g} after a step with "
                    f"CFL number {stats.cfl_max:.3g}; use a smaller dt or cfl, or a finer grid")
            if dt is not None:
                h = dt
            else:
                h = h_current = adaptive_step(speed, t1 - t, h_current, self.cfl, self.max_dt)
            if h < 1e-12 * max(1.0, t1):
                raise SolverBlowUp(f"the time step collapsed to {h:.3g} at t = {t:.6g} (max speed {speed:.3g})")
            landing = t1 - t < h
            h = min(h, t1 - t)
            w_hat = self._stepper.step(w_hat, h, nv=nv)
            self._advance_mean_flow(h)
            if self._chi is not None:
                w_hat = self._penalise(w_hat, h)
            if self.spectral.free_slip:
                w_hat = self.spectral.project_odd(w_hat)
            stats.record(h, h * speed, landing=landing)
            t += h
        stats.h_adaptive = h_current
        # the last step's state is checked too
        local_bad = not bool(self.xp.all(self.xp.isfinite(w_hat)))
        if self.backend.allmax(1.0 if local_bad else 0.0) > 0:  # all ranks raise together
            raise SolverBlowUp(f"the solution blew up (non-finite vorticity) by t = {t1:.6g}, CFL max {stats.cfl_max:.3g}")
        return w_hat

    def advance(self, omega, t_end: float, dt: float | None = None, *, t_start: float = 0.0, mean_velocity=None):
        """Integrate from ``t_start`` (default 0) to ``t_end``; returns the vorticity at t_end.

        ``dt`` None: adaptive step at the target CFL number; otherwise the fixed step dt (the last
        step is shortened to land on t_end). ``mean_velocity`` sets (U, V) for penalised flows.
        """
        if mean_velocity is not None:
            self.mean_velocity = np.asarray(mean_velocity, dtype=np.float64).copy()
        stats = RunStats()
        start = time.perf_counter()
        w_hat = self._integrate(self.to_spectral(omega), float(t_start), float(t_end), dt, stats)
        out = self.to_physical(w_hat)
        stats.wall_time_s = time.perf_counter() - start
        self.last_stats = stats.as_dict()
        return out

    def trajectory(self, omega0, times, dt: float | None = None, *, callback=None):
        """Snapshots at each of ``times`` (increasing, >= 0; integration starts at t = 0), hit exactly.

        Returns an array (len(times), *omega0.shape). ``callback(i, t, omega)`` is called per snapshot.
        """
        times = np.asarray(times, dtype=np.float64)
        if times.ndim != 1 or len(times) == 0 or np.any(np.diff(times) < 0) or times[0] < 0:
            raise ValueError("times must be a non-empty, non-decreasing 1D sequence of times >= 0")
        stats = RunStats()
        start = time.perf_counter()
        w_hat = self.to_spectral(omega0)
        out = []
        t = 0.0
        for i, t_next in enumerate(times):
            w_hat = self._integrate(w_hat, t, float(t_next), dt, stats)
            t = float(t_next)
            snap = self.to_physical(w_hat)
            out.append(self.backend.to_numpy(snap))
            if callback is not None:
                callback(i, t, snap)
        stats.wall_time_s = time.perf_counter() - start
        self.last_stats = stats.as_dict()
        return np.stack(out)

    # ------------------------------------------------------------------------------------------
    # diagnostics (global values under MPI; fields are this rank's slab)
    def grid(self):
        """(x, y) of this rank's part of the grid, meshgrid indexing 'ij' (x_i = 2 pi i / n)."""
        return self.spectral.coordinates()

    def streamfunction(self, omega):
        return self.to_physical(self.to_spectral(omega) * self._inv_k2)

    def velocity(self, omega):
        """(u, v) with u = d psi/dy + U, v = -d psi/dx + V (U, V the mean flow of penalised runs)."""
        u, v = self._velocity_fluctuation(self.to_spectral(omega))
        return self.spectral.restrict(u) + self.mean_velocity[0], self.spectral.restrict(v) + self.mean_velocity[1]

    def _mean_square(self, spec) -> float:
        """Domain mean of f^2 from the half spectrum of f (Parseval), over all ranks."""
        xp = self.xp
        n_total = self.spectral.nx * self.spectral.ny
        local = float(xp.sum(self._parseval * (spec.real**2 + spec.imag**2)))
        return self.backend.allsum(local) / n_total**2

    def energy(self, omega) -> float:
        """E = <|u|^2> / 2 per unit area (mean flow included)."""
        w_hat = self.to_spectral(omega)
        fluct = 0.5 * self._mean_square(w_hat * self.xp.sqrt(self._inv_k2))
        return fluct + 0.5 * float(np.sum(self.mean_velocity**2))

    def enstrophy(self, omega) -> float:
        """Z = <omega^2> / 2."""
        return 0.5 * self._mean_square(self.to_spectral(omega))

    def palinstrophy(self, omega) -> float:
        """P = <|grad omega|^2> / 2."""
        w_hat = self.to_spectral(omega)
        return 0.5 * (self._mean_square(self._ikx * w_hat) + self._mean_square(self._iky * w_hat))

    def spectrum(self, omega):
        """Isotropic energy spectrum: (k, E(k)) with shells |k| in [k - 1/2, k + 1/2), sum E = energy."""
        xp = self.xp
        w_hat = self.to_spectral(omega)
        n_total = self.spectral.nx * self.spectral.ny
        dens = 0.5 * self.backend.to_numpy(self._parseval * (w_hat.real**2 + w_hat.imag**2) * self._inv_k2)
        dens = dens / n_total**2
        kmag = np.sqrt(self.spectral.k2_np)
        kmax = int(np.ceil(np.sqrt(2) * self.n / 2)) + 1
        shells = np.rint(kmag).astype(int).ravel()
        e = np.bincount(shells, weights=np.broadcast_to(dens, kmag.shape).ravel(), minlength=kmax)[:kmax]
        e = self.backend.allsum_array(e)
        return np.arange(kmax, dtype=np.float64), e

    def _speed_bound(self, u, v) -> float:
        """max|u| / dx + max|v| / dy over all ranks (CFL number = dt times this)."""
        xp = self.xp
        # max |u| as max(max u, -min u): two reductions, no temporary array
        umax, vmax = self.backend.allmax_array([max(float(xp.max(u)), -float(xp.min(u))),
                                                max(float(xp.max(v)), -float(xp.min(v)))])
        return umax / self.spectral.dx + vmax / self.spectral.dy

    def cfl_number(self, omega, dt: float) -> float:
        """dt (max|u|/dx + max|v|/dy)."""
        return dt * self._speed_bound(*self.velocity(omega))

    def divergence(self, omega) -> float:
        """max |div u| computed spectrally (zero to round-off by construction)."""
        w_hat = self.to_spectral(omega)
        div_hat = self._ikx * (self._u_from_w * w_hat) + self._iky * (self._v_from_w * w_hat)
        div = self.backend.backward(div_hat)
        return self.backend.allmax(float(self.xp.max(self.xp.abs(div))))

    def energy_budget(self, omega) -> dict:
        """Terms of dE/dt = -2 nu Z - 2 alpha E + <u . f> (periodic / free-slip, no solids)."""
        e, z = self.energy(omega), self.enstrophy(omega)
        injection = 0.0
        if self._forcing_hat is not None:
            # <u . f> = <psi curl f> (integration by parts on the periodic / odd-extended box)
            w_hat = self.to_spectral(omega)
            psi_f = (w_hat * self._inv_k2).conj() * self._forcing_hat
            n_total = self.spectral.nx * self.spectral.ny
            injection = self.backend.allsum(float(self.xp.sum(self._parseval * psi_f.real))) / n_total**2
        dissipation = -2.0 * self.nu * z
        damping = -2.0 * self.drag * e
        return {"dE_dt": dissipation + damping + injection, "viscous": dissipation, "drag": damping,
                "injection": injection, "energy": e, "enstrophy": z}

    def enstrophy_budget(self, omega) -> dict:
        """Terms of dZ/dt = -2 nu P - 2 alpha Z + <omega curl f> (periodic / free-slip, no solids)."""
        z, p = self.enstrophy(omega), self.palinstrophy(omega)
        injection = 0.0
        if self._forcing_hat is not None:
            w_hat = self.to_spectral(omega)
            n_total = self.spectral.nx * self.spectral.ny
            local = float(self.xp.sum(self._parseval * (w_hat.conj() * self._forcing_hat).real))
            injection = self.backend.allsum(local) / n_total**2
        return {"dZ_dt": -2.0 * self.nu * p - 2.0 * self.drag * z + injection, "viscous": -2.0 * self.nu * p,
                "drag": -2.0 * self.drag * z, "injection": injection, "enstrophy": z, "palinstrophy": p}

    def tendency(self, omega):
        """d omega / dt at ``omega``: -u . grad omega + nu lap omega - alpha omega + curl f (dealiased;
        the penalisation of solids is not included). For consistency checks of external fields."""
        w_hat = self.to_spectral(omega)
        rhs = self.xp.asarray(self.linear) * w_hat - self.xp.asarray(self.spectral.dealias_np) * self._explicit(w_hat)
        return self.to_physical(rhs)

    def is_finite(self, omega) -> bool:
        local = bool(self.xp.all(self.xp.isfinite(self.xp.asarray(omega))))
        return self.backend.allmax(0.0 if local else 1.0) == 0.0

    def settings(self) -> dict:
        """The solver's settings, for provenance records."""
        return {
            "n": self.n, "reynolds": self.reynolds, "nu": self.nu, "drag": self.drag,
            "boundary": self.boundary, "backend": self.backend_name, "dtype": self.dtype,
            "dealias": bool(self.spectral.cutoff_mode < self.spectral.nx / 2), "cfl": self.cfl, "max_dt": self.max_dt,
            "penalization": self.penalization if self.penalised else None,
            "forcing": self.flow.forcing_name,
            "pressure_gradient": self.pressure_gradient if self._mean_flow_free else None,
            "inflow_velocity": float(self.flow.inflow_velocity) if self.penalised and not self._mean_flow_free else None,
            "forcing_wavenumber": self.forcing_wavenumber, "forcing_amplitude": self.forcing_amplitude,
            "ranks": 1 if self.comm is None else self.comm.size, "integrator": "ETDRK4",
        }
