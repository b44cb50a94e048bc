"""Benchmark: what the coupling layer adds to a surrogate call (drift checks, gather / scatter).

Claim measured: the checks and the movement of fields between MPI ranks cost little next to one
surrogate call, so the hybrid's cost is the solver's plus the surrogate's. Method, at the fine grid
``--n`` (Kolmogorov flow, Re 1000, a spun-up field):

1. one FLEX call (the shipped model, or ``--checkpoint``; 2 sampling steps), super-resolution x4 and
   forecast, ensemble 1 and ``--ensemble``, torch threads as given (median of ``--repeats``);
2. the drift checks of one call as the hybrid runs them (``CheckSuite.evaluate``), for a
   super-resolution output and a forecast (the forecast's checks include the coarse-solver forecast);
3. gather + scatter of one field over 2 MPI ranks (``mpiexec -n 2``, the solver's slab layout).

Ratios are taken within this run. Results: benchmarks/results/coupling_overhead.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_coupling_overhead.py [--n 256] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from provenance import median_time  # noqa: E402

MPI_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from mpi4py import MPI
    from solver import NavierStokes2D
    from solver.mpi import gather, scatter
    comm = MPI.COMM_WORLD
    n, repeats = int(sys.argv[1]), int(sys.argv[2])
    sim = NavierStokes2D(n, 1000.0, backend="pyfftw", comm=comm)
    field = np.random.default_rng(0).standard_normal((n, n)) if comm.rank == 0 else None
    times = []
    for _ in range(repeats):
        comm.Barrier()
        t0 = time.perf_counter()
        local = scatter(field, sim)
        full = gather(local, sim)
        times.append(time.perf_counter() - t0)
    if comm.rank == 0:
        print(json.dumps({"gather_scatter_s": sorted(times)[len(times) // 2]}))
""")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    p.add_argument("--ensemble", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    import torch

    from coupling.checks import CheckContext, CheckSuite, FieldDiagnostics
    from coupling.config import HybridConfig
    from coupling.surrogates import FlexSurrogate
    from flexcouple.data.coarsen import coarsen
    from solver import NavierStokes2D, random_field

    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    cfg = HybridConfig(n=args.n, backend="pyfftw")
    sim = NavierStokes2D(args.n, **cfg.solver_kwargs())
    w0 = np.asarray(sim.advance(random_field(args.n, seed=7), 2.0))
    w1 = np.asarray(sim.advance(w0, 0.5))
    sur = FlexSurrogate.from_checkpoint(args.checkpoint, steps=2)
    coarse = coarsen(w1, 4, "spectral")
    hist = np.stack([w0, w1])
    res = {}
    res["superres_call_s"] = median_time(lambda: sur.superres(coarse, 1000.0), args.repeats)
    res[f"superres_call_ensemble{args.ensemble}_s"] = median_time(
        lambda: sur.superres(coarse, 1000.0, ensemble=args.ensemble), max(2, args.repeats // 2))
    res["forecast_call_s"] = median_time(lambda: sur.forecast(hist, 1000.0), args.repeats)
    pred = sur.superres(coarse, 1000.0, ensemble=2)
    diag_sr = FieldDiagnostics(args.n, cfg.solver_kwargs(), coarse_n=args.n // 4)
    diag_fc = FieldDiagnostics(args.n, cfg.solver_kwargs())
    suite = CheckSuite()
    spectra = diag_fc.spectrum(w0)
    sr_ctx = CheckContext(candidate=pred.mean, previous=None, dt=0.5, diagnostics=diag_sr, std=pred.std,
                          coarse=coarse, recent_max=float(np.abs(w0).max()), reference_spectrum=spectra)
    fc_ctx = CheckContext(candidate=w1, previous=w0, dt=0.5, diagnostics=diag_fc,
                          recent_max=float(np.abs(w0).max()), reference_spectrum=spectra, forecast=True)
    res["checks_superres_s"] = median_time(lambda: suite.evaluate(sr_ctx), args.repeats)
    res["checks_forecast_s"] = median_time(lambda: suite.evaluate(fc_ctx), args.repeats)
    t0 = time.perf_counter()
    sim.advance(w1, 0.5)
    res["solver_0.5_time_units_s"] = time.perf_counter() - t0
    res["solver_steps_per_0.5"] = sim.last_stats["steps"]

    script = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_gather_scatter.py"
    script.write_text(MPI_SCRIPT)
    mpiexec = Path(sys.executable).with_name("mpiexec")
    proc = subprocess.run([str(mpiexec), "-n", "2", sys.executable, str(script), str(args.n), "20"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"))
    res["gather_scatter_2_ranks_s"] = json.loads(proc.stdout.strip().splitlines()[-1])["gather_scatter_s"] \
        if proc.returncode == 0 else f"failed: {proc.stderr[-300:]}"
    call = res["superres_call_s"]
    ratios = {"checks_superres / superres call": res["checks_superres_s"] / call,
              "checks_forecast / forecast call": res["checks_forecast_s"] / res["forecast_call_s"],
              f"ensemble{args.ensemble} / {args.ensemble} single calls":
                  res[f"superres_call_ensemble{args.ensemble}_s"] / (args.ensemble * call),
              "solver over one lead time (0.5) / forecast call":
                  res["solver_0.5_time_units_s"] / res["forecast_call_s"]}
    if isinstance(res["gather_scatter_2_ranks_s"], float):
        ratios["gather+scatter (2 ranks) / superres call"] = res["gather_scatter_2_ranks_s"] / call
    out = {"benchmark": "coupling_overhead", "command": " ".join([Path(sys.executable).name, *sys.argv]),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "n": args.n,
           "torch_threads": args.threads, "checkpoint": sur.source, "machine": {"cores": os.cpu_count(),
           "gpu": torch.cuda.is_available(), "loadavg_start": load0, "loadavg_end": os.getloadavg()},
           "seconds": res, "ratios": ratios}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "coupling_overhead.json").write_text(json.dumps(out, indent=2) + "\n")
    for k, v in res.items():
        if v is not None:
            print(f"{k:<36} {v if isinstance(v, (int, str)) else f'{v:.4f}'}")
    for k, v in ratios.items():
        print(f"{k:<48} {v:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
