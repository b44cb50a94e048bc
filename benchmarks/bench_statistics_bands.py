"""Where a hybrid's statistics error comes from, band by band, on chosen fields of ``bench_hybrid.py``.

``bench_hybrid.py`` scores each method by one number on (b), the relative L2 distance of the log
time-mean energy spectrum to the truth's over 1 <= k <= n/3, after the method's own decorrelation
time. This script splits that number by wavenumber band on a few of its fields, for the hybrid
(``--checkpoint`` with its ``--calibration``), the 128^2 solver it runs on, and pure CFD on
``--grids``: per band, the mean of log(E_method / E_truth) over the band's shells (0: the truth's
energy; +0.1: about 10% too much). The hybrid's large scales are the coarse solver's (a
super-resolution call does not feed back into it), so where the hybrid and the coarse solver share
an excess at low k, no super-resolution model can remove it; an excess only in the top bands is the
model's.

It reuses ``bench_hybrid.py``'s protocol (Re 1000, n = 256, outputs every 0.5, the same seeds and
spun-up fields) and needs its truths: run ``bench_hybrid.py --truth-only`` with the same ``--t-end``
first (the truths are found under ``benchmarks/results/.work/truths-<key>``).

    .venv/bin/python benchmarks/bench_statistics_bands.py --seeds 5000 5002 5003 5006 \\
        --checkpoint flexcouple/shipped/flex-c24s4-superres256x2 \\
        --calibration flexcouple/shipped/flex-c24s4-superres256x2/calibration.json --name statistics_bands_c24s4

Writes ``benchmarks/results/<name>.json``. Costs are not timed here (run ``bench_hybrid.py`` for
those), so a busy machine does not spoil it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import bench_hybrid as bh
from provenance import finish, provenance, write_result

BANDS = ((1, 10), (11, 20), (21, 42), (43, 63), (64, 85))


def band_log_ratios(fields: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean of log(E_fields / E_truth) over each band's shells, of the time-mean spectra."""
    from solver.diagnostics import energy_spectrum
    k, e_pred = energy_spectrum(fields)
    _, e_true = energy_spectrum(truth)
    shells = k >= 1  # the mean (k = 0) carries no energy
    k, ratio = k[shells], np.log(e_pred.mean(axis=0)[shells]) - np.log(e_true.mean(axis=0)[shells])
    out = {}
    for lo, hi in BANDS:
        sel = (k >= lo) & (k <= hi)
        if sel.any():
            out[f"{lo}-{hi}"] = float(np.mean(ratio[sel]))
    return out


def measure(fields: np.ndarray, truth: np.ndarray, times: np.ndarray) -> dict:
    """bench_hybrid's metrics of one method on one field, with the band split of its statistics window."""
    m = bh.metrics(fields, truth, times)
    after = bh.statistics_window(m["t95"], m["t95_censored"], times)
    return {"statistics_error": m["spectrum_error"], "t95": m["t95"], "t95_censored": m["t95_censored"],
            "window_snapshots": int(after.sum()), "bands": band_log_ratios(fields[after], truth[after])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", required=True, help="fields of bench_hybrid.py (5000 + i)")
    p.add_argument("--checkpoint", required=True, help="the x2 FLEX of the hybrid")
    p.add_argument("--calibration", default="", help="its calibration.json (the hybrid's checks)")
    p.add_argument("--t-end", type=float, default=16.0, help="as bench_hybrid.py's run (default 16)")
    p.add_argument("--grids", type=int, nargs="+", default=[128, 224, 256], help="pure-solver grids (default 128 224 256)")
    p.add_argument("--out", type=Path, default=bh.REPO / "benchmarks" / "results")
    p.add_argument("--name", default="statistics_bands")
    args = p.parse_args(argv)
    if any(s < 5000 for s in args.seeds):
        p.error(f"bench_hybrid.py's fields are seeds 5000 + i; got {args.seeds}")
    hybrid_args = bh.parse(["--fields", str(max(args.seeds) - 4999), "--t-end", str(args.t_end), "--factor", "2",
                            "--modes", "superres", "--grids", *map(str, args.grids), "--checkpoint", args.checkpoint,
                            "--calibration", args.calibration])
    base = bh.base_config(hybrid_args)
    truths = hybrid_args.out / ".work" / f"truths-{bh.truth_key(hybrid_args, base)}"
    missing = [s for s in args.seeds if not (truths / f"truth_{s}.npz").exists()]
    if missing:
        print(f"error: no truth for seed(s) {missing} in {truths}: run `python benchmarks/bench_hybrid.py --fields "
              f"{max(args.seeds) - 4999} --t-end {args.t_end:g} --factor 2 --truth-only` first", file=sys.stderr)
        return 2
    info = provenance()
    surrogate = bh.FlexSurrogate.from_checkpoint(args.checkpoint, steps=2)
    times = np.asarray(base.output_times())
    fields = {}
    for seed in args.seeds:
        omega0, truth, _ = bh.field_and_truth(base, hybrid_args, seed, truths)
        res, _ = bh.run(bh.hybrid_config(base, hybrid_args, "superres"), omega0, surrogate)
        row = {"hybrid": dict(measure(res.fields, truth, times), calls=res.summary["calls"],
                              accepted=res.summary["accepted"])}
        for g in args.grids:
            r, _ = bh.run_pure(base, omega0, g)
            row[f"pure_{g}"] = measure(bh.on_grid(r.fields, base.n), truth, times)
        for name, m in row.items():
            print(f"seed {seed} {name:9s} stat {m['statistics_error']:.4f} window {m['window_snapshots']:2d} "
                  + " ".join(f"k {b}: {v:+.3f}" for b, v in m["bands"].items()), flush=True)
        fields[str(seed)] = row
    result = {"benchmark": "statistics_bands", **finish(info),
              "protocol": {"reynolds": base.reynolds, "n": base.n, "t_end": args.t_end, "checkpoint": args.checkpoint,
                           "calibration": args.calibration, "model_digest": surrogate.digest},
              "what": "mean log(E_method / E_truth) per band of the time-mean spectrum over each method's statistics "
                      "window (after its own decorrelation time), as bench_hybrid.py's criterion (b)",
              "fields": fields}
    path = write_result(args.out, args.name, result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
