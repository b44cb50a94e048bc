"""Per-sample records, their exact reduction into grouped reports, and the comparison tables.

Each evaluated sample becomes a record of *additive* statistics (per-field metric values, summed
spectra, the CRPS / variance / squared-error sums and coverage and rank counts of the ensemble).
Reports are means and ratios of sums over a group of records (a split, a category, a Reynolds
number), taken in sample order, so shards evaluated by different processes combine into exactly the
numbers a single process gets.

Super-resolution records hold scalars; forecast records hold one value per lead time (arrays of
length T), and the same reduction gives every metric against lead time.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np

from flexcouple.evaluation import metrics
from solver.io import write_text_atomic

FIELD_METRICS = ("rfne", "mse", "psnr", "ssim", "max_error", "correlation")
CALIBRATION_POINTS = 256  # pixels per sample kept for the spread-vs-error figure


def sample_record(members: np.ndarray, truth: np.ndarray, *, index: int, split: str, category: str,
                  reynolds: float, observable: str = "vorticity", periodic: bool = True,
                  times: np.ndarray | None = None) -> dict:
    """Statistics of one sample. Super-resolution: members (K, H, W), truth (H, W). Forecast:
    members (T, K, H, W), truth (T, H, W) and ``times`` the T lead times."""
    members, truth = metrics.as_numpy(members), metrics.as_numpy(truth)
    forecast = truth.ndim == 3
    if not forecast:
        members, truth = members[None], truth[None]
    t, k = members.shape[:2]
    mean = members.mean(axis=1)
    field = metrics.field_metrics(mean, truth, periodic=periodic)
    spectrum = metrics.energy_spectrum if observable == "vorticity" else metrics.scalar_spectrum
    kk, e_true = spectrum(truth)
    _, e_mean = spectrum(mean)
    _, e_member = spectrum(members[:, 0])
    rec = {
        "index": int(index), "split": split, "category": category, "reynolds": float(reynolds),
        "observable": observable, "members": int(k), "shape": list(truth.shape[-2:]),
        "field": {m: field[m] for m in FIELD_METRICS},
        "member_rfne": metrics.rfne(members, np.broadcast_to(truth[:, None], members.shape)).mean(axis=1),
        "spectra": {"k": kk, "true": e_true, "mean": e_mean, "member": e_member},
    }
    n_points = truth[0].size
    ens = {"n": np.full(t, n_points, dtype=np.int64),
           "sum_crps": np.array([metrics.crps(members[i].reshape(k, -1), truth[i].ravel()).sum() for i in range(t)])}
    if k >= 2:
        # deviations from member 0 (same variance): identical members give exactly 0, not rounding noise
        var = (members - members[:, :1]).var(axis=1, ddof=1)
        ens["sum_crps_fair"] = np.array([metrics.crps(members[i].reshape(k, -1), truth[i].ravel(), fair=True).sum()
                                         for i in range(t)])
        ens["sum_var"] = var.reshape(t, -1).sum(axis=1)
        ens["sum_sqerr"] = ((mean - truth) ** 2).reshape(t, -1).sum(axis=1)
        for p in (0.5, 0.9):
            lo, hi = _interval(members, p)
            ens[f"n_cov{int(p * 100)}"] = ((truth >= lo) & (truth <= hi)).reshape(t, -1).sum(axis=1)
        rng = np.random.default_rng(index)  # tie-breaking reproducible per sample
        ens["ranks"] = np.stack([metrics.rank_histogram(members[i], truth[i], rng) for i in range(t)])
        pick = rng.choice(n_points, size=min(CALIBRATION_POINTS, n_points), replace=False)
        rec["calibration"] = {"spread": np.sqrt(var.reshape(t, -1)[:, pick]),
                              "error": np.abs(mean - truth).reshape(t, -1)[:, pick]}
    rec["ensemble"] = ens
    if forecast:
        rec["times"] = np.asarray(times, dtype=np.float64)
        rec["decorrelation_time"] = metrics.decorrelation_time(field["correlation"], rec["times"])
    else:
        rec = _squeeze_lead(rec)
    return rec


def _interval(members: np.ndarray, p: float):
    """Central interval over the member axis (axis 1 of (T, K, H, W))."""
    lo, hi = np.quantile(members, [(1 - p) / 2, (1 + p) / 2], axis=1, method="weibull")
    return lo, hi


def _squeeze_lead(obj):
    """Drop the length-1 lead axis of a super-resolution record (scalars instead of 1-arrays)."""
    if isinstance(obj, dict):
        return {k: (v if k in ("k",) else _squeeze_lead(v)) for k, v in obj.items()}
    if isinstance(obj, np.ndarray) and obj.ndim >= 1 and obj.shape[0] == 1:
        return obj[0].item() if obj.ndim == 1 else obj[0]
    return obj


# -------------------------------------------------------------------------------------- reduction
def reduce_records(records: list[dict]) -> dict:
    """The report of a group of records (same task, observable and members): means of the field
    metrics, spectrum errors of the mean spectra, and the ensemble scores from the summed counts."""
    if not records:
        raise ValueError("no records to reduce")
    records = sorted(records, key=lambda r: (r["index"], r["observable"]))
    n = len(records)
    out: dict = {"n_samples": n}
    for m in FIELD_METRICS:
        vals = np.stack([np.asarray(r["field"][m], dtype=np.float64) for r in records])
        finite = np.where(np.isfinite(vals), vals, np.nan)
        out[m] = _mean(vals) if m != "psnr" else np.nanmean(finite, axis=0)  # identical fields: +inf dropped
        if m == "rfne" and n > 1:
            out["rfne_sem"] = vals.std(axis=0, ddof=1) / math.sqrt(n)
    out["member_rfne"] = _mean(np.stack([np.asarray(r["member_rfne"]) for r in records]))
    k_shells = records[0]["spectra"]["k"]
    k_max = metrics.field_band(tuple(records[0]["shape"]))[1]
    spectra = {name: _mean(np.stack([r["spectra"][name] for r in records])) for name in ("true", "mean", "member")}
    for name in ("mean", "member"):
        dist = metrics.log_spectrum_distance(k_shells, spectra[name], spectra["true"], k_max)
        out[f"spectrum_band_{name}"] = dist["band"]
        out[f"spectrum_top_octave_{name}"] = dist["top_octave"]
    out["spectra"] = {"k": k_shells, **spectra, "k_max": k_max}
    k = records[0]["members"]
    ens = {key: sum(np.asarray(r["ensemble"][key], dtype=np.float64) for r in records)
           for key in records[0]["ensemble"]}
    points = ens["n"]
    out["crps"] = ens["sum_crps"] / points
    if k >= 2:
        out["crps_fair"] = ens["sum_crps_fair"] / points
        spread, skill = np.sqrt(ens["sum_var"] / points), np.sqrt(ens["sum_sqerr"] / points)
        out["spread"], out["skill_rmse"] = spread, skill
        with np.errstate(divide="ignore", invalid="ignore"):
            out["spread_skill_ratio"] = math.sqrt((k + 1) / k) * spread / skill
        for p in (50, 90):
            out[f"coverage_{p}"] = ens[f"n_cov{p}"] / points
            out[f"expected_coverage_{p}"] = metrics.expected_coverage(k, p / 100)
        ranks = ens["ranks"]
        out["rank_histogram"] = ranks
        out["rank_flatness"] = (np.array([metrics.rank_histogram_flatness(r) for r in ranks]) if ranks.ndim == 2
                                else metrics.rank_histogram_flatness(ranks))
    if "times" in records[0]:
        out["times"] = records[0]["times"]
        d = np.array([r["decorrelation_time"] for r in records])
        out["decorrelation_time_of_mean_correlation"] = metrics.decorrelation_time(out["correlation"], out["times"])
        finite = d[np.isfinite(d)]
        out["decorrelation_time_median"] = float(np.median(d))
        out["decorrelation_time_mean_uncensored"] = float(finite.mean()) if finite.size else None
        out["decorrelation_censored"] = int(np.sum(~np.isfinite(d)))  # never fell below 0.95 in the horizon
    return out


def _mean(a: np.ndarray):
    return a.mean(axis=0)


def group_report(records: list[dict]) -> dict:
    """Reports by split (each with a breakdown by Reynolds number) and by category."""
    by_split, by_category = defaultdict(list), defaultdict(list)
    for r in records:
        by_split[r["split"]].append(r)
        by_category[r["category"]].append(r)
    report = {"by_split": {}, "by_category": {}}
    for split, recs in by_split.items():
        entry = reduce_records(recs)
        entry["categories"] = sorted({r["category"] for r in recs})
        by_re = defaultdict(list)
        for r in recs:
            by_re[_re_key(r["reynolds"])].append(r)
        entry["by_reynolds"] = {key: reduce_records(v) for key, v in sorted(by_re.items(), key=lambda kv: float(kv[0]))}
        report["by_split"][split] = entry
    for cat, recs in by_category.items():
        report["by_category"][cat] = reduce_records(recs)
    return report


def _re_key(re_: float) -> str:
    return f"{re_:g}"


# ---------------------------------------------------------------------------------------- output
def to_jsonable(obj):
    """numpy -> lists and floats; inf and nan -> null (JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: str | Path, obj) -> Path:
    return write_text_atomic(path, json.dumps(to_jsonable(obj), indent=1) + "\n")


TABLE_METRICS = {
    "superres": ("rfne", "psnr", "ssim", "max_error", "correlation", "spectrum_band_member",
                 "spectrum_top_octave_member", "crps", "spread_skill_ratio", "coverage_90"),
    "forecast": ("rfne", "correlation", "ssim", "spectrum_band_mean", "crps", "spread_skill_ratio",
                 "decorrelation_time_median"),
}


def _headline(value, forecast: bool):
    """A table cell: super-resolution scalars as they are; forecast curves at the last lead time."""
    if value is None:
        return None
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        return float(a)
    return float(a[-1]) if forecast else float(a.mean())


def comparison_table(reports: dict[str, dict], task: str) -> dict:
    """{group: {model: {metric: value}}} over splits, categories and Reynolds numbers. Forecast
    curves enter at the last lead time (the horizon); the full curves stay in metrics.json."""
    forecast = task == "forecast"
    cols = TABLE_METRICS[task]
    table: dict = {"metrics": list(cols), "task": task, "by_split": {}, "by_category": {}, "by_reynolds": {}}
    for model, rep in reports.items():
        for kind in ("by_split", "by_category"):
            for group, entry in rep[kind].items():
                row = {m: _headline(entry.get(m), forecast) for m in cols}
                table[kind].setdefault(group, {})[model] = row
        for split, entry in rep["by_split"].items():
            for re_, sub in entry.get("by_reynolds", {}).items():
                table["by_reynolds"].setdefault(f"{split} Re={re_}", {})[model] = {
                    m: _headline(sub.get(m), forecast) for m in cols}
    return table


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if abs(v) >= 100 or v == 0:
        return f"{v:.4g}"
    return f"{v:.4f}" if abs(v) >= 0.01 else f"{v:.3e}"


def comparison_markdown(table: dict, title: str = "") -> str:
    """The comparison as Markdown: one table per split / category / Reynolds number, models as rows."""
    cols = table["metrics"]
    lines = [f"# {title or 'Model comparison'} ({table['task']})", ""]
    if table["task"] == "forecast":
        lines += ["Forecast metrics at the last lead time of the rollout; curves are in metrics.json.", ""]
    names = {"by_category": "By category", "by_split": "By split", "by_reynolds": "By Reynolds number"}
    for kind in ("by_category", "by_split", "by_reynolds"):
        if not table[kind]:
            continue
        lines += [f"## {names[kind]}", ""]
        for group, rows in table[kind].items():
            lines += [f"### {group}", "", "| model | " + " | ".join(cols) + " |",
                      "|---|" + "---|" * len(cols)]
            for model, row in rows.items():
                lines.append(f"| {model} | " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
            lines.append("")
    return "\n".join(lines)


def concat(chunks: Iterable[list[dict]]) -> list[dict]:
    return [r for chunk in chunks for r in chunk]


# ------------------------------------------------------------------------- resumable shards
def _encode(obj):
    """JSON with exact round trips: arrays tagged with their dtype, non-finite floats as strings."""
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__array__": _encode(obj.tolist()), "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _decode(obj):
    if isinstance(obj, dict):
        if "__array__" in obj:
            return np.asarray(_decode(obj["__array__"]), dtype=obj["dtype"]).reshape(obj["shape"])
        if "__float__" in obj:
            return float(obj["__float__"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def save_shard(path: str | Path, key: str, records: list[dict], example: dict) -> None:
    """The finished records of one (model, split), so that an interrupted evaluation resumes there.
    Python's float repr round-trips exactly, so a resumed report equals an uninterrupted one."""
    write_text_atomic(path, json.dumps(_encode({"key": key, "records": records, "example": example})))


def load_shard(path: str | Path, key: str) -> tuple[list[dict], dict] | None:
    """(records, example) of a finished shard made with the same settings, else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = _decode(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None  # a damaged shard is recomputed
    if data.get("key") != key:
        return None
    return data["records"], data["example"]
