"""Benchmark: the time-mean spectrum of super-resolved coarse-solver states against the truth's, per
trajectory of a data set's split: the offline form of the hybrid benchmark's statistics metric (b).

A hybrid ``superres`` run outputs the model's field of the coarse solver's state at every output; the
statistics it is judged on are the time-mean energy spectrum of those outputs. This measures exactly
that on stored data, with no solver run: for each trajectory of ``--split`` (the coarse-solver states
the data set pairs with each fine snapshot, ``--coarse-source solver``), every snapshot is
super-resolved once (``--steps`` DDIM steps, member seeds as in a run), and the time-mean spectrum over
the trajectory is compared with the fine truth's over 1 <= k <= n/3 (``coupling.report.
statistics_spectrum_error``, relative L2 of log E), next to spectral interpolation (the coarse state's
own spectrum, nothing above its cut-off). Also the mean model/truth energy ratio in wavenumber bands
of the top two octaves, where a model's error shows.

Use it to choose between checkpoints on the ``valid`` split (never on the benchmark's fields):

    .venv/bin/python benchmarks/bench_sr_statistics.py --data data/superres256x2 --split valid \\
        --checkpoint flexcouple/shipped/flex-c16-superres256x2 runs/c16-c --name sr_statistics_valid

Writes ``benchmarks/results/<name>.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from coupling.config import PRECISIONS
from coupling.report import statistics_spectrum_error
from coupling.surrogates import FlexSurrogate
from flexcouple.data.coarsen import spectral_resample
from solver.diagnostics import energy_spectrum, resolved_band
from provenance import finish, provenance, write_result

RESULTS = Path(__file__).resolve().parent / "results"
#: wavenumber bands of the top two octaves, as fractions of k_max = n / 3 (at n = 256: 21-42, 43-53, ...)
BANDS = ((0.25, 0.5), (0.5, 0.625), (0.625, 0.75), (0.75, 0.875), (0.875, 1.0))


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a data set with coarse-solver states (coarse_solver_factors)")
    p.add_argument("--split", default="valid")
    p.add_argument("--checkpoint", nargs="+", required=True, help="super-resolution checkpoints to compare")
    p.add_argument("--steps", type=int, default=2, help="DDIM sampling steps (as in the run)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="FLEX's arithmetic (as [surrogate] precision in a run)")
    p.add_argument("--max-trajectories", type=int, default=None)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--name", default="sr_statistics")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the result JSON")
    return p.parse_args(argv)


def trajectories(dataset):
    """(reynolds, coarse states (T, m, m), their spectral interpolation (T, n, n), truths (T, n, n)) per
    trajectory, in the data set's order (the conditions are the coarse states zero-padded)."""
    per = dataset.n_t * dataset.samples_per_snapshot
    if len(dataset) % per:
        raise ValueError(f"{len(dataset)} samples do not split into trajectories of {per}")
    m = dataset.n // dataset.factor
    for start in range(0, len(dataset), per):
        items = [dataset[i] for i in range(start, start + per)]
        cond = np.stack([dataset.denormalize(it["condition"][0]).double().numpy() for it in items])
        truth = np.stack([dataset.denormalize(it["target"][0]).double().numpy() for it in items])
        coarse = np.stack([np.asarray(spectral_resample(c, (m, m))) for c in cond])  # exact: zero-padded
        yield float(items[0]["reynolds"]), coarse, cond, truth


def mean_rfne(fields, truth) -> float:
    """Mean over the snapshots of ||field - truth|| / ||truth|| (the pointwise error beside the statistics)."""
    return float(np.mean(np.linalg.norm(fields - truth, axis=(-2, -1)) / np.linalg.norm(truth, axis=(-2, -1))))


def band_ratios(fields, truth) -> dict:
    """Geometric-mean ratio of the time-mean spectra, fields over truth, in each band of ``BANDS``."""
    k, e = energy_spectrum(fields)
    _, t = energy_spectrum(truth)
    e, t = e.mean(axis=0), t.mean(axis=0)
    k_max = resolved_band(truth.shape[-1])[1]
    out = {}
    for a, b in BANDS:
        lo, hi = int(a * k_max) + (a > 0.25), int(b * k_max)
        sel = (k >= lo) & (k <= hi) & (t > 0)
        out[f"{lo}-{hi}"] = float(np.exp(np.mean(np.log(np.maximum(e[sel], 1e-300) / t[sel]))))
    return out


def main(argv=None) -> int:
    args = parse(argv)
    info = provenance()
    import torch
    torch.set_num_threads(args.torch_threads)
    from flexcouple.data.datasets import SuperResDataset
    models = {ck: FlexSurrogate.from_checkpoint(ck, steps=args.steps, precision=args.precision)
              for ck in args.checkpoint}
    factors = {sur.factor for sur in models.values()}
    for ck, sur in models.items():
        if sur.factor is None or sur.upsample != "spectral" or len(factors) > 1:
            raise SystemExit(f"{ck} super-resolves x{sur.factor} from {sur.upsample} conditions; this benchmark "
                             "feeds spectrally upsampled coarse-solver states, one factor for all checkpoints "
                             "(train with --upsample spectral, or compare checkpoints of one factor)")
    dataset = SuperResDataset(args.data, args.split, coarse_source="solver", crop=None, factor=factors.pop(),
                              upsample="spectral")
    rows = []
    for j, (re, coarse, spectral, truth) in enumerate(trajectories(dataset)):
        if args.max_trajectories is not None and j >= args.max_trajectories:
            break
        row = {"trajectory": j, "reynolds": re, "snapshots": len(truth),
               "spectral": {"statistics_error": statistics_spectrum_error(spectral, truth),
                            "bands": band_ratios(spectral, truth), "rfne": mean_rfne(spectral, truth)}}
        for ck, sur in models.items():
            t0 = time.perf_counter()
            sr = np.stack([sur.superres(c, re, call=i).mean for i, c in enumerate(coarse)])
            row[ck] = {"statistics_error": statistics_spectrum_error(sr, truth), "bands": band_ratios(sr, truth),
                       "rfne": mean_rfne(sr, truth), "s_per_call": (time.perf_counter() - t0) / len(coarse)}
        rows.append(row)
        print(f"trajectory {j} (Re {re:g}): " + ", ".join(
            f"{Path(name).name} {row[name]['statistics_error']:.4f}" for name in ("spectral", *models)), flush=True)
    methods = ["spectral", *models]
    summary = {m: {"statistics_error_mean": float(np.mean([r[m]["statistics_error"] for r in rows])),
                   "rfne_mean": float(np.mean([r[m]["rfne"] for r in rows])),
                   "bands_mean": {b: float(np.exp(np.mean([np.log(r[m]["bands"][b]) for r in rows])))
                                  for b in rows[0][m]["bands"]}} for m in methods}
    print(f"\n{'method':44s} stat err    RFNE  " + "  ".join(f"{b:>7s}" for b in rows[0]["spectral"]["bands"]))
    for m in methods:
        s = summary[m]
        print(f"{m:44s} {s['statistics_error_mean']:.4f}  {s['rfne_mean']:.4f}  "
              + "  ".join(f"{v:7.3f}" for v in s["bands_mean"].values()))
    path = write_result(args.out, args.name, {
        "benchmark": "sr_statistics", **finish(info), "data": str(args.data), "split": args.split,
        "steps": args.steps, "precision": args.precision,
        # which weights each path held (a shipped model's folder can get new weights later)
        "model_digests": {ck: sur.digest for ck, sur in models.items()},
        "summary": summary, "trajectories": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
