"""``flexcouple demo --pipeline``: the pipeline on the embedded default, end to end, in a few minutes on a CPU.

1. solver: Kolmogorov flow at Re = 1000 (n = 256, drag 0.1, k_f = 4, the Kochkov et al. 2021
   setting) from a seeded random field; summary, snapshots and a picture.
2. data: the embedded ``tiny`` data set (64^2 Kolmogorov flow, training Re 100 and 200, test seeds
   and the out-of-distribution sets), in the Well's HDF5 layout.
3. train: a ``tiny`` FLEX for x8 super-resolution, briefly (``--train-steps``).
4. evaluate: FLEX against bicubic and spectral interpolation on the test split and every OOD set
   (metrics.json, a comparison table and figures).

Every stage is resumable: a second run reuses the data set and continues the training. A model
trained for the default 400 steps (EMA 0.99, so that the averaged weights follow a short run) is a demonstration of the pipeline, not a converged
model; ``flexcouple train --steps 5000`` takes about half an hour on 2 cores.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from solver.io import write_text_atomic


def _stage(title: str) -> float:
    print(f"\n== {title} ==", flush=True)
    return time.perf_counter()


def run(args) -> int:
    from flexcouple_cli import main as cli

    out = Path(args.out)
    timings = {}
    t0 = _stage(f"1/4 solver: Kolmogorov flow, Re = 1000, n = {args.n}")
    rc = cli(["simulate", "--n", str(args.n), "--reynolds", "1000", "--drag", "0.1", "--t-end", str(args.t_end),
              "--snapshots", "6", "--backend", "pyfftw", "--out", str(out / "kolmogorov_re1000.h5"),
              "--plot", str(out / "kolmogorov_re1000.png"), "--overwrite"])
    timings["solver_s"] = time.perf_counter() - t0
    if rc or args.solver_only:
        return rc
    data = out / "data"
    t0 = _stage("2/4 data: the embedded 'tiny' data set (resumes if present)")
    rc = cli(["generate", "--preset", "tiny", "--out", str(data)])
    timings["generate_s"] = time.perf_counter() - t0
    if rc:
        return rc
    run_dir = out / "flex_tiny_superres"
    t0 = _stage(f"3/4 train: tiny FLEX, x8 super-resolution, {args.train_steps} steps")
    train = ["train", "--data", str(data), "--task", "superres", "--model", "flex", "--size", "tiny",
             "--crop", "64", "--batch-size", "8", "--steps", str(args.train_steps), "--warmup", "40",
             "--lr", "2e-4", "--ema-decay", "0.99", "--val-every", str(max(50, args.train_steps // 2)),
             "--checkpoint-every", "100",
             "--out", str(run_dir)]
    if (run_dir / "training_state.json").exists():
        train.append("--resume")
    rc = cli(train)
    timings["train_s"] = time.perf_counter() - t0
    if rc:
        return rc
    t0 = _stage("4/4 evaluate: FLEX against bicubic and spectral interpolation")
    eval_dir = out / "eval"
    rc = cli(["evaluate", "--checkpoint", str(run_dir), "bicubic", "spectral", "--label", "flex-tiny", "bicubic",
              "spectral", "--data", str(data), "--task", "superres", "--steps", "2", "--ensemble", "4",
              "--max-samples", "16", "--out", str(eval_dir), "--overwrite", "--no-progress"])
    timings["evaluate_s"] = time.perf_counter() - t0
    if rc:
        return rc
    table = eval_dir / "comparison.md"
    if table.exists():  # the per-category tables; the file also breaks them down by split and Re
        print("\n" + table.read_text().split("\n## By split")[0])
        print(f"(per split and per Reynolds number: {table})")
    write_text_atomic(out / "timings.json", json.dumps(timings, indent=2))
    print("stage timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print(f"files: {out}/ (kolmogorov_re1000.png, data/, flex_tiny_superres/, eval/)")
    return 0
