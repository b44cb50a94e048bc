"""``flexcouple demo``: the product's main job on the embedded default, a hybrid simulation.

From one initial field (a seed never used in training, spun up by the fine solver), at Re = 1000 (a
Reynolds number the shipped models never saw; they were trained at 500, 700 and 1400), Kolmogorov flow
on 256^2, every run against the same reference, pure CFD on 256^2:

Table 1, the chosen regime (``benchmarks/bench_costmodel.py`` and ``bench_hybrid.py`` say why):

1. hybrid ``superres_x2``: the solver on 128^2 (it resolves this flow), the shipped c24s4 FLEX
   (``flex-c24s4-superres256x2``, trained on 128^2 coarse-solver states) reconstructing 256^2 at every
   output, its checks calibrated on held-out runs (the model folder's ``calibration.json``);
2. pure CFD on 192^2 and 3. on 128^2 (spectrally interpolated): the solver at costs around the hybrid's.

Table 2, the earlier case, where the hybrid loses (kept so the demo says so):

4. hybrid ``superres_x4``: the solver on 64^2, the shipped tiny FLEX reconstructing 256^2 (an
   ensemble, whose spread is saved);
5. hybrid ``leapfrog``: the fine solver, the shipped tiny FLEX jumping ahead one lead time (0.5)
   between solver stretches, every jump checked;
6. the coarse solver alone on 64^2.

Fair resources: the solver (1 FFT thread) and FLEX (1 torch thread) each get one core, in every run.

It prints the two tables (wall time, speedup over pure CFD, correlation with the pure run and the
time until it falls below 0.95, spectrum error, error of the time-mean spectrum over the second half,
surrogate calls accepted and rejected) and a verdict that gives, for each hybrid, its speedup at equal
accuracy against the pure runs (log-linear in cost between the two that bracket it, as
``bench_hybrid.py``); it writes figures and the trajectories and says where. Every run resumes if interrupted. ``--pipeline`` runs the pipeline demo
instead (solver, tiny data set, a briefly trained FLEX, evaluation).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from coupling.config import PRECISIONS, HybridConfig

N = 256  # the fine grid: every run is compared on it, against pure CFD on it


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", action="store_true",
                   help="run the data/training/evaluation pipeline demo instead of the hybrid demo")
    p.add_argument("--checkpoint", help="the x2 super-resolution FLEX of table 1 (default: the shipped "
                   "flex-c24s4-superres256x2)")
    p.add_argument("--calibration", help="calibration.json of its checks (default: the one in the checkpoint's "
                   "folder, if any; otherwise the checks' default thresholds)")
    p.add_argument("--steps", type=int, default=None, help="the x2 model's DDIM sampling steps per call (default: "
                   "the steps its calibration was made with, else 2)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="the x2 model's arithmetic (bfloat16: autocast, fast on CPUs with AMX or AVX512-BF16)")
    p.add_argument("--x4-checkpoint", help="the FLEX of table 2, superres x4 and leapfrog (default: the shipped "
                   "flex-tiny-kolmogorov256)")
    p.add_argument("--allow-unverified", action="store_true", help="also load checkpoints whose config.json records "
                   "no hash of itself (format version 1), so edits to them go undetected")
    p.add_argument("--t-end", type=float, default=None,
                   help="simulated time of each run (hybrid demo default 8; pipeline demo: solver stage, default 5)")
    p.add_argument("--quick", action="store_true",
                   help="a short demo (spin-up 1, t_end 1.5) for tests and CI")
    p.add_argument("--ensemble", type=int, default=2, help="superres x4 ensemble members (default 2)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for the demo's files (default out/demo)")
    # the pipeline demo's own options (flexcouple_cli.pipeline)
    p.add_argument("--n", type=int, default=256, help="--pipeline: grid of the solver stage (default 256)")
    p.add_argument("--train-steps", type=int, default=400, help="--pipeline: training steps of the tiny FLEX")
    p.add_argument("--solver-only", action="store_true", help="--pipeline: run only the solver stage")


# run name -> (table, label); table 0 is the reference, 1 the chosen regime, 2 the earlier losing case
RUNS = {
    "pure": (0, "pure CFD n=256"),
    "superres_x2": (1, "hybrid superres x2"),
    "pure_192": (1, "pure 192 (interp.)"),
    "coarse_128": (1, "pure 128 (interp.)"),
    "superres_x4": (2, "hybrid superres x4"),
    "leapfrog": (2, "hybrid leapfrog"),
    "coarse_64": (2, "pure 64 (interp.)"),
}
TABLES = {1: "table 1, the chosen regime: super-resolution x2 from 128^2 with the shipped c24s4 FLEX, calibrated checks",
          2: "table 2, the earlier case (the hybrid loses): x4 from 64^2 and leapfrog with the shipped tiny FLEX"}


def demo_configs(t_end: float, ensemble: int, checkpoint: str = "", *, calibration: str = "",
                 x4_checkpoint: str = "", spinup: float = 5.0, warmup: int = 2,
                 precision: str = "float32", steps: int = 2) -> dict[str, HybridConfig]:
    """The runs of the demo (same physics, initial field and output times), by :data:`RUNS` name."""
    base = HybridConfig(name="demo", n=N, factor=4, reynolds=1000.0, forcing="kolmogorov", forcing_wavenumber=4,
                        drag=0.1, t_end=t_end, output_interval=0.5, spinup=spinup, init_seed=1234, backend="pyfftw",
                        checkpoint=x4_checkpoint, warmup=warmup, torch_threads=1)
    return {
        "pure": base.replace(mode="pure"),
        "superres_x2": base.replace(mode="superres", factor=2, checkpoint=checkpoint, calibration=calibration,
                                    precision=precision, sample_steps=steps),
        "pure_192": base.replace(mode="pure", n=192, spinup=0.0),
        "coarse_128": base.replace(mode="pure", n=128, spinup=0.0),
        "superres_x4": base.replace(mode="superres", ensemble=ensemble),
        "leapfrog": base.replace(mode="leapfrog", stretch=1, jumps=2),
        "coarse_64": base.replace(mode="pure", n=64, spinup=0.0),
    }


def run_hybrid_demo(args) -> int:
    from coupling.calibration import Calibration
    from coupling.hybrid import HybridSimulation
    from coupling.report import accuracy, format_table, write_trajectory
    from coupling.surrogates import SUPERRES_X2_MODEL, FlexSurrogate, default_checkpoint, model_calibration, shipped_model
    from solver.resample import spectral_resample
    from solver.io import write_text_atomic

    t_end = args.t_end if args.t_end is not None else (1.5 if args.quick else 8.0)
    out = Path(args.out)
    x2 = str(args.checkpoint or shipped_model(SUPERRES_X2_MODEL))
    x4 = str(args.x4_checkpoint or default_checkpoint())
    calibration = args.calibration if args.calibration is not None else str(model_calibration(x2) or "")
    # a missing calibration file is the configs' validation's to report, below
    steps = args.steps if args.steps is not None else (Calibration.load(calibration).regime["sample_steps"]
                           if calibration and Path(calibration).is_file() else 2)
    # --quick: a short spin-up, and one warm-up tick so that leapfrog jumps once by t = 1.5
    cfgs = demo_configs(t_end, args.ensemble, x2, calibration=calibration, x4_checkpoint=x4,
                        spinup=1.0 if args.quick else 5.0, warmup=1 if args.quick else 2,
                        precision=args.precision, steps=steps)
    for cfg in cfgs.values():
        cfg.validate()
    init_path = out / f"initial_field_spinup{cfgs['pure'].spinup:g}.npy"
    check_outputs(out, [init_path, out / "demo.json"] + [out / f for f in FIGURES], list(cfgs))
    unverified = args.allow_unverified
    surrogates = {"superres_x2": FlexSurrogate.from_checkpoint(x2, steps=steps, seed=0, precision=args.precision,
                                                               allow_unverified=unverified)}
    surrogates["superres_x4"] = surrogates["leapfrog"] = FlexSurrogate.from_checkpoint(
        x4, steps=2, seed=0, allow_unverified=unverified)
    out.mkdir(parents=True, exist_ok=True)
    print(f"hybrid demo: Kolmogorov flow, Re = 1000 (unseen in training), n = {N}, t = 0..{t_end:g}; "
          f"files in {out}/", flush=True)
    print(f"  x2 model {x2}; checks calibrated by {calibration or 'nothing (default thresholds)'}\n"
          f"  x4 / leapfrog model {x4}", flush=True)

    def spin_up():
        t0 = time.perf_counter()
        print(f"spin-up: the fine solver from a random field (seed 1234) for t = {cfgs['pure'].spinup:g} ...",
              flush=True)
        omega = HybridSimulation(cfgs["pure"]).initial_field()
        print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
        return omega

    omega0 = cached_initial_field(init_path, N, spin_up)  # shared by every run
    titles = {"pure": "pure CFD, n = 256 (the reference)",
              "superres_x2": f"hybrid superres x2 (128^2 solver + FLEX {Path(x2).name}, calibrated checks)",
              "pure_192": "pure CFD, n = 192", "coarse_128": "pure CFD, n = 128",
              "superres_x4": f"hybrid superres x4 (64^2 solver + tiny FLEX, ensemble {args.ensemble})",
              "leapfrog": "hybrid leapfrog (256^2 solver + tiny FLEX jumps of 0.5)", "coarse_64": "pure CFD, n = 64"}
    results = {}
    for i, name in enumerate(RUNS):
        print(f"\n== {i + 1}/{len(RUNS)} {titles[name]} ==", flush=True)
        cfg = cfgs[name]
        w0 = omega0 if cfg.n == N else np.asarray(spectral_resample(omega0, (cfg.n, cfg.n)))
        sim = HybridSimulation(cfg, surrogates.get(name), out=out / name, progress=args.progress)
        res = sim.run(w0)
        write_trajectory(out / name / "trajectory.h5", res)
        write_text_atomic(out / name / "summary.json", json.dumps(res.summary, indent=2, default=str) + "\n")
        results[name] = res

    pure = results["pure"]
    fine_fields = {name: (results[name].fields if cfgs[name].n == N else
                          np.stack([np.asarray(spectral_resample(f, (N, N))) for f in results[name].fields]))
                   for name in RUNS if name != "pure"}
    report = {"t_end": t_end, "reynolds": 1000.0, "n": N, "models": {"x2": x2, "x4": x4}, "x2_steps": steps,
              "calibration": calibration or None, "tables": {str(k): v for k, v in TABLES.items()},
              "runs": {"pure": {"table": 0, "label": RUNS["pure"][1], "summary": pure.summary, "n": N}}}
    for name in fine_fields:
        s = results[name].summary
        r = {"table": RUNS[name][0], "label": RUNS[name][1], "n": cfgs[name].n, "summary": s,
             "accuracy": accuracy(fine_fields[name], pure.fields, pure.times),
             "speedup": pure.summary["wall_s"] / s["wall_s"]}
        if cfgs[name].mode != "pure":
            r["mode"], r["factor"] = cfgs[name].mode, cfgs[name].factor
        report["runs"][name] = r
    write_text_atomic(out / "demo.json", json.dumps(report, indent=2, default=str) + "\n")
    for table, title in TABLES.items():
        rows = [{"label": RUNS["pure"][1], "wall_s": pure.summary["wall_s"], "speedup": 1.0}]
        for name, r in report["runs"].items():
            if r["table"] == table:
                row = {"label": r["label"], "wall_s": r["summary"]["wall_s"], "speedup": r["speedup"],
                       "accuracy": r["accuracy"]}
                if "mode" in r:
                    row.update(accepted=r["summary"]["accepted"], rejected=sum(r["summary"]["rejected"].values()))
                rows.append(row)
        print(f"\n{title}\n" + format_table(rows))
    figures = write_figures(out, pure, results, fine_fields)
    print("\n" + verdict(report))
    print(f"\nfiles: {out}/  demo.json (the tables' numbers), {', '.join(p.name for p in figures)}, "
          f"<run>/trajectory.h5 (our Well layout, each snapshot's source), <run>/decisions.jsonl")
    return 0


FIGURES = ("fields.png", "correlation.png", "spectra.png")


def check_outputs(out: Path, files: list[Path], folders: list[str]) -> None:
    """Refuse, before any work, an ``out`` the demo cannot fill: not a writable folder, or something
    in the way of its files (a folder where a file goes) or of its run folders (a file)."""
    from solver.paths import check_writable
    check_writable(out, "--out", directory=True)
    for p in files:
        if p.is_dir():
            raise ValueError(f"{p} is a directory where the demo writes a file; move it, or choose another --out")
    for name in folders:
        if (out / name).exists() and not (out / name).is_dir():
            raise ValueError(f"{out / name} is a file where the demo writes its {name} run; move it, or choose "
                             f"another --out")


def cached_initial_field(path: Path, n: int, make) -> np.ndarray:
    """The field cached in ``path``, or ``make()`` written there atomically when the cache is missing
    or cannot serve (truncated by a kill, unreadable, another grid): the cache is ours to redo."""
    from solver import from_file
    from solver.io import atomic_path
    if path.is_file():
        try:
            return from_file(path, n)
        except ValueError as exc:
            print(f"{exc}; computing it again", flush=True)
    omega = make()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, omega)
    return omega


CRITERIA = {"a": ("correlation time", "t95", True), "b": ("statistics (time-mean spectrum)", "stat", False)}


def equal_accuracy(report: dict, name: str) -> dict:
    """For a hybrid run of ``report``, per criterion: the cost of a pure run as accurate, log-linear in
    cost between the two pure runs (of either table, the reference included) that bracket it
    (:func:`coupling.report.equal_accuracy_cost`), and the hybrid's speedup at equal accuracy.
    Criteria: (a) the time until the correlation with the reference falls below 0.95 (t_end where it
    never does), (b) the error of the time-mean spectrum over the run's second half."""
    from coupling.report import equal_accuracy_cost
    runs, t_end = report["runs"], float(report["t_end"])

    def values(r):
        if "accuracy" not in r:  # the reference itself
            return {"t95": t_end, "stat": 0.0}
        acc = r["accuracy"]
        return {"t95": min(acc["time_until_correlation_below"]["0.95"], t_end),
                "stat": acc["spectrum_statistics_error"]}

    pure = {k: dict(values(r), cost=r["summary"]["wall_s"]) for k, r in runs.items() if "mode" not in r}
    me = values(runs[name])
    found = {}
    for criterion, (what, key, higher) in CRITERIA.items():
        cost, bound = equal_accuracy_cost(pure, me[key], key, higher)
        found[criterion] = {"what": what, "cost_s": cost, "bound": bound,
                            "speedup": cost / runs[name]["summary"]["wall_s"]}
    return found


def verdict(report: dict) -> str:
    """Plain words on where each hybrid wins and where it loses on this case."""
    lines = []
    runs = report["runs"]
    for name, r in runs.items():
        if "mode" not in r:
            continue
        acc, s = r["accuracy"], r["summary"]
        t95 = acc["time_until_correlation_below"]["0.95"]
        t95s = "the whole run" if t95 == float("inf") else f"t = {t95:.2f}"
        calls = s["calls"]
        rate = s["accepted"] / calls if calls else 0.0
        word = "faster" if r["speedup"] > 1 else "SLOWER"
        lines.append(f"{name}: {r['speedup']:.2f}x {word} than pure CFD n=256 at the same outputs; correlation >= 0.95 "
                     f"for {t95s}; statistics error {acc['spectrum_statistics_error']:.3f}; {s['accepted']}/{calls} "
                     f"surrogate calls accepted ({rate:.0%}).")
        for c in equal_accuracy(report, name).values():
            if c["bound"] == "<":
                lines.append(f"  on {c['what']}: the cheapest pure run is already as accurate ({c['cost_s']:.1f} s): "
                             f"the hybrid LOSES ({c['speedup']:.2f}x).")
                continue
            how = "at least " if c["bound"] == ">=" else ""
            word = "faster" if c["speedup"] > 1 else "SLOWER: it LOSES"
            lines.append(f"  on {c['what']}: a pure run as accurate costs {how}{c['cost_s']:.1f} s (interpolated between "
                         f"the pure runs): the hybrid is {how}{c['speedup']:.2f}x {word} at equal accuracy.")
        if r.get("mode") == "superres":
            lines.append("  its correlation cannot outlast the coarse run it super-resolves.")
        if rate < 0.5 and calls:
            lines.append(f"  most {name} calls were rejected by the drift checks: the surrogate is not trusted on this "
                         "case, and the solver did the work (see decisions.jsonl for which checks failed).")
    return "\n".join(lines)


def write_figures(out: Path, pure, results, fine_fields) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flexcouple.evaluation.metrics import energy_spectrum, pearson
    paths = []
    times = pure.times
    picks = sorted({1, len(times) // 2, len(times) - 1})
    rows = [("pure", RUNS["pure"][1], pure.fields)] + [(k, RUNS[k][1], f) for k, f in fine_fields.items()]
    std = results["superres_x4"].std
    if std is not None:
        rows.append(("std", "superres x4 ensemble std", std))
    fig, axes = plt.subplots(len(rows), len(picks), figsize=(3.0 * len(picks), 2.9 * len(rows)), squeeze=False,
                             constrained_layout=True)
    vmax = float(np.max(np.abs(pure.fields[picks])))
    for r, (key, label, fields) in enumerate(rows):
        for c, i in enumerate(picks):
            ax = axes[r][c]
            is_std = key == "std"
            im = ax.imshow(fields[i].T, origin="lower", cmap="magma" if is_std else "RdBu_r",
                           vmin=0 if is_std else -vmax, vmax=float(np.max(fields[picks])) if is_std else vmax)
            hybrid = key in results and results[key].config is not None and results[key].config.mode != "pure"
            src = f" [{results[key].sources[i]}]" if hybrid else ""
            ax.set_title(f"{label}, t={times[i]:g}{src}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=axes[r][-1], shrink=0.8)
    paths.append(out / FIGURES[0])
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True, sharey=True)
    for ax, table in zip(axes, TABLES):
        for k, f in fine_fields.items():
            if RUNS[k][0] == table:
                ax.plot(times, np.asarray(pearson(f, pure.fields)), marker="o", ms=3, label=RUNS[k][1])
        ax.axhline(0.95, color="k", lw=0.8, ls="--")
        ax.set_xlabel("t")
        ax.set_title(f"table {table}", fontsize=9)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("vorticity correlation with pure CFD n=256")
    paths.append(out / FIGURES[1])
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True, sharey=True)
    half = slice(len(times) // 2, None)
    k, e = energy_spectrum(pure.fields[half])
    for ax, table in zip(axes, TABLES):
        ax.loglog(k[1:], e.mean(axis=0)[1:], "k", lw=2, label=RUNS["pure"][1])
        for key, f in fine_fields.items():
            if RUNS[key][0] == table:
                kk, ee = energy_spectrum(f[half])
                ax.loglog(kk[1:], np.maximum(ee.mean(axis=0)[1:], 1e-20), label=RUNS[key][1])
        ax.set_ylim(1e-12, None)
        ax.set_xlabel("k")
        ax.set_title(f"table {table}", fontsize=9)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"E(k), mean over t >= {times[len(times) // 2]:g}")
    paths.append(out / FIGURES[2])
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
