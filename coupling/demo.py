"""``flexcouple demo``: the product's main job on the embedded default, a hybrid simulation.

From one initial field (a seed never used in training, spun up by the fine solver), at Re = 1000 (a
Reynolds number the shipped model never saw; it was trained at 500, 700 and 1400), Kolmogorov flow
on 256^2:

1. pure CFD: the fine solver (n = 256), the reference;
2. hybrid ``superres``: the solver on 64^2, the shipped FLEX reconstructing 256^2 at every output
   (an ensemble, whose spread is saved);
3. hybrid ``leapfrog``: the fine solver, the shipped FLEX jumping ahead one lead time (0.5) between
   solver stretches, every jump checked;
4. the coarse solver alone (64^2, spectrally interpolated): what super-resolution has to beat.

Fair resources: the solver (1 FFT thread) and FLEX (1 torch thread) each get one core, in every run.

It prints one table (wall time, speedup over pure CFD, correlation with the pure run and the time
until it falls below 0.95, spectrum error, surrogate calls accepted and rejected), writes figures
and the trajectories, and says where. Every run resumes if interrupted. ``--pipeline`` runs the
former demo instead (solver, tiny data set, a briefly trained FLEX, evaluation).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from coupling.config import HybridConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", action="store_true",
                   help="run the data/training/evaluation pipeline demo instead of the hybrid demo")
    p.add_argument("--checkpoint", help="FLEX checkpoint (default: the shipped model)")
    p.add_argument("--t-end", type=float, default=None,
                   help="simulated time of each run (hybrid demo default 8; pipeline demo: solver stage, default 5)")
    p.add_argument("--quick", action="store_true",
                   help="a short demo (spin-up 1, t_end 1.5) for tests and CI")
    p.add_argument("--ensemble", type=int, default=2, help="superres ensemble members (default 2)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for the demo's files (default out/demo)")
    # the pipeline demo's own options (flexcouple.demo)
    p.add_argument("--n", type=int, default=256, help="--pipeline: grid of the solver stage (default 256)")
    p.add_argument("--train-steps", type=int, default=400, help="--pipeline: training steps of the tiny FLEX")
    p.add_argument("--solver-only", action="store_true", help="--pipeline: run only the solver stage")


def demo_configs(t_end: float, ensemble: int, checkpoint: str = "", *, spinup: float = 5.0,
                 warmup: int = 2) -> dict[str, HybridConfig]:
    """The runs of the demo (same physics, initial field and output times)."""
    base = HybridConfig(name="demo", n=256, factor=4, reynolds=1000.0, forcing="kolmogorov", forcing_wavenumber=4,
                        drag=0.1, t_end=t_end, output_interval=0.5, spinup=spinup, init_seed=1234, backend="pyfftw",
                        checkpoint=checkpoint, warmup=warmup, torch_threads=1)
    return {
        "pure": base.replace(mode="pure"),
        "superres": base.replace(mode="superres", ensemble=ensemble),
        "leapfrog": base.replace(mode="leapfrog", stretch=1, jumps=2),
        "coarse": base.replace(mode="pure", n=64, spinup=0.0),
    }


def run(args) -> int:
    if args.pipeline:
        from flexcouple import demo as pipeline
        if args.t_end is None:
            args.t_end = 5.0
        return pipeline.run(args)
    return run_hybrid_demo(args)


def run_hybrid_demo(args) -> int:
    from coupling.hybrid import HybridSimulation
    from coupling.report import accuracy, format_table, write_trajectory
    from coupling.surrogates import FlexSurrogate
    from flexcouple.data.coarsen import coarsen, upsample
    from solver.io import write_text_atomic

    t_end = args.t_end if args.t_end is not None else (1.5 if args.quick else 8.0)
    ensemble = args.ensemble
    out = Path(args.out)
    # --quick: a short spin-up, and one warm-up tick so that leapfrog jumps once by t = 1.5
    cfgs = demo_configs(t_end, ensemble, args.checkpoint or "", spinup=1.0 if args.quick else 5.0,
                        warmup=1 if args.quick else 2)
    init_path = out / f"initial_field_spinup{cfgs['pure'].spinup:g}.npy"
    check_outputs(out, [init_path, out / "demo.json"] + [out / f for f in FIGURES], list(cfgs))
    surrogate = FlexSurrogate.from_checkpoint(args.checkpoint or None, steps=2, seed=0)
    out.mkdir(parents=True, exist_ok=True)
    print(f"hybrid demo: Kolmogorov flow, Re = 1000 (unseen in training), n = 256, t = 0..{t_end:g}; "
          f"files in {out}/", flush=True)

    def spin_up():
        t0 = time.perf_counter()
        print(f"spin-up: the fine solver from a random field (seed 1234) for t = {cfgs['pure'].spinup:g} ...",
              flush=True)
        omega = HybridSimulation(cfgs["pure"]).initial_field()
        print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
        return omega

    omega0 = cached_initial_field(init_path, cfgs["pure"].n, spin_up)  # shared by the four runs
    results, rows = {}, []
    for name, title in (("pure", "1/4 pure CFD, n = 256"), ("superres", f"2/4 hybrid superres x4 (64^2 solver + FLEX, ensemble {ensemble})"),
                        ("leapfrog", "3/4 hybrid leapfrog (256^2 solver + FLEX jumps of 0.5)"),
                        ("coarse", "4/4 coarse solver alone, n = 64")):
        print(f"\n== {title} ==", flush=True)
        cfg = cfgs[name]
        sur = surrogate if cfg.mode != "pure" else None
        w0 = omega0 if cfg.n == 256 else coarsen(omega0, 4, "spectral")
        sim = HybridSimulation(cfg, sur, out=out / name, progress=args.progress)
        res = sim.run(w0)
        write_trajectory(out / name / "trajectory.h5", res)
        write_text_atomic(out / name / "summary.json", json.dumps(res.summary, indent=2, default=str) + "\n")
        results[name] = res

    pure = results["pure"]
    fine_fields = {"superres": results["superres"].fields, "leapfrog": results["leapfrog"].fields,
                   "coarse": np.stack([np.asarray(upsample(f, 4, "spectral")) for f in results["coarse"].fields])}
    labels = {"superres": "hybrid superres", "leapfrog": "hybrid leapfrog", "coarse": "coarse 64 (interp.)"}
    report = {"t_end": t_end, "reynolds": 1000.0, "runs": {}}
    rows.append({"label": "pure CFD n=256", "wall_s": pure.summary["wall_s"], "speedup": 1.0})
    for name in ("superres", "leapfrog", "coarse"):
        acc = accuracy(fine_fields[name], pure.fields, pure.times)
        s = results[name].summary
        row = {"label": labels[name], "wall_s": s["wall_s"], "speedup": pure.summary["wall_s"] / s["wall_s"],
               "accuracy": acc}
        if name != "coarse":
            row.update(accepted=s["accepted"], rejected=sum(s["rejected"].values()))
        rows.append(row)
        report["runs"][name] = {"summary": s, "accuracy": acc, "speedup": row["speedup"]}
    report["runs"]["pure"] = {"summary": pure.summary}
    write_text_atomic(out / "demo.json", json.dumps(report, indent=2, default=str) + "\n")
    print("\n" + format_table(rows))
    figures = write_figures(out, pure, results, fine_fields, labels)
    print("\n" + verdict(report))
    print(f"\nfiles: {out}/  demo.json (the table's numbers), {', '.join(p.name for p in figures)}, "
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


def verdict(report: dict) -> str:
    """Plain words on where the hybrid wins and where it loses on this case."""
    lines = []
    runs = report["runs"]
    coarse_spec = runs["coarse"]["accuracy"]["mean_spectrum_error"]
    for name in ("superres", "leapfrog"):
        r = runs[name]
        acc, s = r["accuracy"], r["summary"]
        t95 = acc["time_until_correlation_below"]["0.95"]
        t95s = "the whole run" if t95 == float("inf") else f"t = {t95:.2f}"
        speed = r["speedup"]
        calls = s["calls"]
        rate = s["accepted"] / calls if calls else 0.0
        word = "faster" if speed > 1 else "SLOWER"
        lines.append(f"{name}: {speed:.2f}x {word} than pure CFD; correlation >= 0.95 for {t95s}; "
                     f"{s['accepted']}/{calls} surrogate calls accepted ({rate:.0%}).")
        if name == "superres":
            better = acc["mean_spectrum_error"] < coarse_spec
            lines.append(f"  spectrum error {acc['mean_spectrum_error']:.3f} against {coarse_spec:.3f} for the coarse "
                         f"solver alone: FLEX {'restores' if better else 'does NOT restore'} the small scales here; "
                         "its correlation cannot outlast the coarse run it super-resolves.")
        if rate < 0.5 and calls:
            lines.append(f"  most {name} calls were rejected by the drift checks: the surrogate is not trusted on this "
                         "case, and the solver did the work (see decisions.jsonl for which checks failed).")
    return "\n".join(lines)


def write_figures(out: Path, pure, results, fine_fields, labels) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flexcouple.evaluation.metrics import energy_spectrum
    paths = []
    times = pure.times
    picks = sorted({1, len(times) // 2, len(times) - 1})
    names = ["superres", "leapfrog", "coarse"]
    rows = [("pure CFD n=256", pure.fields)] + [(labels[n], fine_fields[n]) for n in names]
    std = results["superres"].std
    if std is not None:
        rows.append(("superres ensemble std", std))
    fig, axes = plt.subplots(len(rows), len(picks), figsize=(3.0 * len(picks), 2.9 * len(rows)), squeeze=False,
                             constrained_layout=True)
    vmax = float(np.max(np.abs(pure.fields[picks])))
    for r, (label, fields) in enumerate(rows):
        for c, i in enumerate(picks):
            ax = axes[r][c]
            is_std = label.endswith("std")
            im = ax.imshow(fields[i].T, origin="lower", cmap="magma" if is_std else "RdBu_r",
                           vmin=0 if is_std else -vmax, vmax=float(np.max(fields[picks])) if is_std else vmax)
            src = ""
            if label in (labels["superres"], labels["leapfrog"]):
                key = "superres" if label == labels["superres"] else "leapfrog"
                src = f" [{results[key].sources[i]}]"
            ax.set_title(f"{label}, t={times[i]:g}{src}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=axes[r][-1], shrink=0.8)
    paths.append(out / FIGURES[0])
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    from flexcouple.evaluation.metrics import pearson
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for n in names:
        ax.plot(times, np.asarray(pearson(fine_fields[n], pure.fields)), marker="o", ms=3, label=labels[n])
    ax.axhline(0.95, color="k", lw=0.8, ls="--")
    ax.set_xlabel("t")
    ax.set_ylabel("vorticity correlation with pure CFD")
    ax.legend()
    paths.append(out / FIGURES[1])
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    half = slice(len(times) // 2, None)
    k, e = energy_spectrum(pure.fields[half])
    ax.loglog(k[1:], e.mean(axis=0)[1:], "k", lw=2, label="pure CFD n=256")
    for n in names:
        k, e = energy_spectrum(fine_fields[n][half])
        ax.loglog(k[1:], np.maximum(e.mean(axis=0)[1:], 1e-20), label=labels[n])
    ax.set_ylim(1e-12, None)
    ax.set_xlabel("k")
    ax.set_ylabel(f"E(k), mean over t >= {times[len(times) // 2]:g}")
    ax.legend()
    paths.append(out / FIGURES[2])
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
