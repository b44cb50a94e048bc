"""Scaling over 1, 2 and 4 MPI ranks: the solver alone, and the hybrid in each mode and strategy.

    .venv/bin/python benchmarks/bench_scaling.py --quick    # ~1.5 min: n = 64, t_end 2.5 (the CI smoke test)
    .venv/bin/python benchmarks/bench_scaling.py            # the full mode (estimate below)

Every rank count R runs as one ``mpiexec -n R python bench_scaling.py --worker ...`` job (this script
in its worker mode), OMP_NUM_THREADS=1, one FFT thread and one torch thread per rank.

* Solver alone: Kolmogorov flow at Re = 1000 (drag 0.1, k_f = 4, pyfftw float64), the dt rule and
  the step block of bench_solver.py's MPI rows (dt = 0.5 dx / 7, max(10, 4e6 / n^2) steps a block);
  one warm-up block excluded, then ``--repeats`` blocks timed between barriers: ms/step, min and
  median (the quick mode: n = 64).
* Hybrid at n = 256 (quick: 64), the demo's settings (coupling.demo.demo_configs: output every 0.5,
  warmup 2, superres x4, leapfrog stretch 1 jumps 2) with the shipped model
  (coupling.surrogates.default_checkpoint()): modes pure, superres and leapfrog with strategy
  "gather" (rank 0 calls the model), and superres with strategy "ensemble" (``--ensemble`` members
  shared over the ranks). Cost: wall seconds per unit of simulated time (the run's own wall_s:
  solver, surrogate, checks, gather/scatter; model loading and one warm-up call excluded), min and
  median over ``--hybrid-repeats`` runs. All ranks start from one field, spun up once beforehand.
* Parallel efficiency = t1 / (R t_R) (1: perfect; R = 1 rows have 1 by definition).
* Every row records ``ranks``, ``cores`` (os.cpu_count()) and ``oversubscribed`` (ranks > cores): on
  a 2-core machine the 4-rank rows check that the path works, they do not measure speed.

Writes benchmarks/results/scaling.json (with benchmarks/provenance.py's metadata) and scaling.png.

Quick mode: 93 s on the 2 shared cores at load 5-6 (jobs of 15, 25 and 47 s for 1, 2, 4 ranks, each
including the start-up of python, torch and the model on every rank).

Full-mode wall time, estimated from the per-step and per-call costs in solver.json, hybrid.json and
coupling_overhead.json and a 2-rank ensemble-4 probe at 256^2 (8.7 s a call): the solver about
1.5 min (6 blocks per size and rank count; the 1024^2 blocks, 10 steps x ~0.3 s, dominate); the
hybrid about 5 min (spin-up 5 units at 256^2 ~25 s; per rank count, 3 units of each run: pure ~15 s,
superres ~10 s, leapfrog ~18 s, ensemble-4 superres ~40 s (a few calls of ~10 s, 4 members on one
rank), the 4-rank job up to twice the 1-rank one); about 6-9 minutes in all on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from bench_solver import block_timer  # noqa: E402
from provenance import finish, provenance, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RESULT_TAG = "SCALING_ROW"
MODES = ("pure", "superres", "leapfrog", "superres_ensemble")
OVERSUBSCRIBED_NOTE = ("rows with ranks > cores oversubscribe the machine: they check that the parallel path "
                       "works and gives a result, they do not measure parallel speed")


# ---------------------------------------------------------------------------------------------- pure helpers
def solver_dt(n: int) -> float:
    """bench_solver.py's fixed time step (jax-cfd's rule dt = 0.5 dx / u_max, u_max = 7)."""
    return 0.5 * (2 * np.pi / n) / 7.0


def block_steps(n: int) -> int:
    """Steps per timed block, as bench_solver.py's MPI rows (about 0.3-3 s of work a block)."""
    return max(10, int(4e6 / n**2))


def efficiency(t1: float | None, ranks: int, t_r: float | None) -> float | None:
    """Parallel efficiency t1 / (R t_R) of a cost t_R on R ranks against t1 on one (None if either is missing)."""
    if not t1 or not t_r or ranks < 1:
        return None
    return t1 / (ranks * t_r)


def summarize(samples: list[float]) -> dict:
    return {"min": min(samples), "median": statistics.median(samples), "samples": list(samples)}


def label_row(row: dict, cores: int) -> dict:
    """``row`` with ``cores`` and ``oversubscribed`` (ranks > cores)."""
    return dict(row, cores=cores, oversubscribed=row["ranks"] > cores)


def add_efficiency(rows: list[dict], key: str, group: tuple[str, ...]) -> list[dict]:
    """Each row gets ``efficiency`` (from its ``key``'s median) against the 1-rank row of its group."""
    base = {tuple(r[g] for g in group): r[key]["median"] for r in rows if r["ranks"] == 1 and key in r}
    for r in rows:
        if key in r:
            r["efficiency"] = efficiency(base.get(tuple(r[g] for g in group)), r["ranks"], r[key]["median"])
            r["speedup"] = (base[tuple(r[g] for g in group)] / r[key]["median"]
                            if tuple(r[g] for g in group) in base else None)
    return rows


def parse_rows(stdout: str) -> list[dict]:
    """The rows a worker printed (one ``SCALING_ROW {json}`` line each)."""
    return [json.loads(line[len(RESULT_TAG):]) for line in stdout.splitlines() if line.startswith(RESULT_TAG + " ")]


# ---------------------------------------------------------------------------------------------- the worker
def _emit(comm, row: dict) -> None:
    if comm.rank == 0:
        print(RESULT_TAG, json.dumps(row), flush=True)


def worker_solver(comm, sizes, repeats: int, steps: int | None = None) -> None:
    from solver import NavierStokes2D, random_field
    from solver.mpi import local_part
    for n in sizes:
        sim = NavierStokes2D(n, 1000.0, forcing="kolmogorov", drag=0.1, comm=comm, backend="pyfftw")
        dt, block_len = solver_dt(n), steps or block_steps(n)
        w = local_part(random_field(n, seed=0), sim)

        def block():
            nonlocal w
            comm.Barrier()
            w = sim.advance(w, block_len * dt, dt=dt)
            comm.Barrier()

        block()  # warm-up: plans, caches
        times = [1e3 * block_timer(block, 1) / block_len for _ in range(repeats)]
        finite = bool(comm.allreduce(int(np.all(np.isfinite(w))), op=_mpi().MIN))
        _emit(comm, {"kind": "solver", "n": n, "ranks": comm.size, "steps_per_block": block_len, "dt": dt,
                     "ms_per_step": summarize(times), "finite": finite})


def _mpi():
    from mpi4py import MPI
    return MPI


def hybrid_configs(n: int, t_end: float, ensemble: int, checkpoint: str) -> dict:
    """The demo's runs at grid n (spin-up done beforehand), plus superres with the "ensemble" strategy."""
    from coupling.demo import demo_configs
    cfgs = demo_configs(t_end, 1, x4_checkpoint=checkpoint, spinup=0.0)  # the tiny model's x4 and leapfrog runs
    out = {m: cfgs[d].replace(n=n, name=f"scaling-{m}")
           for m, d in (("pure", "pure"), ("superres", "superres_x4"), ("leapfrog", "leapfrog"))}
    out["superres_ensemble"] = out["superres"].replace(name="scaling-superres_ensemble", ensemble=ensemble,
                                                       strategy="ensemble")
    return out


def worker_hybrid(comm, n: int, t_end: float, modes, ensemble: int, repeats: int, init: str, checkpoint: str) -> None:
    import torch

    from coupling import HybridSimulation
    from coupling.surrogates import FlexSurrogate
    from flexcouple.data.coarsen import coarsen
    torch.set_num_threads(1)
    omega0 = np.load(init) if comm.rank == 0 else None
    cfgs = hybrid_configs(n, t_end, ensemble, checkpoint)
    surrogate = FlexSurrogate.from_checkpoint(checkpoint or None, steps=2)
    field = comm.bcast(omega0, root=0)
    surrogate.superres(np.asarray(coarsen(field, 4, "spectral")), 1000.0)  # warm-up call, untimed
    for mode in modes:
        cfg = cfgs[mode]
        costs, summary = [], None
        for _ in range(repeats):
            comm.Barrier()
            res = HybridSimulation(cfg, None if mode == "pure" else surrogate, comm).run(omega0)
            summary = comm.bcast(res.summary if comm.rank == 0 else None, root=0)
            costs.append(summary["wall_s"] / cfg.t_end)
        _emit(comm, {"kind": "hybrid", "mode": mode, "strategy": cfg.strategy, "ensemble": cfg.ensemble,
                     "n": n, "ranks": comm.size, "t_end": cfg.t_end, "s_per_unit_time": summarize(costs),
                     "calls": summary["calls"], "accepted": summary["accepted"], "time_s": summary["time_s"]})


def worker(args) -> int:
    comm = _mpi().COMM_WORLD
    if args.sizes:
        worker_solver(comm, args.sizes, args.repeats, args.steps)
    if args.modes:
        worker_hybrid(comm, args.hybrid_n, args.t_end, args.modes, args.ensemble, args.hybrid_repeats, args.init,
                      args.checkpoint)
    return 0


# ---------------------------------------------------------------------------------------------- the driver
def mpiexec_path() -> Path:
    return Path(sys.executable).with_name("mpiexec")


def launch(ranks: int, worker_args: list[str], timeout: float) -> tuple[list[dict], str | None, float]:
    """Run the worker on ``ranks`` ranks: (rows, error or None, wall seconds of the whole job)."""
    cmd = [str(mpiexec_path()), "-n", str(ranks), sys.executable, str(Path(__file__).resolve()), "--worker",
           *worker_args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)))
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return parse_rows(out), f"timed out after {timeout:.0f} s", time.perf_counter() - t0
    err = None if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr[-1500:]}"
    return parse_rows(proc.stdout), err, time.perf_counter() - t0


def spun_up_field(n: int, spinup: float, path: Path) -> None:
    from coupling import HybridSimulation
    from coupling.demo import demo_configs
    cfg = demo_configs(1.0, 1, spinup=spinup)["pure"].replace(n=n)
    np.save(path, HybridSimulation(cfg).initial_field())


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: n = 64 everywhere, 50-step solver blocks, 2 repeats, t_end 2.5 (leapfrog jumps "
                        "at 2 and 2.5), ensemble 2")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--sizes", type=int, nargs="*", default=None, help="solver grids (default 256 512 1024)")
    p.add_argument("--repeats", type=int, default=5, help="timed solver blocks (min and median)")
    p.add_argument("--steps", type=int, default=None, help="steps per solver block (default max(10, 4e6 / n^2))")
    p.add_argument("--hybrid-n", type=int, default=256)
    p.add_argument("--modes", nargs="*", choices=MODES, default=None, help="hybrid runs (default: all)")
    p.add_argument("--t-end", type=float, default=3.0, help="simulated time of each hybrid run")
    p.add_argument("--spinup", type=float, default=5.0, help="spin-up of the hybrid's initial field (done once)")
    p.add_argument("--ensemble", type=int, default=4, help="members of the 'ensemble'-strategy superres run")
    p.add_argument("--hybrid-repeats", type=int, default=1)
    p.add_argument("--checkpoint", default="", help="FLEX checkpoint (default: the shipped model)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per mpiexec job")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default="scaling")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--init", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    if args.quick:
        args.hybrid_n, args.t_end, args.spinup, args.repeats = 64, 2.5, 0.5, 2
        args.sizes = [64] if args.sizes is None else args.sizes
        args.steps = args.steps or 50
        args.ensemble = min(args.ensemble, 2)
    if args.sizes is None:
        args.sizes = [256, 512, 1024]
    if args.modes is None:
        args.modes = list(MODES)
    return args


def worker_args(args, init: Path) -> list[str]:
    out = ["--repeats", str(args.repeats), *(["--steps", str(args.steps)] if args.steps else []),
           "--hybrid-n", str(args.hybrid_n), "--t-end", repr(args.t_end), "--ensemble", str(args.ensemble),
           "--hybrid-repeats", str(args.hybrid_repeats), "--init", str(init),
           "--checkpoint", args.checkpoint, "--sizes", *map(str, args.sizes)]
    return out + ["--modes", *args.modes]


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        return worker(args)
    info = provenance()
    cores = os.cpu_count() or 1
    if not mpiexec_path().exists():
        print(f"no mpiexec next to {sys.executable} (pip install mpich)", file=sys.stderr)
        return 2
    rows, errors, job_wall = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        init = Path(tmp) / "omega0.npy"
        if args.modes:
            print(f"spin-up of the hybrid's field at n = {args.hybrid_n} for {args.spinup:g} ...", flush=True)
            spun_up_field(args.hybrid_n, args.spinup, init)
        for r in args.ranks:
            got, err, wall = launch(r, worker_args(args, init), args.timeout)
            job_wall[str(r)] = wall
            rows += [label_row(row, cores) for row in got]
            for row in got:
                print(describe(row), flush=True)
            if err:
                errors.append({"ranks": r, "error": err})
                print(f"ranks {r}: {err}", file=sys.stderr, flush=True)
    solver_rows = add_efficiency([r for r in rows if r["kind"] == "solver"], "ms_per_step", ("n",))
    hybrid_rows = add_efficiency([r for r in rows if r["kind"] == "hybrid"], "s_per_unit_time", ("mode",))
    result = {
        "benchmark": "scaling", **finish(info),
        "claim": "ms/step of the solver and wall s per simulated time unit of the hybrid over 1, 2, 4 MPI ranks",
        "settings": {"ranks": args.ranks, "sizes": args.sizes, "repeats": args.repeats,
                     "steps_per_block": args.steps or "max(10, 4e6 / n^2)", "hybrid_n": args.hybrid_n,
                     "t_end": args.t_end, "spinup": args.spinup, "ensemble": args.ensemble,
                     "hybrid_repeats": args.hybrid_repeats, "modes": args.modes,
                     "checkpoint": args.checkpoint or "shipped default", "quick": args.quick,
                     "threads_per_rank": 1, "efficiency": "t1 / (R tR), from medians"},
        "cores": cores, "note": OVERSUBSCRIBED_NOTE, "job_wall_s": job_wall,
        "solver": solver_rows, "hybrid": hybrid_rows, "errors": errors,
    }
    path = write_result(args.out, args.name, result)
    if rows:
        plot(result, path.with_suffix(".png"))
    print(f"wrote {path}" + (f" and {path.with_suffix('.png')}" if rows else ""))
    return 1 if errors else 0


def describe(row: dict) -> str:
    if row["kind"] == "solver":
        m = row["ms_per_step"]
        return f"solver n={row['n']} ranks={row['ranks']}: {m['median']:.2f} ms/step (min {m['min']:.2f})"
    c = row["s_per_unit_time"]
    return (f"hybrid {row['mode']} n={row['n']} ranks={row['ranks']}: {c['median']:.2f} s/unit "
            f"({row['calls']} calls, {row['accepted']} accepted)")


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    panels = ((axes[0], result["solver"], "n", "ms_per_step", "solver, n = {}", "ms per step"),
              (axes[1], result["hybrid"], "mode", "s_per_unit_time", "hybrid {}", "wall s per unit time"))
    for ax, rows, group, key, label, ylabel in panels:
        for g in dict.fromkeys(r[group] for r in rows):
            sel = sorted((r for r in rows if r[group] == g), key=lambda r: r["ranks"])
            line, = ax.plot([r["ranks"] for r in sel], [r[key]["median"] for r in sel], "o-", label=label.format(g))
            over = [r for r in sel if r["oversubscribed"]]
            ax.plot([r["ranks"] for r in over], [r[key]["median"] for r in over], "x", ms=10, color=line.get_color())
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["ranks"] for r in rows}) or [1])
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_yscale("log")
        ax.set_xlabel("MPI ranks (x: more ranks than cores)")
        ax.set_ylabel(ylabel)
        if rows:
            ax.legend(fontsize=7)
    fig.suptitle(f"scaling on {result['cores']} cores (median over repeats)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
