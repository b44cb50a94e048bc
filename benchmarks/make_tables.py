"""The benchmark tables of docs/benchmarks.md, rendered from benchmarks/results/*.json (never copied by hand).

    .venv/bin/python benchmarks/make_tables.py            # rewrite docs/benchmarks.md's tables in place
    .venv/bin/python benchmarks/make_tables.py --check    # exit 1 naming the stale tables

Each result NAME (``benchmarks/results/NAME.json``) has a block in docs/benchmarks.md between
``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``: its table(s), then the command that
produced them, the date and the machine (cores, GPU, load average at start -> end), as the JSON
records them. Every marked block is rendered, by the renderer of the benchmark that wrote the JSON
(its ``benchmark`` field), so showing a new result takes only its two markers. A missing JSON renders
as "not run yet"; a JSON whose layout no renderer knows falls back to a generic table of its scalar
values. Only the text between markers is touched.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
# keys of a result JSON that describe the run rather than its numbers (provenance.py's and older names)
META_KEYS = {"benchmark", "command", "date", "machine", "versions", "commit", "wall_s", "claim", "note", "gpu",
             "method", "protocol", "settings", "config", "slab_config", "cores", "job_wall_s", "errors"}


# ------------------------------------------------------------------------------------------------ formatting
def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return f"{v:.2e}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list]) -> list[str]:
    """A markdown table (cells through ``fmt``)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return out


def first(d: dict, *keys, default=None):
    """The value of the first of ``keys`` that ``d`` has (result files name the same thing differently)."""
    for k in keys:
        if isinstance(d, dict) and d.get(k) is not None:
            return d[k]
    return default


def _load1(v):
    return v[0] if isinstance(v, (list, tuple)) and v else v


def footer(data: dict) -> list[str]:
    """The command, date and machine of a result, as recorded."""
    m = data.get("machine") or {}
    cores = first(m, "cores", "cpus", default=first(data, "cores", "cpus"))
    gpu = first(m, "gpu")
    if gpu is None and isinstance(data.get("gpu"), dict):
        gpu = data["gpu"].get("available")
    gpu = "none" if gpu in (None, False) else ("yes" if gpu is True else gpu)
    start = _load1(first(m, "loadavg_start", "load_average_start", "load_avg_before",
                         default=data.get("load_avg_before")))
    end = _load1(first(m, "loadavg_end", "load_average_end", "load_avg_after", default=data.get("load_avg_after")))
    if start is None and end is None:
        runs = [r for r in data.get("runs", []) if isinstance(r, dict)]
        start = first(runs[0], "load_avg_1min_before") if runs else None
        end = first(runs[-1], "load_avg_1min_after") if runs else None
    command = data.get("command")
    load = f"load {fmt(start)} -> {fmt(end)}" if start is not None or end is not None else "load not recorded"
    return ["", f"Command: `{command}`" if command else "Command: not recorded",
            f"({data.get('date') or 'date not recorded'}; {fmt(cores)} cores, GPU: {fmt(gpu)}, {load})"]


# ------------------------------------------------------------------------------------------------ renderers
def render_solver(d: dict) -> list[str]:
    rows = d["backends"]
    sizes = sorted({r["n"] for r in rows})
    configs = sorted({(r["backend"], r["dtype"], r["threads"]) for r in rows})
    by = {(r["backend"], r["dtype"], r["threads"], r["n"]): r for r in rows}
    ffts = {round(r["fft_floor_ms"] / r["ms_per_fft"]) for r in rows if r.get("ms_per_fft")}
    out = [f"ms/step (step time / FFT floor of {fmt(sorted(ffts))} FFTs a step, as this run counted them; on "
           "pyfftw, where the forward transforms of the dealiased terms skip the columns the 2/3 rule drops, "
           "also / the FFTs the step performs):", ""]

    def cell(r):
        ratios = fmt(r["ratio_to_floor"])
        if r["backend"] == "pyfftw" and "ratio_to_performed_ffts" in r:
            ratios += f" / {fmt(r['ratio_to_performed_ffts'])}"
        return f"{fmt(r['ms_per_step'])} ({ratios})"

    out += table(["backend", "dtype", "threads", *[f"n = {n}" for n in sizes]],
                 [[b, t, th, *[cell(by[b, t, th, n]) if (b, t, th, n) in by else "-" for n in sizes]]
                  for b, t, th in configs])
    kern = [r for r in d.get("kernels", []) if "numba_ms_per_step" in r]
    if kern:
        out += ["", "Fused element-wise kernels (numba, the default) against the numpy path, pyfftw, 1 thread, "
                    "alternating blocks:", ""]
        out += table(["n", "dtype", "numpy ms/step", "numba ms/step", "numba / numpy", "max rel. difference (steps)"],
                     [[r["n"], r["dtype"], r["numpy_ms_per_step"], r["numba_ms_per_step"], r["numba_over_numpy"],
                       f"{r.get('max_relative_difference', r.get('max_relative_difference_t05')):.1e} "
                       f"({r.get('difference_after_steps', 't = 0.5')})"] for r in kern])
    peer = [r for r in d.get("peer", []) if "peer_ms_per_step" in r]
    if peer:
        out += ["", "jax-cfd peer (same problem and dt, compile excluded):", ""]
        out += table(["n", "ours ms/step", "jax-cfd ms/step", "jax-cfd / ours", "correlation at t_end"],
                     [[r["n"], r["ours_ms_per_step"], r["peer_ms_per_step"], r["speedup_ours_over_peer"],
                       f"{r['correlation_at_t_end']:.6f}"] for r in peer])
    mpi = [r for r in d.get("mpi", []) if "ms_per_step" in r]
    if mpi:
        out += ["", "MPI ranks (transform: ours `slab`, the default, exchanging through shared memory on one "
                    "node; `slab-alltoallv`, ours through one Alltoallv; mpi4py-fft's). Median over the rounds "
                    "of the cycle, each round's value listed:", ""]
        out += table(["n", "ranks", "transform", "ms/step", "rounds"],
                     [[r["n"], r["ranks"], r.get("transform", "-"), r["ms_per_step"],
                       " / ".join(f"{x:.2f}" for x in r.get("rounds_ms", []))] for r in mpi])
    summary = d.get("summary", {}).get("targets_met")
    if summary:
        out += ["", "targets met: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in summary.items())]
    return out


def render_flex_speed(d: dict) -> list[str]:
    floor = d.get("sampling_floor")
    head = ["sampling floor: " + ", ".join(f"{k} {fmt(v)}" for k, v in floor.items()
                                           if not isinstance(v, (dict, list))), ""] if isinstance(floor, dict) else []
    return head + table(["size", "resolution", "ours", "same parameters", "train speed ours/ref",
                         "sampling speed ours/ref"],
                        [[r["size"], r["resolution"], r["ours"], r.get("same_parameter_count"), r["train_speedup"],
                          r["sampling_speedup"]] for r in d["reference_ratios"]])


def render_flex_sampling_floor(d: dict) -> list[str]:
    """The shipped model's 2-step sample against its compute floor (bench_flex_speed.py --floor-only)."""
    f = d["floor"]
    ens = next(k for k in f if k.startswith("ensemble_") and k.endswith(("_one_call_s_min", "_batched_s_min")))
    k = ens.split("_")[1]
    return table(["n", "torch threads", "conv GFLOP / sample", "GEMM GFLOP/s", "floor s", "measured s",
                  "measured / floor", f"ensemble of {k} in one call s", f"one call / {k} single calls", "target s"],
                 [[f["resolution"], f["threads"], f["conv_gflop_per_sample"], f["gemm_gflop_per_s"], f["floor_s"],
                   f["sample_s_min"], f["sample_over_floor"], f[ens], f[f"ensemble_{k}_over_{k}_single_calls"],
                   f.get("target_s", "-")]])


def render_hybrid(d: dict) -> list[str]:
    head = ["method", "s per unit time", "t(corr < 0.95)", "spectrum error", "profile error", "speedup (a)",
            "speedup (b)", "speedup fixed cadence", "calls (accepted)"]
    rows = []
    for name, r in d["rows"].items():
        if "t95" not in r:
            continue
        t95 = fmt(r["t95"]) + ("+" if r.get("t95_censored_fields") else "")
        ci = r.get("bootstrap_95") or {}
        sp = [f"{r[k + '_bound']}{fmt(r[k])}" + (f" [{fmt(ci[k][0])}, {fmt(ci[k][1])}]" if k in ci else "")
              if k in r else "-" for k in ("speedup_correlation_time", "speedup_spectrum")]
        calls = f"{r['calls']} ({r['accepted']})" if "calls" in r else "-"
        rows.append([name, r["cost"], t95, r["spectrum_error"], r["profile_error"], *sp,
                     r.get("speedup_fixed_cadence"), calls])
    p = d.get("protocol", {})
    out = [f"Re {fmt(p.get('reynolds'))}, n = {fmt(p.get('n'))}, truth {fmt(p.get('truth_n'))}^2, "
           f"{fmt(p.get('fields'))} field(s), t_end {fmt(p.get('t_end'))}; best hybrid: {d.get('best_hybrid')}, "
           f"speedup on both criteria {fmt(d.get('speedup'))}x (+: censored, a lower bound"
           + ("; [a, b]: 95% bootstrap interval over the fields" if d.get("speedup_95") else "") + ")", ""]
    out += table(head, rows)
    why = [f"{name}: " + ", ".join(f"{check} {count}" for check, count in r["failed_checks"].items())
           for name, r in d["rows"].items() if r.get("failed_checks")]
    if why:
        out += ["", "Checks that turned surrogate calls down (calls failing each; one call can fail several): "
                + "; ".join(why)]
    return out


def render_costmodel(d: dict) -> list[str]:
    parts = d["parts"]
    res = sorted({r["reynolds"] for r in parts["solver"]})
    grid = {(r["n"], r["reynolds"]): r for r in parts["solver"]}
    ns = sorted({r["n"] for r in parts["solver"]})
    out = ["Solver, seconds per unit time (steps per unit time at Re 1000 in brackets):", ""]
    out += table(["n", *[f"Re {fmt(re_)}" for re_ in res]],
                 [[n, *[f"{fmt(grid[n, re_]['s_per_unit'])}" + (f" ({fmt(grid[n, re_]['steps_per_unit'])})"
                                                               if re_ == 1000.0 else "") if (n, re_) in grid else "-"
                        for re_ in res]] for n in ns])
    sur = parts["surrogate"]
    archs = list(dict.fromkeys(r["arch"] for r in sur))
    sizes = sorted({r["n"] for r in sur})
    calls = {(r["arch"], r["n"], r["steps"]): r["superres_s"] for r in sur}
    params = {r["arch"]: r["params"] for r in sur}
    out += ["", "One FLEX super-resolution call, seconds (1 / 2 sampling steps):", ""]
    out += table(["arch (params)", *[f"n = {n}" for n in sizes]],
                 [[f"{a} ({params[a] / 1e6:.2f}M)", *[f"{fmt(calls.get((a, n, 1)))} / {fmt(calls.get((a, n, 2)))}"
                                                      for n in sizes]] for a in archs])
    best = {}
    for r in d["maps"]["superres"]:
        if r["interval"] == 0.5 and r["factor"] in (2, 4):
            key = (r["n"], r["factor"])
            if key not in best or r["speedup"] > best[key]["speedup"]:
                best[key] = r
    out += ["", "Best-case speedup over the pure solver at n (every output accepted and as accurate as the fine "
            "grid), output every 0.5; leapfrog: 1 solver tick + 1 jump of lead L, all accepted:", ""]
    lf = {}
    for r in d["maps"]["leapfrog"]:
        if r["acceptance"] == 1.0 and r["jumps"] == 1:
            key = (r["n"], r["lead"])
            if key not in lf or r["speedup"] > lf[key]["speedup"]:
                lf[key] = r
    rows = []
    for n in sorted({k[0] for k in best}):
        cells = [n]
        for factor in (2, 4):
            r = best.get((n, factor))
            cells.append(f"{fmt(r['speedup'])}x ({r['arch']}, {r['steps']}-step)" if r else "-")
        for lead in (0.1, 0.5):
            r = lf.get((n, lead))
            cells.append(f"{fmt(r['speedup'])}x ({r['arch']}, {r['steps']}-step)" if r else "-")
        rows.append(cells)
    out += table(["n", "superres x2", "superres x4", "leapfrog L = 0.1", "leapfrog L = 0.5"], rows)
    # each candidate's own x2 map: the cheapest network above is not the most accurate one
    x2 = {(r["n"], r["arch"]): r["speedup"] for r in d["maps"]["superres"]
          if r["factor"] == 2 and r["interval"] == 0.5 and r["steps"] == 2}
    lf3 = {(r["n"], r["arch"]): r["speedup"] for r in d["maps"]["leapfrog"]
           if r["lead"] == 0.5 and r["jumps"] == 3 and r["acceptance"] == 1.0 and r["steps"] == 2}
    out += ["", "Best case of each candidate, 2 sampling steps: superres x2, output every 0.5 / leapfrog, lead 0.5, "
            "1 solver tick + 3 jumps, all accepted:", ""]
    out += table(["n", *archs], [[n, *[f"{fmt(x2.get((n, a)))}x / {fmt(lf3.get((n, a)))}x" if (n, a) in x2 else "-"
                                        for a in archs]] for n in sorted({n for n, _ in x2})])
    runs = d.get("runs") or []
    if runs:
        out += ["", "The model against measured hybrid runs (checks on; predicted from the parts and the run's counts):", ""]
        out += table(["run", "calls (accepted)", "measured s", "predicted s", "predicted / measured"],
                     [[r["label"], f"{r['calls']} ({r['accepted']})", r["measured_wall_s"], r["predicted"]["wall_s"],
                       r["predicted_over_measured"]] for r in runs])
    return out


def render_coupling_overhead(d: dict) -> list[str]:
    rows = [[k, v] for k, v in d.get("seconds", {}).items()] + [[k, v] for k, v in d.get("ratios", {}).items()]
    head = [f"n = {fmt(d.get('n'))}, {fmt(d.get('torch_threads'))} torch thread(s):", ""]
    return head + table(["quantity", "value"], rows)


def render_harvest(d: dict) -> list[str]:
    c = dict(d.get("case", {}))
    if isinstance(c.get("fixed_thresholds_from"), dict):  # the calibration file whose thresholds were fixed
        c["fixed_thresholds_from"] = c["fixed_thresholds_from"].get("file")
    out = [", ".join(f"{k} {fmt(v)}" for k, v in c.items() if v is not None) + "; run A: " +
           ", ".join(f"{k} {fmt(v)}" for k, v in d.get("run_a", {}).items()) + "; fine-tuning: " +
           ", ".join(f"{k} {fmt(v)}" for k, v in d.get("finetune", {}).items()), ""]
    keys = ["calls", "accepted", "acceptance_rate", "rfne_final", "correlation_final", "wall_s"]
    if any("statistics_error" in r for r in d["run_b"].values()):
        keys[5:5] = ["mean_spectrum_error", "statistics_error"]
    return out + table(["run B model", *keys], [[name, *[r.get(k) for k in keys]] for name, r in d["run_b"].items()])


def render_datagen(d: dict) -> list[str]:
    keys = ["ranks", "slab", "trajectories", "snapshots", "wall_s", "snapshots_per_s"]
    rows = [["many trajectories", *[r.get(k) for k in keys]] for r in d.get("runs", [])]
    rows += [["one trajectory (slab)", *[r.get(k) for k in keys]] for r in d.get("slab_runs", [])]
    cfg = d.get("config", {})
    out = [f"n = {fmt(cfg.get('n'))}, backend {fmt(cfg.get('backend'))}; speed-up with 2 ranks: "
           f"{fmt(d.get('speedup_2_ranks'))} (one trajectory split in slabs: "
           f"{fmt(d.get('speedup_2_ranks_slab_one_trajectory'))})", ""]
    out += table(["case", *keys], rows)
    est = d.get("cost_estimates", [])
    if est:
        ekeys = ["preset", "n", "reynolds", "ms_per_step", "s_per_unit_time", "trajectories",
                 "estimated_total_core_hours"]
        out += ["", "cost of the data-set presets (extrapolated from a short probe):", ""]
        out += table(ekeys, [[e.get(k) for k in ekeys] for e in est])
    return out


def render_sr_statistics(d: dict) -> list[str]:
    """bench_sr_statistics.py: per model, the statistics error, the pointwise RFNE, the band energy
    ratios of the top two octaves and the seconds per call."""
    summary = d["summary"]
    bands = list(summary["spectral"]["bands_mean"])
    per_call = {}
    for row in d["trajectories"]:
        for m, v in row.items():
            if isinstance(v, dict) and "s_per_call" in v:
                per_call.setdefault(m, []).append(v["s_per_call"])
    rows = [[m if m == "spectral" else f"`{m}`", s["statistics_error_mean"], s.get("rfne_mean", ""),
             *[s["bands_mean"][b] for b in bands], statistics.median(per_call[m]) if m in per_call else ""]
            for m, s in summary.items()]
    precision = d.get("precision", "precision not recorded")  # results from before --precision
    out = [f"split `{d['split']}` of `{d['data']}`, {fmt(d['steps'])} sampling steps, {precision}; "
           f"{len(d['trajectories'])} trajectories; band ratios: model over truth energy, geometric mean"
           + ("; weights measured: " + ", ".join(f"`{m}` {h[:8]}" for m, h in d["model_digests"].items())
              if d.get("model_digests") else ""), ""]
    return out + table(["model", "statistics error", "RFNE", *[f"k {b}" for b in bands], "s per call (median)"], rows)


def render_statistics_bands(d: dict) -> list[str]:
    pr = d["protocol"]
    bands = list(dict.fromkeys(b for methods in d["fields"].values() for m in methods.values() for b in m["bands"]))
    rows = [[seed, method, m["statistics_error"], m["window_snapshots"], *[m["bands"].get(b) for b in bands]]
            for seed, methods in d["fields"].items() for method, m in methods.items()]
    return [f"Re {fmt(pr['reynolds'])}, n = {pr['n']}, t_end {fmt(pr['t_end'])}, hybrid `{pr['checkpoint']}`; "
            "per band: mean log(E / E_truth) of the time-mean spectrum over each method's statistics window", ""] + \
        table(["seed", "method", "statistics error", "window snapshots", *[f"k {b}" for b in bands]], rows)


def render_payback(d: dict) -> list[str]:
    up = d["upfront"]
    out = [f"{fmt(d['mode'])} with `{d.get('checkpoint')}`, n = {fmt(d['n'])}: up-front "
           f"{fmt(d['upfront_core_s'])} core-seconds (" + ", ".join(
               f"{k.replace('_', ' ')} {fmt(v['core_s'])} = {fmt(v['wall_s'])} s x {fmt(v['cores'])}" for k, v in up.items())
           + ")", ""]
    rows = []
    for name, c in d["criteria"].items():
        rows.append([name.replace("_", " "), c["speedup"], c["hybrid_s_per_unit"], c["pure_equal_accuracy_s_per_unit"],
                     c["saving_s_per_unit"], c["time_units"] if c["repaid"] else "never",
                     c["runs"] if c["repaid"] else "never"])
    return out + table(["criterion", "speedup", "hybrid s per unit time", "pure at equal accuracy",
                        "saved per unit time", "time units to repay", f"runs of t = {fmt(d['run_length'])} to repay"],
                       rows)


def render_scaling(d: dict) -> list[str]:
    quick = "QUICK MODE (a smoke test, not a speed measurement). " if d.get("settings", {}).get("quick") else ""
    out = [f"{quick}Parallel efficiency t1 / (R tR), from medians; {d.get('note', '')}", ""]
    out += table(["solver n", "ranks", "ms/step median (min)", "efficiency", "oversubscribed"],
                 [[r["n"], r["ranks"], f"{fmt(r['ms_per_step']['median'])} ({fmt(r['ms_per_step']['min'])})",
                   r.get("efficiency"), r["oversubscribed"]] for r in d.get("solver", [])])
    hybrid = d.get("hybrid", [])
    if hybrid:
        out += [""] + table(["hybrid mode", "strategy", "n", "ranks", "s per unit time median (min)", "efficiency",
                             "calls (accepted)", "oversubscribed"],
                            [[r["mode"], r["strategy"], r["n"], r["ranks"],
                              f"{fmt(r['s_per_unit_time']['median'])} ({fmt(r['s_per_unit_time']['min'])})",
                              r.get("efficiency"), f"{r['calls']} ({r['accepted']})", r["oversubscribed"]]
                             for r in hybrid])
    if d.get("errors"):
        out += ["", "Errors: " + "; ".join(f"{e['ranks']} ranks: {str(e['error'])[:200]}" for e in d["errors"])]
    return out


def keyed_table(labels: list[str], items) -> list[str]:
    """A table of (label tuple, dict) items: the labels, then the union of the dicts' scalar keys."""
    items = list(items)
    scalar = lambda v: isinstance(v, (int, float, str, bool)) or v is None  # noqa: E731
    keys = list(dict.fromkeys(k for _, m in items for k, v in m.items() if scalar(v)))
    return table([*labels, *keys], [[*lab, *[m.get(k, "") if scalar(m.get(k)) else "" for k in keys]]
                                    for lab, m in items])


def bullets(lines) -> list[str]:
    return [f"- {fmt(x)}" for x in lines or []]


def render_baselines(d: dict) -> list[str]:
    """task -> split -> model -> metrics, one table per task, then the verdict's summary lines."""
    out = []
    params = d.get("params", {})
    for task in [t for t in ("superres", "forecast") if isinstance(d.get(t), dict)]:
        out += [f"{task}:", ""] + keyed_table(
            ["split", "model", "parameters"],
            [((split, model, params.get(model)), m) for split, models in d[task].items()
             for model, m in models.items()])
        out.append("")
    if not out:
        raise KeyError("no 'superres' or 'forecast' table")
    return out + bullets(d.get("summary"))


def render_sampling(d: dict) -> list[str]:
    """Accuracy and cost against sampler steps, and the calibration against the noise temperature tau."""
    out = [f"{d['note']}", ""] if d.get("quick") else []
    out += ["accuracy and seconds per sample against sampler steps:", ""]
    out += keyed_table(["steps", "task", "split"],
                       [((steps, task, split), dict(m, s_per_sample=r.get("cost", {}).get("seconds_per_sample")))
                        for steps, tasks in d["steps"].items() for task, r in tasks.items()
                        for split, m in r["by_split"].items()])
    out += ["", "calibration (2 steps, initial-noise temperature tau):", ""]
    out += keyed_table(["task", "tau", "split"],
                       [((task, tau, split), m) for task, taus in d.get("calibration", {}).items()
                        for tau, r in taus.items() for split, m in r["by_split"].items()])
    return out + [""] + bullets(d.get("verdict", {}).get("summary"))


def _leaf_rows(node, path=()):
    """(path, scalars) for every dict below ``node`` that holds scalar values (lists of dicts by index)."""
    if isinstance(node, dict):
        scalars = {k: v for k, v in node.items() if isinstance(v, (int, float, str, bool)) or v is None}
        if scalars:
            yield path, scalars
        for k, v in node.items():
            if isinstance(v, (dict, list)):
                yield from _leaf_rows(v, path + (str(k),))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, (dict, list)):
                yield from _leaf_rows(v, path + (str(i),))


def render_generic(d: dict) -> list[str]:
    """Any layout: one row per nested dict of scalars (e.g. task -> split -> model -> metrics), its path
    as the first columns, the union of its scalar keys as the others."""
    body = {k: v for k, v in d.items() if k not in META_KEYS}
    rows = list(_leaf_rows(body))
    if not rows:
        return ["(no numbers in this file)"]
    depth = max(len(p) for p, _ in rows)
    return keyed_table([f"level {i + 1}" for i in range(depth)], [((*p, *[""] * (depth - len(p))), m) for p, m in rows])


# the renderer of a result, by the benchmark that wrote it: the JSON's "benchmark" (provenance.py's),
# else the result's name (results written before that field existed). Any other: render_generic.
RENDERERS = {
    "hybrid": render_hybrid, "harvest": render_harvest, "payback": render_payback,
    "sr_statistics": render_sr_statistics, "statistics_bands": render_statistics_bands, "costmodel": render_costmodel,
    "coupling_overhead": render_coupling_overhead,
    "datagen": render_datagen, "baselines": render_baselines, "sampling": render_sampling, "scaling": render_scaling,
    "solver": render_solver, "flex_speed": render_flex_speed, "flex_sampling_floor": render_flex_sampling_floor,
}
# a result's block in the document: the name is a results/ file's stem
MARKER = re.compile(r"<!-- results:([A-Za-z0-9_-]+) -->")


def renderer(name: str, data: dict):
    """The function that renders result ``name`` (its JSON ``data``)."""
    kind = (data.get("benchmark") if isinstance(data, dict) else None) or name
    return RENDERERS.get(kind, render_generic)


def render(name: str, results: Path = RESULTS) -> str:
    """The block of one result: its tables and provenance, or "not run yet"."""
    path = Path(results) / f"{name}.json"
    if not path.exists():
        return f"_`benchmarks/results/{name}.json`: not run yet._"
    data = json.loads(path.read_text())
    try:
        lines = renderer(name, data)(data)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        lines = [f"(layout not known to make_tables.py, {type(exc).__name__}: {exc}; every scalar shown)", ""]
        lines += render_generic(data)
    return "\n".join(lines + footer(data))


# ---------------------------------------------------------------------------------------- the document
def markers(name: str) -> tuple[str, str]:
    return f"<!-- results:{name} -->", f"<!-- /results:{name} -->"


def update(text: str, results: Path = RESULTS, names=None) -> tuple[str, list[str], list[str]]:
    """(new text, names whose block changed, names without markers in ``text``). ``names``: the
    blocks to render (default: every block the text marks, so a new result needs only its markers)."""
    changed, unmarked = [], []
    for name in names or list(dict.fromkeys(MARKER.findall(text))):
        start, end = markers(name)
        i, j = text.find(start), text.find(end)
        if i < 0 or j < i:
            unmarked.append(name)
            continue
        block = "\n" + render(name, results) + "\n"
        if text[i + len(start):j] != block:
            changed.append(name)
            text = text[:i + len(start)] + block + text[j:]
    return text, changed, unmarked


def unshown(text: str, results: Path = RESULTS) -> list[str]:
    """The result files in ``results`` that ``text`` has no block for (every result is shown somewhere)."""
    marked = set(MARKER.findall(text))
    return sorted(p.stem for p in Path(results).glob("*.json") if p.stem not in marked)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 naming the tables that differ")
    ap.add_argument("--doc", "--readme", dest="doc", type=Path, default=DOC,
                    help="the Markdown file whose marked blocks are rewritten (default docs/benchmarks.md)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    text = args.doc.read_text()
    new, changed, unmarked = update(text, args.results)
    if unmarked:
        print(f"{args.doc}: no markers for {', '.join(unmarked)} (add <!-- results:NAME --> <!-- /results:NAME -->)",
              file=sys.stderr)
    missing = unshown(text, args.results)
    if missing:
        print(f"{args.doc}: no block for the result file(s) {', '.join(missing)} (add <!-- results:NAME --> "
              "<!-- /results:NAME --> where it belongs, or remove the file)", file=sys.stderr)
    if args.check:
        if changed or unmarked or missing:
            print(f"stale tables in {args.doc}: {', '.join(changed + unmarked + missing)}; "
                  "run `python benchmarks/make_tables.py`", file=sys.stderr)
            return 1
        print(f"{args.doc}: every table matches {args.results}")
        return 0
    if changed:
        args.doc.write_text(new)
    print(f"{args.doc}: " + (f"rewrote {', '.join(changed)}" if changed else "already up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
