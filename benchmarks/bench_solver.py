"""Solver speed: ms per step against the FFT floor, the jax-cfd peer, and MPI ranks.

    .venv/bin/python benchmarks/bench_solver.py [--sizes 128 256 512 1024] [--quick]

Writes benchmarks/results/solver.json and solver.png. Every ratio is measured in one run, with the
two quantities timed alternately, so that a noisy shared machine biases both alike.

* ms/step: Kolmogorov flow at Re = 1000 (drag 0.1, k_f = 4), fixed dt, after a warm-up, the median
  of several blocks of steps.
* FFT floor: FFTs per step (4 stages x (2 inverse + 2 forward), Basdevant's form = 16) x the time of one real 2D FFT of
  that size on that backend (the mean of one forward and one inverse transform of a single field).
  Target: step / floor <= 1.3 at n >= 256. Also the FFTs the step performs: on pyfftw the forward
  transforms of the dealiased terms skip the columns the 2/3 rule drops (a third of the pass along
  x), so 8 full inverse + 8 pruned forward transforms, timed the same way (``performed_fft_ms``).
* peer: jax-cfd's ForcedNavierStokes2D with crank_nicolson_rk4 (benchmarks/peer_jaxcfd.py, run in
  the separate environment .venv-peer, see requirements/peer.txt), same problem and dt, compile time
  excluded, and the vorticity correlation of the two at t = 1 from the same initial field.
* kernels: the step with the fused numba kernels (``solver/kernels.py``, the default when numba is
  installed) against the numpy ufunc path (``FLEXCOUPLE_KERNELS=numpy``), pyfftw, 1 thread, both
  dtypes, the two solvers built side by side and timed in alternating blocks.
* MPI: 1, 2, 4 ranks (this machine has 2 cores: 4 ranks oversubscribe it), for each distributed
  transform: ours (``slab``, the default: blocks exchanged through shared memory on one node;
  ``slab-alltoallv``: through one Alltoallv) and mpi4py-fft's, the whole cycle repeated
  (``--mpi-rounds``) and the median taken.
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

from solver import NavierStokes2D, cupy_available, random_field  # noqa: E402
from provenance import finish, provenance  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FFTS_PER_STEP = 16


def block_timer(fn, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def sync(sim):
    if sim.backend_name == "cupy":
        sim.xp.cuda.Stream.null.synchronize()


def measure_backend(n: int, backend: str, dtype: str, blocks: int = 5, min_block_s: float = 0.3,
                    threads: int = 1) -> dict:
    sim = NavierStokes2D(n, 1000.0, forcing="kolmogorov", drag=0.1, backend=backend, dtype=dtype, threads=threads)
    dt = 0.5 * (2 * np.pi / n) / 7.0  # jax-cfd's rule dt = 0.5 dx / u_max with u_max = 7
    w_hat = sim.to_spectral(sim.xp.asarray(random_field(n, seed=0).astype(dtype)))
    be = sim.backend
    field = be.real_buffer()
    field[...] = sim.to_physical(w_hat)
    spec = be.forward(field)

    omega = sim.xp.asarray(random_field(n, seed=0).astype(dtype))
    block = 10

    def step():
        # the public path: advance() with its CFL bookkeeping and blow-up checks, 10 steps a call
        nonlocal omega
        omega = sim.advance(omega, block * dt, dt=dt)
        sync(sim)

    def one_fft_pair(columns=None):
        # one forward and one inverse real 2D FFT of a single field, the solver's own plans
        be.forward_view(field, columns=columns)
        buf = be.spectral_buffer()
        buf[...] = spec
        be.backward_unscaled(buf)
        sync(sim)

    def performed_pair():
        # as the step does them: the forward transform of the dealiased terms skips the columns the
        # 2/3 rule drops (pyfftw; the same as the full pair on the other backends)
        one_fft_pair(sim.equation.dealias_columns)

    # warm-up (plans, coefficient cache, caches), then size the blocks to ~min_block_s
    step()
    one_fft_pair()
    t_step = block_timer(step, 1)
    reps_step = max(1, int(min_block_s / max(t_step, 1e-6)))
    t_fft = block_timer(one_fft_pair, 3)
    reps_fft = max(3, int(min_block_s / max(t_fft, 1e-6)))
    performed_pair()
    steps, ffts, performed = [], [], []
    for _ in range(blocks):  # alternate, so that load changes hit all three
        steps.append(block_timer(step, reps_step) / block)
        ffts.append(block_timer(one_fft_pair, reps_fft))
        performed.append(block_timer(performed_pair, reps_fft))
    ms_step = 1e3 * statistics.median(steps)
    ms_fft = 1e3 * statistics.median(ffts) / 2.0
    floor = FFTS_PER_STEP * ms_fft
    ms_performed = FFTS_PER_STEP / 2 * 1e3 * statistics.median(performed)
    finite = bool(sim.xp.all(sim.xp.isfinite(omega)))
    return {"n": n, "backend": backend, "dtype": dtype, "ms_per_step": ms_step, "ms_per_fft": ms_fft,
            "fft_floor_ms": floor, "ratio_to_floor": ms_step / floor,
            "performed_fft_ms": ms_performed, "ratio_to_performed_ffts": ms_step / ms_performed,
            "dealias_columns": sim.equation.dealias_columns, "dt": dt, "finite": finite,
            "threads": be.threads, "kernels": sim.kernels}


def kernel_solver(n: int, dtype: str, kernels: str):
    """A pyfftw solver whose element-wise work runs on ``kernels`` (chosen at construction)."""
    old = os.environ.get("FLEXCOUPLE_KERNELS")
    os.environ["FLEXCOUPLE_KERNELS"] = kernels
    try:
        return NavierStokes2D(n, 1000.0, forcing="kolmogorov", drag=0.1, backend="pyfftw", dtype=dtype)
    finally:
        if old is None:
            del os.environ["FLEXCOUPLE_KERNELS"]
        else:
            os.environ["FLEXCOUPLE_KERNELS"] = old


def measure_kernels(n: int, dtype: str, blocks: int = 7, min_block_s: float = 0.3, check_steps: int = 100) -> dict:
    """ms/step with the fused kernels against the numpy path, alternating blocks, and how far the two
    fields are apart after ``check_steps`` steps from one initial field (round-off only: 0 in float64,
    where the fused kernels do the numpy path's operations in its order; float32 rounds sums
    differently). A fixed number of steps, not a fixed time: at n = 1024 t = 0.5 took 2 x 1140 steps."""
    sims = {k: kernel_solver(n, dtype, k) for k in ("numpy", "numba")}
    if sims["numba"].kernels != "numba":
        return {"n": n, "dtype": dtype, "skipped": "numba is not installed"}
    dt = 0.5 * (2 * np.pi / n) / 7.0
    omega = {k: random_field(n, seed=0).astype(dtype) for k in sims}
    block = 10

    def stepper(k):
        def step():
            omega[k] = sims[k].advance(omega[k], block * dt, dt=dt)
        return step

    short = {k: sims[k].advance(omega[k], check_steps * dt, dt=dt) for k in sims}
    diff = float(np.max(np.abs(short["numba"] - short["numpy"])) / np.max(np.abs(short["numpy"])))
    steps = {k: stepper(k) for k in sims}
    for k in sims:  # warm-up: plans, coefficients, the kernels' compilation
        steps[k]()
    once = max(block_timer(steps[k], 1) for k in sims)  # each advanced alike: the fields stay comparable
    reps = max(1, int(min_block_s / max(once, 1e-6)))
    times = {k: [] for k in sims}
    for _ in range(blocks):
        for k in sims:
            times[k].append(block_timer(steps[k], reps) / block)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    return {"n": n, "dtype": dtype, "numpy_ms_per_step": ms["numpy"], "numba_ms_per_step": ms["numba"],
            "numba_over_numpy": ms["numba"] / ms["numpy"], "max_relative_difference": diff,
            "difference_after_steps": check_steps,
            "steps_each": block * (2 + reps * blocks)}


def run_peer(sizes, t_end: float = 1.0) -> list[dict]:
    peer_python = ROOT / ".venv-peer" / "bin" / "python"
    script = ROOT / "benchmarks" / "peer_jaxcfd.py"
    if not peer_python.exists() or not script.exists():
        print(f"peer: skipped, {peer_python} or {script} missing (see requirements/peer.txt)")
        return [{"skipped": f"{peer_python} or {script} missing"}]
    out = []
    for n in sizes:
        dt = 0.5 * (2 * np.pi / n) / 7.0
        omega0 = random_field(n, seed=0)
        sim = NavierStokes2D(n, 1000.0, forcing="kolmogorov", drag=0.1, backend="pyfftw")
        ours_final = sim.advance(omega0, t_end, dt=dt)
        with tempfile.TemporaryDirectory() as tmp:
            np.save(f"{tmp}/init.npy", omega0)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [str(peer_python), str(script), "--n", str(n), "--reynolds", "1000", "--dt", repr(dt),
                 "--t-end", repr(t_end), "--init", f"{tmp}/init.npy", "--out", f"{tmp}/peer.npz"],
                capture_output=True, text=True, timeout=1800, env=dict(os.environ, OMP_NUM_THREADS="1"))
            if proc.returncode != 0:
                print(proc.stdout, proc.stderr)
                out.append({"n": n, "error": proc.stderr[-2000:]})
                continue
            with np.load(f"{tmp}/peer.npz", allow_pickle=False) as res:
                peer_final = res["vorticity"]
                peer_ms = float(res["ms_per_step"])
                peer_meta = {k: res[k].item() for k in res.files if res[k].ndim == 0 and k != "ms_per_step"}
        # ours, timed now, right after the peer, at the same dt
        ours = measure_backend(n, "pyfftw", "float64")
        a, b = ours_final - ours_final.mean(), peer_final - peer_final.mean()
        corr = float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))
        rel = float(np.linalg.norm(ours_final - peer_final) / np.linalg.norm(peer_final))
        row = {"n": n, "dt": dt, "t_end": t_end, "ours_ms_per_step": ours["ms_per_step"], "peer_ms_per_step": peer_ms,
               "speedup_ours_over_peer": peer_ms / ours["ms_per_step"], "correlation_at_t_end": corr,
               "relative_l2_difference": rel, "peer_wall_s": time.perf_counter() - t0,
               **{f"peer_{k}": v for k, v in peer_meta.items()}}
        print(f"peer n={n}: ours {ours['ms_per_step']:.2f} ms/step, jax-cfd {peer_ms:.2f} ms/step "
              f"(x{row['speedup_ours_over_peer']:.2f}), correlation at t={t_end:g}: {corr:.5f}")
        out.append(row)
    return out


MPI_SCRIPT = """
import statistics, sys, time
import numpy as np
from mpi4py import MPI
from solver import NavierStokes2D, random_field
from solver.mpi import local_part
comm = MPI.COMM_WORLD
n = int(sys.argv[1])
sim = NavierStokes2D(n, 1000.0, forcing="kolmogorov", drag=0.1, comm=comm, backend="pyfftw")
dt = 0.5 * (2 * np.pi / n) / 7.0
w = local_part(random_field(n, seed=0), sim)
steps = int(sys.argv[2])
w = sim.advance(w, dt, dt=dt)
times = []
for _ in range(5):
    comm.Barrier(); t = time.perf_counter()
    w = sim.advance(w, steps * dt, dt=dt)
    comm.Barrier(); times.append((time.perf_counter() - t) / steps)
if comm.rank == 0:
    print("MS_PER_STEP", 1e3 * statistics.median(times))
"""


#: the distributed variants timed: label -> (FLEXCOUPLE_MPI_TRANSFORM, FLEXCOUPLE_MPI_EXCHANGE)
MPI_VARIANTS = {"slab": ("slab", "auto"), "slab-alltoallv": ("slab", "alltoallv"), "mpi4py-fft": ("mpi4py-fft", "auto")}


def run_mpi(sizes, ranks=(1, 2, 4), variants=tuple(MPI_VARIANTS), rounds: int = 3) -> list[dict]:
    """ms/step over ranks, for each distributed transform: ours (``slab``: the shared-memory exchange
    on one node, the default; ``slab-alltoallv``: its Alltoallv exchange) and mpi4py-fft's. For each
    n, the whole cycle of (ranks, variant) runs ``rounds`` times, so that load changes hit every
    configuration alike; a row's ms/step is the median over its rounds (each round's own median of 5
    blocks is kept). 1 rank is the serial solver."""
    mpiexec = Path(sys.executable).with_name("mpiexec")
    if not mpiexec.exists():
        return [{"skipped": f"no mpiexec next to {sys.executable}"}]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "mpi_bench.py"
        script.write_text(MPI_SCRIPT)
        for n in sizes:
            configs = [(p, label) for p in ranks for label in (variants if p > 1 else ("serial",))]
            runs: dict = {c: [] for c in configs}
            errors: dict = {}
            for _ in range(rounds):
                for p, label in configs:
                    if (p, label) in errors:
                        continue
                    steps = max(10, int(4e6 / n**2))
                    transform, exchange = MPI_VARIANTS.get(label, ("slab", "auto"))
                    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT),
                               FLEXCOUPLE_MPI_TRANSFORM=transform, FLEXCOUPLE_MPI_EXCHANGE=exchange)
                    proc = subprocess.run([str(mpiexec), "-n", str(p), sys.executable, str(script), str(n), str(steps)],
                                          capture_output=True, text=True, timeout=1200, env=env)
                    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("MS_PER_STEP")]
                    if proc.returncode != 0 or not line:
                        errors[(p, label)] = proc.stderr[-1500:]
                        continue
                    runs[(p, label)].append(float(line[0].split()[1]))
            for p, label in configs:
                if (p, label) in errors:
                    out.append({"n": n, "ranks": p, "transform": label, "error": errors[(p, label)]})
                    continue
                ms = statistics.median(runs[(p, label)])
                out.append({"n": n, "ranks": p, "transform": label, "ms_per_step": ms, "rounds_ms": runs[(p, label)]})
                print(f"mpi n={n} ranks={p} ({label}): {ms:.2f} ms/step (rounds: "
                      f"{', '.join(f'{x:.2f}' for x in runs[(p, label)])})", flush=True)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    rows = results["backends"]
    for (backend, dtype, threads) in sorted({(r["backend"], r["dtype"], r["threads"]) for r in rows}):
        sel = sorted((r for r in rows if (r["backend"], r["dtype"], r["threads"]) == (backend, dtype, threads)),
                     key=lambda r: r["n"])
        ns = [r["n"] for r in sel]
        style = "-" if dtype == "float64" else "--"
        label = f"{backend} {dtype}" + (f" {threads}t" if threads > 1 else "")
        line, = axes[0].loglog(ns, [r["ms_per_step"] for r in sel], style, marker="o", label=label)
        axes[0].loglog(ns, [r["fft_floor_ms"] for r in sel], ":", color=line.get_color())
        axes[1].semilogx(ns, [r["ratio_to_floor"] for r in sel], style, marker="o", label=label)
    axes[0].set_title("ms per step (dotted: FFT floor)")
    axes[0].set_xlabel("n")
    axes[0].legend(fontsize=7)
    axes[1].axhline(1.3, color="k", lw=0.8, ls="--", label="target 1.3")
    axes[1].set_title("step time / FFT floor")
    axes[1].set_xlabel("n")
    axes[1].legend(fontsize=7)
    peer = [r for r in results.get("peer", []) if "peer_ms_per_step" in r]
    mpi = [r for r in results.get("mpi", []) if "ms_per_step" in r]
    ax = axes[2]
    if peer:
        ns = [r["n"] for r in peer]
        ax.loglog(ns, [r["ours_ms_per_step"] for r in peer], "o-", label="ours (pyfftw, 1 thread)")
        ax.loglog(ns, [r["peer_ms_per_step"] for r in peer], "s-", label="jax-cfd CN-RK4")
    for p, transform in sorted({(r["ranks"], r.get("transform", "")) for r in mpi}):
        sel = sorted((r for r in mpi if (r["ranks"], r.get("transform", "")) == (p, transform)), key=lambda r: r["n"])
        ax.loglog([r["n"] for r in sel], [r["ms_per_step"] for r in sel], "^:" if transform != "mpi4py-fft" else "v:",
                  label=f"MPI {p} rank(s) {transform}")
    ax.set_title("peer and MPI (2 cores)")
    ax.set_xlabel("n")
    ax.set_ylabel("ms per step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(results: dict) -> dict:
    """The issue's targets, each a ratio measured in this run: ours over jax-cfd per step (>= 2 at
    n >= 256), step over FFT floor (<= 1.3 at n >= 256; pyfftw float64, 1 thread) and 2 MPI ranks
    against 1 (<= 1, i.e. no slower)."""
    out = {"peer_speedup": {}, "step_over_fft_floor": {}, "step_over_performed_ffts": {}, "mpi_2_over_1": {},
           "numba_over_numpy": {}}
    for r in results.get("kernels", []):
        if "numba_over_numpy" in r:
            out["numba_over_numpy"][f"{r['n']}/{r['dtype']}"] = r["numba_over_numpy"]
    for r in results.get("peer", []):
        if "speedup_ours_over_peer" in r:
            out["peer_speedup"][str(r["n"])] = r["speedup_ours_over_peer"]
    for r in results["backends"]:
        if (r["backend"], r["dtype"], r["threads"]) == ("pyfftw", "float64", 1):
            out["step_over_fft_floor"][str(r["n"])] = r["ratio_to_floor"]
            if "ratio_to_performed_ffts" in r:
                out["step_over_performed_ffts"][str(r["n"])] = r["ratio_to_performed_ffts"]
    mpi = {(r["n"], r["ranks"], r.get("transform", "mpi4py-fft" if r["ranks"] > 1 else "serial")): r["ms_per_step"]
           for r in results.get("mpi", []) if "ms_per_step" in r}
    out["mpi_slab_over_mpi4py_fft"] = {}
    out["mpi_shared_over_alltoallv"] = {}
    for (n, ranks, transform), ms in sorted(mpi.items()):
        if ranks == 2 and transform == "slab" and (n, 1, "serial") in mpi:
            out["mpi_2_over_1"][str(n)] = ms / mpi[(n, 1, "serial")]
        if ranks > 1 and transform == "slab" and (n, ranks, "mpi4py-fft") in mpi:
            out["mpi_slab_over_mpi4py_fft"][f"{n}/{ranks}"] = ms / mpi[(n, ranks, "mpi4py-fft")]
        if ranks > 1 and transform == "slab" and (n, ranks, "slab-alltoallv") in mpi:
            out["mpi_shared_over_alltoallv"][f"{n}/{ranks}"] = ms / mpi[(n, ranks, "slab-alltoallv")]
    big = lambda d: {n: v for n, v in d.items() if int(n) >= 256}  # noqa: E731
    out["targets_met"] = {
        "peer_2x_at_n_ge_256": bool(big(out["peer_speedup"])) and all(v >= 2 for v in big(out["peer_speedup"]).values()),
        "floor_1.3_at_n_ge_256": bool(big(out["step_over_fft_floor"])) and all(v <= 1.3 for v in big(out["step_over_fft_floor"]).values()),
        "performed_ffts_1.3_at_n_ge_256": (bool(big(out["step_over_performed_ffts"]))
                                           and all(v <= 1.3 for v in big(out["step_over_performed_ffts"]).values())),
        "mpi_2_ranks_no_slower_at_256": out["mpi_2_over_1"].get("256", float("inf")) <= 1.0,
    }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    ap.add_argument("--peer-sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--mpi-sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--mpi-rounds", type=int, default=3, help="cycles over (ranks, transform) per size")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="FFT threads to measure for pyfftw (the others run with 1)")
    ap.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-mpi", action="store_true")
    ap.add_argument("--skip-kernels", action="store_true", help="skip the fused-kernel A/B")
    ap.add_argument("--kernel-sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    ap.add_argument("--out", type=Path, default=RESULTS / "solver.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.peer_sizes, args.mpi_sizes, args.kernel_sizes = [64, 128], [64], [128], [64]
    backends = ["numpy", "scipy", "pyfftw"]
    gpu_ok, gpu_why = cupy_available()
    if gpu_ok:
        backends.append("cupy")
    info = provenance()
    results = {
        "machine": {"note": "2 shared CPU cores; FFT threads = 1 per process unless stated; "
                            "MPI with 4 ranks oversubscribes the 2 cores"},
        "gpu": {"available": gpu_ok, "why_not": gpu_why},
        "backends": [],
    }
    configs = [(b, d, 1) for b in backends for d in ("float64", "float32")]
    configs += [("pyfftw", d, t) for t in args.threads if t > 1 for d in ("float64", "float32")]
    for n in args.sizes:
        for backend, dtype, threads in configs:
            row = measure_backend(n, backend, dtype, threads=threads)
            results["backends"].append(row)
            print(f"n={n:5d} {backend:7s} {dtype} {threads} thread(s): {row['ms_per_step']:8.2f} ms/step, floor "
                  f"{row['fft_floor_ms']:8.2f} ms, ratio {row['ratio_to_floor']:.2f} (to the FFTs performed "
                  f"{row['ratio_to_performed_ffts']:.2f})", flush=True)
    if not args.skip_kernels:
        results["kernels"] = []
        for n in args.kernel_sizes:
            for dtype in ("float64", "float32"):
                row = measure_kernels(n, dtype)
                results["kernels"].append(row)
                if "skipped" in row:
                    print(f"kernels n={n} {dtype}: skipped, {row['skipped']}", flush=True)
                    continue
                print(f"kernels n={n:5d} {dtype}: numpy {row['numpy_ms_per_step']:.2f} ms/step, numba "
                      f"{row['numba_ms_per_step']:.2f} ({row['numba_over_numpy']:.2f}x), "
                      f"max rel. difference after {row['difference_after_steps']} steps {row['max_relative_difference']:.1e}", flush=True)
    if not args.skip_peer:
        results["peer"] = run_peer(args.peer_sizes)
    if not args.skip_mpi:
        if args.mpi_rounds < 1:
            ap.error(f"--mpi-rounds must be at least 1, got {args.mpi_rounds}")
        results["mpi"] = run_mpi(args.mpi_sizes, rounds=args.mpi_rounds)
    results["summary"] = summarize(results)
    done = finish(info)
    results = {**done, **results, "machine": {**done["machine"], **results["machine"]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
