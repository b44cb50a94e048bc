"""What a hybrid run leaves behind: the trajectory (our Well layout, with each snapshot's source),
and its accuracy and speed against a pure-solver reference from the same initial field.

Accuracy, per output time t (fields on the fine grid):

- vorticity correlation with the reference (Pearson), and the time until it first falls below 0.95
  (linear interpolation between outputs; +inf when it never does), as Kochkov et al. 2021;
- energy-spectrum error: relative L2 distance of log E(k) over the resolved band
  (``flexcouple.evaluation.metrics.spectrum_error``), per time and averaged over the run;
- the error of the statistics: the same distance between the time-mean spectra over the second half
  of the run (:func:`statistics_spectrum_error`, up to the fine grid's n/3, so missing small scales
  count), which stays meaningful after a chaotic run has decorrelated from its reference;
- relative L2 error of the vorticity.

Equal accuracy (:func:`equal_accuracy_cost`): the cost of a pure run as accurate as a hybrid,
log-linear in cost between the two pure runs that bracket it (Kochkov et al. 2021).

Speedup = the reference run's wall time over the hybrid's (each from t = 0 to t_end, spin-up and
final file writing excluded, checks, communication and checkpoints included).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from coupling.hybrid import SOURCES, HybridResult


def write_trajectory(path: str | Path, result: HybridResult) -> None:
    """The run's outputs as one trajectory in our Well layout (``t0_fields/vorticity`` (1, n_t, n, n)),
    with ``provenance/source`` (the index into ``SOURCES`` per snapshot), and the ensemble spread in
    ``ensemble/std`` where an ensemble ran. Atomic: written under a temporary name, then renamed."""
    import h5py

    from flexcouple.data import well
    cfg = result.config
    n = result.fields.shape[-1]
    x = 2 * np.pi * np.arange(n) / n
    codes = np.asarray([SOURCES.index(s) for s in result.sources], dtype=np.int8)
    params = {"Re": float(cfg.reynolds), "drag": float(cfg.drag), "forcing_wavenumber": float(cfg.forcing_wavenumber),
              "viscosity": 1.0 / float(cfg.reynolds)}
    path = Path(path)
    with well.atomic_path(path) as tmp:
        well.write_parameter_set(
            tmp, dataset_name=f"hybrid-{cfg.name}", trajectories=[{"vorticity": result.fields, "source": codes}],
            times=result.times, x=x, y=x, boundary=cfg.boundary, parameters=params, dtype="float64",
            attrs={"config_hash": cfg.config_hash(), "boundary": cfg.boundary, "mode": cfg.mode,
                   "hybrid_config": json.dumps(cfg.to_dict())},
            provenance_attrs={"sources": json.dumps(list(SOURCES)), "summary": json.dumps(result.summary)},
            provenance_keys=("source",))
        if result.std is not None:
            with h5py.File(tmp, "a") as f:
                f.create_dataset("ensemble/std", data=result.std[None])


def read_trajectory(path: str | Path) -> dict:
    """{"times", "vorticity" (n_t, n, n), "sources" [str], "std" or None, "config"} of a run's file."""
    import h5py
    with h5py.File(path, "r") as f:
        sources = json.loads(f["provenance"].attrs["sources"])
        return {"times": np.asarray(f["dimensions/time"], dtype=np.float64),
                "vorticity": np.asarray(f["t0_fields/vorticity"][0]),
                "sources": [sources[i] for i in np.asarray(f["provenance/source"][0])],
                "std": np.asarray(f["ensemble/std"][0]) if "ensemble" in f else None,
                "config": json.loads(f.attrs["hybrid_config"])}


def statistics_spectrum_error(fields: np.ndarray, reference: np.ndarray, k_max: int | None = None) -> float:
    """Relative L2 distance of log E(k), 1 <= k <= ``k_max`` (default: the band the solver resolves on
    that grid, n // 3), between the time-mean energy spectra of ``fields`` and ``reference`` (each
    (T, n, n): the statistics window)."""
    from flexcouple.evaluation.metrics import log_spectrum_distance
    from solver.diagnostics import energy_spectrum, resolved_band
    k, e_pred = energy_spectrum(np.asarray(fields))
    _, e_true = energy_spectrum(np.asarray(reference))
    k_max = k_max or resolved_band(np.asarray(fields).shape[-1])[1]
    return float(log_spectrum_distance(k, e_pred.mean(axis=0), e_true.mean(axis=0), k_max)["band"])


def equal_accuracy_cost(pure: dict, value: float, key: str, higher_is_better: bool) -> tuple[float, str]:
    """(cost, bound) of a pure solver as accurate as ``value`` on ``key``, from ``pure`` ({run: {key: ...,
    "cost": ...}}), log-linear in cost between the two runs that bracket it. bound "=": interpolated;
    ">=": ``value`` beats every run (the dearest run's cost, a lower bound); "<": the cheapest run is
    already as good (its cost, an upper bound)."""
    runs = sorted(pure, key=lambda g: pure[g]["cost"])
    acc = [pure[g][key] for g in runs]
    cost = [pure[g]["cost"] for g in runs]

    def as_good(a, v):  # a is at least as accurate as v
        return a >= v if higher_is_better else a <= v

    if as_good(acc[0], value):
        return cost[0], "<"
    for i in range(len(runs) - 1):
        if not as_good(acc[i], value) and as_good(acc[i + 1], value):
            w = (value - acc[i]) / (acc[i + 1] - acc[i])
            return float(math.exp(math.log(cost[i]) + w * (math.log(cost[i + 1]) - math.log(cost[i])))), "="
    return cost[-1], ">="


def accuracy(fields: np.ndarray, reference: np.ndarray, times: np.ndarray, threshold: float = 0.95) -> dict:
    """Correlation, spectrum error and relative error of ``fields`` against ``reference`` per time."""
    from flexcouple.evaluation.metrics import decorrelation_time, pearson, rfne, spectrum_error
    fields, reference = np.asarray(fields, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if fields.shape != reference.shape:
        raise ValueError(f"fields {fields.shape} and reference {reference.shape} differ in shape")
    corr = np.asarray(pearson(fields, reference), dtype=np.float64)
    spec = np.asarray(spectrum_error(fields, reference, average=False)["band"], dtype=np.float64)
    err = np.asarray(rfne(fields, reference), dtype=np.float64)
    t_95 = decorrelation_time(corr, times, threshold)
    half = len(times) // 2
    return {"times": [float(t) for t in times], "correlation": corr.tolist(), "spectrum_error": spec.tolist(),
            "spectrum_statistics_error": statistics_spectrum_error(fields[half:], reference[half:]),
            "statistics_from": float(times[half]),
            "rfne": err.tolist(), "time_until_correlation_below": {str(threshold): t_95},
            "mean_spectrum_error": float(np.mean(spec[1:])) if len(spec) > 1 else float(spec[0]),
            "final_correlation": float(corr[-1])}


def comparison(result: HybridResult, reference: HybridResult) -> dict:
    """Accuracy and speedup of a hybrid run against its pure-solver reference."""
    acc = accuracy(result.fields, reference.fields, result.times)
    speed = reference.summary["wall_s"] / max(result.summary["wall_s"], 1e-12)
    return {"accuracy": acc, "speedup": speed, "wall_s": result.summary["wall_s"],
            "reference_wall_s": reference.summary["wall_s"]}


def format_table(rows: list[dict]) -> str:
    """One line per run: wall time, speedup, time until corr < 0.95, final correlation, spectrum error
    (instantaneous, averaged), statistics error (time-mean spectrum, second half), calls."""
    head = (f"{'run':<22} {'wall s':>8} {'speedup':>8} {'t(corr<0.95)':>13} {'final corr':>10} "
            f"{'spec err':>9} {'stat err':>9} {'accepted':>9} {'rejected':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        acc = r.get("accuracy") or {}
        t95 = (acc.get("time_until_correlation_below") or {}).get("0.95")
        t95s = "-" if t95 is None else ("never" if t95 == float("inf") else f"{t95:.2f}")
        lines.append(f"{r['label']:<22} {r['wall_s']:>8.1f} {r.get('speedup', 1.0):>7.2f}x {t95s:>13} "
                     f"{acc.get('final_correlation', 1.0):>10.3f} {acc.get('mean_spectrum_error', 0.0):>9.3f} "
                     f"{acc.get('spectrum_statistics_error', 0.0):>9.3f} "
                     f"{r.get('accepted', '-'):>9} {r.get('rejected', '-'):>9}")
    return "\n".join(lines)
