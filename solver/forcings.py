"""Forcings as vorticity sources curl(f): plain functions of the computational grid.

Kolmogorov forcing f = (A sin(k_f y), 0) has curl(f) = -A k_f cos(k_f y) (Kochkov et al. 2021 use
k_f = 4, A = 1, drag 0.1). With free-slip walls the forcing must itself satisfy the wall conditions,
so there it is the cosine-phase variant f = (A cos(k_f y), 0), curl(f) = A k_f sin(k_f y).
"""
from __future__ import annotations

import numpy as np


def kolmogorov(y: np.ndarray, wavenumber: int = 4, amplitude: float = 1.0, free_slip: bool = False):
    """Returns (f_x, curl f) on the physical grid y (any shape)."""
    if free_slip:
        return amplitude * np.cos(wavenumber * y), amplitude * wavenumber * np.sin(wavenumber * y)
    return amplitude * np.sin(wavenumber * y), -amplitude * wavenumber * np.cos(wavenumber * y)
