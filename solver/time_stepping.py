"""Exponential time differencing, fourth order (ETDRK4, Cox & Matthews 2002).

For a semi-linear system in Fourier space

    d v / dt = L v + N(v),        L diagonal (here -nu |k|^2 - alpha, real and <= 0),

the linear part is integrated exactly and the nonlinear part at fourth order:

    a   = e^{hL/2} v + (h/2) phi1(hL/2) N(v)
    b   = e^{hL/2} v + (h/2) phi1(hL/2) N(a)
    c   = e^{hL/2} a + (h/2) phi1(hL/2) (2 N(b) - N(v))
    v'  = e^{hL} v + h [ f1 N(v) + 2 f2 (N(a) + N(b)) + f3 N(c) ]

with f1 = phi1 - 3 phi2 + 4 phi3, f2 = phi2 - 2 phi3, f3 = 4 phi3 - phi2 (all at hL) and
phi_k(z) = sum_j z^j / (j + k)!. With N = 0 the update is exactly e^{hL} v (so a purely viscous
decay, such as the Taylor-Green vortex, is exact to round-off); with L = 0 it is classical RK4.

The time stepper knows nothing of Navier-Stokes: it takes the diagonal operator and a callable for
the explicit terms, as jax-cfd's steppers do. Its step size comes from the CFL controller :func:`adaptive_step`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from math import factorial

import numpy as np

from . import kernels

def adaptive_step(speed: float, remaining: float, current: float | None, cfl: float,
                  max_dt: float | None = None) -> float:
    """The CFL controller: the next step for a flow whose ``max|u|/dx + max|v|/dy`` is ``speed``.

    The bound is ``cfl / speed`` (capped at ``max_dt``). The step in use (``current``) changes only
    when the bound forces it down or allows 25% more, to 0.9 of the bound, so the ETDRK4 coefficients
    are rebuilt rarely. Without any flow the bound is 0.1 or the remaining time (any step is exact
    for the linear part), taken whole: 0.9 of the remaining time would shrink geometrically and
    never land."""
    bound = cfl / speed if speed > 0 else math.inf
    if max_dt is not None:
        bound = min(bound, max_dt)
    no_flow = not math.isfinite(bound)
    if no_flow:
        bound = min(0.1, remaining)
    if current is None or bound < current or bound > 1.25 * current:
        current = bound if (no_flow or bound == max_dt) else 0.9 * bound
    return current


_TAYLOR_TERMS = 24
_TAYLOR_RADIUS = 1.0


def phi_functions(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """phi1, phi2, phi3 of a real array z, accurate to round-off everywhere.

    The closed forms (e^z - 1)/z, ... cancel catastrophically near z = 0, so |z| < 1 uses the
    Taylor series (24 terms: the remainder is below 1e-24 there).
    """
    z = np.asarray(z, dtype=np.float64)
    small = np.abs(z) < _TAYLOR_RADIUS
    zs = np.where(small, z, 0.0)
    zl = np.where(small, 1.0, z)  # avoid division by zero in the unused branch

    def taylor(k):
        out = np.zeros_like(zs)
        for j in reversed(range(_TAYLOR_TERMS)):
            out = out * zs + 1.0 / factorial(j + k)
        return out

    ez = np.exp(zl)
    phi1 = np.where(small, taylor(1), (ez - 1.0) / zl)
    phi2 = np.where(small, taylor(2), (ez - 1.0 - zl) / zl**2)
    phi3 = np.where(small, taylor(3), (ez - 1.0 - zl - zl**2 / 2.0) / zl**3)
    return phi1, phi2, phi3


@dataclass
class ETDRK4Coefficients:
    dt: float
    e: np.ndarray       # e^{hL}
    e2: np.ndarray      # e^{hL/2}
    q: np.ndarray       # (h/2) phi1(hL/2)
    f1: np.ndarray      # h (phi1 - 3 phi2 + 4 phi3)
    f2: np.ndarray      # 2 h (phi2 - 2 phi3)   (the factor 2 of N(a) + N(b) folded in)
    f3: np.ndarray      # h (4 phi3 - phi2)

    @classmethod
    def build(cls, linear: np.ndarray, dt: float, xp=np, dtype=np.float64, factor=1.0) -> "ETDRK4Coefficients":
        """``factor`` multiplies every coefficient of N: a dealiasing mask and sign folded in here
        save a pass over the spectrum per stage."""
        lin = np.asarray(linear, dtype=np.float64)
        z = dt * lin
        p1, p2, p3 = phi_functions(z)
        p1h, _, _ = phi_functions(z / 2.0)

        # stored complex, though real: numpy multiplies complex by complex without the per-chunk
        # cast of a real operand (measured 3-7% per step)
        cdtype = np.result_type(dtype, np.complex64)

        def cast(a):
            return xp.asarray(np.ascontiguousarray(np.broadcast_to(a, lin.shape)).astype(cdtype))

        return cls(
            dt=dt,
            e=cast(np.exp(z)),
            e2=cast(np.exp(z / 2.0)),
            q=cast(factor * dt / 2.0 * p1h),
            f1=cast(factor * dt * (p1 - 3.0 * p2 + 4.0 * p3)),
            f2=cast(factor * 2.0 * dt * (p2 - 2.0 * p3)),
            f3=cast(factor * dt * (4.0 * p3 - p2)),
        )

    def real_flat(self) -> dict:
        """The coefficients as flat real arrays (they are real), for the fused kernels; made once."""
        flat = self.__dict__.get("_real_flat")
        if flat is None:
            rdt = np.empty(0, dtype=self.e.dtype).real.dtype
            flat = {k: kernels.real_coefficient(getattr(self, k), rdt) for k in ("e", "e2", "q", "f1", "f2", "f3")}
            self._real_flat = flat
        return flat


class ETDRK4:
    """ETDRK4 for a diagonal linear operator; coefficient sets are cached per dt.

    ``explicit(v, out)`` writes the explicit terms in spectral space into ``out`` (N(v) = factor *
    explicit(v)) and returns it; it may record side information (the maximum velocity for the CFL
    condition) on its owner. A step allocates nothing: its stages live in buffers made once per shape.
    ``fused``: each stage update is one compiled pass (``solver.kernels``) instead of several numpy
    ones; the same arithmetic, equal to round-off.
    """

    def __init__(self, linear: np.ndarray, explicit, xp=np, dtype=np.float64, cache_size: int = 4, factor=1.0,
                 fused: bool = False):
        self.fused = bool(fused)
        if self.fused:
            kernels.ensure_compiled()
        self.linear = np.asarray(linear)
        self.factor = factor
        self.explicit = explicit
        self.xp = xp
        self.dtype = dtype
        self._cache: dict[float, ETDRK4Coefficients] = {}
        self._cache_size = cache_size
        self._workspace: dict = {}
        self._workspace_key = None

    def coefficients(self, dt: float) -> ETDRK4Coefficients:
        coef = self._cache.get(dt)
        if coef is None:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            coef = ETDRK4Coefficients.build(self.linear, dt, xp=self.xp, dtype=self.dtype, factor=self.factor)
            self._cache[dt] = coef
        return coef

    def step(self, v, dt: float, nv=None):
        """One step of size dt from v. ``nv`` = explicit(v) if already known.

        ``explicit(v, out)`` writes the explicit terms into ``out``. The stages live in buffers
        allocated once; the result is one of two buffers used in turn, valid until the step after
        next, which is all a time loop needs."""
        c = self.coefficients(dt)
        w = self._buffers(v)
        if nv is None:
            nv = self.explicit(v, out=w["nv"])
        if self.fused and v.flags.c_contiguous and nv.flags.c_contiguous:
            return self._step_fused(c, w, v, nv)
        xp = self.xp
        a, b, cc, na, nb, nc, ev2, tmp = (w[k] for k in ("a", "b", "c", "na", "nb", "nc", "ev2", "tmp"))
        # in place, one ufunc pass per operation: measured faster than numexpr's complex kernels
        xp.multiply(c.e2, v, out=ev2)
        xp.multiply(c.q, nv, out=a)
        a += ev2                                   # a = e^{hL/2} v + q N(v)
        self.explicit(a, out=na)
        xp.multiply(c.q, na, out=b)
        b += ev2                                   # b = e^{hL/2} v + q N(a)
        self.explicit(b, out=nb)
        xp.multiply(nb, 2, out=cc)
        cc -= nv
        cc *= c.q
        xp.multiply(c.e2, a, out=tmp)
        cc += tmp                                  # c = e^{hL/2} a + q (2 N(b) - N(v))
        self.explicit(cc, out=nc)
        out = w["out1"] if v is w["out0"] else w["out0"]
        xp.multiply(c.e, v, out=out)
        xp.multiply(c.f1, nv, out=tmp)
        out += tmp
        xp.add(na, nb, out=tmp)
        tmp *= c.f2
        out += tmp
        xp.multiply(c.f3, nc, out=tmp)
        out += tmp                                 # v' = e^{hL} v + f1 N(v) + f2 (N(a) + N(b)) + f3 N(c)
        return out

    def _step_fused(self, c, w, v, nv):
        """``step`` with one compiled pass per line of the scheme (the buffers are C-contiguous)."""
        k = c.real_flat()
        flat = kernels.flat
        a, b, cc, na, nb, nc, ev2 = (w[key] for key in ("a", "b", "c", "na", "nb", "nc", "ev2"))
        fv, fnv = flat(v), flat(nv)
        kernels.stage_a(k["e2"], k["q"], fv, fnv, flat(ev2), flat(a))
        self.explicit(a, out=na)
        kernels.stage_b(k["q"], flat(ev2), flat(na), flat(b))
        self.explicit(b, out=nb)
        kernels.stage_c(k["e2"], k["q"], flat(a), fnv, flat(nb), flat(cc))
        self.explicit(cc, out=nc)
        out = w["out1"] if v is w["out0"] else w["out0"]
        kernels.stage_out(k["e"], k["f1"], k["f2"], k["f3"], fv, fnv, flat(na), flat(nb), flat(nc), flat(out))
        return out

    def _buffers(self, v):
        key = (v.shape, v.dtype)
        if self._workspace_key != key:
            names = ("a", "b", "c", "nv", "na", "nb", "nc", "ev2", "tmp", "out0", "out1")
            self._workspace = {name: self.xp.empty(v.shape, dtype=v.dtype) for name in names}
            self._workspace_key = key
        return self._workspace
