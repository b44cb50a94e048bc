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

from solver import diagnostics
from solver.backends import make_backend
from solver.equations import VorticityEquation
from solver.grid import TWO_PI, SpectralGrid
from solver.mpi import agree
from solver.physics import FlowSpec
from solver.time_stepping import ETDRK4, adaptive_step


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
        self.xp = self.backend.xp
        self.equation = eq = VorticityEquation(self.spectral, self.backend, flow)
        self.linear = eq.linear
        self.pressure_gradient = eq.pressure_gradient
        self.solid_fraction = eq.solid_fraction
        self.kernels = eq.kernels
        self._stepper = ETDRK4(self.linear, eq.explicit, xp=self.xp, dtype=self.backend.real_dtype,
                               factor=-self.spectral.dealias_np, fused=self.kernels == "numba")
        # N(v) of each step's first stage, computed before the step to choose dt from the CFL bound
        self._nv_buffer = self.xp.empty(self.backend.local_spectral_shape, dtype=self.backend.complex_dtype)
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
        return self.equation.spectral_of(omega)

    def to_physical(self, spec):
        return self.equation.physical_of(spec)

    @property
    def mean_velocity(self) -> np.ndarray:
        """(U, V): the mean flow of penalised runs (the vorticity does not carry it)."""
        return self.equation.mean_velocity

    @mean_velocity.setter
    def mean_velocity(self, value) -> None:
        self.equation.mean_velocity = np.asarray(value, dtype=np.float64).copy()

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
        eq = self.equation
        eps = 1e-12 * max(1.0, abs(t1))
        h_current = stats.h_adaptive
        while t1 - t > eps:
            nv = eq.explicit(w_hat, record_speed=True, out=self._nv_buffer)
            speed = eq.speed
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
            eq.advance_mean_flow(h)
            if eq.solid_fraction is not None:
                w_hat = eq.penalise(w_hat, h)
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
            self.mean_velocity = mean_velocity
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
        return self.to_physical(self.to_spectral(omega) * self.equation.inv_k2)

    def velocity(self, omega):
        """(u, v) with u = d psi/dy + U, v = -d psi/dx + V (U, V the mean flow of penalised runs)."""
        u, v = self.equation.velocity_fluctuation(self.to_spectral(omega))
        return self.spectral.restrict(u) + self.mean_velocity[0], self.spectral.restrict(v) + self.mean_velocity[1]

    def energy(self, omega) -> float:
        """E = <|u|^2> / 2 per unit area (mean flow included)."""
        return diagnostics.energy(self.equation, self.to_spectral(omega))

    def enstrophy(self, omega) -> float:
        """Z = <omega^2> / 2."""
        return diagnostics.enstrophy(self.equation, self.to_spectral(omega))

    def palinstrophy(self, omega) -> float:
        """P = <|grad omega|^2> / 2."""
        return diagnostics.palinstrophy(self.equation, self.to_spectral(omega))

    def spectrum(self, omega):
        """Isotropic energy spectrum: (k, E(k)) with shells |k| in [k - 1/2, k + 1/2), sum E = energy."""
        return diagnostics.spectrum(self.equation, self.to_spectral(omega))

    def cfl_number(self, omega, dt: float) -> float:
        """dt (max|u|/dx + max|v|/dy)."""
        return dt * self.equation.speed_bound(*self.velocity(omega))

    def divergence(self, omega) -> float:
        """max |div u| computed spectrally (zero to round-off by construction)."""
        return diagnostics.divergence(self.equation, self.to_spectral(omega))

    def energy_budget(self, omega) -> dict:
        """Terms of dE/dt = -2 nu Z - 2 alpha E + <u . f> (periodic / free-slip, no solids)."""
        return diagnostics.energy_budget(self.equation, self.to_spectral(omega))

    def enstrophy_budget(self, omega) -> dict:
        """Terms of dZ/dt = -2 nu P - 2 alpha Z + <omega curl f> (periodic / free-slip, no solids)."""
        return diagnostics.enstrophy_budget(self.equation, self.to_spectral(omega))

    def tendency(self, omega):
        """d omega / dt at ``omega``: -u . grad omega + nu lap omega - alpha omega + curl f (dealiased;
        the penalisation of solids is not included). For consistency checks of external fields."""
        return self.to_physical(self.equation.tendency(self.to_spectral(omega)))

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
            "pressure_gradient": self.pressure_gradient if self.equation.mean_flow_free else None,
            "inflow_velocity": (float(self.flow.inflow_velocity) if self.penalised and not self.equation.mean_flow_free
                                else None),
            "forcing_wavenumber": self.forcing_wavenumber, "forcing_amplitude": self.forcing_amplitude,
            "ranks": 1 if self.comm is None else self.comm.size, "integrator": "ETDRK4",
        }
