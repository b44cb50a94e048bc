"""Benchmark: FLEX's number of sampling steps (accuracy and cost), and the calibration of its ensembles.

Claims measured, on the shipped default model (``--checkpoint``; FLEX tiny,
x4 super-resolution 64^2 -> 256^2 and forecasts 0.5 time units ahead, trained on preset hybrid256):

1. "Two steps suffice" (the paper). For every number of DDIM steps in ``--steps`` (1 2 4 8 32): one
   sample per input (K = 1), evaluated by ``flexcouple evaluate`` (``flexcouple.evaluation.evaluate``)
   on the splits ``--splits`` of ``--data``: super-resolution RFNE, SSIM and spectrum error (band,
   relative L2 of log E(k)); forecast RFNE and correlation one step (0.5) ahead and after a rollout of
   ``--horizon`` steps (ensemble mean fed back). Cost: wall seconds per sample (batch 1, K = 1) at
   ``--threads`` torch threads, measured in the same run in ``--rounds`` interleaved rounds (every
   round runs every step count of both tasks, in a rotated order, so load changes hit all alike);
   the median is reported. Two steps suffice when their RFNE is within ``RFNE_TOLERANCE`` (5%) of the
   best step count's, for every task and split.
2. Calibration of ``--ensemble``-member ensembles (8) at 2 steps: spread-skill ratio (target 0.8 to
   1.25) and the coverage of the central 50% / 90% member intervals against what a calibrated
   K-member ensemble reaches, for both tasks (forecast: one step ahead), and the effect of an
   initial-noise temperature tau in ``--taus`` (1 1.5 2 3): every member starts from tau * N(0, 1)
   (``ResidualDiffusion.sample``'s ``noise``; tau = 1 is the model as trained). A tau fixes an
   over-confident ensemble when it brings the ratio into the band without raising the ensemble-mean
   RFNE by more than 5%.

Writes ``<out>/sampling.json`` (``steps`` -> steps -> task, ``calibration`` -> task -> tau, ``verdict``)
and ``sampling.png``; the per-run ``metrics.json`` of every evaluation stay under ``--work``, where
``flexcouple evaluate``'s shards make an interrupted run resume after its last finished (steps or tau,
task, split) (the timing rounds are always re-measured).

Quick mode (the CI smoke test, 2-3 minutes on one core): a tiny data set with the physics of
hybrid256 (256^2 Kolmogorov flow, one Re 700 trajectory per split, spin-up 0.5) is generated under
``--work``, 1 sample, steps 1 2 4, tau 1 2, K = 4, one timing round. Its numbers are not meaningful.

Full mode, estimated from the cost per network evaluation measured here at one torch thread (0.85-1.0 s
at 256^2 for either task on the 2-core build machine at load 1.5-2; the model card measured 2.6-2.8 s
per 2-step super-resolution sample, i.e. up to 1.4 s): 6 samples on each of test and re_1000, about 3,500 network evaluations:
steps 1 2 4 8 32 (47 per sample: 564 super-resolution, 1,128 forecast with the 2-step rollout),
calibration K = 8 x 2 steps x 4 tau (768 per task), 3 timing rounds (282): about 55-70 minutes on a
quiet machine, two to three times that under load. Quick mode measured (fresh --work): 111 s at load 2,
174 s at load 3-4 (the CI test), 40 s when resumed from its --work.

    .venv/bin/python benchmarks/bench_sampling.py --quick                      # ~2 min: the CI smoke test
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sampling.py --data data/hybrid256   # full, ~1 h
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from coupling.surrogates import default_checkpoint  # noqa: E402
from flexcouple.diffusion import ResidualDiffusion  # noqa: E402
from provenance import finish, provenance, write_result  # noqa: E402

STEPS = (1, 2, 4, 8, 32)
TAUS = (1.0, 1.5, 2.0, 3.0)
TASKS = ("superres", "forecast")
CALIBRATED = (0.8, 1.25)   # spread-skill ratio band
RFNE_TOLERANCE = 0.05      # "within 5% of the best RFNE"; a temperature may cost at most this much
QUICK_RE = 700.0
NAME = "sampling"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke test: generate a tiny data set under --work, 1 sample, steps 1 2 4, tau 1 2, K 4")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--work", type=Path, default=None,
                   help="evaluation runs (and the quick data set); default runs/bench_sampling[_quick]")
    p.add_argument("--checkpoint", type=Path, default=None, help="FLEX checkpoint (default: the shipped model)")
    p.add_argument("--data", type=Path, default=REPO / "data" / "hybrid256",
                   help="data set the model fits (full mode; quick mode makes its own)")
    p.add_argument("--splits", nargs="+", default=None, help="splits to evaluate (default test re_1000)")
    p.add_argument("--max-samples", type=int, default=None, help="samples per split (default 6; quick 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one core)")
    p.add_argument("--steps", type=int, nargs="+", default=None, help=f"step counts (default {STEPS})")
    p.add_argument("--taus", type=float, nargs="+", default=None, help=f"noise temperatures (default {TAUS})")
    p.add_argument("--ensemble", type=int, default=None, help="members of the calibration ensembles (default 8)")
    p.add_argument("--horizon", type=int, default=None, help="forecast rollout steps of 0.5 (default 2; quick 1)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 3; quick 1)")
    args = p.parse_args(argv)
    quick = {"steps": [1, 2, 4], "taus": [1.0, 2.0], "ensemble": 4, "horizon": 1, "rounds": 1,
             "max_samples": 1, "splits": ["test"]}
    full = {"steps": list(STEPS), "taus": list(TAUS), "ensemble": 8, "horizon": 2, "rounds": 3,
            "max_samples": 6, "splits": ["test", "re_1000"]}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.work is None:
        args.work = REPO / "runs" / ("bench_sampling_quick" if args.quick else "bench_sampling")
    args.checkpoint = Path(args.checkpoint or default_checkpoint())
    if 2 not in args.steps:
        p.error("--steps must include 2 (the claim under test)")
    if 1.0 not in args.taus:
        p.error("--taus must include 1 (the model as trained: the reference of the temperature sweep)")
    if min(args.steps) < 1 or args.ensemble < 2 or args.horizon < 1 or args.rounds < 1 or args.max_samples < 1:
        p.error("--steps, --horizon, --rounds and --max-samples must be >= 1 and --ensemble >= 2")
    return args


# ------------------------------------------------------------------------------------------ data
def quick_data(work: Path, snapshots: int) -> Path:
    """A tiny data set with hybrid256's physics (256^2 Kolmogorov, k_f 4, drag 0.1): one short Re 700
    trajectory for train (evaluate needs a training split) and one for test; resumed if present."""
    from flexcouple.data.config import load_preset
    from flexcouple.data.generate import generate
    cfg = load_preset("hybrid256").replace(name="sampling-quick", reynolds=[QUICK_RE], train=1, valid=0, test=1,
                                           ood=[], spinup=0.5, snapshots=snapshots)
    root = work / "data"
    try:
        meta = json.loads((root / "flexcouple_dataset.json").read_text())
        done = meta.get("status") == "complete" and meta.get("config_hash") == cfg.config_hash()
    except (OSError, ValueError):
        done = False
    if not done:  # a complete set of this config is left as it is (generate would re-validate every file)
        generate(cfg, root, progress=False, log=lambda msg: None)
    return root


def check_data_fits(model_config: dict, data_meta: dict, data: Path) -> None:
    """Refuse data the checkpoint was not made for: another grid, physics, forcing or drag."""
    trained = ((model_config.get("data") or {}).get("dataset") or {}).get("config") or {}
    here = data_meta.get("config") or {}
    n_here = data_meta.get("n", here.get("n"))
    wrong = []
    for key, have in (("n", n_here), ("physics", here.get("physics")),
                      ("forcing_wavenumber", here.get("forcing_wavenumber")), ("drag", here.get("drag"))):
        want = trained.get(key)
        if want is not None and have is not None and want != have:
            wrong.append(f"{key} {have} (the model's training data: {want})")
    if wrong:
        raise ValueError(f"the checkpoint does not fit --data {data}: {'; '.join(wrong)}. Pass a data set made "
                         f"like its training data (preset {trained.get('name', '?')}: e.g. data/hybrid256)")


def open_data(data: Path, model_config: dict) -> dict:
    from flexcouple.data.datasets import load_metadata
    if not (data / "flexcouple_dataset.json").is_file():
        raise FileNotFoundError(f"--data {data} is not a flexcouple data set (no flexcouple_dataset.json); make one "
                                f"with 'flexcouple generate --preset hybrid256 --out data/hybrid256' or use --quick")
    meta = load_metadata(data)
    check_data_fits(model_config, meta, data)
    return meta


# ------------------------------------------------------------------------------------- sampling
@contextmanager
def noise_temperature(tau: float):
    """Inside, every ``ResidualDiffusion.sample`` call starts from tau times the initial noise it would
    have drawn (same generator, same draw, passed as ``noise``): tau = 1 changes nothing."""
    original = ResidualDiffusion.sample
    if tau == 1.0:
        yield
        return

    def tempered(self, condition, reynolds, steps=2, ensemble=1, generator=None, task=None, noise=None):
        if noise is None:
            b, (h, w) = condition.shape[0], condition.shape[-2:]
            device = generator.device if generator is not None else condition.device
            noise = torch.randn((b * ensemble, 1, h, w), generator=generator, device=device).to(condition.device)
        return original(self, condition, reynolds, steps=steps, ensemble=ensemble, generator=generator, task=task,
                        noise=noise * tau)

    ResidualDiffusion.sample = tempered
    try:
        yield
    finally:
        ResidualDiffusion.sample = original


def run_evaluation(args, data: Path, task: str, out: Path, *, steps: int, ensemble: int, horizon: int,
                   tau: float = 1.0) -> dict:
    """``flexcouple evaluate`` of the checkpoint on ``args.splits``: the per-split summaries."""
    from flexcouple.evaluation.evaluate import Options, evaluate
    opts = Options(task=task, steps=steps, ensemble=ensemble, batch_size=2, max_samples=args.max_samples,
                   horizon=horizon, seed=0, device="cpu", observables=("vorticity",), progress=False, figures="none")
    started = time.perf_counter()
    with noise_temperature(tau):
        metrics = evaluate([str(args.checkpoint)], data, task, out, opts=opts, splits=args.splits, overwrite=True)
    (report,) = metrics["models"].values()
    return {"by_split": {split: summarize(entry, task) for split, entry in report["by_split"].items()},
            "wall_s": time.perf_counter() - started, "metrics_json": str(out / "metrics.json")}


def _at(value, lead: int = 0):
    """A forecast metric's value at one lead (index), a super-resolution scalar as is."""
    a = np.asarray(value, dtype=np.float64)
    return float(a) if a.ndim == 0 else float(a[lead])


def summarize(entry: dict, task: str) -> dict:
    """The numbers this benchmark reports from one split's entry of metrics.json."""
    out = {"samples": int(entry["n_samples"]), "rfne": _at(entry["rfne"]), "member_rfne": _at(entry["member_rfne"])}
    if "rfne_sem" in entry:
        out["rfne_sem"] = _at(entry["rfne_sem"])
    if task == "superres":
        out.update(ssim=_at(entry["ssim"]), spectrum_error=_at(entry["spectrum_band_mean"]),
                   spectrum_error_member=_at(entry["spectrum_band_member"]))
    else:
        out.update(correlation=_at(entry["correlation"]), lead_time=_at(entry["times"]),
                   rollout_rfne=_at(entry["rfne"], -1), rollout_correlation=_at(entry["correlation"], -1),
                   rollout_lead_time=_at(entry["times"], -1))
    if "spread_skill_ratio" in entry:
        out.update({k: _at(entry[k]) for k in ("spread_skill_ratio", "spread", "skill_rmse", "coverage_50",
                                               "coverage_90", "expected_coverage_50", "expected_coverage_90",
                                               "crps", "crps_fair")})
    return out


def time_sampling(model, conditions: dict, steps_list: list[int], rounds: int, log=print) -> dict:
    """Seconds per sample (batch 1, K = 1) of every (task, steps), interleaved: every round runs all of
    them, the step order rotated each round. Returns task -> steps -> list of seconds."""
    times = {task: {s: [] for s in steps_list} for task in conditions}
    gen = torch.Generator().manual_seed(0)
    for task, (cond, re_) in conditions.items():  # warm-up: first calls allocate
        model.sample(cond, re_, steps=1, ensemble=1, generator=gen, task=task)
    for r in range(rounds):
        k = r % len(steps_list)
        order = steps_list[k:] + steps_list[:k]
        for s in order:
            for task, (cond, re_) in conditions.items():
                t0 = time.perf_counter()
                model.sample(cond, re_, steps=s, ensemble=1, generator=gen, task=task)
                times[task][s].append(time.perf_counter() - t0)
        log(f"  timing round {r + 1}/{rounds}: " + ", ".join(
            f"{task} {s} steps {times[task][s][-1]:.2f} s" for s in steps_list for task in conditions)
            + f" (load {os.getloadavg()[0]:.2f})")
    return times


def timing_conditions(data: Path, config: dict, split: str) -> dict:
    """One real input per task (the first of ``split``), as the evaluation feeds it (values do not
    change the cost, shapes do)."""
    from flexcouple.evaluation.evaluate import open_dataset
    sr = (config.get("data") or {}).get("superres_options") or {}
    out = {}
    for task in TASKS:
        ds = open_dataset(data, split, task, past=int(config.get("cond_snapshots", 2)), factor=sr.get("factor"),
                          coarsen_method=sr.get("coarsen_method"), upsample=sr.get("upsample"),
                          periodic_bicubic=sr.get("periodic_bicubic"))
        item = ds[0]
        cond = torch.as_tensor(item["condition"])[None].float()
        out[task] = (cond, torch.tensor([float(item["reynolds"])]))
    return out


# -------------------------------------------------------------------------------------- verdicts
def two_steps_verdict(steps_results: dict, tolerance: float = RFNE_TOLERANCE) -> dict:
    """Per task and split: the best step count's RFNE and whether 2 steps are within ``tolerance`` of
    it. ``steps_results``: steps (int or str) -> task -> {"by_split": {split: {"rfne": ...}}}."""
    by_steps = {int(s): v for s, v in steps_results.items()}
    if 2 not in by_steps:
        raise ValueError("no 2-step results to judge")
    out, ok = {}, True
    for task in by_steps[2]:
        for split, m in by_steps[2][task]["by_split"].items():
            rfnes = {s: v[task]["by_split"][split]["rfne"] for s, v in by_steps.items()
                     if task in v and split in v[task]["by_split"]}
            best = min(rfnes, key=rfnes.get)
            excess = m["rfne"] / rfnes[best] - 1.0
            suffice = excess <= tolerance
            ok &= suffice
            out.setdefault(task, {})[split] = {"rfne_2_steps": m["rfne"], "best_steps": best,
                                               "best_rfne": rfnes[best], "excess": excess, "suffice": suffice}
    return {"suffice": ok, "tolerance": tolerance, "by_task": out}


def calibration_verdict(calibration: dict, band: tuple[float, float] = CALIBRATED,
                        tolerance: float = RFNE_TOLERANCE) -> dict:
    """Per task and split: whether the ensemble as trained (tau = 1) is calibrated (spread-skill ratio in
    ``band``), over- or under-confident, and the temperatures that bring the ratio into the band with an
    ensemble-mean RFNE at most ``tolerance`` above tau = 1's. Per task, the recommended tau is the one
    that does so on every split, the ratio closest to 1 (geometric) across them. ``calibration``:
    task -> tau (float or str) -> {"by_split": {split: {"spread_skill_ratio", "rfne"}}}."""
    lo, hi = band
    out, all_calibrated = {}, True
    for task, per_tau in calibration.items():
        taus = {float(t): v for t, v in per_tau.items()}
        if 1.0 not in taus:
            raise ValueError(f"{task}: no tau = 1 results to compare the temperatures with")
        splits, fixing = {}, None
        for split, ref in taus[1.0]["by_split"].items():
            ratio = ref["spread_skill_ratio"]
            state = "calibrated" if lo <= ratio <= hi else ("over-confident" if ratio < lo else "under-confident")
            good = []
            for tau, v in sorted(taus.items()):
                m = v["by_split"].get(split)
                if m and lo <= m["spread_skill_ratio"] <= hi and m["rfne"] <= (1 + tolerance) * ref["rfne"]:
                    good.append(tau)
            splits[split] = {"spread_skill_ratio": ratio, "state": state, "fixing_taus": good}
            all_calibrated &= state == "calibrated"
            fixing = set(good) if fixing is None else fixing & set(good)
        recommended = None
        if fixing:
            def worst(tau):
                return max(abs(math.log(taus[tau]["by_split"][s]["spread_skill_ratio"])) for s in splits)
            recommended = min(sorted(fixing), key=worst)
        calibrated = all(s["state"] == "calibrated" for s in splits.values())
        out[task] = {"calibrated": calibrated, "by_split": splits,
                     "recommended_tau": None if calibrated else recommended,
                     "advice": _advice(task, splits, calibrated, recommended)}
    return {"calibrated": all_calibrated, "band": list(band), "rfne_tolerance": tolerance, "by_task": out}


def _advice(task: str, splits: dict, calibrated: bool, tau: float | None) -> str:
    if calibrated:
        return f"{task}: calibrated at tau = 1; nothing to fix"
    states = sorted({s["state"] for s in splits.values()} - {"calibrated"})
    if tau is not None:
        return (f"{task}: {' and '.join(states)} at tau = 1; an initial-noise temperature tau = {tau:g} brings the "
                f"spread-skill ratio into the band on every split at most {RFNE_TOLERANCE:.0%} ensemble-mean RFNE away")
    if states == ["under-confident"]:
        return f"{task}: under-confident; a temperature below 1 or more training would narrow the ensemble"
    return (f"{task}: {' and '.join(states)}; no tried temperature fixes it without costing more than "
            f"{RFNE_TOLERANCE:.0%} RFNE: what is left is more training (the spread of a diffusion model follows "
            f"its learned conditional distribution), larger temperatures/more steps tried together, or a "
            f"post-hoc spread inflation fitted on the validation split")


# ------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    args = parse(argv)
    info = provenance()
    torch.set_num_threads(args.threads)
    from flexcouple.checkpoint import load_checkpoint
    model, config = load_checkpoint(args.checkpoint)
    model.eval()
    started = time.perf_counter()
    work = args.work
    if args.quick:
        print(f"quick mode: generating a tiny 256^2 data set under {work} ...", flush=True)
        data = quick_data(work, snapshots=int(config.get("cond_snapshots", 2)) + args.horizon)
        print(f"  data ready ({time.perf_counter() - started:.0f} s)", flush=True)
    else:
        data = args.data
    meta = open_data(data, config)

    steps_results = {}
    for s in args.steps:
        steps_results[s] = {}
        for task in TASKS:
            print(f"steps {s}: {task} ...", flush=True)
            r = run_evaluation(args, data, task, work / "steps" / f"{task}_{s}", steps=s, ensemble=1,
                               horizon=args.horizon)
            steps_results[s][task] = r
            print("  " + ", ".join(f"{split} RFNE {m['rfne']:.4f}" for split, m in r["by_split"].items())
                  + f" ({r['wall_s']:.0f} s)", flush=True)

    calibration = {task: {} for task in TASKS}
    for tau in args.taus:
        for task in TASKS:
            print(f"calibration tau {tau:g}: {task}, K = {args.ensemble}, 2 steps ...", flush=True)
            r = run_evaluation(args, data, task, work / "calibration" / f"{task}_tau{tau:g}", steps=2,
                               ensemble=args.ensemble, horizon=1, tau=tau)
            calibration[task][tau] = r
            print("  " + ", ".join(f"{split} spread-skill {m['spread_skill_ratio']:.3f} coverage90 "
                                   f"{m['coverage_90']:.3f} RFNE {m['rfne']:.4f}" for split, m in r["by_split"].items())
                  + f" ({r['wall_s']:.0f} s)", flush=True)

    print(f"timing: {args.rounds} interleaved round(s), {args.threads} torch thread(s) ...", flush=True)
    times = time_sampling(model, timing_conditions(data, config, args.splits[0]), list(args.steps), args.rounds)
    for s in args.steps:
        for task in TASKS:
            t = times[task][s]
            steps_results[s][task]["cost"] = {"seconds_per_sample": float(np.median(t)),
                                              "seconds_per_network_evaluation": float(np.median(t)) / s,
                                              "seconds_all": t}

    verdict = {"two_steps": two_steps_verdict(steps_results), "calibration": calibration_verdict(calibration)}
    verdict["summary"] = summary_lines(verdict, steps_results)
    result = {
        "benchmark": NAME, **finish(info),
        "quick": args.quick,
        "meaningful": not args.quick,
        "note": ("QUICK MODE: a tiny generated data set (one short Re 700 trajectory, spin-up 0.5), 1 sample, "
                 f"K = {args.ensemble}: a smoke test of the pipeline; these numbers are NOT meaningful"
                 if args.quick else "full mode"),
        "protocol": {"checkpoint": str(args.checkpoint), "data": str(data), "data_name": meta.get("name"),
                     "splits": args.splits, "max_samples_per_split": args.max_samples, "steps": args.steps,
                     "accuracy_members": 1, "forecast_horizon": args.horizon, "forecast_lead_time": 0.5,
                     "calibration": {"ensemble": args.ensemble, "steps": 2, "taus": args.taus,
                                     "forecast_leads": 1, "band": list(CALIBRATED)},
                     "timing": {"rounds": args.rounds, "torch_threads": args.threads, "batch": 1, "members": 1,
                                "statistic": "median over rounds", "interleaved": True},
                     "rfne_tolerance": RFNE_TOLERANCE, "evaluation": "flexcouple.evaluation.evaluate (metrics.json "
                     "under --work); spectrum_error = spectrum_band_mean, superres members = ensemble mean"},
        "steps": {str(s): v for s, v in steps_results.items()},
        "calibration": {task: {f"{tau:g}": v for tau, v in per.items()} for task, per in calibration.items()},
        "verdict": verdict,
    }
    path = write_result(args.out, NAME, result)
    plot(args.out / f"{NAME}.png", result)
    print("\n".join(verdict["summary"]))
    print(f"-> {path} ({time.perf_counter() - started:.0f} s)")
    return 0


def summary_lines(verdict: dict, steps_results: dict) -> list[str]:
    two = verdict["two_steps"]
    lines = [f"two steps suffice (RFNE within {two['tolerance']:.0%} of the best step count): {two['suffice']}"]
    for task, splits in two["by_task"].items():
        for split, v in splits.items():
            cost2 = steps_results[2][task].get("cost", {}).get("seconds_per_sample")
            lines.append(f"  {task} {split}: 2 steps RFNE {v['rfne_2_steps']:.4f}, best {v['best_rfne']:.4f} at "
                         f"{v['best_steps']} steps ({v['excess']:+.1%})"
                         + (f", {cost2:.2f} s per sample" if cost2 is not None else ""))
    cal = verdict["calibration"]
    lines.append(f"ensembles calibrated (spread-skill in {cal['band'][0]}-{cal['band'][1]}): {cal['calibrated']}")
    for task, v in cal["by_task"].items():
        ratios = ", ".join(f"{split} {s['spread_skill_ratio']:.2f}" for split, s in v["by_split"].items())
        lines.append(f"  {task}: spread-skill {ratios}; {v['advice']}")
    return lines


def plot(path: Path, result: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 5, figsize=(21, 4), constrained_layout=True)
    steps = sorted(int(s) for s in result["steps"])
    for task, marker in zip(TASKS, "os"):
        row = [result["steps"][str(s)][task] for s in steps]
        for split in row[0]["by_split"]:
            axes[0].plot(steps, [r["by_split"][split]["rfne"] for r in row], marker=marker, label=f"{task} {split}")
        axes[1].plot(steps, [r["cost"]["seconds_per_sample"] for r in row], marker=marker, label=task)
        if task == "superres":
            for split in row[0]["by_split"]:
                axes[2].plot(steps, [r["by_split"][split]["spectrum_error"] for r in row], marker=marker,
                             label=f"{split}")
    for ax, label in zip(axes[:3], ("RFNE (K = 1; forecast: one step)", "seconds per sample (median)",
                                    "super-resolution spectrum error")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.set_xlabel("DDIM steps")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    for task, marker in zip(TASKS, "os"):
        per = result["calibration"][task]
        taus = sorted(per, key=float)
        for split in per[taus[0]]["by_split"]:
            x = [float(t) for t in taus]
            axes[3].plot(x, [per[t]["by_split"][split]["spread_skill_ratio"] for t in taus], marker=marker,
                         label=f"{task} {split}")
            ref = per["1"]["by_split"][split]["rfne"]
            axes[4].plot(x, [per[t]["by_split"][split]["rfne"] / ref for t in taus], marker=marker,
                         label=f"{task} {split}")
    axes[3].axhspan(*CALIBRATED, color="g", alpha=0.15, label="calibrated band")
    axes[3].set_ylabel(f"spread-skill ratio (K = {result['protocol']['calibration']['ensemble']}, 2 steps)")
    axes[4].axhspan(0, 1 + RFNE_TOLERANCE, color="g", alpha=0.15, label=f"within {RFNE_TOLERANCE:.0%}")
    axes[4].set_ylim(bottom=0.9)
    axes[4].set_ylabel("ensemble-mean RFNE / RFNE at tau = 1")
    for ax in axes[3:]:
        ax.set_xlabel("initial-noise temperature tau")
        ax.legend(fontsize=7)
    fig.suptitle("FLEX sampling steps and ensemble calibration" + (" (QUICK MODE: not meaningful)"
                                                                     if result["quick"] else ""))
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as exc:
        print(f"bench_sampling: error: {exc}", file=sys.stderr)
        sys.exit(2)
