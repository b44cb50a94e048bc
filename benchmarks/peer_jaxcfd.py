"""Peer benchmark: google/jax-cfd's pseudo-spectral 2D Navier-Stokes, set up like our solver.

Runs jax-cfd 0.2.1 (its own code, unmodified) on the Kochkov et al. (2021) Kolmogorov flow

    d(omega)/dt + u . grad(omega) = nu lap(omega) - alpha omega + curl(f),   nu = 1 / Re,
    f = (sin(k_f y), 0),  curl(f) = -k_f cos(k_f y),  alpha = drag,

on [0, 2 pi)^2 with n x n points, time stepper ``crank_nicolson_rk4`` (Carpenter-Kennedy low-storage
RK4 for advection + forcing, Crank-Nicolson for diffusion + drag) at a fixed dt, and 2/3-rule
dealiasing of the advection term (``brick_wall_filter_2d``). It is meant to run in its own virtual
environment (requirements/peer.txt), never in the project's .venv:

    .venv-peer/bin/python benchmarks/peer_jaxcfd.py --n 256 --reynolds 1000 --dt 0.001 \
        --t-end 1.0 --init init.npy --out result.npz [--drag 0.1 --forcing-wavenumber 4 \
        --repeat-steps 50 --repeats 5 --dtype float64 --threads 1 --reference ours.npy]

Conventions (checked against jax-cfd 0.2.1's source and by a laminar-Kolmogorov run):
- jax-cfd's spectral state is ``rfftn(vorticity)`` of an array whose axis 0 is x and axis 1 is y
  (``Grid.rfft_mesh`` uses ``indexing="ij"``; the rfft half-axis is y), velocity
  u = d psi / dy, v = -d psi / dx with lap(psi) = -omega: the same as ours, so no transpose.
- ``ForcedNavierStokes2D`` evaluates the Kolmogorov forcing at grid offsets (0, 0), i.e. on
  y_j = 2 pi j / n, our grid (the default staggered offsets of ``kolmogorov_forcing`` would shift it by
  half a cell). So our (n, n) field is passed in and read back unchanged.
- jax-cfd's 2/3 filter keeps kx in [-floor(n/3), floor(n/3) - 1] (one positive mode fewer than ours,
  |kx| < n/3) and ky in [0, floor(2(n/2+1)/3) - 1]; ours keeps |kx|, |ky| < n/3. At n = 128 and 256
  the only difference is the single column kx = +floor(n/3). That column is the whole difference
  between the two codes: from random_field(n, seed=0) to t = 1 at dt = 1e-3 (Re 1000, drag 0.1)
  jax-cfd with its own filter gives correlation 0.99958 (n = 128) and 0.9999982 (n = 256) with our
  ETDRK4 solver; with its filter swapped for ours (a diagnostic, not done here) the fields agree to
  1e-8 relative L2, about the time-stepping error of either scheme at that dt.
- One step costs jax-cfd 27 real 2D FFTs (5 stages x (4 inverse + 1 forward), plus 2 forward FFTs of
  the constant forcing that XLA does not fold away); our ETDRK4 does 16 (Basdevant form: 2 inverse and
  2 forward FFTs per stage).

Timing excludes compilation: the stepping loop (``funcutils.repeated``, a ``lax.scan``) is jitted,
compiled ahead of time (``compile_s``), warmed up once, then ``--repeats`` runs of ``--repeat-steps``
steps are timed with ``block_until_ready``; ``ms_per_step`` is their median.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

TWO_PI = 2.0 * math.pi


def _solver_io():
    """The project's atomic writer module, solver/io.py, loaded from its file: this script runs in its own
    virtual environment, where the project is not installed (and ``import solver`` would import the
    solver's backends); solver/io.py needs only the standard library."""
    spec = importlib.util.spec_from_file_location(
        "_flexcouple_solver_io", Path(__file__).resolve().parents[1] / "solver" / "io.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


atomic_path = _solver_io().atomic_path  # mkstemp beside the file, fsync, rename


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, required=True, help="grid size (n x n), even, >= 8")
    parser.add_argument("--reynolds", type=float, required=True, help="Reynolds number, nu = 1/Re")
    parser.add_argument("--dt", type=float, required=True, help="fixed time step")
    parser.add_argument("--t-end", type=float, required=True, help="final time (from t = 0)")
    parser.add_argument("--init", type=Path, required=True,
                        help="initial vorticity .npy, shape (n, n), axis 0 = x, x_i = 2 pi i / n")
    parser.add_argument("--out", type=Path, required=True, help="output .npz")
    parser.add_argument("--drag", type=float, default=0.1, help="linear drag alpha (default 0.1)")
    parser.add_argument("--forcing-wavenumber", type=int, default=4,
                        help="k_f of the Kolmogorov forcing f = (sin(k_f y), 0) (default 4)")
    parser.add_argument("--repeat-steps", type=int, default=50, help="steps per timed run (default 50)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (default 5)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--threads", type=int, default=1,
                        help="1: single-threaded XLA CPU (as our solver's default FFT threads); "
                             "0: XLA's default thread pool (default 1)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="optional .npy (or .npz with 'vorticity') of another solver's vorticity at t_end "
                             "(same orientation): "
                             "stores the correlation and relative L2 difference")


def _load_reference(path: Path, n: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"--reference {path}: no such file")
    ref = np.load(path, allow_pickle=False)
    if isinstance(ref, np.lib.npyio.NpzFile):
        if "vorticity" not in ref.files:
            raise ValueError(f"--reference {path} is an .npz without a 'vorticity' array "
                             f"(it has {ref.files}); pass an .npy or such an .npz")
        ref = ref["vorticity"]
    if ref.shape != (n, n):
        raise ValueError(f"--reference has shape {ref.shape}, expected ({n}, {n})")
    return ref.astype(np.float64)


def _check_args(args) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(args.n, bool) or args.n < 8 or args.n % 2:
        raise ValueError(f"--n must be an even integer >= 8, got {args.n}")
    if not (args.reynolds > 0 and math.isfinite(args.reynolds)):
        raise ValueError(f"--reynolds must be a positive finite number, got {args.reynolds}")
    if not (args.dt > 0 and math.isfinite(args.dt)):
        raise ValueError(f"--dt must be a positive finite number, got {args.dt}")
    if not (args.t_end >= 0 and math.isfinite(args.t_end)):
        raise ValueError(f"--t-end must be a finite number >= 0, got {args.t_end}")
    if not (args.drag >= 0 and math.isfinite(args.drag)):
        raise ValueError(f"--drag must be a finite number >= 0, got {args.drag}")
    if args.repeat_steps < 1 or args.repeats < 1:
        raise ValueError("--repeat-steps and --repeats must be >= 1")
    if args.threads < 0:
        raise ValueError(f"--threads must be 0 (XLA default) or >= 1, got {args.threads}")
    if args.threads > 1:
        raise ValueError("--threads > 1 is not supported: XLA CPU has no fixed thread-count flag; "
                         "use 1 (single-threaded) or 0 (XLA's default pool)")
    if not args.init.is_file():
        raise FileNotFoundError(f"--init {args.init}: no such file (an (n, n) .npy of vorticity)")
    omega0 = np.load(args.init, allow_pickle=False)
    if omega0.shape != (args.n, args.n):
        raise ValueError(f"--init holds an array of shape {omega0.shape}, expected ({args.n}, {args.n})")
    if not np.all(np.isfinite(omega0)):
        raise ValueError(f"--init {args.init} contains NaN or Inf values")
    if not args.out.parent.is_dir():
        raise FileNotFoundError(f"--out {args.out}: the folder {args.out.parent} does not exist")
    reference = None if args.reference is None else _load_reference(args.reference, args.n)
    return omega0.astype(np.float64), reference


def _step_counts(t_end: float, dt: float) -> tuple[int, float]:
    """Full steps of dt, and a last shorter step (0 if none) landing on t_end, as our solver does."""
    steps = int(math.floor(t_end / dt + 1e-9))
    rest = t_end - steps * dt
    if rest <= 1e-9 * dt:
        rest = 0.0
    return steps, rest


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two fields (the vorticity correlation of Kochkov et al. 2021 for
    zero-mean fields)."""
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    return float(a @ b / math.sqrt((a @ a) * (b @ b)))


def run(args) -> int:
    omega0, reference = _check_args(args)
    if args.threads == 1:
        # must be set before jax initialises its CPU backend
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    import jax
    jax.config.update("jax_enable_x64", args.dtype == "float64")
    import jax.numpy as jnp
    import jax_cfd
    import jax_cfd.base as cfd
    import jax_cfd.spectral as spectral
    import jaxlib

    n = args.n
    viscosity = 1.0 / args.reynolds
    grid = cfd.grids.Grid((n, n), domain=((0.0, TWO_PI), (0.0, TWO_PI)))
    if args.drag == 0.1 and args.forcing_wavenumber == 4:
        # exactly the flow of Kochkov et al. 2021 as jax-cfd packages it
        equation = spectral.equations.ForcedNavierStokes2D(viscosity, grid, smooth=True)
        equation_name = "jax_cfd.spectral.equations.ForcedNavierStokes2D"
    else:
        # the same construction as ForcedNavierStokes2D with other k_f / drag
        kf = args.forcing_wavenumber

        def forcing_fn(g):
            return cfd.forcings.kolmogorov_forcing(g, scale=1.0, k=kf, offsets=((0, 0), (0, 0)))

        equation = spectral.equations.NavierStokes2D(
            viscosity, grid, drag=args.drag, smooth=True, forcing_fn=forcing_fn)
        equation_name = "jax_cfd.spectral.equations.NavierStokes2D(kolmogorov_forcing, offsets=(0,0))"

    cdtype = jnp.complex128 if args.dtype == "float64" else jnp.complex64
    state0 = jnp.fft.rfftn(jnp.asarray(omega0, dtype=args.dtype)).astype(cdtype)

    steps, rest = _step_counts(args.t_end, args.dt)
    step = spectral.time_stepping.crank_nicolson_rk4(equation, args.dt)

    def advance(state):
        state = cfd.funcutils.repeated(step, steps)(state) if steps else state
        if rest:
            state = spectral.time_stepping.crank_nicolson_rk4(equation, rest)(state)
        return state

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    advance_c = jax.jit(advance).lower(state0).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    final = advance_c(state0)
    final.block_until_ready()
    run_wall_s = time.perf_counter() - t0
    omega_end = np.asarray(jnp.fft.irfftn(final, s=(n, n)))
    if not np.all(np.isfinite(omega_end)):
        raise RuntimeError(f"jax-cfd's solution blew up by t = {args.t_end}: use a smaller --dt")

    # timing of the stepping alone, compilation excluded
    t0 = time.perf_counter()
    timed = jax.jit(cfd.funcutils.repeated(step, args.repeat_steps)).lower(state0).compile()
    compile_timed_s = time.perf_counter() - t0
    timed(state0).block_until_ready()  # warm-up
    per_step = []
    cpu_per_step = []
    for _ in range(args.repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        timed(state0).block_until_ready()
        per_step.append(1e3 * (time.perf_counter() - t0) / args.repeat_steps)
        cpu_per_step.append(1e3 * (time.process_time() - c0) / args.repeat_steps)
    load_after = os.getloadavg()

    versions = {
        "jax": jax.__version__, "jaxlib": jaxlib.__version__, "jax_cfd": jax_cfd.__version__,
        "numpy": np.__version__, "python": platform.python_version(),
    }
    settings = {
        "n": n, "reynolds": args.reynolds, "viscosity": viscosity, "dt": args.dt, "t_end": args.t_end,
        "steps": steps, "last_step": rest, "drag": args.drag, "forcing": "kolmogorov f=(sin(k_f y),0)",
        "forcing_wavenumber": args.forcing_wavenumber, "dtype": args.dtype, "equation": equation_name,
        "time_stepper": "jax_cfd.spectral.time_stepping.crank_nicolson_rk4",
        "dealias": "brick_wall_filter_2d (2/3 rule on advection)", "threads": args.threads,
        "repeat_steps": args.repeat_steps, "repeats": args.repeats, "init": str(args.init),
        "orientation": "axis 0 = x, axis 1 = y, x_i = 2 pi i / n (jax-cfd's own; no conversion)",
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    result = {
        "ms_per_step": statistics.median(per_step), "compile_s": compile_s,
        "compile_timed_s": compile_timed_s, "run_wall_s": run_wall_s,
    }
    extra = {}
    if reference is not None:
        result["correlation"] = correlation(omega_end, reference)
        result["relative_l2"] = float(np.linalg.norm(omega_end - reference) / np.linalg.norm(reference))
        extra = {"correlation": result["correlation"], "relative_l2": result["relative_l2"]}

    with atomic_path(args.out) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no ".npz"
        np.savez(f, vorticity=omega_end.astype(args.dtype), ms_per_step=result["ms_per_step"],
                 ms_per_step_runs=np.asarray(per_step), cpu_ms_per_step_runs=np.asarray(cpu_per_step),
                 compile_s=compile_s, compile_timed_s=compile_timed_s, run_wall_s=run_wall_s,
                 versions=json.dumps(versions), settings=json.dumps(settings), **extra)
    print(json.dumps({**result, "ms_per_step_runs": per_step, "cpu_ms_per_step_runs": cpu_per_step,
                      "versions": versions, "loadavg_before": load_before,
                      "loadavg_after": load_after, "out": str(args.out)}, indent=1))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
