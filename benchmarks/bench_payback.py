"""Benchmark: what a hybrid model costs up front (data generation, training, calibration) and after how
much simulated time, and how many runs, it is repaid by the hybrid's saving at equal accuracy.

Every number is read from a record that measured it, none is typed in:

- data generation: the data set's ``generation_wall_time_s`` times its ``ranks`` (core-seconds);
- training: each stage's ``wall_s`` in its ``training_state.json`` (seconds in the training loop,
  summed over resumes) times ``--training-threads``; for a model trained before training recorded its
  time, ``--training-seconds`` with the source named in ``--training-source`` (e.g. its model card);
- calibration: the ``wall_s`` in the calibration file's provenance (one process);
- the saving: from a ``bench_hybrid.py`` result, the mode's cost per unit simulated time (one core:
  one FFT thread, one torch thread) and the pure solver's cost interpolated at the hybrid's accuracy,
  on each criterion where the hybrid is faster: (b) the statistics, (a) correlation time.

    up-front core-seconds / (pure cost at equal accuracy - hybrid cost)  =  simulated time to repay

and in runs of the benchmark's length (``t_end``). A criterion on which the hybrid is not faster is
never repaid, and says so.

    .venv/bin/python benchmarks/bench_payback.py --hybrid hybrid_superres256x2_c16s4_avx512 \\
        --data data/superres256x2 --training runs/c16s4-a runs/c16s4-b runs/c16s4-c \\
        --calibration flexcouple/shipped/flex-c16s4-superres256x2/calibration.json --name payback_c16s4

Writes ``benchmarks/results/<name>.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from provenance import finish, provenance, write_result

RESULTS = Path(__file__).resolve().parent / "results"
CRITERIA = {"statistics": "speedup_spectrum", "correlation_time": "speedup_correlation_time"}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hybrid", required=True, help="a bench_hybrid.py result: its name in benchmarks/results "
                   "or a path to its JSON")
    p.add_argument("--mode", default=None, help="the row of the hybrid result (default: its best hybrid)")
    p.add_argument("--data", type=Path, required=True, help="the training data set (its flexcouple_dataset.json)")
    p.add_argument("--training", type=Path, nargs="*", default=[], help="the training stages' run directories")
    p.add_argument("--training-threads", type=int, default=1, help="torch threads the training stages used")
    p.add_argument("--training-seconds", type=float, default=None,
                   help="training wall seconds, for stages that did not record theirs (name the source)")
    p.add_argument("--training-source", default="", help="where --training-seconds comes from")
    p.add_argument("--calibration", type=Path, default=None, help="the model's calibration.json")
    p.add_argument("--name", default="payback")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the result JSON")
    return p.parse_args(argv)


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SystemExit(f"bench_payback: {what} {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"bench_payback: {what} {path} is not valid JSON ({exc})") from None


def hybrid_result(name: str) -> tuple[Path, dict]:
    path = Path(name) if name.endswith(".json") or "/" in name else RESULTS / f"{name}.json"
    return path, _read_json(path, "the hybrid result")


def upfront(args) -> dict:
    """Core-seconds spent before the first hybrid run, by item, each with its source."""
    items = {}
    meta = _read_json(args.data / "flexcouple_dataset.json", "the data set record")
    if meta.get("status") != "complete" or "generation_wall_time_s" not in meta:
        raise SystemExit(f"bench_payback: the data set {args.data} is not complete or records no generation time")
    ranks = int(meta.get("ranks", 1))
    items["data_generation"] = {"core_s": float(meta["generation_wall_time_s"]) * ranks,
                                "wall_s": float(meta["generation_wall_time_s"]), "cores": ranks,
                                "source": str(args.data / "flexcouple_dataset.json")}
    stages = []
    for run in args.training:
        state = _read_json(run / "training_state.json", "the training state")
        wall = state.get("info", {}).get("wall_s")
        if wall is None:
            raise SystemExit(f"bench_payback: {run} records no training time (trained before training recorded "
                             "it); give --training-seconds with --training-source instead")
        stages.append({"run": str(run), "steps": int(state["info"]["step"]), "wall_s": float(wall)})
    if stages and args.training_seconds is not None:
        raise SystemExit("bench_payback: give either --training run directories or --training-seconds, not both")
    if stages:
        wall = sum(s["wall_s"] for s in stages)
        items["training"] = {"core_s": wall * args.training_threads, "wall_s": wall, "cores": args.training_threads,
                             "stages": stages, "source": "training_state.json wall_s"}
    elif args.training_seconds is not None:
        if not args.training_source:
            raise SystemExit("bench_payback: --training-seconds needs --training-source (where the number comes from)")
        items["training"] = {"core_s": args.training_seconds * args.training_threads, "wall_s": args.training_seconds,
                             "cores": args.training_threads, "source": args.training_source}
    else:
        raise SystemExit("bench_payback: no training cost: give --training run directories or --training-seconds")
    if args.calibration is not None:
        cal = _read_json(args.calibration, "the calibration")
        wall = (cal.get("provenance") or {}).get("wall_s")
        if wall is None:
            raise SystemExit(f"bench_payback: {args.calibration} records no wall time in its provenance")
        items["calibration"] = {"core_s": float(wall), "wall_s": float(wall), "cores": 1, "source": str(args.calibration)}
    return items


def payback(cost_hybrid: float, speedup: float, upfront_core_s: float, run_length: float) -> dict:
    """The saving per unit simulated time at equal accuracy and the time (and runs) that repay
    ``upfront_core_s``; never where the hybrid is not faster."""
    pure = cost_hybrid * speedup
    saving = pure - cost_hybrid
    out = {"speedup": speedup, "hybrid_s_per_unit": cost_hybrid, "pure_equal_accuracy_s_per_unit": pure,
           "saving_s_per_unit": saving}
    if not (speedup > 1 and math.isfinite(speedup)):
        return {**out, "repaid": False, "time_units": None, "runs": None}
    units = upfront_core_s / saving
    return {**out, "repaid": True, "time_units": units, "runs": units / run_length}


def main(argv=None) -> int:
    args = parse(argv)
    info = provenance()
    path, hybrid = hybrid_result(args.hybrid)
    mode = args.mode or hybrid.get("best_hybrid")
    if mode not in hybrid.get("rows", {}):
        raise SystemExit(f"bench_payback: {path} has no row {mode!r}; rows: {sorted(hybrid.get('rows', {}))}")
    row, protocol = hybrid["rows"][mode], hybrid["protocol"]
    items = upfront(args)
    total = sum(i["core_s"] for i in items.values())
    run_length = float(protocol["t_end"])
    criteria = {name: payback(float(row["cost"]), float(row[key]), total, run_length) for name, key in CRITERIA.items()}
    result = {"benchmark": "payback", **finish(info), "hybrid": str(path), "mode": mode,
              "checkpoint": protocol.get("checkpoint"), "n": protocol["n"], "factor": protocol.get("factor"),
              "run_length": run_length, "upfront": items, "upfront_core_s": total, "criteria": criteria}
    out = write_result(args.out, args.name, result)
    print(f"up-front: {total:.0f} core-s (" + ", ".join(f"{k} {v['core_s']:.0f}" for k, v in items.items()) + ")")
    for name, c in criteria.items():
        if c["repaid"]:
            print(f"{name}: {c['speedup']:.2f}x, saving {c['saving_s_per_unit']:.3f} s per unit time: repaid after "
                  f"{c['time_units']:.0f} time units = {c['runs']:.0f} runs of t = {run_length:g}")
        else:
            print(f"{name}: {c['speedup']:.2f}x: the hybrid is not faster, never repaid")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
