"""``flexcouple simulate``: run the solver from the command line and save the snapshots.

    flexcouple simulate --n 256 --reynolds 1000 --forcing kolmogorov --drag 0.1 --t-end 10 \
        --snapshots 21 --out run.h5 --plot run.png
    mpiexec -n 2 flexcouple simulate ...        # slab-decomposed over 2 ranks, rank 0 writes

The output HDF5 file holds ``vorticity`` (n_t, n, n), ``time`` (n_t,), per-snapshot diagnostics and
the solver settings and run statistics as attributes. It is written to a temporary name and renamed
(``solver.io``), so an interrupted run or a full disk never leaves a truncated file behind.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from solver import BOUNDARIES, NavierStokes2D, from_file, random_field, taylor_green
from solver.backends import BACKENDS
from solver.io import atomic_path, remove_temporaries
from solver.paths import check_writable
from solver.mpi import agreed, gather, local_part, world_comm


def add_arguments(p) -> None:
    p.add_argument("--n", type=int, default=128, help="grid size n (n x n), even (default 128)")
    p.add_argument("--reynolds", "--re", type=float, default=1000.0, help="Reynolds number, nu = 1/Re (default 1000)")
    p.add_argument("--forcing", choices=["none", "kolmogorov"], default="kolmogorov")
    p.add_argument("--forcing-wavenumber", type=int, default=4)
    p.add_argument("--drag", type=float, default=0.1, help="linear drag alpha (default 0.1)")
    p.add_argument("--boundary", choices=BOUNDARIES, default="periodic")
    p.add_argument("--penalization", type=float, default=1e-2, help="Brinkman eta for penalised boundaries")
    p.add_argument("--pressure-gradient", type=float, default=0.0, help="mean pressure gradient of the channel")
    p.add_argument("--init", default="random",
                   help="'random' (seeded, E(k) ~ k^4 exp(-2 (k/4)^2)), 'taylor-green', 'rest', or a restart file (.npy/.npz/.h5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--t-end", type=float, default=10.0, help="final time")
    p.add_argument("--snapshots", type=int, default=11, help="number of equally spaced snapshots in [0, t_end]")
    p.add_argument("--dt", type=float, default=None, help="fixed time step (default: adaptive CFL)")
    p.add_argument("--cfl", type=float, default=0.5)
    p.add_argument("--backend", choices=BACKENDS, default="pyfftw")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--threads", type=int, default=None, help="FFT threads per rank (default 1)")
    p.add_argument("--out", type=Path, default=None, help="HDF5 file for the snapshots")
    p.add_argument("--plot", type=Path, default=None, help="PNG picture of the final vorticity and its spectrum")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def initial_field(spec: str, n: int, seed: int, boundary: str) -> np.ndarray:
    ic_boundary = "free-slip" if boundary == "free-slip" else "periodic"
    if spec == "random":
        return random_field(n, seed=seed, boundary=ic_boundary)
    if spec == "taylor-green":
        return taylor_green(n, k=1, boundary=ic_boundary)
    if spec == "rest":
        return np.zeros((n, n))
    if Path(spec).suffix:
        return from_file(spec, n=n)
    raise ValueError(f"unknown --init {spec!r}: use random, taylor-green, rest or a .npy/.npz/.h5 restart file")


def spectrum_slope(k, e_k, k_lo: float, k_hi: float) -> float:
    band = (k >= k_lo) & (k <= k_hi) & (e_k > 0)
    if band.sum() < 3:
        return float("nan")
    return float(np.polyfit(np.log(k[band]), np.log(e_k[band]), 1)[0])


def run(args) -> int:
    """The command's body (the ``flexcouple`` command runs it collectively: under MPI any rank's
    failure ends every rank, reported once)."""
    return _run(args, world_comm())


def _prepare(args, n: int) -> np.ndarray:
    """Every check before the solver starts, and the global initial field (same on every rank)."""
    if args.snapshots < 1:
        raise ValueError("--snapshots must be at least 1")
    if not (args.t_end > 0 and math.isfinite(args.t_end)):
        raise ValueError(f"--t-end must be positive, got {args.t_end}")
    for path, what in ((args.out, "--out"), (args.plot, "--plot")):
        if path is not None:
            check_writable(path, what)
    if args.out is not None and args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    # a restart file is checked whole by from_file: readable, one real finite field of this grid
    return initial_field(args.init, n, args.seed, args.boundary)


def _run(args, comm) -> int:
    rank = 0 if comm is None else comm.rank
    # validated on every rank and agreed before any collective: the whole global field is checked,
    # so a NaN in one rank's slab stops every rank with the same message
    omega0 = agreed(comm, _prepare, args, args.n)
    sim = agreed(comm, NavierStokes2D,
        args.n, args.reynolds, forcing=None if args.forcing == "none" else args.forcing,
        forcing_wavenumber=args.forcing_wavenumber, drag=args.drag, boundary=args.boundary,
        backend=args.backend, dtype=args.dtype, comm=comm, cfl=args.cfl, penalization=args.penalization,
        pressure_gradient=args.pressure_gradient, threads=args.threads,
    )
    omega0 = local_part(omega0, sim)
    times = np.linspace(0.0, args.t_end, args.snapshots) if args.snapshots > 1 else np.array([args.t_end])
    diags = []

    def report(i, t, omega):
        d = {"time": float(t), "energy": sim.energy(omega), "enstrophy": sim.enstrophy(omega),
             "palinstrophy": sim.palinstrophy(omega)}
        diags.append(d)
        if rank == 0:
            print(f"  t = {t:8.3f}  E = {d['energy']:.5g}  Z = {d['enstrophy']:.5g}", flush=True)

    if rank == 0:
        ranks = 1 if comm is None else comm.size
        print(f"simulate: n = {args.n}, Re = {args.reynolds:g}, boundary = {args.boundary}, backend = {args.backend}"
              f" ({ranks} rank{'s' if ranks > 1 else ''}), t_end = {args.t_end:g}", flush=True)
    snaps = sim.trajectory(omega0, times, dt=args.dt, callback=report)
    stats = sim.last_stats
    final_local = snaps[-1]
    k, e_k = sim.spectrum(final_local)
    full = gather(snaps, sim)
    if rank != 0:
        return 0
    cutoff = sim.spectral.cutoff_mode
    slope = spectrum_slope(k, e_k, 2 * args.forcing_wavenumber, 0.7 * cutoff)
    ms_per_step = 1e3 * stats["wall_time_s"] / max(1, stats["steps"])
    summary = {
        "steps": stats["steps"], "dt_mean": stats["dt_mean"], "cfl_max": stats["cfl_max"],
        "wall_time_s": stats["wall_time_s"], "ms_per_step": ms_per_step,
        "spectrum_slope": slope if math.isfinite(slope) else None,
        "energy": diags[-1]["energy"], "enstrophy": diags[-1]["enstrophy"],
    }
    band = f"k = {2 * args.forcing_wavenumber}..{0.7 * cutoff:.0f}"
    slope_text = f"{slope:.2f}" if math.isfinite(slope) else "not measured (fewer than 3 shells; a larger n)"
    print(f"done: {stats['steps']} steps, mean dt {stats['dt_mean']:.3g}, max CFL {stats['cfl_max']:.3f}, "
          f"{ms_per_step:.2f} ms/step, E(k) slope in {band}: {slope_text}")
    if args.out is not None:
        write_snapshots(args.out, full, times, diags, sim.settings(), stats, vars(args))
        print(f"wrote {args.out}")
    if args.plot is not None:
        plot_final(args.plot, full[-1], k, e_k, f"Re = {args.reynolds:g}, t = {times[-1]:g}, n = {args.n}", cutoff)
        print(f"wrote {args.plot}")
    sys.stdout.flush()
    return 0


def write_snapshots(path: Path, vorticity, times, diags, settings, stats, cli_args) -> None:
    """Write the run's HDF5 file atomically (solver.io), first removing a killed run's temporary of it."""
    import h5py

    remove_temporaries(path.parent, {path.name})
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("vorticity", data=np.asarray(vorticity, dtype=np.float32 if settings["dtype"] == "float32" else np.float64))
        f.create_dataset("time", data=np.asarray(times))
        for key in ("energy", "enstrophy", "palinstrophy"):
            f.create_dataset(f"diagnostics/{key}", data=np.array([d[key] for d in diags]))
        f.attrs["solver_settings"] = json.dumps(settings)
        f.attrs["run_stats"] = json.dumps(stats)
        f.attrs["command_line"] = json.dumps({k: str(v) for k, v in cli_args.items() if not k.startswith("_")})
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")


def plot_final(path: Path, omega, k, e_k, title: str, cutoff: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.3))
    lim = float(np.abs(omega).max())
    im = ax0.imshow(omega.T, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim, extent=(0, 2 * np.pi, 0, 2 * np.pi))
    ax0.set_xlabel("x")
    ax0.set_ylabel("y")
    ax0.set_title(f"vorticity, {title}")
    fig.colorbar(im, ax=ax0, shrink=0.85)
    good = (k > 0) & (e_k > 0) & (k <= cutoff)  # beyond the dealiasing cutoff there is only round-off
    ax1.loglog(k[good], e_k[good], lw=1.5, label="E(k)")
    kk = k[good]
    ref = e_k[good][min(8, len(kk) - 1)] * (kk / kk[min(8, len(kk) - 1)]) ** -3.0
    ax1.loglog(kk, ref, "k--", lw=0.8, label="k^-3")
    ax1.set_xlabel("k")
    ax1.set_ylabel("E(k)")
    ax1.axvline(cutoff, color="grey", lw=0.8, ls=":", label="2/3-rule cutoff")
    ax1.set_title("isotropic energy spectrum")
    ax1.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix[1:] or "png")  # the temporary's name has no suffix
    plt.close(fig)
