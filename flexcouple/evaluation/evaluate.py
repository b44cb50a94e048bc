"""``flexcouple evaluate``: metrics.json, figures and comparison tables for trained models.

    flexcouple evaluate --checkpoint runs/flex runs/unet bicubic --data data/tiny \\
        --task superres --steps 2 --ensemble 8 --out eval/

Each ``--checkpoint`` is a checkpoint directory (``flexcouple train``) or a pseudo-checkpoint
baseline: ``bicubic`` / ``spectral`` (super-resolution) or ``persistence`` (forecast). Every model
runs on the same samples of the data set's test split and out-of-distribution sets (and, for
super-resolution, on the velocity components: the unseen observable). The report breaks every
metric down by split, by out-of-distribution category and by Reynolds number (``sources``).

Super-resolution: the model samples K fields per coarse input; metrics of the ensemble mean, one
member's spectrum, and the ensemble's calibration. Forecasting: autoregressive rollouts of
``--horizon`` steps from the first ``past`` snapshots of a window, feeding the ensemble mean back
(the paper), every metric against lead time and the time until the correlation falls below 0.95.

Models see their data in their own normalisation (the checkpoint's mean and std); metrics are on
de-normalised fields. Long evaluations run data-parallel: under ``torchrun`` (torch.distributed,
gloo) or ``mpiexec`` (mpi4py), each process takes every P-th batch; the per-sample records are
gathered and reduced in sample order, so the numbers are exactly those of one process (the noise of
batch b is drawn from a generator seeded with (seed, b), whoever runs it).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from solver.paths import check_readable, check_writable
from solver.io import write_text_atomic

from flexcouple.evaluation import report
from flexcouple.evaluation import sources
from flexcouple.evaluation.metrics import velocity_from_vorticity
from flexcouple.evaluation.predictors import BASELINES, Predictor, _unique_labels, load_predictor  # noqa: F401
from flexcouple.evaluation.rollout import rollout, sample_fields
from flexcouple.evaluation.world import World

TASKS = ("superres", "forecast")


# --------------------------------------------------------------------------------------- data
def _denorm(x: torch.Tensor, norm: dict) -> torch.Tensor:
    return x.double() * float(norm["std"]) + float(norm["mean"])


def _norm(x: torch.Tensor, norm: dict) -> torch.Tensor:
    return ((x - float(norm["mean"])) / float(norm["std"])).float()


@dataclass
class SplitPlan:
    """One split to evaluate: its data set, samples, parameters and category lookup."""

    name: str
    dataset: object
    indices: list[int]
    cases: list
    observable: str = "vorticity"
    periodic: bool = True
    times: np.ndarray | None = None


def open_dataset(root, split: str, task: str, *, past: int, factor: int | None, coarsen_method: str | None = None,
                 upsample: str | None = None, periodic_bicubic: bool | None = None,
                 coarse_source: str = "truncation"):
    """The data helper's torch data set for a split: full fields (no crop). Super-resolution with the
    checkpoint's factor, coarsening and upsampling (None: the data set's defaults). For forecasting the
    window holds past + horizon - 1 conditioning snapshots and one target, all consecutive."""
    from flexcouple.data import datasets
    if task == "superres":
        kwargs = {"crop": None}
        if factor is not None:
            kwargs["factor"] = factor
        if coarsen_method is not None:
            kwargs["coarsen_method"] = coarsen_method
        if upsample is not None:
            kwargs["upsample"] = upsample
        if periodic_bicubic is not None:
            kwargs["periodic_bicubic"] = periodic_bicubic
        return datasets.SuperResDataset(root, split, coarse_source=coarse_source, **kwargs)
    return datasets.ForecastDataset(root, split, past=past, lead=1)


def _pick(n_items: int, max_samples: int | None) -> list[int]:
    """Evenly spaced items (all when ``max_samples`` is None): deterministic, spread over cases."""
    if max_samples is None or max_samples >= n_items:
        return list(range(n_items))
    return sorted({int(i) for i in np.linspace(0, n_items - 1, max_samples).round()})


# ------------------------------------------------------------------------------------- evaluation
@dataclass
class Options:
    task: str
    steps: int = 2
    ensemble: int = 4
    batch_size: int = 4
    max_samples: int | None = None
    horizon: int = 10
    feed: str = "mean"
    seed: int = 0
    device: str = "cpu"
    observables: tuple[str, ...] = ("vorticity", "velocity")
    progress: bool = True
    figures: str = "summary"
    allow_unverified: bool = False  # also checkpoints whose config.json records no hash of itself
    coarse_source: str = "truncation"  # superres inputs: the truth coarsened, or the stored coarse-solver states


def _condition_pipeline(dataset) -> dict:
    """How the data set makes a super-resolution condition from a fine field (factor, methods)."""
    info = {}
    for key, names in (("factor", ("factor", "coarsen_factor")), ("method", ("coarsen_method", "method")),
                       ("upsample", ("upsample",)), ("periodic_bicubic", ("periodic_bicubic", "upsample_periodic"))):
        for name in names:
            if hasattr(dataset, name):
                info[key] = getattr(dataset, name)
                break
    info.setdefault("method", "spectral")
    info.setdefault("periodic_bicubic", False)
    if not isinstance(info.get("upsample"), str):
        info["upsample"] = "bicubic"
    return info


def make_condition(fine: torch.Tensor, pipeline: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(upsampled condition, coarse) of fine fields (B, 1, H, W), as the data set makes them."""
    from flexcouple.data.coarsen import coarsen, superres_condition
    coarse = coarsen(fine, int(pipeline["factor"]), method=pipeline["method"])
    size = fine.shape[-1]
    return superres_condition(coarse, size, pipeline.get("upsample", "bicubic"), pipeline.get("periodic_bicubic")), coarse


def _batches(plan: SplitPlan, batch_size: int):
    for b0 in range(0, len(plan.indices), batch_size):
        yield b0 // batch_size, plan.indices[b0:b0 + batch_size]


def _stack(dataset, idx: list[int]) -> dict:
    items = [dataset[i] for i in idx]
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in ("condition", "target", "reynolds")}


def _sample_superres(pred: Predictor, cond_raw, coarse_raw, reynolds, norm, opts, generator,
                     pipeline: dict | None = None):
    """Raw ensemble (B, K, H, W) from raw condition (B, 1, H, W), in the model's normalisation."""
    cond = _norm(cond_raw, norm).to(opts.device)
    kwargs = {}
    # the spectral baseline interpolates the coarse field itself; so does the bicubic one (the paper's
    # image bicubic) when the condition is not that (a model trained on spectral upsampling)
    if pred.source == "spectral" or (pred.source == "bicubic" and not _condition_is_image_bicubic(pipeline)):
        kwargs["coarse"] = _norm(coarse_raw, norm).to(opts.device)

    class _Call:  # sample_fields checks the output shape
        def sample(self, condition, reynolds, **kw):
            return pred.model.sample(condition, reynolds, **kw, **kwargs)

    out = sample_fields(_Call(), cond, reynolds.to(opts.device), steps=opts.steps, ensemble=opts.ensemble,
                        generator=generator, task="superres")
    return _denorm(out.cpu(), norm)


def _condition_is_image_bicubic(pipeline: dict | None) -> bool:
    """Whether the super-resolution condition is torch's (non-periodic) bicubic upsampling of the coarse field."""
    pipeline = pipeline or {}
    return pipeline.get("upsample", "bicubic") == "bicubic" and not pipeline.get("periodic_bicubic", False)


class _NormalisedForecaster:
    """``sample`` in the model's units, for ``rollout``; baselines need nothing more."""

    def __init__(self, pred: Predictor):
        self.pred = pred

    def sample(self, condition, reynolds, **kw):
        return self.pred.model.sample(condition, reynolds, **kw)


def evaluate_split(pred: Predictor, plan: SplitPlan, data_norm: dict, train: sources.TrainingRange, opts: Options,
                   world: World, pipeline: dict | None = None, obs_norms: dict | None = None) -> tuple[list, dict]:
    """Records of this process's share of a split, and one example (first sample) for the figures."""
    records, example = [], {}
    # vorticity: the checkpoint's own statistics; a baseline is affine-invariant, the data's will do
    model_norm = pred.normalization if pred.kind == "checkpoint" else data_norm
    batches = [(b, idx) for b, idx in _batches(plan, opts.batch_size) if b % world.size == world.rank]
    bar = batches
    if opts.progress and world.rank == 0:
        from tqdm.auto import tqdm
        bar = tqdm(batches, desc=f"{pred.label} {plan.name}", unit="batch", leave=False, file=sys.stderr)
    for b, idx in bar:
        generator = torch.Generator().manual_seed(opts.seed * 1_000_003 + b)
        batch = _stack(plan.dataset, idx)
        reynolds = batch["reynolds"].float()
        if opts.task == "superres":
            fine_raw = _denorm(batch["target"], data_norm)
            cond_raw = _denorm(batch["condition"], data_norm)
            if plan.observable == "vorticity":
                if opts.coarse_source != "truncation":  # the coarse-solver state under its spectral upsampling
                    from flexcouple.data.coarsen import coarsen
                    coarse_raw = coarsen(cond_raw, int(pipeline["factor"]), method="spectral")
                else:
                    _, coarse_raw = make_condition(fine_raw, pipeline) if pipeline.get("factor") else (None, None)
                fields = [("vorticity", fine_raw, cond_raw, coarse_raw, model_norm)]
            else:
                u, v = velocity_from_vorticity(fine_raw[:, 0].numpy())
                fields = []
                for name, comp in (("velocity_u", u), ("velocity_v", v)):
                    comp = torch.from_numpy(comp)[:, None]
                    c, coarse = make_condition(comp, pipeline)
                    fields.append((name, comp, c, coarse, obs_norms[name]))
            for obs, fine, cond, coarse, norm in fields:
                members = _sample_superres(pred, cond, coarse, reynolds, norm, opts, generator, pipeline).numpy()
                for j, i in enumerate(idx):
                    re_ = float(reynolds[j])
                    case = sources.case_of(plan.cases, re_)
                    cat = "unseen_observable" if obs != "vorticity" else train.category(
                        re_, case.boundary if case else None, case.forcing_wavenumber if case else None)
                    records.append(report.sample_record(members[j], fine[j, 0].numpy(), index=i, split=plan.name,
                                                   category=cat, reynolds=re_, observable=obs,
                                                   periodic=plan.periodic))
                    if i == plan.indices[0] and obs in ("vorticity", "velocity_u"):
                        example = {"truth": fine[j, 0].numpy(), "condition": cond[j, 0].numpy(),
                                   "coarse": None if coarse is None else coarse[j, 0].numpy(),
                                   "mean": members[j].mean(0), "std": members[j].std(0, ddof=1) if opts.ensemble > 1 else None,
                                   "member": members[j, 0], "reynolds": re_, "observable": obs}
        else:
            past = pred.cond_snapshots
            window = torch.cat([batch["condition"], batch["target"]], dim=1)  # (B, past + horizon, H, W)
            history = _norm(_denorm(window[:, :past], data_norm), model_norm).to(opts.device)
            truth = _denorm(window[:, past:past + opts.horizon], data_norm).numpy()
            roll = rollout(_NormalisedForecaster(pred), history, reynolds.to(opts.device), opts.horizon,
                           steps=opts.steps, ensemble=opts.ensemble, generator=generator, feed=opts.feed)
            members = _denorm(roll.members.cpu(), model_norm).numpy()  # (B, T, K, H, W)
            for j, i in enumerate(idx):
                re_ = float(reynolds[j])
                case = sources.case_of(plan.cases, re_)
                cat = train.category(re_, case.boundary if case else None, case.forcing_wavenumber if case else None)
                records.append(report.sample_record(members[j], truth[j], index=i, split=plan.name, category=cat,
                                               reynolds=re_, periodic=plan.periodic, times=plan.times))
                if i == plan.indices[0]:
                    example = {"truth": truth[j, -1], "condition": _denorm(window[j, past - 1], data_norm).numpy(),
                               "mean": members[j, -1].mean(0),
                               "std": members[j, -1].std(0, ddof=1) if opts.ensemble > 1 else None,
                               "reynolds": re_, "observable": "vorticity", "lead": opts.horizon}
    return records, example


# ----------------------------------------------------------------------------------- planning
def plan_splits(root, task: str, splits: list[str] | None, opts: Options, *, factor: int | None, past: int,
                coarsen_method: str | None = None, open_fn: Callable | None = None,
                upsample: str | None = None, periodic_bicubic: bool | None = None) -> dict:
    """Open every split to evaluate; the training range; the conditioning pipeline; velocity stats."""
    open_fn = open_fn or open_dataset
    root = check_readable(root, "data directory", directory=True, hint="; make one with 'flexcouple generate'")
    available = sources.split_names(root)
    if "train" not in available:
        raise ValueError(f"{root} has no train split (data/train/*.hdf5): the out-of-distribution categories "
                         f"are defined against it")
    train = sources.TrainingRange.from_cases(sources.read_cases(root, "train"))
    # "velocity" names the derived unseen-observable split, not a directory
    names = [s for s in (splits or sources.default_splits(root)) if s != "velocity"] or ["test"]
    unknown = [s for s in names if s not in available]
    if unknown:
        raise ValueError(f"{root}: no split {', '.join(unknown)}; available: {', '.join(available)}")
    window = past + opts.horizon - 1 if task == "forecast" else past
    plans, data_norm, pipeline, skipped = [], None, {}, {}
    for name in names:
        cases = sources.read_cases(root, name)
        n_t = min(len(c.times) for c in cases)
        if task == "forecast" and past + opts.horizon > n_t:
            raise ValueError(f"split {name}: no window of {past} past snapshots + a {opts.horizon}-step horizon "
                             f"fits trajectories of {n_t} snapshots; lower --horizon to at most {n_t - past}")
        kwargs = {"coarsen_method": coarsen_method} if coarsen_method else {}
        if upsample is not None:  # the checkpoint's own upsampling of the coarse field (default: bicubic)
            kwargs.update(upsample=upsample, periodic_bicubic=bool(periodic_bicubic))
        if opts.coarse_source != "truncation":
            kwargs["coarse_source"] = opts.coarse_source
        try:
            ds = open_fn(root, name, task, past=window, factor=factor, **kwargs)
        except ValueError as exc:
            what = f" for x{factor} super-resolution" if factor else ""
            raise ValueError(f"the data in {root} cannot be prepared{what}: {exc}") from None
        if len(ds) == 0:
            raise ValueError(f"split {name} of {root} holds no samples")
        norm = dict(ds.normalization)
        if data_norm is None:
            data_norm = norm
            if task == "superres":
                pipeline = _condition_pipeline(ds)
        times = None
        if task == "forecast":
            interval = float(np.median(np.diff(cases[0].times))) if len(cases[0].times) > 1 else 1.0
            times = interval * np.arange(1, opts.horizon + 1)
        periodic = all(c.boundary == "periodic" for c in cases)
        plans.append(SplitPlan(name, ds, _pick(len(ds), opts.max_samples), cases, "vorticity", periodic, times))
    obs_norms = {}
    if task == "superres" and "velocity" in opts.observables:
        base = next((p for p in plans if p.name == "test"), None)
        reason = _velocity_unavailable(base, pipeline, data_norm)
        if reason:
            skipped["velocity"] = reason
        else:
            plans.append(SplitPlan("velocity", base.dataset, base.indices, base.cases, "velocity", True, None))
            obs_norms = _velocity_statistics(base, data_norm)
    return {"plans": plans, "train": train, "data_norm": data_norm, "pipeline": pipeline, "skipped": skipped,
            "obs_norms": obs_norms, "root": str(root), "data_identity": _data_identity(root)}


def _data_identity(root: Path) -> dict:
    """The data set's config hash and creation time (from its metadata file), for resume keys."""
    import json
    try:
        meta = json.loads((root / "flexcouple_dataset.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: meta.get(k) for k in ("config_hash", "created")}


def _velocity_unavailable(base: SplitPlan | None, pipeline: dict, data_norm: dict) -> str | None:
    """Why the unseen-observable split cannot run, or None. It needs a periodic test split (the
    velocity is derived spectrally) and a conditioning pipeline that reproduces the data set's."""
    if base is None:
        return "no test split to derive the velocity from"
    if not base.periodic:
        return "the test split is not periodic: the velocity cannot be derived spectrally from the vorticity"
    if not pipeline.get("factor"):
        return "the data set does not say its coarsening factor (attribute 'factor')"
    batch = _stack(base.dataset, base.indices[:1])
    fine, cond = _denorm(batch["target"], data_norm), _denorm(batch["condition"], data_norm)
    mine, _ = make_condition(fine, pipeline)
    err = float((mine - cond).abs().max()) / max(float(fine.std()), 1e-12)
    if err > 1e-3:
        return (f"re-making the data set's condition with factor {pipeline['factor']}, method "
                f"{pipeline['method']} differs from it by {err:.2e} (relative): the pipeline is not known exactly")
    return None


def _velocity_statistics(base: SplitPlan, data_norm: dict) -> dict:
    """Mean and std of each velocity component over the evaluated samples (its own normalisation)."""
    acc = {"velocity_u": [0.0, 0.0, 0], "velocity_v": [0.0, 0.0, 0]}
    for i in base.indices:
        fine = _denorm(torch.as_tensor(base.dataset[i]["target"])[None], data_norm)[0, 0].numpy()
        for name, comp in zip(acc, velocity_from_vorticity(fine)):
            acc[name][0] += comp.sum()
            acc[name][1] += (comp**2).sum()
            acc[name][2] += comp.size
    out = {}
    for name, (s1, s2, n) in acc.items():
        mean = s1 / n
        out[name] = {"mean": float(mean), "std": float(math.sqrt(max(s2 / n - mean**2, 1e-30)))}
    return out


def check_fits(pred: Predictor, task: str, planned: dict, opts: Options) -> None:
    """Refuse, with the reason, a model whose task or resolution does not fit the data."""
    if task not in pred.tasks:
        raise ValueError(f"{pred.label}: trained for {', '.join(pred.tasks)}, not {task}")
    plan = planned["plans"][0]
    item = plan.dataset[plan.indices[0]]
    h, w = tuple(item["target"].shape[-2:])
    if pred.kind == "checkpoint":
        d = pred.divisor()
        if h % d or w % d:
            raise ValueError(f"checkpoint {pred.source} needs fields whose size is divisible by {d}; the data "
                             f"({planned['root']}) has {h}x{w} fields: evaluate it on a data set with a fitting grid")
        want = pred.training_factor()
        have = planned["pipeline"].get("factor")
        if task == "superres" and want is not None and have is not None and int(want) != int(have):
            raise ValueError(f"checkpoint {pred.source} super-resolves x{want} but the data's conditions are "
                             f"x{have} coarse: pass data coarsened by {want} (or a checkpoint trained for x{have})")
        c = item["condition"].shape[0]
        need = 1 if task == "superres" else pred.cond_snapshots
        if task == "superres" and c != need:
            raise ValueError(f"checkpoint {pred.source}: super-resolution conditions have {c} channels, expected 1")
        # one cheap forward pass: the model's own checks, reported against this checkpoint and data
        cond = torch.as_tensor(item["condition"])[None, :need].float().to(opts.device)
        try:
            with torch.no_grad():
                pred.model.sample(cond, torch.tensor([float(item["reynolds"])], device=opts.device), steps=1,
                                  ensemble=1, generator=torch.Generator().manual_seed(0), task=task)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"checkpoint {pred.source} cannot run on the {h}x{w} fields of {planned['root']}: {exc}") from None
    elif pred.source == "spectral" and not planned["pipeline"].get("factor"):
        raise ValueError("the spectral baseline needs the coarse field, but the data set does not say its "
                         "coarsening factor")


# ------------------------------------------------------------------------------------ the run
def evaluate(specs: list[str], data, task: str, out, *, opts: Options | None = None, labels: list[str] | None = None,
             splits: list[str] | None = None, compare: bool = False, overwrite: bool = False,
             open_fn: Callable | None = None) -> dict | None:
    """Evaluate every checkpoint/baseline; rank 0 writes metrics.json, figures and the comparison
    and returns the metrics; other ranks return None."""
    opts = opts or Options(task=task)
    opts.task = task
    if task not in TASKS:
        raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if opts.ensemble < 1 or opts.steps < 1 or opts.batch_size < 1 or opts.horizon < 1:
        raise ValueError("--ensemble, --steps, --batch-size and --horizon must be positive integers")
    if opts.max_samples is not None and opts.max_samples < 1:
        raise ValueError(f"--max-samples must be at least 1 (samples per split), got {opts.max_samples}; "
                         "leave it out to evaluate every sample")
    out = Path(out)
    with World() as world:
        return _evaluate(world, specs, data, task, out, opts=opts, labels=labels, splits=splits, compare=compare,
                         overwrite=overwrite, open_fn=open_fn)


def _evaluate(world: World, specs, data, task, out: Path, *, opts: Options, labels, splits, compare, overwrite,
              open_fn) -> dict | None:
    if world.rank == 0 and (out / "metrics.json").exists() and not overwrite:
        raise FileExistsError(f"{out}/metrics.json exists; pass --overwrite to replace it or choose another --out")
    started = time.perf_counter()
    names = _unique_labels(list(specs), labels)
    preds = [load_predictor(s, task, device=opts.device, label=n, allow_unverified=opts.allow_unverified)
             for s, n in zip(specs, names) if s not in BASELINES]
    pasts = {p.cond_snapshots for p in preds}
    if len(pasts) > 1:
        raise ValueError(f"the checkpoints condition on different numbers of past snapshots {sorted(pasts)}; "
                         "compare models with the same cond_snapshots")
    past = pasts.pop() if pasts else 2
    factors = {p.training_factor() for p in preds} - {None}
    if len(factors) > 1:
        raise ValueError(f"the checkpoints super-resolve by different factors {sorted(factors)}; evaluate them separately")
    factor = factors.pop() if factors else None
    methods = {p.training_options("superres").get("coarsen_method") for p in preds} - {None}
    if task == "superres" and len(methods) > 1:
        raise ValueError(f"the checkpoints were trained on differently coarsened data {sorted(methods)}; "
                         "evaluate them separately")
    coarsen_method = methods.pop() if (methods and task == "superres") else None
    # how the checkpoints bring the coarse field to the fine grid: their conditions are made the same
    # way (a model trained on spectral upsampling fed bicubic conditions is silently much worse)
    upsamplings = {(str(p.training_options("superres").get("upsample", "bicubic")),
                    bool(p.training_options("superres").get("periodic_bicubic", False))) for p in preds}
    if task == "superres" and len(upsamplings) > 1:
        raise ValueError(f"the checkpoints were trained on differently upsampled conditions {sorted(upsamplings)}; "
                         "evaluate them separately")
    upsample, periodic_bicubic = upsamplings.pop() if (upsamplings and task == "superres") else (None, None)
    if opts.coarse_source != "truncation" and (task != "superres" or upsample != "spectral"):
        raise ValueError(f"--coarse-source {opts.coarse_source} evaluates super-resolution of the stored coarse-solver "
                         "states and needs checkpoints trained with --upsample spectral (their conditions are the "
                         "states' spectral upsampling)")
    if (upsample, periodic_bicubic) == ("bicubic", False):
        upsample = periodic_bicubic = None  # the data sets' default
    for p in preds:
        lead = p.training_options("forecast").get("lead", 1)
        if task == "forecast" and int(lead) != 1:
            raise ValueError(f"checkpoint {p.source} forecasts {lead} intervals ahead from consecutive snapshots; "
                             "autoregressive rollouts need a model trained with lead 1")
    by_label = {p.label: p for p in preds}
    for s, n in zip(specs, names):
        if s in BASELINES:
            by_label[n] = load_predictor(s, task, label=n, cond_snapshots=past)
    preds = [by_label[n] for n in names]
    planned = plan_splits(data, task, splits, opts, factor=factor, past=past, coarsen_method=coarsen_method,
                          open_fn=open_fn, upsample=upsample, periodic_bicubic=periodic_bicubic)
    warnings = []
    for p in preds:
        check_fits(p, task, planned, opts)
        trained_on = ((p.config.get("data") or {}).get("dataset") or {}).get("config_hash")
        here = planned["data_identity"].get("config_hash")
        if p.kind == "checkpoint" and trained_on and here and trained_on != here:
            warnings.append(f"{p.label} was trained on another data set (config hash {trained_on[:12]}, this one "
                            f"{here[:12]}): the categories are relative to this data set's training split")
    if world.rank == 0:
        for name, why in planned["skipped"].items():
            print(f"flexcouple evaluate: skipping the {name} split: {why}", file=sys.stderr)
        for w in warnings:
            print(f"flexcouple evaluate: warning: {w}", file=sys.stderr)

    reports, examples, all_records = {}, {}, {}
    for p in preds:
        records, ex = [], {}
        for plan in planned["plans"]:
            # finished (model, split) shards are kept under out/.shards: a rerun resumes after them
            shard = out / ".shards" / p.label / f"{plan.name}.json"
            key = _shard_key(p, plan, opts, planned)
            done = world.bcast(report.load_shard(shard, key) if world.rank == 0 else None)
            if done is not None:
                if world.rank == 0:
                    records += done[0]
                    if done[1]:
                        ex[plan.name] = done[1]
                continue
            recs, example = evaluate_split(p, plan, planned["data_norm"], planned["train"], opts, world,
                                           planned["pipeline"], planned["obs_norms"])
            gathered = world.gather((recs, example))
            if world.rank != 0:
                continue
            recs = report.concat(g[0] for g in gathered)
            example = next((g[1] for g in gathered if g[1]), {})
            report.save_shard(shard, key, recs, example)
            records += recs
            if example:
                ex[plan.name] = example
        if world.rank != 0:
            continue
        records = sorted(records, key=lambda r: (r["split"], r["index"], r["observable"]))
        reports[p.label] = report.group_report(records)
        examples[p.label], all_records[p.label] = ex, records
    if world.rank != 0:
        return None
    elapsed = time.perf_counter() - started
    metrics = {
        "task": task, "data": str(data), "coarse_source": opts.coarse_source if task == "superres" else None,
        "steps": opts.steps, "ensemble": opts.ensemble, "seed": opts.seed,
        "horizon": opts.horizon if task == "forecast" else None, "feed": opts.feed if task == "forecast" else None,
        "processes": world.size, "wall_time_s": elapsed,
        "training_range": planned["train"].to_dict(), "data_normalization": planned["data_norm"],
        "conditioning": planned["pipeline"], "velocity_normalization": planned["obs_norms"] or None,
        "skipped_splits": planned["skipped"], "warnings": warnings,
        "splits": {pl.name: {"samples": len(pl.indices), "observable": pl.observable, "periodic": pl.periodic}
                   for pl in planned["plans"]},
        "conventions": CONVENTIONS,
        "models": {p.label: {"model": p.describe(), **reports[p.label]} for p in preds},
    }
    figures = write_figures(out, preds, reports, examples, all_records, task, opts)
    metrics["figures"] = [str(f.relative_to(out)) for f in figures]
    report.write_json(out / "metrics.json", metrics)
    if len(preds) > 1 or compare:
        table = report.comparison_table(reports, task)
        report.write_json(out / "comparison.json", table)
        write_text_atomic(out / "comparison.md", report.comparison_markdown(table, f"{Path(str(data)).name}: "
                                                                       f"{', '.join(names)}"))
    return metrics


def _shard_key(pred: Predictor, plan: SplitPlan, opts: Options, planned: dict) -> str:
    """Everything that changes a shard's records: the model (its config holds the weights' hash),
    the data, the split's samples and the sampling settings."""
    blob = {"model": pred.config if pred.kind == "checkpoint" else pred.source, "label": pred.label,
            "split": plan.name, "observable": plan.observable, "indices": plan.indices,
            "data": planned["root"], "data_identity": planned["data_identity"], "data_norm": planned["data_norm"], "pipeline": planned["pipeline"],
            "obs_norms": planned["obs_norms"], "train": planned["train"].to_dict(),
            "opts": {k: getattr(opts, k) for k in ("task", "steps", "ensemble", "batch_size", "horizon", "feed",
                                                   "seed")}}
    from solver.provenance import digest
    return digest(blob, default=str)


CONVENTIONS = {
    "fields": "metrics of the ensemble mean on de-normalised fields; member_rfne is the mean RFNE of single members",
    "psnr": "10 log10(R^2 / MSE), R = max - min of the reference field, per field; mean over fields",
    "ssim": "Gaussian window sigma 1.5 (Wang et al. 2004 / scikit-image), C1=(0.01R)^2, C2=(0.03R)^2; "
            "periodic wrap on periodic splits",
    "spectrum": "isotropic E(k) of the vorticity (sum over shells of |u_hat|^2/2), or of |f_hat|^2/2 for a "
                "velocity component; relative L2 distance of log E(k) of the split-averaged spectra over "
                "1..k_max = n/2 (band) and k_max/2 < k <= k_max (top octave), for the ensemble mean and member 0",
    "crps": "exact ensemble estimator, pointwise, averaged; crps_fair divides the pair term by 2K(K-1)",
    "spread_skill_ratio": "sqrt((K+1)/K) * sqrt(mean unbiased member variance) / RMSE of the ensemble mean; "
                          "1 for a calibrated ensemble",
    "coverage": "fraction of points inside the central 50%/90% interval of the members (Weibull plotting "
                "positions); expected_coverage is what a calibrated K-member ensemble reaches",
    "forecast": "per-lead arrays over lead times 'times'; decorrelation time = first time the correlation "
                "of the ensemble mean with the truth falls below 0.95 (linear interpolation); censored = "
                "samples that stay above 0.95 over the whole horizon",
    "reduction": "means over samples in sample order; exact whatever the number of processes",
    "walls": "on wall-bounded splits (free-slip, channel) SSIM reflects at the borders and the spectrum is the "
             "FFT spectrum of the field as if periodic, a diagnostic rather than a physical spectrum",
    "rollout_spread": "with feed='mean' the ensemble at each lead is sampled around the mean trajectory, so its "
                      "spread is the one-step uncertainty; feed='members' gives the spread of K trajectories",
}


# ------------------------------------------------------------------------------------- figures
def _last(task):
    """Forecast arrays carry a lead axis: figures show the last lead time (the horizon)."""
    return (lambda a: np.asarray(a)[-1]) if task == "forecast" else (lambda a: np.asarray(a))


def write_figures(out: Path, preds, reports, examples, all_records, task, opts) -> list[Path]:
    """``opts.figures``: "summary" (per model: field panels of the test and velocity splits, one
    spectrum panel per split, calibration and lead-time curves of the test split; comparisons),
    "all" (field panels, calibration and lead curves for every split too) or "none"."""
    if opts.figures == "none":
        return []
    from flexcouple.evaluation import plots
    files, fig_dir, last = [], out / "figures", _last(task)
    splits = list(reports[preds[0].label]["by_split"])
    main_split = "test" if "test" in splits else splits[0]
    detail = splits if opts.figures == "all" else [s for s in splits if s in (main_split, "velocity")]
    ylabels = {s: ("E(k)" if s != "velocity" else "spectrum of u, v") for s in splits}
    for p in preds:
        rep, ex, d = reports[p.label], examples[p.label], fig_dir / p.label
        for split in detail:
            e = ex.get(split)
            if e is not None:
                title = f"{p.label} - {split} - Re {e['reynolds']:g}" + (f" - lead {e['lead']}" if "lead" in e else "")
                cond = e.get("coarse") if e.get("coarse") is not None else e.get("condition")
                files.append(plots.plot_fields(d / f"fields_{split}.png", e["truth"], e["mean"], condition=cond,
                                           std=e.get("std"), title=title,
                                           label="vorticity" if split != "velocity" else "u"))
        panels = {}
        for split, entry in rep["by_split"].items():
            sp = entry["spectra"]
            panels[split] = {"truth": (sp["k"], last(sp["true"])), "ensemble mean": (sp["k"], last(sp["mean"])),
                             "one member": (sp["k"], last(sp["member"]))}
        files.append(plots.plot_spectra_panels(d / "spectra.png", panels, ylabel=ylabels,
                                           k_max=rep["by_split"][main_split]["spectra"]["k_max"],
                                           title=p.label + (f" (lead {opts.horizon})" if task == "forecast" else "")))
        for split in (detail if opts.figures == "all" else [main_split]):
            entry = rep["by_split"][split]
            if opts.ensemble > 1:
                recs = [r for r in all_records[p.label] if r["split"] == split and "calibration" in r]
                k = opts.ensemble
                spread = np.concatenate([last(r["calibration"]["spread"]) for r in recs]) * math.sqrt((k + 1) / k)
                error = np.concatenate([last(r["calibration"]["error"]) for r in recs])
                files.append(plots.plot_calibration(d / f"calibration_{split}.png", spread, error,
                                                last(entry["rank_histogram"]),
                                                title=f"{p.label} - {split} (spread x sqrt((K+1)/K))"))
            if task == "forecast":
                files.append(plots.plot_against_lead(d / f"lead_{split}.png", entry["times"],
                                                 {p.label: _lead_curves(entry)}, title=f"{p.label} - {split}"))
    if len(preds) > 1:
        panels = {}
        for split in splits:
            first = reports[preds[0].label]["by_split"][split]["spectra"]
            panels[split] = {"truth": (first["k"], last(first["true"]))}
            for p in preds:
                sp = reports[p.label]["by_split"][split]["spectra"]
                panels[split][p.label] = (sp["k"], last(sp["member"]))
        files.append(plots.plot_spectra_panels(fig_dir / "compare_spectra.png", panels, ylabel=ylabels,
                                           k_max=panels and reports[preds[0].label]["by_split"][main_split]["spectra"]["k_max"],
                                           title="one ensemble member per model"))
        if task == "forecast":
            for split in (splits if opts.figures == "all" else [main_split]):
                files.append(plots.plot_against_lead(fig_dir / f"compare_lead_{split}.png",
                                                 reports[preds[0].label]["by_split"][split]["times"],
                                                 {p.label: _lead_curves(reports[p.label]["by_split"][split])
                                                  for p in preds}, title=split))
        table = {}
        for p in preds:
            for split, entry in reports[p.label]["by_split"].items():
                for re_, sub in entry["by_reynolds"].items():
                    table.setdefault(p.label, {})[f"{split} {re_}"] = float(last(sub["rfne"]))
        files.append(plots.plot_metric_bars(fig_dir / "compare_rfne_by_reynolds.png", table, "rfne",
                                        title="RFNE by split and Reynolds number"
                                              + (" (last lead)" if task == "forecast" else "")))
    return files


def _lead_curves(entry: dict) -> dict:
    out = {m: entry[m] for m in ("rfne", "correlation", "ssim", "crps") if m in entry}
    out["spectrum_band"] = entry["spectrum_band_mean"]
    return out


# ------------------------------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", nargs="+", required=True, metavar="CKPT",
                        help="checkpoint directories and/or baselines: " + ", ".join(
                            f"{b} ({t})" for b, t in BASELINES.items()))
    parser.add_argument("--data", required=True, help="data set directory (flexcouple generate)")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--out", required=True, help="output directory (metrics.json, figures/, comparison.*)")
    parser.add_argument("--steps", type=int, default=2, help="DDIM steps (default 2, as the paper)")
    parser.add_argument("--ensemble", type=int, default=4, help="ensemble members K per input (default 4)")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="splits to evaluate (default: test and every out-of-distribution set)")
    parser.add_argument("--observables", nargs="+", default=["vorticity", "velocity"],
                        choices=["vorticity", "velocity"],
                        help="super-resolution: also the unseen observable (velocity components)")
    parser.add_argument("--max-samples", type=int, default=None, help="at most this many samples per split")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=10, help="forecast rollout length in steps (paper: 10-30)")
    parser.add_argument("--feed", choices=["mean", "members"], default="mean",
                        help="rollout feedback: the ensemble mean (paper) or each member's own history")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--label", nargs="+", default=None, help="names of the models in the reports")
    parser.add_argument("--compare", action="store_true", help="write the comparison table even for one model")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing metrics.json in --out")
    parser.add_argument("--figures", choices=["summary", "all", "none"], default="summary",
                        help="summary: the test and velocity splits in detail, spectra of every split; "
                             "all: every split in detail; none")
    parser.add_argument("--coarse-source", choices=["truncation", "solver"], default="truncation",
                        help="superres inputs: the truth coarsened (default) or the data set's coarse-solver states "
                             "(what a hybrid run feeds the model; velocity conditions stay truncations)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--allow-unverified", action="store_true", help="also load checkpoints whose config.json "
                        "records no hash of itself (format version 1), so edits to it go undetected")


def run(args) -> int:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    opts = Options(task=args.task, steps=args.steps, ensemble=args.ensemble, batch_size=args.batch_size,
                   max_samples=args.max_samples, horizon=args.horizon, feed=args.feed, seed=args.seed,
                   device=device, observables=tuple(args.observables), progress=not args.no_progress,
                   figures=args.figures, allow_unverified=args.allow_unverified, coarse_source=args.coarse_source)
    check_writable(args.out, "--out", directory=True)  # before any model runs
    metrics = evaluate(args.checkpoint, args.data, args.task, args.out, opts=opts, labels=args.label,
                       splits=args.splits, compare=args.compare, overwrite=args.overwrite)
    if metrics is None:  # not rank 0
        return 0
    print(summary(metrics))
    print(f"wrote {args.out}: metrics.json, comparison.json, comparison.md and figures")
    return 0


def summary(metrics: dict) -> str:
    """A few lines for the terminal: the headline metric of every model on every split."""
    forecast = metrics["task"] == "forecast"
    lines = [f"evaluated on {metrics['data']} ({metrics['task']}, K={metrics['ensemble']}, "
             f"{metrics['steps']} steps, {metrics['processes']} process(es), {metrics['wall_time_s']:.1f} s)"]
    for label, rep in metrics["models"].items():
        for split, e in rep["by_split"].items():
            rfne = np.asarray(e["rfne"], dtype=float)
            extra = ""
            if forecast:
                extra = f", decorrelation time (median) {e['decorrelation_time_median']:.3g}"
                rfne = rfne[-1]
            elif e.get("spread"):  # a deterministic model (a baseline) has no spread to judge (exactly 0)
                extra = f", spread-skill {e['spread_skill_ratio']:.3f}, 90% coverage {e['coverage_90']:.3f}"
            lines.append(f"  {label:>16s} {split:>12s}: RFNE {float(rfne):.4f}{extra}")
    return "\n".join(lines)
