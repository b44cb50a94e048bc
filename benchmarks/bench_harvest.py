"""Benchmark: does fine-tuning on the harvest help where the model was out of distribution?

Claim measured: the calls a hybrid run rejects, with the solver's answers (the harvest), are the
data the model lacked; fine-tuning on them raises the acceptance rate and lowers the error on that
case. Method (an out-of-distribution case: ``--forcing-wavenumber`` or ``--reynolds`` outside the
training set):

1. run A (initial seed 1): the hybrid with harvest on; its ``harvest/`` (the rejected calls, and with
   ``--audit-every N`` every Nth accepted one, both with the fine solver's answers) is the fine-tuning data;
2. ``flexcouple train --init <checkpoint> --task <mode's task> --data A/harvest`` for ``--steps`` steps
   (superres: on the run's coarse states, ``--coarse-source solver``, paired with the fine solver's
   answers from the previous accepted output; see :mod:`coupling.harvest`);
3. on a NEW initial field (seed 2) of the same case: the hybrid with the original model, with the
   fine-tuned model, and the pure solver. Acceptance rate, and the vorticity error (RFNE) and
   correlation of each hybrid against the pure run at t_end, and the mean spectrum error over the
   run (every band to the fine grid's cut-off), with the same checks and thresholds; for ``superres``
   also the error of the time-mean spectrum over the second half (the statistics, as ``bench_hybrid``)
   against the pure run's, next to the coarse run's own fields spectrally interpolated (the floor).

Modes:

- ``--mode leapfrog`` (default): the shipped tiny model's forecasts, the checks' own thresholds.
- ``--mode superres --factor 2 --checkpoint flexcouple/shipped/flex-c16-superres256x2
  --fixed-thresholds-from flexcouple/shipped/flex-c16-superres256x2/calibration.json``: the x2 regime.
  Its calibration holds for Re 500-1400 only, and a run outside it refuses the file; the default
  thresholds reject even the exact solver there (``tendency``: the truth gives 1.02-1.10 against
  1.0). So the calibrated thresholds are applied as fixed ``[checks.thresholds]``: an extrapolation,
  stated in the result, the same for the original and the fine-tuned model.

Results: benchmarks/results/harvest.json (``--name``).

    .venv/bin/python benchmarks/bench_harvest.py [--n 256] [--forcing-wavenumber 8] [--steps 150]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from provenance import write_result


REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--reynolds", type=float, default=1000.0)
    p.add_argument("--forcing-wavenumber", type=int, default=8)
    p.add_argument("--t-end", type=float, default=6.0)
    p.add_argument("--spinup", type=float, default=5.0)
    p.add_argument("--steps", type=int, default=150, help="fine-tuning steps")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--mode", choices=("leapfrog", "superres"), default="leapfrog")
    p.add_argument("--factor", type=int, default=4, help="superres factor (the checkpoint's)")
    p.add_argument("--fixed-thresholds-from", default="", help="a calibration.json whose thresholds the runs use "
                   "as fixed [checks.thresholds] (outside its Re range: an extrapolation, recorded)")
    p.add_argument("--audit-every", type=int, default=0, help="superres: run A also harvests every Nth accepted "
                   "call with the fine solver's answer ([harvest] audit_every); 0: rejected calls only")
    p.add_argument("--crop", type=int, default=64, help="fine-tuning crop (superres with a spectral loss: the grid)")
    p.add_argument("--coarse-source", choices=("solver", "truncation", "both"), default="solver",
                   help="superres fine-tuning inputs: the run's coarse states (default), the answers' truncations, or both")
    p.add_argument("--train-args", default="", help="extra `flexcouple train` arguments for the fine-tuning")
    p.add_argument("--name", default="harvest")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "bench_harvest")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    from coupling import FlexSurrogate, HybridConfig, HybridSimulation
    from coupling.surrogates import default_checkpoint
    from flexcouple_cli import main as cli
    from coupling.report import accuracy
    from flexcouple.evaluation.metrics import pearson, rfne
    from solver.resample import coarsen, spectral_upsample

    start = time.perf_counter()
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    thresholds, calibration = {}, None
    if args.fixed_thresholds_from:
        from coupling.calibration import Calibration
        cal = Calibration.load(args.fixed_thresholds_from)
        thresholds = dict(cal.thresholds)
        calibration = {"file": args.fixed_thresholds_from, "reynolds": cal.reynolds, "thresholds": thresholds}
    mode_kw = ({"stretch": 1, "jumps": 2} if args.mode == "leapfrog" else {"factor": args.factor})
    base = HybridConfig(mode=args.mode, name="ood", n=args.n, reynolds=args.reynolds,
                        forcing_wavenumber=args.forcing_wavenumber, t_end=args.t_end, output_interval=0.5,
                        spinup=args.spinup, backend="pyfftw", warmup=2, max_rejections=1000, thresholds=thresholds,
                        torch_threads=1, **mode_kw)
    task = "forecast" if args.mode == "leapfrog" else "superres"
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    original = FlexSurrogate.from_checkpoint(ckpt)
    print("run A (seed 1): harvest the rejected calls ...", flush=True)
    run_a = HybridSimulation(base.replace(init_seed=1, harvest_enabled=True, harvest_audit_every=args.audit_every), original,
                             out=args.work / "A").run()
    rejected = sum(d["called"] and not d["accepted"] for d in run_a.decisions)
    audited = run_a.summary["accepted"] // args.audit_every if args.audit_every else 0
    harvested = rejected + audited
    tuned_dir = args.work / "tuned"
    t0 = time.perf_counter()
    if harvested:
        # superres: the harvest pairs the run's coarse states with the answers (coarse_source "solver");
        # "truncation" trains on the answers' own truncations instead, which the model is never called on
        extra = (["--factor", str(args.factor), "--upsample", "spectral", "--coarse-source", args.coarse_source]
                 if task == "superres" else [])
        rc = cli(["train", "--init", str(ckpt), "--task", task, "--data", str(args.work / "A" / "harvest"),
                  "--crop", str(args.crop), "--batch-size", str(min(8, harvested)), "--steps", str(args.steps),
                  "--warmup", "10", "--lr", "5e-5", "--ema-decay", "0.9", "--checkpoint-every", str(args.steps),
                  "--val-every", str(args.steps + 1), "--out", str(tuned_dir), "--no-progress", *extra,
                  *args.train_args.split()])
        if rc:
            raise SystemExit(f"fine-tuning failed (exit {rc})")
    finetune_s = time.perf_counter() - t0
    rows = {}
    cfg_b = base.replace(init_seed=2)
    pure = HybridSimulation(cfg_b.replace(mode="pure")).run()
    if args.mode == "superres":
        # the floor a super-resolution model must beat: the coarse run's own fields, spectrally
        # interpolated (every call "rejected"); statistics against the pure fine run's, second half
        coarse_run = HybridSimulation(cfg_b.replace(mode="pure", n=args.n // args.factor)).run(
            coarsen(pure.fields[0], args.factor, "spectral"))
        interp = np.stack([spectral_upsample(f, args.factor) for f in coarse_run.fields])
        floor = accuracy(interp, pure.fields, pure.times)
        rows["interpolation"] = {"statistics_error": floor["spectrum_statistics_error"],
                                 "mean_spectrum_error": floor["mean_spectrum_error"]}
    models = {"original": original}
    if harvested:
        models["fine-tuned"] = FlexSurrogate.from_checkpoint(tuned_dir)
    for label, sur in models.items():
        print(f"run B (seed 2) with the {label} model ...", flush=True)
        res = HybridSimulation(cfg_b, sur).run()
        calls = res.summary["calls"]
        failing = Counter(c["name"] for d in res.decisions for c in d.get("checks", []) if not c.get("passed", True))
        acc = accuracy(res.fields, pure.fields, pure.times)
        rows[label] = {"calls": calls, "accepted": res.summary["accepted"],
                       "acceptance_rate": res.summary["accepted"] / calls if calls else None,
                       "rfne_final": float(rfne(res.fields[-1], pure.fields[-1])),
                       "correlation_final": float(pearson(res.fields[-1], pure.fields[-1])),
                       "mean_spectrum_error": acc["mean_spectrum_error"],
                       "statistics_error": acc["spectrum_statistics_error"],
                       "rejected_by": res.summary["rejected"], "failed_checks": dict(failing),
                       "wall_s": res.summary["wall_s"]}
    out = {"benchmark": "harvest", "command": " ".join([Path(sys.executable).name, *sys.argv]),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": {"cores": os.cpu_count(), "loadavg_end": os.getloadavg()},
           "case": {"mode": args.mode, "n": args.n, "factor": args.factor if args.mode == "superres" else None,
                    "reynolds": args.reynolds, "forcing_wavenumber": args.forcing_wavenumber, "t_end": args.t_end,
                    "checkpoint": str(ckpt), "fixed_thresholds_from": calibration,
                    "coarse_source": args.coarse_source if args.mode == "superres" else None},
           "run_a": {"calls": run_a.summary["calls"], "accepted": run_a.summary["accepted"],
                     "harvested_examples": harvested, "audited": audited, "audit_every": args.audit_every},
           "finetune": {"steps": args.steps if harvested else 0, "wall_s": finetune_s},
           "run_b": rows, "wall_s": time.perf_counter() - start}
    args.out.mkdir(parents=True, exist_ok=True)
    write_result(args.out, args.name, out)
    print(json.dumps(out["run_a"]), json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
