"""Check thresholds calibrated on held-out data (``flexcouple calibrate``).

In super-resolution the fine solver never runs, so no check has the solver history of the adaptive
rule and every call is judged against the checks' default thresholds, which were set by hand. Some
defaults reject the truth itself at a hybrid's output interval (``tendency``'s trapezoid estimate over
~300 solver steps; ``superres_consistency``, where the coarse solver drifts from the restricted fine
run); others are far looser than a good model needs and so let a bad one through. A calibration
measures them instead, for one regime (mode, grids, output interval, sampler, model):

1. **Recording runs** on in-distribution cases (Reynolds numbers the model was trained on, initial
   fields it never saw): the hybrid with every threshold at infinity (every call accepted, so the
   chain of outputs is the model's own), once with the model and once with the oracle (the exact fine
   solver in the surrogate's place). Every call's check values are kept.
2. **The rule**, per check, with margin ``m`` (1.25):

       ceiling    = max(default, m * max(oracle))
       calibrated = min(ceiling, max(floor, m * max(model and oracle)))

   A threshold is never looser than the default unless the truth itself fails the default, and then
   only as far as the truth needs; where the model's values are larger than that, the model fails
   the check (the calibration says so) rather than the check being loosened to admit it. Where a good
   model sits far below the default the threshold tightens, down to the check's floor.
3. **Held-out runs** on other initial fields with the calibration applied (and no suspension, so
   every call counts): the false-rejection rate of the model in distribution.
4. **Adversaries** on a held-out case: spectral interpolation (the small scales missing), the
   model's output shifted by a quarter of the box, and the model's output with random phases (the
   right spectrum, the wrong field). The fraction of their calls that the calibrated checks reject
   is reported; a calibration under which an adversary passes says so in its file.

Checks with the solver's own history (leapfrog after its warm-up) keep the adaptive rule, which the
hybrid applies before a calibrated value (fixed > adaptive > calibrated > default); ``calibrate``
supports super-resolution, the mode where no history exists. ``finite`` (threshold 0) is never
calibrated. A run uses a calibration through ``[checks] calibration = "calibration.json"``; it is
refused when the file's regime is not the run's.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coupling.checks import ALL_CHECKS
from coupling.config import FLOW_FIELDS, HybridConfig

FORMAT = "flexcouple-calibration"
VERSION = 1
MARGIN = 1.25
NEVER_CALIBRATED = ("finite",)
ADVERSARIES = ("interpolation", "shift", "phases")
_CHECKS = {c.name: c for c in ALL_CHECKS}


def regime_of(cfg: HybridConfig, model_digest: str | None) -> dict:
    """What a calibration holds for: a run with other values here is another regime."""
    # the flow but its Reynolds number (a calibration holds for a range of Re, checked apart)
    flow = {f: getattr(cfg, f) for f in FLOW_FIELDS if f != "reynolds"}
    return {"mode": cfg.mode, "n": int(cfg.n), "factor": int(cfg.factor), "output_interval": float(cfg.output_interval),
            **flow, "surrogate": cfg.surrogate_kind, "sample_steps": int(cfg.sample_steps), "ensemble": int(cfg.ensemble),
            "model": model_digest}


def file_digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def calibrated_threshold(name: str, model: list[float], oracle: list[float], margin: float = MARGIN) -> dict:
    """The rule of the module docstring for one check: its row of the calibration table."""
    check = _CHECKS[name]
    model = [float(v) for v in model if math.isfinite(v)]
    oracle = [float(v) for v in oracle if math.isfinite(v)]
    if not model and not oracle:
        raise ValueError(f"no finite values of {name} to calibrate on")
    ceiling = max(check.default, margin * max(oracle)) if oracle else float(check.default)
    threshold = min(ceiling, max(check.floor, margin * max(model + oracle)))
    row = {"default": float(check.default), "floor": float(check.floor),
           "model_max": max(model) if model else None, "model_median": float(np.median(model)) if model else None,
           "model_calls": len(model), "oracle_max": max(oracle) if oracle else None, "oracle_calls": len(oracle),
           "ceiling": float(ceiling), "threshold": float(threshold)}
    row["model_fails"] = bool(model and max(model) > threshold)
    return row


@dataclass
class Calibration:
    regime: dict
    reynolds: list[float]
    checks: dict                                # name -> row of calibrated_threshold
    margin: float = MARGIN
    cases: dict = field(default_factory=dict)   # "calibration" / "holdout": [[reynolds, seed], ...]
    holdout: dict = field(default_factory=dict)
    adversaries: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @property
    def thresholds(self) -> dict[str, float]:
        return {name: float(row["threshold"]) for name, row in self.checks.items()}

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "regime": self.regime, "reynolds": self.reynolds,
                "margin": self.margin, "thresholds": self.thresholds, "checks": self.checks, "cases": self.cases,
                "holdout": self.holdout, "adversaries": self.adversaries, "provenance": self.provenance}

    def save(self, path) -> None:
        from flexcouple.data.well import write_json_atomic
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path) -> "Calibration":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"calibration {path} does not exist: write one with `flexcouple calibrate`") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"calibration {path} is not JSON ({exc}); write it again with `flexcouple calibrate`") \
                from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"{path} is not a calibration written by `flexcouple calibrate` (no \"format\": "
                             f"\"{FORMAT}\")")
        if d.get("version") != VERSION:
            raise ValueError(f"calibration {path} has version {d.get('version')!r}; this flexcouple reads version "
                             f"{VERSION}: calibrate again")
        checks = d.get("checks")
        if not isinstance(checks, dict) or not isinstance(d.get("regime"), dict):
            raise ValueError(f"calibration {path} lacks its regime or its checks table: calibrate again")
        for name, row in checks.items():
            thr = row.get("threshold") if isinstance(row, dict) else None
            if name not in _CHECKS or name in NEVER_CALIBRATED:
                raise ValueError(f"calibration {path} names {name!r}, which is not a calibrated check")
            if not isinstance(thr, (int, float)) or isinstance(thr, bool) or not (math.isfinite(thr) and thr >= 0):
                raise ValueError(f"calibration {path}: the threshold of {name} must be a finite number >= 0, "
                                 f"got {thr!r}")
        return cls(regime=d["regime"], reynolds=[float(r) for r in d.get("reynolds", [])], checks=checks,
                   margin=float(d.get("margin", MARGIN)), cases=d.get("cases", {}), holdout=d.get("holdout", {}),
                   adversaries=d.get("adversaries", {}), provenance=d.get("provenance", {}))

    def thresholds_for(self, cfg: HybridConfig, model_digest: str | None, source: str = "the calibration") -> dict:
        """The thresholds, after checking that ``cfg`` and the model are the calibrated regime."""
        here = regime_of(cfg, model_digest)
        wrong = [f"{k} {self.regime.get(k)!r} there, {v!r} here" for k, v in here.items() if self.regime.get(k) != v]
        if wrong:
            raise ValueError(f"{source} was made for another regime ({'; '.join(wrong)}): run `flexcouple calibrate` "
                             "for this config and model, or drop [checks] calibration")
        if self.reynolds and not min(self.reynolds) <= cfg.reynolds <= max(self.reynolds):
            raise ValueError(f"{source} was measured at Re {min(self.reynolds):g}-{max(self.reynolds):g}; this run has "
                             f"Re {cfg.reynolds:g}, outside it: calibrate with cases that span it, or drop "
                             "[checks] calibration")
        return self.thresholds


# ---- the runs ---------------------------------------------------------------------------------------
class Adversary:
    """A super-resolving surrogate that is wrong in a plausible way (see the module docstring)."""

    lead_time = None
    history_length = 1
    grid_divisor = 1

    def __init__(self, how: str, inner, factor: int, seed: int = 0):
        if how not in ADVERSARIES:
            raise ValueError(f"unknown adversary {how!r}; choose from {list(ADVERSARIES)}")
        self.how, self.inner, self.factor, self.seed = how, inner, factor, seed
        self.grid_divisor = getattr(inner, "grid_divisor", 1)

    def reset(self, omega0) -> None:  # an oracle inside starts its own run with the hybrid's
        if hasattr(self.inner, "reset"):
            self.inner.reset(omega0)

    def superres(self, coarse, reynolds, **kw):
        from coupling.surrogates import Prediction
        from solver.resample import spectral_upsample
        if self.how == "interpolation":
            return Prediction(np.asarray(spectral_upsample(np.asarray(coarse, dtype=np.float64), self.factor)))
        field_ = np.asarray(self.inner.superres(coarse, reynolds, **kw).mean, dtype=np.float64)
        if self.how == "shift":
            return Prediction(np.roll(field_, field_.shape[0] // 4, axis=0))
        rng = np.random.default_rng([self.seed, int(kw.get("call", 0))])
        f_hat = np.fft.rfft2(field_)
        phases = np.exp(2j * np.pi * rng.random(f_hat.shape))
        phases[0, 0] = 1.0
        return Prediction(np.fft.irfft2(np.abs(f_hat) * phases, s=field_.shape))


def _case(cfg: HybridConfig, reynolds: float, seed: int, **changes) -> HybridConfig:
    return cfg.replace(reynolds=float(reynolds), init_seed=int(seed), harvest_enabled=False, calibration="", **changes)


def _recording(cfg: HybridConfig) -> HybridConfig:
    """Every threshold infinite: every call accepted, the values of every check recorded."""
    return cfg.replace(thresholds={name: math.inf for name in _CHECKS}, max_rejections=10 ** 9)


class _Fields:
    """The spun-up initial field of each case, computed once (the spin-up is the fine solver's)."""

    def __init__(self):
        self.fields = {}

    def __call__(self, cfg: HybridConfig) -> np.ndarray:
        from coupling.hybrid import HybridSimulation
        key = (cfg.reynolds, cfg.init_seed)
        if key not in self.fields:
            self.fields[key] = HybridSimulation(cfg.replace(mode="pure")).initial_field()
        return self.fields[key]


def _run(cfg: HybridConfig, fields: _Fields, surrogate=None, calibrated=None):
    from coupling.hybrid import HybridSimulation
    sim = HybridSimulation(cfg, surrogate)
    if calibrated is not None:
        sim.checks.calibrated = dict(calibrated)
    return sim, sim.run(fields(cfg))


def _tally(decisions) -> tuple[list, dict, dict]:
    """(the calls made, rejections by reason, failures by check) of a run's decisions."""
    called = [d for d in decisions if d.get("called")]
    reasons: dict[str, int] = {}
    failed: dict[str, int] = {}
    for d in called:
        if not d["accepted"]:
            reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
        for name in d.get("failed_checks", []):
            failed[name] = failed.get(name, 0) + 1
    return called, reasons, failed


def _values(result, into: dict) -> None:
    for d in result.decisions:
        for c in d.get("checks", []):
            into.setdefault(c["name"], []).append(float(c["value"]))  # "inf" / "nan" strings too


def calibrate(cfg: HybridConfig, *, reynolds, seeds, holdout_seeds, margin: float = MARGIN, adversaries: bool = True,
              surrogate=None, log=print) -> Calibration:
    """Steps 1-4 of the module docstring for the regime of ``cfg`` (a superres config). ``surrogate``:
    the model as an object (default: built from ``cfg``, its ``[surrogate] checkpoint``)."""
    cfg = cfg.validate()
    if cfg.mode != "superres":
        raise ValueError(f"calibrate supports mode = \"superres\" (no solver history there); {cfg.mode!r} keeps "
                         "the adaptive rule of the solver's own history after its warm-up")
    if cfg.surrogate_kind == "oracle":
        raise ValueError("calibrate measures a model against the oracle: set [surrogate] kind to the model (flex)")
    reynolds, seeds, holdout_seeds = list(reynolds), list(seeds), list(holdout_seeds)
    if not reynolds or not seeds or not holdout_seeds:
        raise ValueError("calibrate needs at least one Reynolds number, one calibration seed and one held-out seed")
    if set(seeds) & set(holdout_seeds):
        raise ValueError(f"the held-out seeds must differ from the calibration seeds; both have "
                         f"{sorted(set(seeds) & set(holdout_seeds))}")
    if not (math.isfinite(margin) and margin >= 1):
        raise ValueError(f"margin must be a finite number >= 1, got {margin!r}")
    t0 = time.perf_counter()
    fields = _Fields()
    model_values, oracle_values, digest = {}, {}, getattr(surrogate, "digest", None)
    for re_ in reynolds:
        for seed in seeds:
            case = _case(cfg, re_, seed)
            sim, res = _run(_recording(case), fields, surrogate=surrogate)
            surrogate, digest = sim.surrogate, getattr(sim.surrogate, "digest", None)
            _values(res, model_values)
            _, ref = _run(_recording(case.replace(surrogate_kind="oracle")), fields)
            _values(ref, oracle_values)
            log(f"calibration case Re {re_:g} seed {seed}: {len(res.decisions)} model calls, "
                f"{len(ref.decisions)} oracle calls recorded ({time.perf_counter() - t0:.0f} s)")
    checks = {name: calibrated_threshold(name, model_values.get(name, []), oracle_values.get(name, []), margin)
              for name in sorted(set(model_values) | set(oracle_values)) if name not in NEVER_CALIBRATED}
    cal = Calibration(regime=regime_of(cfg, digest), reynolds=[float(r) for r in reynolds], checks=checks,
                      margin=float(margin), cases={"calibration": [[float(r), int(s)] for r in reynolds for s in seeds],
                                                   "holdout": [[float(r), int(s)] for r in reynolds
                                                               for s in holdout_seeds]})
    # held-out cases, the calibration applied, no suspension: every call counts
    calls = accepted = 0
    failed: dict[str, int] = {}
    for re_ in reynolds:
        for seed in holdout_seeds:
            _, res = _run(_case(cfg, re_, seed, max_rejections=10 ** 9), fields, surrogate=surrogate,
                          calibrated=cal.thresholds)
            called, _, by_check = _tally(res.decisions)
            calls += len(called)
            accepted += sum(bool(d["accepted"]) for d in called)
            for name, count in by_check.items():
                failed[name] = failed.get(name, 0) + count
            log(f"held-out case Re {re_:g} seed {seed}: {sum(d['accepted'] for d in called)} of {len(called)} calls "
                f"accepted ({time.perf_counter() - t0:.0f} s)")
    cal.holdout = {"calls": calls, "accepted": accepted, "false_rejection_rate": (calls - accepted) / calls if calls else None,
                   "rejections_by_check": failed}
    if adversaries:
        re_, seed = reynolds[0], holdout_seeds[0]
        for how in ADVERSARIES:
            _, res = _run(_case(cfg, re_, seed, max_rejections=10 ** 9), fields,
                          surrogate=Adversary(how, surrogate, cfg.factor, seed=seed), calibrated=cal.thresholds)
            called, reasons, caught = _tally(res.decisions)
            rejected = sum(not d["accepted"] for d in called)
            cal.adversaries[how] = {"calls": len(called), "rejected": rejected,
                                    "rejection_rate": rejected / len(called) if called else None, "caught_by": caught,
                                    "reasons": reasons, "case": [float(re_), int(seed)]}
            log(f"adversary {how}: {rejected} of {len(called)} calls rejected")
    from solver.provenance import git_commit
    cal.provenance = {"command": " ".join(["flexcouple", *sys.argv[1:]]), "git_commit": git_commit() or "unknown",
                      "wall_s": round(time.perf_counter() - t0, 1),
                      "checkpoint": str(getattr(surrogate, "source", "") or cfg.checkpoint or "")}
    return cal


def table(cal: Calibration) -> str:
    """The calibration as a Markdown table."""
    rows = ["| check | default | oracle max | model max | calibrated | model fails |", "|---|---|---|---|---|---|"]
    fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
    for name, r in cal.checks.items():
        rows.append(f"| {name} | {fmt(r['default'])} | {fmt(r['oracle_max'])} | {fmt(r['model_max'])} | "
                    f"{fmt(r['threshold'])} | {'yes' if r['model_fails'] else 'no'} |")
    return "\n".join(rows)


# ---- command line -----------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="the hybrid config (superres) to calibrate")
    p.add_argument("--checkpoint", help="FLEX checkpoint directory (default: the config's, else the shipped model)")
    p.add_argument("--reynolds", type=float, nargs="+", required=True,
                   help="in-distribution Reynolds numbers (the model's training ones)")
    p.add_argument("--seeds", type=int, nargs="+", required=True, help="initial-field seeds of the calibration runs")
    p.add_argument("--holdout-seeds", type=int, nargs="+", required=True,
                   help="other initial-field seeds: the false-rejection rate is measured there")
    p.add_argument("--margin", type=float, default=MARGIN, help=f"the rule's margin (default {MARGIN})")
    p.add_argument("--no-adversaries", dest="adversaries", action="store_false",
                   help="skip the adversary runs (interpolation, shift, random phases)")
    p.add_argument("--out", type=Path, default=Path("calibration.json"), help="where to write (default calibration.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args) -> int:
    from solver.paths import check_writable
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists: pass --overwrite to replace it, or choose another --out")
    check_writable(args.out, "--out")
    cfg = HybridConfig.from_toml(args.config)
    if args.checkpoint:
        cfg = cfg.replace(checkpoint=str(args.checkpoint)).validate()
    cal = calibrate(cfg, reynolds=args.reynolds, seeds=args.seeds, holdout_seeds=args.holdout_seeds,
                    margin=args.margin, adversaries=args.adversaries)
    cal.save(args.out)
    print(table(cal))
    h = cal.holdout
    print(f"held out: {h['accepted']} of {h['calls']} calls accepted (false-rejection rate "
          f"{h['false_rejection_rate']:.2f})" if h["calls"] else "held out: no calls")
    for how, a in cal.adversaries.items():
        print(f"adversary {how}: {a['rejected']} of {a['calls']} calls rejected")
    print(f"wrote {args.out}; use it with [checks] calibration = \"{args.out}\"")
    return 0
