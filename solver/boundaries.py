"""Solid regions for Brinkman volume penalisation (no-slip walls and obstacles in a Fourier code).

The momentum equation gains -(chi / eta) (u - u_s), chi in [0, 1] the solid indicator, eta the
penalisation parameter; the solution converges to the no-slip one as eta -> 0 with an error
O(eta^{1/2}) (Angot et al. 1999), in a boundary layer of thickness ~ sqrt(nu eta). Masks are smoothed
over about one grid spacing (a tanh of the signed distance), which limits Gibbs oscillations.
"""
from __future__ import annotations

import numpy as np

from solver.grid import TWO_PI

PENALISED = ("channel", "cylinder", "square")


def _smooth(signed_distance: np.ndarray, width: float) -> np.ndarray:
    """chi = 1 inside (distance < 0), 0 outside, smoothed over ``width``."""
    if width <= 0:
        return (signed_distance < 0).astype(np.float64)
    return 0.5 * (1.0 - np.tanh(signed_distance / width))


def channel_mask(x, y, wall_thickness: float, width: float) -> np.ndarray:
    """No-slip walls: solid for y < w and y > 2 pi - w (one slab across the periodic seam)."""
    w = wall_thickness
    # signed distance to the walls, positive in the fluid w < y < 2 pi - w
    d = np.minimum(y - w, (TWO_PI - w) - y)
    return _smooth(d, width)


def cylinder_mask(x, y, center, radius: float, width: float) -> np.ndarray:
    d = np.hypot(x - center[0], y - center[1]) - radius
    return _smooth(d, width)


def square_mask(x, y, center, half_side: float, width: float) -> np.ndarray:
    d = np.maximum(np.abs(x - center[0]), np.abs(y - center[1])) - half_side
    return _smooth(d, width)


def sponge_mask(x, y, length: float, width: float) -> np.ndarray:
    """Outflow sponge: the band 2 pi - length < x < 2 pi, smoothed at both ends (periodic in x), where
    the flow is relaxed to the free stream so that the wake does not re-enter the box upstream."""
    center = TWO_PI - length / 2.0
    d = np.abs(np.mod(x - center + np.pi, TWO_PI) - np.pi) - length / 2.0
    return _smooth(d, width)


def build_mask(kind: str, x, y, dx: float, *, wall_thickness: float | None = None, center=None,
               size: float | None = None, smoothing: float = 1.0) -> np.ndarray:
    width = smoothing * dx
    if kind == "channel":
        return channel_mask(x, y, wall_thickness if wall_thickness is not None else TWO_PI / 8, width)
    center = center if center is not None else (TWO_PI / 4, np.pi)
    if kind == "cylinder":
        return cylinder_mask(x, y, center, size if size is not None else np.pi / 8, width)
    if kind == "square":
        return square_mask(x, y, center, size if size is not None else np.pi / 8, width)
    raise ValueError(f"unknown penalised boundary {kind!r}: choose one of {', '.join(PENALISED)}")
