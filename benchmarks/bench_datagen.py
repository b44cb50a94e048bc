"""Benchmark: data-generation throughput (snapshots per second) with 1 and 2 MPI ranks.

Claim measured: ``flexcouple generate`` spreads trajectories over MPI ranks, so throughput grows with
the ranks (up to the cores available). Method:

1. The same small Kolmogorov-flow config (``--n``, 8 trajectories per run by default) is generated
   from scratch by the real command, ``python -m flexcouple_cli generate``, once serially and once
   under ``mpiexec -n 2``. Separately, one 256^2 trajectory serially and with ``--slab`` on 2 ranks
   (the trajectory split over both ranks by the solver's slab decomposition).
   Wall time covers everything (start-up, solver, HDF5 merge, statistics); snapshots/s = trajectories
   x snapshots / wall time. The solver-only time comes from the files' provenance.
2. A per-trajectory cost probe at the ``default`` and ``large`` presets' resolutions (256^2, 1024^2):
   a short run from the preset's own initial condition, giving seconds per unit of simulated time,
   from which the presets' total cost is extrapolated (assuming the same mean time step over the
   whole run, which is the main source of error: dt shrinks as the flow spins up).

This machine has 2 cores shared with other jobs: the load average before and after each run is
recorded, and the speed-up with 2 ranks is bounded by 2. Results: benchmarks/results/datagen.json.

    .venv/bin/python benchmarks/bench_datagen.py [--n 64] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from flexcouple.data import well  # noqa: E402
from flexcouple.data.config import OODSet, load_preset, save_config  # noqa: E402


def bench_config(n: int, trajectories: int, snapshots: int):
    # 2 Reynolds numbers x trajectories/2 seeds, training split only: an even work split over 2 ranks
    return load_preset("tiny").replace(
        name=f"bench-{n}", n=n, reynolds=[100.0, 200.0], train=trajectories // 2, valid=0, test=0,
        snapshots=snapshots, spinup=2.0, interval=0.25, resolution_tolerance=1.0, ood=[])


def run_generate(config_path: Path, out: Path, ranks: int, slab: bool = False) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "flexcouple_cli", "generate", "--config", str(config_path), "--out", str(out),
           "--no-progress"]
    if slab:
        cmd.append("--slab")
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks)] + cmd
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr}")
    meta = json.loads((out / well.METADATA_FILE).read_text())
    solver_s = 0.0
    for rel in meta["splits"]["train"]["files"]:
        solver_s += sum(well.read_provenance(out / rel)["trajectories"]["wall_time_s"])
    n_traj = sum(meta["splits"]["train"]["trajectories_per_file"] for _ in meta["splits"]["train"]["files"])
    snaps = n_traj * meta["snapshots"]
    return {"ranks": ranks, "slab": slab, "wall_s": round(wall, 3), "trajectories": n_traj, "snapshots": snaps,
            "snapshots_per_s": round(snaps / wall, 2), "solver_time_s_summed_over_trajectories": round(solver_s, 3),
            "load_avg_1min_before": round(load_before, 2), "load_avg_1min_after": round(os.getloadavg()[0], 2)}


def cost_probe(preset: str, t_probe: float) -> dict:
    """Seconds per unit simulated time for one trajectory at the preset's highest training Re."""
    from flexcouple.data.config import Case
    from solver import NavierStokes2D, random_field

    cfg = load_preset(preset)
    case = Case(max(cfg.reynolds), cfg.boundaries[0], cfg.forcing_wavenumber)
    sim = NavierStokes2D(cfg.n, **cfg.solver_kwargs(case))
    w0 = random_field(cfg.n, 0, peak_wavenumber=cfg.ic_peak_wavenumber, energy=cfg.ic_energy)
    sim.advance(w0, min(t_probe / 10, 0.01))  # warm-up: FFT plans, caches
    t0 = time.perf_counter()
    sim.advance(w0, t_probe)
    wall = time.perf_counter() - t0
    stats = sim.last_stats
    per_time = wall / t_probe
    t_traj = cfg.times()[-1]
    n_traj = sum(cfg.trajectories(s) * len(cfg.cases(s)) for s in cfg.split_names())
    total = per_time * t_traj * n_traj
    return {"preset": preset, "n": cfg.n, "reynolds": case.reynolds, "backend": cfg.backend,
            "probe_simulated_time": t_probe, "probe_wall_s": round(wall, 3), "probe_steps": stats["steps"],
            "ms_per_step": round(1e3 * wall / max(stats["steps"], 1), 3), "dt_mean": stats["dt_mean"],
            "s_per_unit_time": round(per_time, 3), "trajectories": n_traj, "simulated_time_per_trajectory": t_traj,
            "estimated_total_core_hours": round(total / 3600, 2),
            "estimated_hours_on_2_ranks": round(total / 3600 / 2, 2),
            "caveat": "extrapolated from a short probe at the highest training Re from the initial condition; "
                      "dt shrinks as the flow spins up, so treat it as a lower bound within ~2x"}


def samples_figure(dataset: Path, path: Path) -> None:
    """One vorticity snapshot per split and its energy spectrum with the dealiasing cutoff marked."""
    import h5py
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flexcouple.data.generate import cutoff_shell

    meta = json.loads((dataset / well.METADATA_FILE).read_text())
    panels = [(split, rel) for split, info in meta["splits"].items() for rel in info["files"]]
    panels = [p for p in panels if p[0] != "valid"][:8]
    fig, axes = plt.subplots(2, len(panels), figsize=(2.2 * len(panels), 4.6), squeeze=False)
    for j, (split, rel) in enumerate(panels):
        with h5py.File(dataset / rel, "r") as f:
            w = f["t0_fields/vorticity"][0, -1].astype(np.float64)
            re_, kf, bc = float(f.attrs["Re"]), int(f.attrs["forcing_wavenumber"]), str(f.attrs["boundary"])
        n = w.shape[0]
        lim = np.abs(w).max()
        ax = axes[0, j]
        ax.imshow(w.T, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim, extent=(0, 2 * np.pi, 0, 2 * np.pi))
        ax.set_title(f"{split}\nRe {re_:g}, k_f {kf}, {bc}", fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])
        # isotropic energy spectrum E(k) = sum_shell |w_hat|^2 / (2 k^2) (periodic FFT; for walls indicative)
        wh = np.fft.fft2(w) / n**2
        k1 = np.fft.fftfreq(n, 1 / n)
        kk = np.sqrt(k1[:, None] ** 2 + k1[None, :] ** 2)
        dens = np.where(kk > 0, np.abs(wh) ** 2 / (2 * np.maximum(kk, 1) ** 2), 0)
        e = np.bincount(np.rint(kk).astype(int).ravel(), dens.ravel())
        ax = axes[1, j]
        ax.loglog(np.arange(1, len(e)), e[1:], lw=1)
        ax.axvline(cutoff_shell(n, True), color="k", ls="--", lw=0.8)
        ax.set_xlabel("k", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[1, 0].set_ylabel("E(k), last snapshot", fontsize=7)
    fig.suptitle(f"{meta['name']}: vorticity (x right, y up) and spectra, dashed = 2/3 cutoff", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--trajectories", type=int, default=8)
    parser.add_argument("--snapshots", type=int, default=32)
    parser.add_argument("--slab-n", type=int, default=256, help="grid of the one-trajectory slab comparison")
    parser.add_argument("--quick", action="store_true", help="smaller probes (for a smoke run)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "datagen.json")
    parser.add_argument("--samples-figure", type=Path, metavar="DATASET",
                        help="only draw benchmarks/results/datagen_samples.png from an existing data set")
    args = parser.parse_args(argv)
    if args.samples_figure is not None:
        samples_figure(args.samples_figure, args.out.parent / "datagen_samples.png")
        print(f"wrote {args.out.parent / 'datagen_samples.png'}")
        return 0

    cfg = bench_config(args.n, args.trajectories, args.snapshots)
    results = {"benchmark": "datagen", "claim": "snapshots per second of `flexcouple generate` with 1 and 2 MPI ranks",
               "machine": {"cpus": os.cpu_count(), "note": "2 cores shared with other jobs; speed-up is bounded by 2"},
               "config": {"n": cfg.n, "reynolds": cfg.reynolds, "trajectories": args.trajectories,
                          "snapshots": cfg.snapshots, "spinup": cfg.spinup, "interval": cfg.interval,
                          "backend": cfg.backend},
               "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg_path = tmp / "bench.toml"
        save_config(cfg, cfg_path)
        for ranks in (1, 2):
            out = tmp / f"r{ranks}"
            r = run_generate(cfg_path, out, ranks)
            results["runs"].append(r)
            print(json.dumps(r), flush=True)
            shutil.rmtree(out)
        slab_cfg = bench_config(args.slab_n, 2, 2).replace(name="bench-slab", reynolds=[1000.0], train=1,
                                                           spinup=0.1 if args.quick else 0.5)
        slab_path = tmp / "slab.toml"
        save_config(slab_cfg, slab_path)
        results["slab_config"] = {"n": slab_cfg.n, "reynolds": slab_cfg.reynolds, "trajectories": 1,
                                  "snapshots": slab_cfg.snapshots, "spinup": slab_cfg.spinup}
        results["slab_runs"] = []
        for ranks, slab in ((1, False), (2, True)):
            out = tmp / f"slab{ranks}"
            r = run_generate(slab_path, out, ranks, slab)
            results["slab_runs"].append(r)
            print(json.dumps(r), flush=True)
            shutil.rmtree(out)
    base = results["runs"][0]["snapshots_per_s"]
    results["speedup_2_ranks"] = round(results["runs"][1]["snapshots_per_s"] / base, 2)
    results["speedup_2_ranks_slab_one_trajectory"] = round(
        results["slab_runs"][0]["wall_s"] / results["slab_runs"][1]["wall_s"], 2)
    results["cost_estimates"] = [cost_probe("default", 0.05 if args.quick else 0.5),
                                 cost_probe("large", 0.005 if args.quick else 0.03)]
    for c in results["cost_estimates"]:
        print(json.dumps(c), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
