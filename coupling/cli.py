"""``flexcouple run``: a hybrid simulation from a config file (or the embedded default), also under
``mpiexec -n P``.

Writes into ``--out``: ``config.toml`` (what ran), ``trajectory.h5`` (our Well layout, each snapshot's
source), ``decisions.jsonl`` (one line per surrogate call, as it happens), ``summary.json`` (wall time
split, calls accepted and rejected by reason; with ``--reference`` the accuracy against a pure-solver
run from the same initial field and the speedup), ``harvest/`` with ``[harvest] enabled = true``
(rejected calls with the solver's answer, a data set for ``flexcouple train``) and, while running,
``state.npz`` + ``outputs/`` (a killed run resumes from its last output when the same command is run
again).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from solver.io import write_text_atomic

from coupling.config import HybridConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="hybrid config (TOML); default: the embedded default "
                   "(super-resolution x4 of Kolmogorov flow, n = 256, Re = 1000, with the shipped FLEX)")
    p.add_argument("--print-config", action="store_true", help="print a commented example config and exit")
    p.add_argument("--checkpoint", help="FLEX checkpoint directory (default: the config's, else the shipped model)")
    p.add_argument("--allow-unverified", action="store_true", help="also load a checkpoint whose config.json "
                   "records no hash of itself (format version 1), so edits to it go undetected")
    p.add_argument("--out", type=Path, default=Path("out/run"), help="run directory (default out/run)")
    p.add_argument("--mode", choices=["superres", "leapfrog", "pure"], help="override the config's mode")
    p.add_argument("--t-end", type=float, help="override the config's t_end")
    p.add_argument("--reference", action="store_true",
                   help="also run the pure fine solver from the same state: accuracy and speedup")
    p.add_argument("--no-harvest", dest="harvest", action="store_false", default=True,
                   help="do not write rejected calls to <out>/harvest, whatever [harvest] enabled says")
    p.add_argument("--overwrite", action="store_true", help="start over in --out, removing the files a previous "
                   "run wrote there (refused when other files sit in its outputs/, reference/ or harvest/)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def load_config(args) -> HybridConfig:
    cfg = HybridConfig.from_toml(args.config) if args.config else HybridConfig()
    changes = {}
    if args.mode:
        changes["mode"] = args.mode
    if args.t_end is not None:
        changes["t_end"] = args.t_end
    if args.checkpoint:
        changes["checkpoint"] = str(args.checkpoint)
    if args.allow_unverified:
        changes["allow_unverified"] = True
    if cfg.surrogate_kind == "flex" and not (changes.get("checkpoint") or cfg.checkpoint):
        # resolved once, here: the run's config.toml then names the model it loads
        from coupling.surrogates import default_checkpoint
        changes["checkpoint"] = str(default_checkpoint())
    return cfg.replace(**changes).validate() if changes else cfg


def run(args) -> int:
    """The command's body (the ``flexcouple`` command runs it collectively)."""
    from solver.mpi import world_comm
    if args.print_config:
        print(HybridConfig().to_toml(), end="")
        return 0
    comm = world_comm()
    return _run(args, comm)


def _prepare(args):
    """Everything that can be refused, before any work: config, output folder, initial field, checkpoint."""
    from solver import from_file
    from solver.paths import check_writable
    cfg = load_config(args)
    check_writable(args.out, "--out", directory=True)
    if cfg.init_file:  # read whole here, so that a damaged file is named before the model loads
        from_file(cfg.init_file, cfg.n)
    return cfg


def _run(args, comm) -> int:
    from solver.mpi import agreed

    from coupling.rundir import STATE_FILE, run_identity
    rank = 0 if comm is None else comm.rank
    cfg = agreed(comm, _prepare, args)
    out = Path(args.out)
    if rank == 0:
        if args.overwrite and out.exists():
            _clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        previous = out / "config.toml"
        if previous.exists() and not args.overwrite:
            old = HybridConfig.from_toml(previous)
            if run_identity(old) != run_identity(cfg) and (out / STATE_FILE).exists():
                raise_later = (f"{out} holds a run of another config ({previous}); use another --out, or "
                               "--overwrite to discard it")
            else:
                raise_later = None
        else:
            raise_later = None
    else:
        raise_later = None
    agreed(comm, _raise_if, raise_later)
    if rank == 0:
        write_text_atomic(out / "config.toml", cfg.to_toml(comments=False))

    rows = []
    result = _one_run(cfg, out, args, comm, harvest=cfg.harvest_enabled and args.harvest and cfg.mode != "pure")
    if rank == 0:
        from coupling.report import write_trajectory
        write_trajectory(out / "trajectory.h5", result)
    summary = dict(result.summary)
    rows.append({"label": f"{cfg.mode} (this run)", "wall_s": summary["wall_s"], "accepted": summary["accepted"],
                 "rejected": sum(summary["rejected"].values())})
    if args.reference and cfg.mode != "pure":
        ref_cfg = cfg.replace(mode="pure")
        ref = _one_run(ref_cfg, out / "reference", args, comm, harvest=False)
        if rank == 0:
            from coupling.report import comparison, write_trajectory
            write_trajectory(out / "reference" / "trajectory.h5", ref)
            cmp = comparison(result, ref)
            summary["reference"] = cmp
            rows[0].update(speedup=cmp["speedup"], accuracy=cmp["accuracy"])
            rows.append({"label": f"pure n={cfg.n} (reference)", "wall_s": ref.summary["wall_s"], "speedup": 1.0})
    if rank == 0:
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=_jsonable) + "\n")
        from coupling.report import format_table
        print(format_table(rows))
        print(f"files: {out}/ (trajectory.h5, decisions.jsonl, summary.json"
              + (", harvest/" if (out / "harvest").exists() else "") + (", reference/" if args.reference else "") + ")")
    return 0


def _raise_if(message):
    if message:
        raise FileExistsError(message)


def _one_run(cfg: HybridConfig, out: Path, args, comm, harvest: bool):
    from solver.mpi import agreed

    from coupling.hybrid import HybridSimulation
    sim = agreed(comm, HybridSimulation.from_config, cfg.replace(harvest_enabled=harvest), None, comm, out=out,
                 progress=args.progress)
    return sim.run()


RUN_FOLDERS = ("outputs", "reference", "harvest")  # a run's own folders in --out: nothing else may sit there


def _clear_run(out: Path) -> None:
    """Remove what a previous run wrote in ``out``, and nothing else. Refuse, naming them, before
    removing anything, when other files sit in the folders a run writes (outputs/, reference/,
    harvest/), so a user's own files are never lost; other files directly in ``out`` stay."""
    from coupling.harvest import HARVEST_FILES
    from coupling.rundir import RUN_FILES, listed, sort_files
    written = (rf"(config\.toml|summary\.json|trajectory\.h5|{RUN_FILES}|reference/({RUN_FILES}|trajectory\.h5)"
               rf"|harvest/{HARVEST_FILES})")
    ours, others = sort_files(out, written)
    # a temporary file counts as the run's only where the run writes
    ours = [p for p in ours if len(p.relative_to(out).parts) == 1 or p.relative_to(out).parts[0] in RUN_FOLDERS]
    others = [p for p in others if p.relative_to(out).parts[0] in RUN_FOLDERS]
    if others:
        raise FileExistsError(f"--overwrite removes only the files a run wrote, and {len(others)} other file(s) "
                              f"in {out} are in the way: {listed(others, out)}; move them elsewhere and retry")
    for p in ours:
        p.unlink()
    # the folders left empty, deepest first
    for d in sorted({q for p in ours for q in p.parents if out in q.parents}, key=lambda q: len(q.parts),
                    reverse=True):
        if not any(d.iterdir()):
            d.rmdir()


def _jsonable(o):
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)
