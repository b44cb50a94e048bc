"""Benchmark: the cost model of a hybrid run, the speedup map it implies, and its check against runs.

Claim measured: a hybrid run's wall time is the sum of what its parts cost when measured apart (the
solver per unit of simulated time, one surrogate call, the checks of one call), so the best case of
each hybrid mode can be read off a map before any model is trained, and the regime of the demo and of
the headline benchmark chosen where the map says a surrogate can pay.

Measured here, each part on one core (1 FFT thread, 1 torch thread), Kolmogorov flow (k_f = 4, drag
0.1), pyfftw float64 as the hybrid runs it:

1. Solver: seconds per step and steps per unit time (the adaptive CFL 0.5 step on a field spun up at
   that Reynolds number, spectrally interpolated to n), so ``C_s(n, Re)`` = seconds per unit time,
   for n in ``--solver-n`` and Re in ``--reynolds``.
2. Surrogate: one FLEX call (super-resolution and forecast, through :class:`FlexSurrogate`, the path a
   run takes) for each candidate architecture of ``CANDIDATES`` (untrained weights: the cost does not
   depend on them), n in ``--surrogate-n`` and 1 or 2 sampling steps: ``C_call(n, arch, steps)``.
3. Checks: the drift checks of one call (``CheckSuite.evaluate``) for a super-resolved field and a
   forecast; the forecast's ``coarse_forecast`` check runs the solver on n / 4 over the lead time, so
   its cost is modelled as a fixed part plus ``L C_s(n / 4)``.

The model (per unit of simulated time; a = acceptance rate):

- pure solver: ``C_s(n)``;
- superres x f, output interval dt: ``C_s(n / f) + (C_call(n) + c_sr(n)) / dt``. A rejected call costs
  accuracy (that output is the interpolated coarse field), not time, so the speedup at equal accuracy
  ``C_s(n) / cost`` is a best case that holds when the accepted outputs carry the fine grid's accuracy;
- leapfrog, lead L, cycles of S solver, J jump and R relax ticks:
  ``[(S + R) L C_s(n) + J (C_call(n) + c_fc(n, L)) + J (1 - a) L C_s(n)] / ((S + J + R) L)``: a rejected
  jump is recomputed by the solver. It can pay only if ``C_call + c_fc < a L C_s(n)``, and never more
  than ``(S + J + R) / (S + R)``.

Check against measured runs: ``HybridSimulation`` runs (the shipped model and untrained candidates,
checks on) whose wall time is compared with the model's prediction from the parts measured above and
the run's own counts (ticks, calls, accepted calls); the target is agreement within 25%.

Writes ``benchmarks/results/costmodel.json`` and ``costmodel.png`` (the speedup maps). The regime
chosen from them for the demo and the headline benchmark, and why, is written in ``bench_hybrid.py``'s
docstring and in docs/benchmarks.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_costmodel.py            # about 5 minutes
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_costmodel.py --quick    # seconds: the CI smoke test
"""
from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from flexcouple.models.presets import PRESETS  # noqa: E402
from provenance import finish, median_time, provenance, write_result  # noqa: E402

# candidate FLEX sizes (flexcouple.models.presets), from the shipped ``tiny`` down to the 16-channel
# ``c16`` and its space-to-depth variants (``stem`` 2 and 4: the network on the field folded 2x2 or
# 4x4); everything but the channels and the stem is tiny's (1 ResBlock a level, depth 5, 4 heads)
CANDIDATE_SIZES = ("tiny", "c24", "c16", "c16s2", "c24s4", "c16s4")
CANDIDATES = {name: PRESETS["flex"][name]["channels"] for name in CANDIDATE_SIZES}
STEMS = {name: PRESETS["flex"][name].get("stem", 1) for name in CANDIDATE_SIZES}
FLOW = dict(forcing="kolmogorov", forcing_wavenumber=4, drag=0.1, backend="pyfftw", dtype="float64", threads=1)
DEFAULT_RE = 1000.0


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: small grids, one candidate, one check run")
    p.add_argument("--solver-n", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024])
    p.add_argument("--reynolds", type=float, nargs="+", default=[500.0, 1000.0, 2000.0, 4000.0])
    p.add_argument("--surrogate-n", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (median; one above 256^2)")
    p.add_argument("--no-runs", action="store_true", help="skip the check against measured hybrid runs")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--name", default="costmodel")
    args = p.parse_args(argv)
    if args.quick:
        args.solver_n, args.reynolds, args.surrogate_n = [32, 64], [1000.0], [64]
        args.candidates, args.repeats = ["c16"], 1
    if DEFAULT_RE not in args.reynolds:
        p.error(f"--reynolds must include {DEFAULT_RE:g} (the map is drawn there)")
    if min(args.solver_n) < 16 or any(n % 16 for n in args.surrogate_n):
        p.error("solver grids must be >= 16 and surrogate grids multiples of 16")
    return args


# -- the parts ---------------------------------------------------------------------------------
def spun_up_field(reynolds: float, n: int = 128, spinup: float = 5.0, seed: int = 11) -> np.ndarray:
    """A statistically steady Kolmogorov field at ``reynolds`` (the CFL step depends on its velocities)."""
    from solver import NavierStokes2D, random_field
    sim = NavierStokes2D(n, reynolds, **FLOW)
    return np.asarray(sim.advance(random_field(n, seed=seed), spinup))


def measure_solver(ns, reynolds_list, repeats: int) -> list[dict]:
    """Seconds per step, steps per unit time and seconds per unit time of the adaptive-step solver."""
    from flexcouple.data.coarsen import spectral_resample
    from solver import NavierStokes2D
    fields = {re: spun_up_field(re) for re in reynolds_list}
    rows = []
    for n in ns:
        for re in reynolds_list:
            sim = NavierStokes2D(n, re, **FLOW)
            w = np.asarray(spectral_resample(fields[re], (n, n)))
            w = np.asarray(sim.advance(w, 0.02))  # plans, coefficients, and the step settles at this n
            span = 20.48 / n  # about 30-40 steps at every n
            secs, steps = [], []
            for _ in range(repeats if n <= 256 else 1):
                t0 = time.perf_counter()
                w = np.asarray(sim.advance(w, span))
                secs.append(time.perf_counter() - t0)
                steps.append(sim.last_stats["steps"])
            wall, nsteps = statistics.median(secs), statistics.median(steps)
            rows.append({"n": n, "reynolds": re, "span": span, "steps": nsteps, "s_per_step": wall / nsteps,
                         "steps_per_unit": nsteps / span, "s_per_unit": wall / span})
            print(f"solver n={n:5d} Re={re:6g}: {1e3 * wall / nsteps:8.2f} ms/step, {nsteps / span:8.0f} steps/unit, "
                  f"{wall / span:9.3f} s/unit", flush=True)
    return rows


def candidate_config(size: str, factor: int, lead_time: float) -> dict:
    """The shipped model's config at another size (weights fresh): what a trained candidate would load
    as, for timing."""
    from coupling.surrogates import default_checkpoint
    from flexcouple.checkpoint import read_config
    cfg = copy.deepcopy(read_config(default_checkpoint()))
    cfg["size"], cfg["arch"] = size, copy.deepcopy(PRESETS["flex"][size])
    cfg["data"]["superres_options"]["factor"] = factor
    cfg["data"]["forecast_options"]["lead_time"] = lead_time
    return cfg


def candidate_surrogate(name: str, factor: int = 4, lead_time: float = 0.5, steps: int = 2, seed: int = 0):
    import torch

    from coupling.surrogates import FlexSurrogate
    from flexcouple.models import model_from_config
    cfg = candidate_config(name, factor, lead_time)
    torch.manual_seed(seed)
    model = model_from_config(cfg).eval()
    return FlexSurrogate(model, cfg, steps=steps, source=f"untrained {name}")


def measure_surrogate(ns, names, repeats: int) -> list[dict]:
    """One call's wall time, super-resolution x4 and forecast, 1 and 2 sampling steps."""
    rng = np.random.default_rng(0)
    rows = []
    for name in names:
        sur = candidate_surrogate(name)
        params = sum(p.numel() for p in sur.model.parameters())
        for n in ns:
            if n < 2 * sur.grid_divisor:  # a bottleneck under 2 x 2: too small a field for this network
                print(f"surrogate {name:5s}: n={n} skipped (its bottleneck would be {n // sur.grid_divisor}^2)",
                      flush=True)
                continue
            coarse = rng.standard_normal((n // 4, n // 4))
            history = rng.standard_normal((2, n, n))
            sur.steps = 1
            sur.superres(coarse, DEFAULT_RE)  # warm-up: oneDNN primitives for this shape
            sur.forecast(history, DEFAULT_RE)
            reps = repeats if n <= 512 else 1  # 512^2: calls vary by up to 30% on this shared machine
            for steps in (1, 2):
                sur.steps = steps
                sr = median_time(lambda: sur.superres(coarse, DEFAULT_RE), reps, warmup=False)
                fc = median_time(lambda: sur.forecast(history, DEFAULT_RE), reps, warmup=False) if n <= 512 else None
                rows.append({"arch": name, "channels": CANDIDATES[name], "stem": STEMS[name], "params": params,
                             "n": n, "steps": steps,
                             "superres_s": sr, "forecast_s": fc})
                print(f"surrogate {name:5s} ({params / 1e6:.2f}M) n={n:5d} steps={steps}: superres {sr:7.3f} s"
                      + (f", forecast {fc:7.3f} s" if fc is not None else ""), flush=True)
    return rows


def measure_checks(ns, solver_rows, repeats: int) -> list[dict]:
    """Drift checks of one call: ``c_sr(n)`` and the fixed part of ``c_fc(n, L)`` (coarse forecast removed)."""
    from coupling.checks import CheckContext, CheckSuite, FieldDiagnostics
    from flexcouple.data.coarsen import coarsen, spectral_resample
    from solver import NavierStokes2D
    base = spun_up_field(DEFAULT_RE)
    kwargs = dict(reynolds=DEFAULT_RE, forcing="kolmogorov", forcing_wavenumber=4, drag=0.1, backend="pyfftw",
                  dtype="float64")
    rows = []
    later = np.asarray(NavierStokes2D(base.shape[0], DEFAULT_RE, **FLOW).advance(base, 0.5))
    for n in ns:
        # two states 0.5 apart, resampled from the 128^2 run: the checks' cost does not depend on the
        # fields' fine scales, and a run at 1024^2 over 0.5 would cost minutes
        w0, w1 = (np.asarray(spectral_resample(w, (n, n))) for w in (base, later))
        suite = CheckSuite()
        diag_sr = FieldDiagnostics(n, kwargs, coarse_n=n // 4)
        diag_fc = FieldDiagnostics(n, kwargs)
        spectrum = diag_fc.spectrum(w0)
        recent = float(np.abs(w0).max())
        sr_ctx = CheckContext(candidate=w1, previous=None, dt=0.5, diagnostics=diag_sr, coarse=coarsen(w1, 4),
                              recent_max=recent, reference_spectrum=spectrum)
        fc_ctx = CheckContext(candidate=w1, previous=w0, dt=0.5, diagnostics=diag_fc, recent_max=recent,
                              reference_spectrum=spectrum, forecast=True)
        suite.evaluate(sr_ctx), suite.evaluate(fc_ctx)  # warm-up (plans of the check's solvers)
        sr = median_time(lambda: suite.evaluate(sr_ctx), repeats, warmup=False)
        fc = median_time(lambda: suite.evaluate(fc_ctx), repeats, warmup=False)
        coarse_unit = solver_cost(solver_rows, max(32, n // 4))
        rows.append({"n": n, "superres_s": sr, "forecast_at_lead_0.5_s": fc,
                     "forecast_fixed_s": max(0.0, fc - 0.5 * coarse_unit)})
        print(f"checks n={n:5d}: superres {sr:.4f} s, forecast (lead 0.5) {fc:.4f} s", flush=True)
    return rows


# -- the model ---------------------------------------------------------------------------------
def solver_cost(rows, n: int, reynolds: float = DEFAULT_RE) -> float:
    """``C_s(n, Re)``, seconds per unit time: measured, or extrapolated as n^2 log n x n (the CFL step)."""
    at = {r["n"]: r["s_per_unit"] for r in rows if r["reynolds"] == reynolds}
    if n in at:
        return at[n]
    ref = max(at) if n > max(at) else min(at)
    return at[ref] * (n / ref) ** 3 * math.log(n) / math.log(ref)


def call_cost(rows, arch: str, n: int, steps: int, task: str = "superres") -> float | None:
    key = "superres_s" if task == "superres" else "forecast_s"
    for r in rows:
        if r["arch"] == arch and r["n"] == n and r["steps"] == steps:
            return r[key] if r[key] is not None else r["superres_s"]
    return None


def check_cost(rows, solver_rows, n: int, task: str, lead: float = 0.5) -> float:
    """Checks of one call at n (the nearest measured grid, scaled as n^2)."""
    near = min(rows, key=lambda r: abs(math.log(r["n"] / n)))
    scale = (n / near["n"]) ** 2
    if task == "superres":
        return near["superres_s"] * scale
    return near["forecast_fixed_s"] * scale + lead * solver_cost(solver_rows, max(32, n // 4))


def superres_cost(c_coarse: float, c_call: float, c_checks: float, interval: float) -> float:
    return c_coarse + (c_call + c_checks) / interval


def leapfrog_cost(c_fine: float, c_call: float, c_checks: float, lead: float, acceptance: float,
                  stretch: int = 1, jumps: int = 1, relax: int = 0) -> float:
    ticks = stretch + jumps + relax
    cycle = (stretch + relax) * lead * c_fine + jumps * (c_call + c_checks) + jumps * (1 - acceptance) * lead * c_fine
    return cycle / (ticks * lead)


def speedup_maps(parts: dict) -> dict:
    """The best-case speedup of each mode over the pure solver at the fine grid (Re 1000)."""
    solver, sur, checks = parts["solver"], parts["surrogate"], parts["checks"]
    names = sorted({r["arch"] for r in sur}, key=list(CANDIDATES).index)
    grids = sorted({r["n"] for r in sur})
    superres, leapfrog = [], []
    for n in grids:
        c_fine = solver_cost(solver, n)
        for arch in names:
            for steps in (1, 2):
                c_call = call_cost(sur, arch, n, steps)
                if c_call is None:
                    continue
                for factor in (2, 4, 8):
                    if n // factor < 16:
                        continue
                    for interval in (0.25, 0.5, 1.0, 2.0):
                        cost = superres_cost(solver_cost(solver, n // factor), c_call,
                                             check_cost(checks, solver, n, "superres"), interval)
                        superres.append({"n": n, "factor": factor, "arch": arch, "steps": steps,
                                         "interval": interval, "cost": cost, "speedup": c_fine / cost})
                c_fc = call_cost(sur, arch, n, steps, "forecast")
                for lead in (0.05, 0.1, 0.25, 0.5, 1.0):
                    for acceptance in (1.0, 0.9, 0.75, 0.5):
                        for jumps in (1, 3):
                            cost = leapfrog_cost(c_fine, c_fc, check_cost(checks, solver, n, "forecast", lead), lead,
                                                 acceptance, stretch=1, jumps=jumps)
                            leapfrog.append({"n": n, "arch": arch, "steps": steps, "lead": lead,
                                             "acceptance": acceptance, "stretch": 1, "jumps": jumps, "relax": 0,
                                             "cost": cost, "speedup": c_fine / cost})
    return {"superres": superres, "leapfrog": leapfrog}


# -- the check against measured runs -----------------------------------------------------------
def predict_run(summary: dict, cfg, parts: dict, arch: str, steps: int) -> dict:
    """The model's wall time for a finished run, from the parts and the run's own counts."""
    solver, sur, checks = parts["solver"], parts["surrogate"], parts["checks"]
    calls, accepted = summary["calls"], summary["accepted"]
    if cfg.mode == "superres":
        c_solver = cfg.t_end * solver_cost(solver, cfg.n // cfg.factor)
        c_sur = calls * call_cost(sur, arch, cfg.n, steps)
        c_chk = calls * check_cost(checks, solver, cfg.n, "superres")
    else:
        lead = summary["tick_length"]
        solver_ticks = summary["ticks"] - accepted
        c_solver = solver_ticks * lead * solver_cost(solver, cfg.n)
        c_sur = calls * call_cost(sur, arch, cfg.n, steps, "forecast")
        c_chk = calls * check_cost(checks, solver, cfg.n, "forecast", lead)
    return {"solver_s": c_solver, "surrogate_s": c_sur, "checks_s": c_chk, "wall_s": c_solver + c_sur + c_chk}


def validation_runs(parts: dict, quick: bool) -> list[dict]:
    """Hybrid runs, checks on, their measured wall time against the model's prediction."""
    from coupling import HybridConfig, HybridSimulation
    from coupling.surrogates import FlexSurrogate
    from flexcouple.data.coarsen import spectral_resample
    base = spun_up_field(DEFAULT_RE)
    plans = [  # (label, mode, n, factor, surrogate arch or None for the shipped model, steps, t_end)
        ("superres n=256 x4, shipped tiny, 2 steps (the demo's case)", "superres", 256, 4, None, 2, 4.0),
        ("leapfrog n=256 lead 0.5, shipped tiny, 2 steps (the demo's case)", "leapfrog", 256, 4, None, 2, 4.0),
        ("superres n=256 x2, c16, 1 step", "superres", 256, 2, "c16", 1, 8.0),
        ("superres n=512 x4, c16, 1 step", "superres", 512, 4, "c16", 1, 8.0),
    ]
    if quick:
        plans = [("superres n=64 x2, c16, 1 step", "superres", 64, 2, "c16", 1, 2.0)]
    rows = []
    for label, mode, n, factor, arch, steps, t_end in plans:
        if arch is None:
            sur = FlexSurrogate.from_checkpoint(None, steps=steps)
            arch_key = "tiny"
        else:
            sur = candidate_surrogate(arch, factor=factor, steps=steps)
            arch_key = arch
        if call_cost(parts["surrogate"], arch_key, n, steps) is None:
            print(f"skipped '{label}': no surrogate timing at n = {n} for {arch_key}")
            continue
        cfg = HybridConfig(name="costmodel", mode=mode, n=n, factor=factor, reynolds=DEFAULT_RE, t_end=t_end,
                           output_interval=0.5, spinup=0.0, backend="pyfftw", torch_threads=1, warmup=2)
        omega0 = np.asarray(spectral_resample(base, (n, n)))
        res = HybridSimulation(cfg, sur).run(omega0)
        pred = predict_run(res.summary, cfg, parts, arch_key, steps)
        measured = res.summary["wall_s"]
        parts_measured = res.summary["time_s"]
        row = {"label": label, "mode": mode, "n": n, "factor": factor if mode == "superres" else None,
               "arch": arch_key, "steps": steps, "t_end": t_end, "calls": res.summary["calls"],
               "accepted": res.summary["accepted"], "measured_wall_s": measured,
               "measured_parts_s": parts_measured, "predicted": pred,
               "predicted_over_measured": pred["wall_s"] / measured}
        rows.append(row)
        print(f"run '{label}': measured {measured:.2f} s, predicted {pred['wall_s']:.2f} s "
              f"(ratio {pred['wall_s'] / measured:.2f}; calls {row['calls']}, accepted {row['accepted']})", flush=True)
    return rows


# -- the figure --------------------------------------------------------------------------------
def plot(maps: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    sr = maps["superres"]
    names = list(dict.fromkeys(r["arch"] for r in sr))
    ax = axes[0]
    for factor, style in ((2, "-"), (4, "--")):
        for arch in names:
            for steps, marker in ((1, "o"), (2, "s")):
                pts = sorted((r["n"], r["speedup"]) for r in sr if r["factor"] == factor and r["arch"] == arch
                             and r["steps"] == steps and r["interval"] == 0.5)
                if pts:
                    ax.plot(*zip(*pts), style, marker=marker, label=f"x{factor} {arch} {steps}-step")
    ax.axhline(1, color="k", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="fine grid n", ylabel="best-case speedup over the pure solver at n",
           title="super-resolution, output every 0.5")
    ax.set_xticks(sorted({r["n"] for r in sr}), [str(n) for n in sorted({r["n"] for r in sr})])
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1]
    best = names[-1]
    for factor, style in ((2, "-"), (4, "--")):
        for interval, color in ((0.25, "C0"), (0.5, "C1"), (1.0, "C2"), (2.0, "C3")):
            pts = sorted((r["n"], r["speedup"]) for r in sr if r["factor"] == factor and r["arch"] == best
                         and r["steps"] == 1 and r["interval"] == interval)
            if pts:
                ax.plot(*zip(*pts), style, color=color, marker="o", label=f"x{factor}, every {interval:g}")
    ax.axhline(1, color="k", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="fine grid n", title=f"super-resolution, {best} 1-step: output interval")
    ax.legend(fontsize=7)
    ax = axes[2]
    lf = maps["leapfrog"]
    for n, color in zip(sorted({r["n"] for r in lf if r["n"] >= 128}), ("C0", "C1", "C2", "C3", "C4")):
        for arch, style in ((names[0], "--"), (best, "-")):
            pts = sorted((r["lead"], r["speedup"]) for r in lf if r["n"] == n and r["arch"] == arch and r["steps"] == 1
                         and r["acceptance"] == 1.0 and r["jumps"] == 1)
            if pts:
                ax.plot(*zip(*pts), style, color=color, marker="o", label=f"n={n} {arch}")
    ax.axhline(1, color="k", lw=0.8)
    ax.axhline(2, color="k", lw=0.5, ls=":")
    ax.set(xscale="log", xlabel="lead time L", title="leapfrog, 1-step, all accepted, 1 solver + 1 jump (max 2x)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse(argv)
    import torch
    torch.set_num_threads(1)
    info = provenance()
    solver = measure_solver(sorted(set(args.solver_n) | {32}), args.reynolds, args.repeats)
    surrogate = measure_surrogate(args.surrogate_n, args.candidates, args.repeats)
    checks = measure_checks([n for n in args.surrogate_n if n >= 64], solver, args.repeats)
    parts = {"solver": solver, "surrogate": surrogate, "checks": checks}
    maps = speedup_maps(parts)
    runs = [] if args.no_runs else validation_runs(parts, args.quick)
    result = {"benchmark": "costmodel", **finish(info), "flow": {k: v for k, v in FLOW.items()},
              "candidates": {k: CANDIDATES[k] for k in args.candidates}, "parts": parts, "maps": maps,
              "runs": runs,
              "runs_within_25_percent": all(abs(r["predicted_over_measured"] - 1) <= 0.25 for r in runs) if runs else None}
    path = write_result(args.out, args.name, result)
    plot(maps, args.out / f"{args.name}.png")
    print(f"wrote {path} and {args.out / (args.name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
