r"""``FlowSpec``: what the solver integrates, checked once for every entry point.

The solver, ``flexcouple simulate``, the data-set config and the hybrid-run config all describe
their flow with this one specification, so they accept the same settings by the same rules and
hand the solver the same keyword arguments (:meth:`FlowSpec.solver_kwargs`).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from solver import boundaries
from solver.grid import TWO_PI

BOUNDARIES = ("periodic", "free-slip") + boundaries.PENALISED
FORCINGS = ("kolmogorov", "none")


@dataclass(frozen=True)
class FlowSpec:
    r"""The flow and the numerical settings that change its solution, with nu = 1 / Re:

        d omega / dt + u . grad(omega) = nu lap(omega) - alpha omega + curl(f)
                                         - curl( chi / eta (u - u_s) ),
        lap(psi) = -omega,   u = (d psi / dy, -d psi / dx) + (U, V),

    Kolmogorov forcing f = (A sin(k_f y), 0) (free-slip walls: (A cos(k_f y), 0)), linear drag alpha.
    Penalised solids chi in [0, 1] with permeability eta: ``channel`` walls of ``wall_thickness`` at
    y = 0 / 2 pi, whose mean flow obeys dU/dt = G - alpha U (G = ``pressure_gradient``); ``cylinder``
    and ``square`` obstacles (``obstacle_size`` at ``obstacle_center``) in the free stream
    U = ``inflow_velocity``, relaxed back to it in an outflow sponge (``sponge_length``,
    ``sponge_eta``). ``dealias``: the 2/3 rule on the advection term; ``cfl`` the adaptive step's
    target dt (|u|/dx + |v|/dy); ``max_dt`` its upper bound (None: eta for penalised flows).

    ``forcing`` may also be an (n, n) array of curl(f), ``boundary`` an (n, n) solid-fraction mask
    (Python only; configs name them).
    """

    reynolds: float = 1000.0
    forcing: Any = "none"                  # kolmogorov | none, or an (n, n) array of curl f
    forcing_wavenumber: int = 4
    forcing_amplitude: float = 1.0
    drag: float = 0.0
    boundary: Any = "periodic"             # one of BOUNDARIES, or an (n, n) solid-fraction mask
    pressure_gradient: float = 0.0
    inflow_velocity: float = 1.0
    wall_thickness: float = TWO_PI / 8
    obstacle_center: tuple = (TWO_PI / 4, math.pi)
    obstacle_size: float = math.pi / 8
    sponge_length: float = TWO_PI / 8
    sponge_eta: float = 0.1
    penalization: float = 1e-2
    dealias: bool = True
    cfl: float = 0.5
    max_dt: float | None = None

    def __post_init__(self):
        if self.forcing is None:  # the solver's keyword says None, configs say "none"
            object.__setattr__(self, "forcing", "none")

    # ------------------------------------------------------------------------------------------
    @property
    def forcing_name(self) -> str:
        """The forcing's name, or "array" for a curl(f) array."""
        return self.forcing if isinstance(self.forcing, str) else "array"

    @property
    def forced(self) -> bool:
        return self.forcing_name != "none"

    @property
    def boundary_kind(self) -> str:
        """The boundary's name, or "mask" for a solid-fraction array."""
        return self.boundary if isinstance(self.boundary, str) else "mask"

    @property
    def penalised(self) -> bool:
        return self.boundary_kind in boundaries.PENALISED or self.boundary_kind == "mask"

    def problems(self, n: int | None = None, *, labels: dict[str, str] | None = None,
                 grid: str | None = None) -> list[str]:
        """Every impossible setting, one message each (empty: valid). ``n``: the grid the solver
        runs on (for the forcing's resolution and array shapes); ``labels``: the name a message
        gives each field (a config's TOML key); ``grid``: how messages name that grid."""
        name = {f.name: f.name for f in dataclasses.fields(self)} | dict(labels or {})
        grid = grid or f"n = {n}"
        out: list[str] = []

        def need(field: str, ok: bool, what: str):
            if not ok:
                out.append(f"{name[field]} must be {what}, got {getattr(self, field)!r}")

        need("reynolds", _real(self.reynolds) and self.reynolds > 0,
             "a positive number (the Reynolds number, nu = 1/Re)")
        if isinstance(self.forcing, str):
            if self.forcing not in FORCINGS:
                out.append(f"{name['forcing']} {self.forcing!r} is unknown: choose one of {', '.join(FORCINGS)} "
                           "(in Python also None or an (n, n) array of curl f)")
        else:
            out += _array_problems(self.forcing, n, f"a {name['forcing']} array (curl f)", "finite values")
        need("forcing_wavenumber", _integer(self.forcing_wavenumber) and self.forcing_wavenumber >= 1,
             "an integer >= 1 (k_f of the Kolmogorov forcing; 0 would force nothing)")
        if (self.forcing_name == "kolmogorov" and _integer(self.forcing_wavenumber) and self.forcing_wavenumber >= 1
                and _integer(n) and isinstance(self.dealias, (bool, np.bool_))):
            kept, rule = (n / 3, "the dealiased grid keeps |k| < n/3") if self.dealias else \
                (n // 2, "without dealiasing the grid keeps |k| < n/2")
            if self.forcing_wavenumber >= kept:
                out.append(f"{name['forcing_wavenumber']} = {self.forcing_wavenumber} is not resolved on {grid} "
                           f"({rule} = {kept:.1f}; it would alias onto another mode): use a larger grid or a "
                           "smaller wavenumber")
        need("forcing_amplitude", _finite(self.forcing_amplitude), "a finite number")
        need("drag", _finite(self.drag) and self.drag >= 0, "a finite number >= 0 (linear drag alpha)")
        if isinstance(self.boundary, str):
            if self.boundary not in BOUNDARIES:
                out.append(f"{name['boundary']} {self.boundary!r} is unknown: choose one of {', '.join(BOUNDARIES)} "
                           "(in Python also an (n, n) solid-fraction mask)")
        else:
            out += _array_problems(self.boundary, n, f"a {name['boundary']} mask", "solid fractions in [0, 1]",
                                   low=0.0, high=1.0)
        need("pressure_gradient", _finite(self.pressure_gradient), "a finite number")
        need("inflow_velocity", _finite(self.inflow_velocity), "a finite number")
        need("wall_thickness", _finite(self.wall_thickness) and 0 < self.wall_thickness < math.pi,
             "in (0, pi) (each wall's thickness; the two walls must leave a channel)")
        center = self.obstacle_center
        need("obstacle_center", isinstance(center, (tuple, list)) and len(center) == 2
             and all(_finite(c) for c in center), "a pair of finite numbers (x, y)")
        need("obstacle_size", _finite(self.obstacle_size) and self.obstacle_size > 0, "a finite number > 0")
        need("sponge_length", _finite(self.sponge_length) and 0 < self.sponge_length <= TWO_PI,
             "in (0, 2 pi]")
        need("sponge_eta", _finite(self.sponge_eta) and self.sponge_eta > 0, "a finite number > 0")
        need("penalization", _finite(self.penalization) and self.penalization > 0,
             "a finite number > 0 (the Brinkman eta: walls are no-slip as eta -> 0 and vanish as it grows)")
        need("dealias", isinstance(self.dealias, (bool, np.bool_)), "true or false")
        need("cfl", _real(self.cfl) and 0 < self.cfl <= 2, "in (0, 2] (the adaptive step's target CFL number)")
        need("max_dt", self.max_dt is None or (_finite(self.max_dt) and self.max_dt > 0),
             "a finite number > 0, or left out (no bound; eta for penalised flows)")
        return out

    def validate(self, n: int | None = None, *, labels: dict[str, str] | None = None,
                 grid: str | None = None) -> "FlowSpec":
        """Raise one ValueError naming every problem (see :meth:`problems`); returns self."""
        problems = self.problems(n, labels=labels, grid=grid)
        if len(problems) == 1:
            raise ValueError(problems[0])
        if problems:
            raise ValueError("invalid flow settings:\n  - " + "\n  - ".join(problems))
        return self

    def solver_kwargs(self, **numerics) -> dict[str, Any]:
        """Keyword arguments of solver.NavierStokes2D besides ``n``: this flow's, plus ``numerics``
        (backend, dtype, comm, threads)."""
        kwargs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        kwargs["forcing"] = None if not self.forced else self.forcing
        return kwargs | numerics


def _real(v) -> bool:
    """A real number (infinities too), not a bool and not NaN."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and not math.isnan(v)


def _finite(v) -> bool:
    return _real(v) and math.isfinite(v)


def _integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _array_problems(value, n, what: str, holds: str, low: float = -math.inf, high: float = math.inf) -> list[str]:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return [f"{what} must be a real array, got {type(value).__name__}"]
    if _integer(n) and a.shape != (n, n):
        return [f"{what} must have shape ({n}, {n}), got {a.shape}"]
    if a.size and not (np.all(np.isfinite(a)) and a.min() >= low and a.max() <= high):
        return [f"{what} must hold {holds}"]
    return []
