"""Benchmark: FLEX against its baselines, and residual space against raw space, at equal budget.

Claims checked (the FLEX paper, arXiv 2505.17351): FLEX beats UNet, UViT and a regression model, in
distribution and out of it; the residual space (the model generates target - base) is the design
choice that makes it work. Method:

1. Data (``benchmarks/presets/baselines.toml``, generated here by ``flexcouple generate`` into
   ``--work``): Kolmogorov flow, periodic, 64^2, Re 100/150/200 for training; test on new seeds
   (in distribution) and on the OOD sets re_low (Re 50), re_high (Re 300), boundary_free_slip
   (free-slip walls, Re 150) and forcing_k8 (forcing wavenumber 8, Re 100). Every trajectory passes
   the generator's resolution check (tolerance 1e-3; measured ratios in the preset). Super-resolution also on the velocity
   components of the test fields (the unseen observable: the models were trained on vorticity).
2. Training (``flexcouple train``, task ``both``): FLEX (``flex``), FLEX in raw space (``flex_raw``,
   ``--space raw``), UNet and UViT (diffusion, ``--match-params``: width chosen to match FLEX's
   parameter count) and the regression model (the FLEX backbone trained deterministically; same
   network as FLEX, so no matching is needed), all with the same data, steps, batch, optimiser
   (AdamW), lr schedule (warm-up + cosine) and seed.
3. Evaluation (``flexcouple.evaluation.evaluate``): super-resolution x4 (RFNE, SSIM and the spectrum
   error of one ensemble member, plus ``bicubic`` and ``spectral`` interpolation) and forecasting
   (autoregressive rollouts of ``--horizon`` steps feeding the ensemble mean back: correlation and
   RFNE against lead time, plus ``persistence``) on test and every OOD split.
4. Verdict per task and split: the best model on each metric and whether FLEX beats every baseline
   (strictly; ``flex_raw`` is the ablation, compared to FLEX separately as ``residual_beats_raw``).
   Where a baseline wins, the verdict says which.

Writes ``benchmarks/results/baselines.json``: ``superres`` / ``forecast`` -> split -> model ->
metrics (``rfne``, ``ssim``, ``spectrum_error``, ...; forecast curves against ``times``), ``params``
and ``training`` (wall time, final loss) per model, ``verdict`` per task and split, the protocol and
the provenance (command, machine, load average, versions, date); and ``baselines.png``.

Resumable: rerun the same command after a stop. Finished data files are kept, training continues
with ``--resume`` from the last checkpoint (every ``--checkpoint-every`` steps), and an evaluation is
skipped when its metrics exist for the same checkpoints and settings. A changed preset is refused by
``flexcouple generate`` (another config in the data directory): start with a fresh ``--work``.

    .venv/bin/python benchmarks/bench_baselines.py --quick     # CI smoke test: 32^2, 3 steps, ~1-2 min
    .venv/bin/python benchmarks/bench_baselines.py --threads 2  # full mode (the lead's quiet window)

Cost of the full mode (64^2, 120 steps of batch 8 per task, 5 models, 8 samples per split, ensemble
4, horizon 8), measured on this 2-core machine: one training step (both tasks, batch 8, matched
parameters, about 2.8M each) on a quiet core (load 0.5) takes 2.8 s FLEX, 3.2 s regression, 1.6 s
UNet, 0.5 s UViT (with 2 threads 2.2 s FLEX, 1.15 s UNet), plus about 30 s of start-up per FLEX run:
about 11 s per step for the five models, 22 min for 120 steps on one thread, about 16 min with
``--threads 2``. Generation of the 29 trajectories took 353 s on one core of the loaded machine
(load 3-7). Evaluation, measured under load 1.6: 22 s per 4-sample batch of FLEX forecast rollouts
(horizon 10, K 4) and 6 s per batch of super-resolution: about 10 min in all. Estimated total: about
40 min on one thread, about 30 min with ``--threads 2``. The JSON records the real wall times
(``wall_s``, ``wall_s_parts``, ``training.<model>.wall_s``). Equal steps are not equal compute: at
equal parameter count a FLEX step costs about 2x a UNet step and 6x a UViT step.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from provenance import finish, provenance, write_result  # noqa: E402

NAME = "baselines"
PRESET = REPO / "benchmarks" / "presets" / "baselines.toml"
FLEX = "flex"
RAW = "flex_raw"
# label -> the `flexcouple train` flags that make it (everything else is shared)
TRAINED = {
    FLEX: ["--model", "flex"],
    RAW: ["--model", "flex", "--space", "raw"],
    "unet": ["--model", "unet", "--match-params"],
    "uvit": ["--model", "uvit", "--match-params"],
    "regression": ["--model", "regression"],
}
BUILT_IN = {"superres": ["bicubic", "spectral"], "forecast": ["persistence"]}
TASKS = ("superres", "forecast")
# (metric, higher is better); the first is the task's primary metric
VERDICT_METRICS = {"superres": (("rfne", False), ("ssim", True), ("spectrum_error", False)),
                   "forecast": (("correlation_mean", True), ("rfne_last", False), ("spectrum_error", False))}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 32^2 data, 1 trajectory per case, 3 steps of batch 2, 2 samples per split")
    p.add_argument("--steps", type=int, default=120, help="training steps, the same for every model")
    p.add_argument("--batch-size", type=int, default=8, help="global batch per task")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--ensemble", type=int, default=4, help="ensemble members per input in the evaluation")
    p.add_argument("--max-samples", type=int, default=8, help="evaluated samples per split")
    p.add_argument("--horizon", type=int, default=8, help="forecast rollout steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--models", nargs="+", default=list(TRAINED), choices=list(TRAINED),
                   help="trained models to compare (default: all)")
    p.add_argument("--work", type=Path, default=None,
                   help="data and checkpoints (default runs/bench_baselines[_quick], git-ignored)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.batch_size, args.checkpoint_every = 3, 2, 3
        args.ensemble, args.max_samples, args.horizon = 2, 2, 3
    if args.work is None:
        args.work = REPO / "runs" / ("bench_baselines_quick" if args.quick else "bench_baselines")
    if FLEX not in args.models:
        raise SystemExit("--models must include flex: the verdict compares everything to it")
    return args


def data_config(args):
    from flexcouple.data.config import load_config
    cfg = load_config(PRESET)
    if args.quick:  # a smoke test: too coarse for these Re (the resolution check is not applied)
        cfg = cfg.replace(name="bench-baselines-quick", n=32, snapshots=8, spinup=1.0, train=1, valid=1, test=1,
                          resolution_tolerance=1.0)
    return cfg


def make_data(cfg, root: Path) -> dict:
    """Generate (or finish: finished files are skipped) the data set; its metadata. A complete set of
    this config is left alone (generate would re-validate every file and recompute the statistics)."""
    from flexcouple.data import well
    from flexcouple.data.generate import generate
    t0 = time.perf_counter()
    meta_path = root / well.METADATA_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("status") == "complete" and meta.get("config_hash") == cfg.config_hash():
        print("  complete, skipped", flush=True)
    else:
        meta = generate(cfg, root, comm=None, progress=False, log=lambda m: print(f"  {m}", flush=True))
    return {"root": str(root), "name": cfg.name, "n": cfg.n, "wall_s_this_run": time.perf_counter() - t0,
            "resolution_tolerance": cfg.resolution_tolerance, "resolution_warnings": list(meta.get("warnings", [])),
            "normalization": meta.get("normalization")}


# ---------------------------------------------------------------------------------------- training
def train_flags(args, data: Path, n: int) -> list[str]:
    """The settings every model shares (equal budget)."""
    return ["--data", str(data), "--task", "both", "--crop", str(n), "--steps", str(args.steps),
            "--batch-size", str(args.batch_size), "--optimizer", "adamw", "--lr", str(args.lr),
            "--warmup", str(max(1, args.steps // 10)), "--seed", str(args.seed),
            "--checkpoint-every", str(args.checkpoint_every), "--val-every", str(args.steps),
            "--val-batches", "1", "--device", "cpu", "--no-progress"]


def steps_done(ckpt_dir: Path) -> int:
    from flexcouple import checkpoint as ckpt
    if not (ckpt_dir / ckpt.CONFIG_FILE).exists():
        return 0
    return int(ckpt.read_training_info(ckpt_dir).get("step", 0))


def train_model(label: str, args, data: Path, n: int, work: Path, log: dict) -> dict:
    """Train (or continue) one model with the CLI; the wall time adds up over resumed runs."""
    from flexcouple import checkpoint as ckpt
    from flexcouple_cli import main as cli
    out = work / "checkpoints" / label
    done = steps_done(out)
    entry = log.setdefault(label, {"wall_s": 0.0})
    if done < args.steps:
        print(f"training {label}: steps {done} -> {args.steps}", flush=True)
        argv = ["train", *TRAINED[label], *train_flags(args, data, n), "--out", str(out)]
        t0 = time.perf_counter()
        rc = cli(argv + (["--resume"] if done else []))
        entry["wall_s"] += time.perf_counter() - t0
        write_result(work, "training", log)
        if rc != 0:
            raise RuntimeError(f"training {label} failed (flexcouple {' '.join(argv)})")
    else:
        print(f"training {label}: complete ({done} steps), skipped", flush=True)
    info = ckpt.read_training_info(out)
    config = ckpt.read_config(out)
    losses = [h["loss"] for h in info.get("history", []) if "loss" in h]
    entry.update(steps=int(info["step"]), params=int(config["parameters"]), space=config.get("space", "residual"),
                 final_loss=losses[-1] if losses else None, checkpoint=str(out))
    write_result(work, "training", log)
    return entry


# -------------------------------------------------------------------------------------- evaluation
def evaluate_task(task: str, checkpoints: dict, data: Path, work: Path, args) -> dict:
    """metrics.json of one task for every model; skipped when it exists for the same inputs."""
    from flexcouple import checkpoint as ckpt
    from flexcouple.evaluation.evaluate import Options, evaluate
    out = work / "eval" / task
    labels = list(checkpoints) + BUILT_IN[task]
    specs = [str(p) for p in checkpoints.values()] + BUILT_IN[task]
    opts = Options(task=task, steps=2, ensemble=args.ensemble, batch_size=4, max_samples=args.max_samples,
                   horizon=args.horizon, seed=args.seed, device="cpu", observables=("vorticity", "velocity"),
                   progress=False, figures="none")
    inputs = {"models": {label: ckpt.read_config(p)[ckpt.CONFIG_HASH] for label, p in checkpoints.items()},
              "built_in": BUILT_IN[task], "data": str(data),
              "options": {k: getattr(opts, k) for k in ("steps", "ensemble", "batch_size", "max_samples", "horizon",
                                                        "seed", "observables")}}
    inputs = json.loads(json.dumps(inputs))
    stamp = out / "inputs.json"
    if (out / "metrics.json").exists() and stamp.exists() and json.loads(stamp.read_text()) == inputs:
        print(f"evaluating {task}: metrics exist for these checkpoints, skipped", flush=True)
        return json.loads((out / "metrics.json").read_text())
    print(f"evaluating {task}: {', '.join(labels)}", flush=True)
    evaluate(specs, data, task, out, opts=opts, labels=labels, overwrite=True)  # finished shards are reused
    write_result(out, "inputs", inputs)
    return json.loads((out / "metrics.json").read_text())


def _num(x):
    """A finite float, or None (JSON has no NaN / inf)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def superres_metrics(entry: dict) -> dict:
    """What the table keeps of one (model, split) super-resolution report."""
    out = {"rfne": _num(entry["rfne"]), "rfne_sem": _num(entry.get("rfne_sem")), "ssim": _num(entry["ssim"]),
           "psnr": _num(entry["psnr"]), "spectrum_error": _num(entry["spectrum_band_member"]),
           "spectrum_error_ensemble_mean": _num(entry["spectrum_band_mean"]),
           "member_rfne": _num(entry["member_rfne"]), "crps": _num(entry["crps"]), "n_samples": entry["n_samples"]}
    if entry.get("spread") and _num(entry["spread"]):  # a deterministic model has no spread to judge
        out["spread_skill_ratio"] = _num(entry["spread_skill_ratio"])
    return out


def forecast_metrics(entry: dict) -> dict:
    """What the table keeps of one (model, split) forecast report: curves against lead time, and
    their summaries (mean over leads, value at the horizon)."""
    corr = [_num(c) for c in entry["correlation"]]
    rfne = [_num(r) for r in entry["rfne"]]
    finite_corr = [c for c in corr if c is not None]
    return {"times": [float(t) for t in entry["times"]], "correlation": corr, "rfne": rfne,
            "correlation_mean": float(np.mean(finite_corr)) if finite_corr else None,
            "correlation_last": corr[-1], "rfne_last": rfne[-1],
            "rfne_mean": _num(np.mean([r for r in rfne if r is not None])) if any(r is not None for r in rfne) else None,
            "ssim_last": _num(np.asarray(entry["ssim"])[-1]),
            "spectrum_error": _num(np.asarray(entry["spectrum_band_member"])[-1]),
            "decorrelation_time_median": _num(entry.get("decorrelation_time_median")),
            "decorrelation_censored": entry.get("decorrelation_censored"), "n_samples": entry["n_samples"]}


def table(task: str, metrics: dict) -> dict:
    """split -> model -> metrics, from an evaluation's metrics.json."""
    pick = superres_metrics if task == "superres" else forecast_metrics
    out: dict = {}
    for model, rep in metrics["models"].items():
        for split, entry in rep["by_split"].items():
            out.setdefault(split, {})[model] = pick(entry)
    order = lambda s: (s != "test", s == "velocity", s)  # noqa: E731  in distribution, OOD, unseen observable
    return {split: out[split] for split in sorted(out, key=order)}


# ----------------------------------------------------------------------------------------- verdict
def judge(values: dict, higher_is_better: bool, flex: str = FLEX, exclude: tuple = (RAW,)) -> dict:
    """Best model on one metric and whether ``flex`` is strictly better than every baseline (the
    models other than ``flex`` and ``exclude``); models without a value are left out."""
    vals = {m: v for m, v in values.items() if v is not None and math.isfinite(v)}
    if not vals:
        return {"best": None, "flex_beats_every_baseline": None, "flex_beaten_by": []}
    sign = -1.0 if higher_is_better else 1.0  # sort ascending in "badness"
    ranking = sorted(vals, key=lambda m: sign * vals[m])
    out = {"best": ranking[0], "ranking": ranking}
    if flex not in vals:
        out.update(flex_beats_every_baseline=None, flex_beaten_by=[])
        return out
    baselines = [m for m in ranking if m != flex and m not in exclude]
    beaten_by = [m for m in baselines if sign * vals[m] <= sign * vals[flex]]  # as good or better
    out.update(flex_beats_every_baseline=not beaten_by, flex_beaten_by=beaten_by)
    return out


def verdicts(task: str, rows: dict) -> dict:
    """split -> verdict: per metric (best, does FLEX beat every baseline, who beats it) and on the
    task's primary metric; residual against raw space on every metric."""
    out = {}
    for split, models in rows.items():
        by_metric = {}
        for metric, higher in VERDICT_METRICS[task]:
            values = {m: row.get(metric) for m, row in models.items()}
            v = judge(values, higher)
            if values.get(FLEX) is not None and values.get(RAW) is not None:
                better = values[FLEX] > values[RAW] if higher else values[FLEX] < values[RAW]
                v["residual_beats_raw"] = bool(better)
            by_metric[metric] = v
        primary = VERDICT_METRICS[task][0][0]
        p = by_metric[primary]
        out[split] = {"primary_metric": primary, "best": p["best"],
                      "flex_beats_every_baseline": p["flex_beats_every_baseline"], "flex_beaten_by": p["flex_beaten_by"],
                      "residual_beats_raw": p.get("residual_beats_raw"), "by_metric": by_metric}
    return out


def summary_lines(result: dict) -> list[str]:
    lines = []
    for task in TASKS:
        metric = VERDICT_METRICS[task][0][0]
        for split, v in result["verdict"][task].items():
            flex = result[task][split].get(FLEX, {}).get(metric)
            if v["flex_beats_every_baseline"]:
                what = "FLEX beats every baseline"
            else:
                what = "FLEX LOSES to " + ", ".join(
                    f"{m} ({result[task][split][m][metric]:.4g})" for m in v["flex_beaten_by"])
            raw = {True: "residual > raw", False: "raw >= residual", None: "raw not run"}[v.get("residual_beats_raw")]
            lines.append(f"{task:>8} {split:>18}: {metric} FLEX {flex if flex is None else f'{flex:.4g}'}, "
                         f"best {v['best']}; {what}; {raw}")
    return lines


# ------------------------------------------------------------------------------------------- figure
def plot(path: Path, result: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), constrained_layout=True)
    for ax, task, metric, title in ((axes[0], "superres", "rfne", "super-resolution RFNE (lower is better)"),
                                    (axes[2], "forecast", "rfne_last", "forecast RFNE at the horizon")):
        rows = result[task]
        splits = list(rows)
        models = list(dict.fromkeys(m for s in splits for m in rows[s]))
        width = 0.8 / max(len(models), 1)
        for i, m in enumerate(models):
            vals = [rows[s].get(m, {}).get(metric) for s in splits]
            ax.bar(np.arange(len(splits)) + (i - (len(models) - 1) / 2) * width,
                   [v if v is not None else 0.0 for v in vals], width, label=m)
        ax.set_xticks(np.arange(len(splits)), splits, rotation=25, fontsize=8)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    ax = axes[1]
    split = "test" if "test" in result["forecast"] else next(iter(result["forecast"]))
    for m, row in result["forecast"][split].items():
        ax.plot(row["times"], [c if c is not None else np.nan for c in row["correlation"]], "o-", ms=3, label=m)
    ax.axhline(0.95, color="k", lw=0.6, ls=":")
    ax.set_xlabel("lead time")
    ax.set_ylabel("correlation with the truth")
    ax.set_title(f"forecast correlation against lead ({split})", fontsize=10)
    ax.legend(fontsize=7)
    mode = "quick (smoke test, untrained)" if result["protocol"]["quick"] else "full"
    fig.suptitle(f"FLEX against baselines, {result['protocol']['n']}$^2$, {result['protocol']['steps']} steps, "
                 f"equal budget - {mode}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse(argv)
    import torch
    torch.set_num_threads(args.threads)
    info = provenance()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cfg = data_config(args)
    data = work / "data"
    print(f"data: {cfg.name} ({cfg.n}^2) in {data}", flush=True)
    t0 = time.perf_counter()
    data_info = make_data(cfg, data)
    data_wall = time.perf_counter() - t0

    log_path = work / "training.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    training = {label: train_model(label, args, data, cfg.n, work, log) for label in args.models}
    checkpoints = {label: Path(t["checkpoint"]) for label, t in training.items()}

    result: dict = {"benchmark": NAME}
    t0 = time.perf_counter()
    for task in TASKS:
        result[task] = table(task, evaluate_task(task, checkpoints, data, work, args))
    eval_wall = time.perf_counter() - t0
    params = {label: t["params"] for label, t in training.items()}
    params.update({b: 0 for task in TASKS for b in BUILT_IN[task]})
    result.update(
        params=params,
        training={label: {k: t[k] for k in ("wall_s", "steps", "final_loss", "space")} for label, t in training.items()},
        verdict={task: verdicts(task, result[task]) for task in TASKS},
        protocol={"quick": args.quick, "data": {**data_info, "preset": str(PRESET.relative_to(REPO)),
                                                "reynolds_train": list(cfg.reynolds),
                                                "ood": {o.name: o.description for o in cfg.ood}},
                  "n": cfg.n, "factor": 4, "task": "both", "steps": args.steps, "batch_size": args.batch_size,
                  "optimizer": "adamw", "lr": args.lr, "warmup": max(1, args.steps // 10), "schedule": "cosine",
                  "seed": args.seed, "threads": args.threads, "sampler_steps": 2, "ensemble": args.ensemble,
                  "max_samples_per_split": args.max_samples, "horizon": args.horizon, "feed": "mean",
                  "flags": {label: TRAINED[label] for label in args.models},
                  "spectrum_error": "relative L2 distance of log E(k) over 1..n/2 of one ensemble member's "
                                    "split-averaged spectrum (forecast: at the horizon)",
                  "unseen_observable": "split 'velocity': super-resolution of the velocity components of the "
                                       "test fields (flexcouple evaluate derives it for super-resolution only)",
                  "verdict": "strict: FLEX must be better than every baseline (unet, uvit, regression and the "
                             "built-in ones); flex_raw is the ablation, judged by residual_beats_raw"},
        wall_s_parts={"data": data_wall, "training": sum(t["wall_s"] for t in training.values()),
                      "evaluation": eval_wall})
    result.update(finish(info))  # command, date, machine, versions; wall time and load average at the end
    result["summary"] = summary_lines(result)
    path = write_result(args.out, NAME, result)
    plot(args.out / f"{NAME}.png", result)
    print("\n".join(result["summary"]))
    print(f"wrote {path} and {args.out / (NAME + '.png')} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
