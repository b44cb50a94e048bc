"""Fused element-wise kernels for the CPU step (numba), one memory pass where numpy needs several.

After the FFTs, a step's remaining cost is element-wise work on spectral and physical arrays: the
four ETDRK4 stage updates, the velocity from the vorticity, the Basdevant products and the speed
bound for the CFL condition. With numpy each operation is one pass over memory (about 35 passes a
step); here each line of the scheme is one compiled loop that reads every operand once and writes
its result once. The real coefficients are applied to the real and imaginary parts separately, so
nothing is promoted to a complex product, and float32 stays float32.

Every kernel works on flat arrays: complex arrays as their interleaved real view (re, im, re, im,
...) of length 2 M, real per-mode coefficients of length M. ``flat`` makes these views without
copying, and refuses an array that is not C-contiguous (the caller then keeps the numpy path).

Used when numba is installed and the backend computes on the CPU (numpy, scipy, pyfftw and the MPI
slab transform); ``FLEXCOUPLE_KERNELS=numpy`` selects the plain numpy path (the reference the fused
one is tested against), ``FLEXCOUPLE_KERNELS=numba`` insists on numba (an error if it is missing).
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

# an optional accelerator, imported (0.5 s) and compiled only when a solver first uses it: without
# it the numpy path runs, equal to round-off
numba = importlib.util.find_spec("numba")  # its import spec, or None when not installed

CHOICES = ("auto", "numba", "numpy")


def choice() -> str:
    value = os.environ.get("FLEXCOUPLE_KERNELS", "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"FLEXCOUPLE_KERNELS={value!r} is not one of {', '.join(CHOICES)}; unset it for the default")
    return value


def use_fused(xp) -> bool:
    """Whether a solver on array module ``xp`` runs the fused kernels (decided at construction)."""
    want = choice()
    if xp is not np and want == "numba":
        raise ValueError("FLEXCOUPLE_KERNELS=numba needs a CPU backend (numpy, scipy, pyfftw); "
                         "the cupy backend runs its array operations on the GPU: unset FLEXCOUPLE_KERNELS")
    if numba is None and want == "numba":
        raise ImportError("FLEXCOUPLE_KERNELS=numba but numba is not installed: pip install numba, "
                          "or unset FLEXCOUPLE_KERNELS to use the numpy path")
    if xp is not np or want == "numpy" or numba is None:
        return False
    ensure_compiled()
    return True


_KERNELS = ("stage_a", "stage_b", "stage_c", "stage_out", "velocity", "products", "products_and_speed",
            "combine", "combine_forced")


def ensure_compiled() -> None:
    """Replace the Python kernels below by their numba versions (once; compiled on first call and
    cached on disk by numba)."""
    g = globals()
    if getattr(g["stage_a"], "_numba", False):
        return
    import numba as nb

    jit = nb.njit(cache=True, nogil=True, fastmath=False, boundscheck=False, error_model="numpy")
    for name in _KERNELS:
        fn = jit(g[name])
        fn._numba = True
        g[name] = fn


def flat(a: np.ndarray) -> np.ndarray | None:
    """A flat real view of a C-contiguous array (complex arrays as interleaved re, im), or None."""
    if not a.flags.c_contiguous:
        return None
    a = a.reshape(-1)
    if a.dtype.kind == "c":
        a = a.view(a.real.dtype)
    return a


def real_coefficient(c: np.ndarray, real_dtype) -> np.ndarray:
    """A per-mode coefficient stored complex but real (or purely imaginary: pass ``c / 1j``) as a flat
    real array."""
    c = np.asarray(c)
    if np.iscomplexobj(c):
        if np.any(c.imag != 0):
            raise ValueError("a fused coefficient must be real")
        c = c.real
    return np.ascontiguousarray(c, dtype=real_dtype).reshape(-1)


# ---- the kernels, as plain Python (compiled by ``ensure_compiled``; slow but correct if called uncompiled)
# ---- ETDRK4 stages (v, nv, ... interleaved complex of length 2 M; coefficients real, length M)
def stage_a(e2, q, v, nv, ev2, a):
    """ev2 = e2 v; a = ev2 + q nv."""
    for k in range(e2.shape[0]):
        r, i = 2 * k, 2 * k + 1
        xr = e2[k] * v[r]
        xi = e2[k] * v[i]
        ev2[r] = xr
        ev2[i] = xi
        a[r] = xr + q[k] * nv[r]
        a[i] = xi + q[k] * nv[i]


def stage_b(q, ev2, na, b):
    """b = ev2 + q na."""
    for k in range(q.shape[0]):
        r, i = 2 * k, 2 * k + 1
        b[r] = ev2[r] + q[k] * na[r]
        b[i] = ev2[i] + q[k] * na[i]


def stage_c(e2, q, a, nv, nb, c):
    """c = e2 a + q (2 nb - nv)."""
    for k in range(e2.shape[0]):
        r, i = 2 * k, 2 * k + 1
        c[r] = e2[k] * a[r] + q[k] * (nb[r] + nb[r] - nv[r])
        c[i] = e2[k] * a[i] + q[k] * (nb[i] + nb[i] - nv[i])


def stage_out(e, f1, f2, f3, v, nv, na, nb, nc, out):
    """out = e v + f1 nv + f2 (na + nb) + f3 nc."""
    for k in range(e.shape[0]):
        r, i = 2 * k, 2 * k + 1
        out[r] = e[k] * v[r] + f1[k] * nv[r] + f2[k] * (na[r] + nb[r]) + f3[k] * nc[r]
        out[i] = e[k] * v[i] + f1[k] * nv[i] + f2[k] * (na[i] + nb[i]) + f3[k] * nc[i]


# ---- the explicit terms (Basdevant)
def velocity(mu, mv, w, u_hat, v_hat):
    """u_hat = i mu w, v_hat = i mv w (mu, mv real: the multipliers are purely imaginary)."""
    for k in range(mu.shape[0]):
        r, i = 2 * k, 2 * k + 1
        wr = w[r]
        wi = w[i]
        u_hat[r] = -mu[k] * wi
        u_hat[i] = mu[k] * wr
        v_hat[r] = -mv[k] * wi
        v_hat[i] = mv[k] * wr


def products(u, v, u0, v0, uv, shear):
    """uv = (u + u0)(v + v0), shear = (v + v0)^2 - (u + u0)^2."""
    for k in range(u.shape[0]):
        a = u[k] + u0
        b = v[k] + v0
        uv[k] = a * b
        shear[k] = b * b - a * a


def products_and_speed(u, v, u0, v0, uv, shear):
    """As ``products``, and returns (max |u + u0|, max |v + v0|) from the same pass; a NaN anywhere
    makes its maximum NaN (as numpy's max does), so a blow-up is seen."""
    umax = 0.0
    vmax = 0.0
    for k in range(u.shape[0]):
        a = u[k] + u0
        b = v[k] + v0
        uv[k] = a * b
        shear[k] = b * b - a * a
        aa = abs(a)
        bb = abs(b)
        if aa > umax or aa != aa:  # once NaN, no comparison is true: the NaN stays
            umax = aa
        if bb > vmax or bb != bb:
            vmax = bb
    return umax, vmax


def combine(cu, cs, uv_hat, shear_hat, out):
    """out = cu uv_hat + cs shear_hat."""
    for k in range(cu.shape[0]):
        r, i = 2 * k, 2 * k + 1
        out[r] = cu[k] * uv_hat[r] + cs[k] * shear_hat[r]
        out[i] = cu[k] * uv_hat[i] + cs[k] * shear_hat[i]


def combine_forced(cu, cs, uv_hat, shear_hat, f, out):
    """out = cu uv_hat + cs shear_hat - f."""
    for k in range(cu.shape[0]):
        r, i = 2 * k, 2 * k + 1
        out[r] = cu[k] * uv_hat[r] + cs[k] * shear_hat[r] - f[r]
        out[i] = cu[k] * uv_hat[i] + cs[k] * shear_hat[i] - f[i]
