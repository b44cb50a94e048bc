"""Pseudo-spectral 2D incompressible Navier-Stokes (vorticity form) on CPU, GPU and MPI ranks.

This package never imports torch.
"""
from solver.backends import BACKENDS, BackendUnavailable, cupy_available
from solver.initial_conditions import from_file, random_field, taylor_green
from solver.navier_stokes import NavierStokes2D, SolverBlowUp
from solver.physics import BOUNDARIES, FORCINGS, FlowSpec

__all__ = [
    "BACKENDS", "BOUNDARIES", "BackendUnavailable", "FORCINGS", "FlowSpec", "NavierStokes2D", "SolverBlowUp",
    "cupy_available",
    "from_file", "random_field", "taylor_green",
]
