"""``flexcouple demo``: the main job on the embedded default.

Runs Kolmogorov flow at Re = 1000 (n = 128, drag 0.1, k_f = 4, the Kochkov et al. 2021 setting) with
the pseudo-spectral solver from a seeded random field, prints a summary and saves the snapshots and a
picture under --out.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for the demo's files (default out/demo)")
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--t-end", type=float, default=10.0)


def run(args) -> int:
    from solver import cli as solver_cli

    out = Path(args.out)
    sim_args = argparse.Namespace(
        n=args.n, reynolds=1000.0, forcing="kolmogorov", forcing_wavenumber=4, drag=0.1, boundary="periodic",
        penalization=1e-2, pressure_gradient=0.0, init="random", seed=0, t_end=args.t_end, snapshots=11,
        dt=None, cfl=0.5, backend="pyfftw", dtype="float64", threads=None, out=out / "kolmogorov_re1000.h5",
        plot=out / "kolmogorov_re1000.png", overwrite=True,
    )
    print("== solver: Kolmogorov flow, Re = 1000 ==")
    return solver_cli.run(sim_args)
