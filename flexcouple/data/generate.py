"""``flexcouple generate``: simulate the cases of a data-set config and store them in the Well's layout.

Work plan: every (split, parameter set, trajectory) is one task. A task integrates the solver from a
random initial vorticity (seed from the split and the trajectory index) through the spin-up and
records ``snapshots`` fields ``interval`` apart. Finished trajectories are kept (written atomically) in
``<out>/.work/<split>/<file stem>/traj_XXXX.npz``; when all trajectories of a parameter set exist they
are merged into ``<out>/data/<split>/<file stem>.hdf5`` (written under a temporary name, renamed) and
the trajectory files are deleted. Re-running the same command therefore skips finished files and
finished trajectories; ``kill -9`` loses at most the trajectories being integrated.

Under MPI (``mpiexec -n P flexcouple generate ...``) tasks are dealt round-robin to the ranks, each
rank keeps its own finished trajectories, and rank 0 merges after a barrier (h5py from PyPI has no
parallel HDF5). ``--slab`` instead runs every trajectory on all ranks with the solver's slab
decomposition (``comm=``) and rank 0 gathers and writes: useful when one field is too large for a rank.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from flexcouple.data import coarse_runs, well
from solver import io
from solver.mpi import CollectiveError, agree, agreed, world_comm
from solver.paths import check_readable, check_writable
from flexcouple.data.config import (
    COARSEN_METHODS, SPLITS, DataConfig, OODSet, load_config, load_preset, preset_names, to_toml,
)
from flexcouple.data.simulate import UnderResolvedWarning, cutoff_shell, simulate_trajectory  # noqa: F401
from flexcouple.data.workplan import (
    PROVENANCE_KEYS, WORK_DIR, Task, data_path, load_trajectory, plan, save_trajectory, trajectory_path,
)

CONFIG_FILE = "config.toml"


# ---- provenance ------------------------------------------------------------------------------
def git_commit() -> str:
    """The source tree's commit as a data set records it (with '-dirty'), or 'unknown'."""
    from solver.provenance import git_commit as commit
    return commit() or "unknown"


def _versions() -> dict:
    import h5py

    from flexcouple import __version__
    return {"flexcouple": __version__, "numpy": np.__version__, "h5py": h5py.__version__,
            "python": platform.python_version()}


def _prepare_root(cfg: DataConfig, out: Path, overwrite: bool, log) -> None:
    """Rank 0: refuse foreign or differently-configured directories, clean up after killed runs."""
    meta_path = out / well.METADATA_FILE
    config_hash = cfg.config_hash()
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            old_hash = meta["config_hash"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise well.WellFormatError(f"{meta_path}: damaged data-set metadata; delete the directory "
                                       f"{out} or pass --overwrite") from None
        if old_hash != config_hash:
            if not overwrite:
                raise FileExistsError(
                    f"{out} holds a data set made with another config (hash {old_hash[:12]}, this one "
                    f"{config_hash[:12]}); pass --overwrite to replace it, or choose another --out")
            log(f"--overwrite: removing the data set in {out} (config {old_hash[:12]})")
            _remove_dataset(out, _manifest(out, meta))
    elif out.exists() and any(out.iterdir()):
        if (out / "data").exists() or (out / WORK_DIR).exists():
            raise FileExistsError(f"{out} has data/ but no {well.METADATA_FILE}: not a flexcouple data set "
                                  f"(or a damaged one), so it is not known which files are its own; choose an "
                                  f"empty directory, or remove {out / 'data'} yourself")
    out.mkdir(parents=True, exist_ok=True)
    for p in _remove_temporaries(_files_of(out, cfg)):
        log(f"removed a temporary file left by an interrupted run: {p}")
    # nothing but our own files may sit in data/<split>/: the Well's reader globs *.hdf5
    expected = {data_path(out, s, c, cfg.physics) for s in cfg.split_names() for c in cfg.cases(s)}
    data_dir = out / "data"
    if data_dir.exists():
        for p in sorted(data_dir.rglob("*")):
            if p.is_file() and p not in expected:
                raise FileExistsError(f"{p}: not part of this data set (config {config_hash[:12]}); remove it "
                                      f"or pass --overwrite to regenerate the whole data set")
    for p in sorted(expected):
        if p.exists():
            well.validate_file(p, config_hash=config_hash)
    meta = {"format": "flexcouple data set", "format_version": well.FORMAT_VERSION, "name": cfg.name,
            "config_hash": config_hash, "status": "generating", "config": cfg.to_dict()}
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("status") == "complete":
            meta = old  # keep the statistics of a complete set; re-running only re-checks it
    well.write_json_atomic(meta_path, meta)
    well.write_text_atomic(out / CONFIG_FILE, to_toml(cfg))


def _preflight(cfg: DataConfig, comm, slab: bool) -> None:
    """Fail before touching the output directory when the run cannot work here."""
    if cfg.backend == "cupy":
        from solver import cupy_available

        ok, why = cupy_available()
        if not ok:
            raise ValueError(f"solver.backend = 'cupy' cannot run here: {why}; use numpy, scipy or pyfftw")
        if comm is not None and slab:
            raise ValueError("--slab with the cupy backend is not supported by the solver; drop --slab")
    if slab and comm is not None:
        try:
            import mpi4py_fft  # noqa: F401
        except ImportError:
            raise ValueError("--slab needs mpi4py-fft (pip install mpi4py-fft; it builds against the FFTW "
                             "headers, apt-get install libfftw3-dev)") from None


def _pending(cfg: DataConfig, out: Path, tasks: list[Task]) -> list[Task]:
    """Tasks whose file is not written and whose trajectory file is missing or damaged."""
    pending = []
    for t in tasks:
        if data_path(out, t.split, t.case, cfg.physics).exists():
            continue
        rec = load_trajectory(trajectory_path(out, t, cfg.physics), cfg, lazy=True)
        if rec is None:
            pending.append(t)
        else:
            rec.close()
    return pending


def _manifest(out: Path, meta: dict) -> set[Path]:
    """Every file the data set described by ``meta`` (its metadata file) writes: data files, trajectory
    files and metadata files, from its own config and its recorded file lists."""
    files = {out / well.METADATA_FILE, out / CONFIG_FILE, out / well.STATS_FILE}
    for split in (meta.get("splits") or {}).values():
        files.update(out / rel for rel in split.get("files", []))
    try:
        raw = dict(meta["config"])
        old = DataConfig(**{k: v for k, v in raw.items() if k != "ood"},
                         ood=[OODSet(**o) for o in raw.get("ood", [])])
    except (KeyError, TypeError, ValueError):
        raise well.WellFormatError(f"{out / well.METADATA_FILE}: its config cannot be read, so it is not known "
                                   f"which files of {out} belong to the data set; remove them yourself") from None
    return files | _files_of(out, old)


def _files_of(out: Path, cfg: DataConfig) -> set[Path]:
    """Every file the data set of ``cfg`` writes in ``out``: metadata, data files, trajectory files."""
    files = {out / well.METADATA_FILE, out / CONFIG_FILE, out / well.STATS_FILE, out / f"{cfg.name}.yaml"}
    files.update(data_path(out, s, c, cfg.physics) for s in cfg.split_names() for c in cfg.cases(s))
    files.update(trajectory_path(out, t, cfg.physics) for t in plan(cfg))
    return files


def _finals_by_folder(files: set[Path]) -> dict[Path, set[str]]:
    by_folder: dict[Path, set[str]] = {}
    for p in files:
        by_folder.setdefault(p.parent, set()).add(p.name)
    return by_folder


def _remove_temporaries(files: set[Path]) -> list[Path]:
    """Delete the temporaries of ``files`` a killed writer left (solver.io's exact name pattern), in
    the folders those files go to and nowhere else: a user's ``notes.tmp-1.md`` is never touched."""
    return [t for folder, names in sorted(_finals_by_folder(files).items())
            for t in io.remove_temporaries(folder, names)]


def _remove_dataset(out: Path, manifest: set[Path]) -> None:
    """Delete the files of the data set's manifest, and nothing else; refuse, naming them, when
    unknown files sit where the data set writes (data/, .work/), so a user's own files are never lost."""
    ours = {p.resolve() for p in manifest}
    finals = _finals_by_folder(manifest)
    unknown = [p for d in (out / "data", out / WORK_DIR) if d.is_dir() for p in sorted(d.rglob("*"))
               if (p.is_file() or p.is_symlink()) and p.resolve() not in ours
               and not io.is_temporary(p.name, finals.get(p.parent, ()))]
    if unknown:
        listed = ", ".join(str(p.relative_to(out)) for p in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise FileExistsError(f"--overwrite removes only the data set's own files, and {len(unknown)} other "
                              f"file(s) in {out} are in the way: {listed}; move them elsewhere and retry")
    for p in sorted(manifest):
        if p.is_file():
            p.unlink()
    _remove_temporaries(manifest)
    for d in (out / "data", out / WORK_DIR):  # the now empty folders, deepest first
        if d.is_dir():
            for sub in sorted((q for q in d.rglob("*") if q.is_dir()), key=lambda q: len(q.parts), reverse=True):
                if not any(sub.iterdir()):
                    sub.rmdir()
            if not any(d.iterdir()):
                d.rmdir()


def _collective(comm, fn, *args):
    """Run fn on rank 0 and share its result; an exception there ends the command on every rank:
    rank 0 raises it, the others a CollectiveError with its message (reported once, by rank 0)."""
    if comm is None:
        return fn(*args)
    result, error = None, None
    if comm.rank == 0:
        try:
            result = fn(*args)
        except Exception as exc:  # shared below so that no rank hangs in a later collective
            error = exc
    result, message = comm.bcast((result, None if error is None else str(error)), root=0)
    if error is not None:
        raise error
    if message is not None:
        raise CollectiveError(f"rank 0 of {comm.size}: {message}")
    return result


def generate(cfg: DataConfig, out: str | Path, *, overwrite: bool = False, comm="auto", slab: bool = False,
             progress: bool = True, log=None) -> dict:
    """Generate (or finish) the data set of ``cfg`` in ``out``; returns the data-set metadata dict.

    ``comm``: "auto" (MPI COMM_WORLD when run under mpiexec), None, or an mpi4py communicator.
    """
    cfg.validate()
    out = Path(out)
    if comm == "auto":
        comm = world_comm()
    rank = 0 if comm is None else comm.rank
    size = 1 if comm is None else comm.size
    if log is None:
        def log(msg):
            if rank == 0:
                print(msg, file=sys.stderr, flush=True)

    start = time.perf_counter()
    agreed(comm, _preflight, cfg, comm, slab)
    agreed(comm, check_writable, out, "--out", directory=True)
    _collective(comm, _prepare_root, cfg, out, overwrite, log)
    config_hash = cfg.config_hash()

    tasks = plan(cfg)
    # decided on rank 0 alone: the other ranks must not see trajectory files rank 0 is already writing
    todo = _collective(comm, _pending, cfg, out, tasks)
    n_done_before = len(tasks) - len(todo)
    if slab or size == 1:
        mine = todo
    else:
        mine = todo[rank::size]
    if rank == 0:
        log(f"{cfg.name}: {len(tasks)} trajectories ({n_done_before} already done), {cfg.snapshots} snapshots "
            f"of {cfg.n}x{cfg.n} each, {size} rank(s){' (slab-decomposed)' if slab and size > 1 else ''}")

    error = None
    t_work = time.perf_counter()
    bar = None
    if progress and mine and (size == 1 or (slab and rank == 0)):
        from tqdm import tqdm
        bar = tqdm(total=len(mine), desc="trajectories", unit="traj", file=sys.stderr, dynamic_ncols=True)
    snapshots_done = 0
    try:
        for i, task in enumerate(mine):
            record = simulate_trajectory(cfg, task.case, task.seed, comm=comm if slab else None)
            if record is not None:
                save_trajectory(trajectory_path(out, task, cfg.physics), record)
                if record["resolution_ratio"] > cfg.resolution_tolerance:
                    msg = (f"under-resolved: {task.split} Re={task.case.reynolds:g} {task.case.boundary} seed={task.seed}: "
                           f"E(k_cutoff)/E_peak = {float(record['resolution_ratio']):.2e} > {cfg.resolution_tolerance:g}; "
                           f"use a larger n or a lower Re")
                    warnings.warn(msg, UnderResolvedWarning, stacklevel=2)
            snapshots_done += cfg.snapshots
            if bar is not None:
                bar.update(1)
            elif progress and size > 1 and not slab:
                elapsed = time.perf_counter() - t_work
                eta = elapsed / (i + 1) * (len(mine) - i - 1)
                print(f"[rank {rank}/{size}] {i + 1}/{len(mine)} trajectories, {elapsed:.0f} s, "
                      f"ETA {eta:.0f} s", file=sys.stderr, flush=True)
    except Exception as exc:  # shared below so that no rank waits forever in the barrier
        if slab and size > 1:  # the others may be inside this trajectory's collectives: abort instead
            raise
        error = exc
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t_work
    if comm is not None:
        if progress and not slab and error is None:
            print(f"[rank {rank}/{size}] done: {len(mine)} trajectories, {snapshots_done} snapshots in "
                  f"{elapsed:.1f} s", file=sys.stderr, flush=True)
        # every rank raises together (the first failing rank's message, reported once by rank 0)
        try:
            agree(comm, None if error is None else str(error))
        except CollectiveError as shared:
            raise shared from error
    elif error is not None:
        raise error

    meta = _collective(comm, _finish, cfg, out, config_hash, size, slab, time.perf_counter() - start, log,
                       len(todo))
    return meta


def _previous_complete(out: Path, config_hash: str) -> dict | None:
    """The metadata of a complete data set of this config already in ``out``, or None."""
    try:
        meta = json.loads((out / well.METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(meta, dict) and meta.get("status") == "complete" and meta.get("config_hash") == config_hash
    return meta if ok else None


def _finish(cfg: DataConfig, out: Path, config_hash: str, ranks: int, slab: bool, wall: float, log,
            simulated: int = 0) -> dict:
    """Rank 0: merge the trajectory files into HDF5 files, compute training statistics, write the metadata files.

    A re-run over a complete data set of the same config keeps its creation date (the data are
    bitwise the same; ``evaluate``'s resume keys include the date) and, when it simulated nothing,
    its generation wall time; trajectories it did redo add to that time."""
    commit, versions = git_commit(), _versions()
    previous = _previous_complete(out, config_hash)
    created = (previous or {}).get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if previous is not None and isinstance(previous.get("generation_wall_time_s"), (int, float)):
        wall = previous["generation_wall_time_s"] + (wall if simulated else 0.0)
    files: dict[str, list[str]] = {}
    warnings_list = []
    for split in cfg.split_names():
        files[split] = []
        for case in cfg.cases(split):
            path = data_path(out, split, case, cfg.physics)
            files[split].append(str(path.relative_to(out)))
            if path.exists():
                continue
            tasks = [Task(split, case, i, cfg.ic_seed(split, i)) for i in range(cfg.trajectories(split))]
            records = []
            try:
                for t in tasks:
                    rec = load_trajectory(trajectory_path(out, t, cfg.physics), cfg, lazy=True)
                    if rec is None:
                        raise RuntimeError(f"trajectory {t.index} of {path.name} is missing after the run; "
                                           f"re-run the command")
                    records.append(rec)
                _merge(cfg, case, split, path, records, config_hash, commit, versions, created, ranks, slab)
            finally:
                for rec in records:
                    rec.close()
            shutil.rmtree(trajectory_path(out, tasks[0], cfg.physics).parent, ignore_errors=True)
    work = out / WORK_DIR
    if work.exists():
        shutil.rmtree(work, ignore_errors=True)

    # resolution warnings from the files themselves (complete on re-runs too)
    for split, paths in files.items():
        for rel in paths:
            prov = well.read_provenance(out / rel)
            ratios = prov["trajectories"].get("resolution_ratio", [])
            if ratios and max(ratios) > cfg.resolution_tolerance:
                warnings_list.append(f"{rel}: under-resolved, max E(k_cutoff)/E_peak = {max(ratios):.2e} "
                                     f"> {cfg.resolution_tolerance:g}")
    stats = training_statistics(out, files["train"])
    summaries = {split: [well.validate_file(out / rel, config_hash=config_hash) for rel in paths]
                 for split, paths in files.items()}
    meta = {
        "format": "flexcouple data set", "format_version": well.FORMAT_VERSION, "name": cfg.name,
        "config_hash": config_hash, "status": "complete", "created": created,
        "package_versions": versions, "git_commit": commit,
        "normalization": {"mean": stats["mean"]["vorticity"], "std": stats["std"]["vorticity"],
                          "source": "train split, all trajectories and snapshots"},
        "splits": {split: {"files": paths,
                           "reynolds": sorted({s["parameters"]["Re"] for s in summaries[split]}),
                           "boundaries": sorted({c.boundary for c in cfg.cases(split)}),
                           "forcing_wavenumbers": sorted({c.forcing_wavenumber for c in cfg.cases(split)}),
                           "trajectories_per_file": cfg.trajectories(split),
                           "ood": split not in SPLITS}
                   for split, paths in files.items()},
        "snapshots": cfg.snapshots, "n": cfg.n, "times": cfg.times(),
        "coarse": {"method": cfg.coarsen_method, "factors": cfg.coarsen_factors, "stored": cfg.store_coarse},
        "coarse_solver": {"factors": cfg.coarse_solver_factors, "horizon": cfg.coarse_solver_horizon},
        "warnings": warnings_list,
        "generation_wall_time_s": wall, "ranks": ranks,
        "config": cfg.to_dict(),
    }
    well.write_text_atomic(out / well.STATS_FILE, well.to_yaml(stats))
    well.write_text_atomic(out / f"{cfg.name}.yaml", well.to_yaml(_well_metadata(cfg, files, summaries)))
    well.write_json_atomic(out / well.METADATA_FILE, meta)
    for w in warnings_list:
        log(f"warning: {w}")
    log(f"data set complete in {out} ({sum(len(v) for v in files.values())} files)")
    return meta


def _merge(cfg, case, split, path, records, config_hash, commit, versions, created, ranks, slab) -> None:
    x = 2 * np.pi * np.arange(cfg.n) / cfg.n
    settings = json.loads(str(records[0]["settings_json"]))
    parameters = {"Re": case.reynolds, "viscosity": 1.0 / case.reynolds, "drag": float(cfg.drag),
                  "forcing_wavenumber": float(case.forcing_wavenumber if cfg.forcing == "kolmogorov" else 0)}
    if case.boundary == "channel":
        parameters["pressure_gradient"] = float(cfg.pressure_gradient)
    if case.boundary in ("cylinder", "square"):
        parameters["inflow_velocity"] = float(cfg.inflow_velocity)
    dts = np.array([[float(r["dt_min"]), float(r["dt_mean"]), float(r["dt_max"])] for r in records])
    ratios = [float(r["resolution_ratio"]) for r in records]
    provenance = {
        "package_version": versions["flexcouple"], "git_commit": commit, "created": created,
        "versions": json.dumps(versions), "host": platform.node(),
        "config_toml": to_toml(cfg), "config_hash": config_hash,
        "solver_settings": json.dumps(settings), "integrator": settings.get("integrator", ""),
        "ranks": ranks, "slab_decomposition": bool(slab and ranks > 1),
        "dt_min": float(dts[:, 0].min()), "dt_mean": float(dts[:, 1].mean()), "dt_max": float(dts[:, 2].max()),
        "wall_time_s": float(sum(float(r["wall_time_s"]) for r in records)),
        "resolution_check": "E(k_cutoff) / max_k E(k) on the first, middle and last snapshot (max taken); "
                            f"k_cutoff = {cutoff_shell(cfg.n, cfg.dealias)}",
        "resolution_ratio_max": max(ratios), "resolution_tolerance": cfg.resolution_tolerance,
        "under_resolved": bool(max(ratios) > cfg.resolution_tolerance),
        "initial_condition": json.dumps({"kind": "random_field", "peak_wavenumber": cfg.ic_peak_wavenumber,
                                         "energy": cfg.ic_energy}),
    }
    coarse = ({f"{cfg.coarsen_method}_x{f}": (f, cfg.coarsen_method) for f in cfg.coarsen_factors}
              if cfg.store_coarse else None)
    attrs = {"physics": cfg.physics, "boundary": case.boundary, "split": split, "config_hash": config_hash,
             "package_version": versions["flexcouple"], "git_commit": commit}
    solid = records[0]["solid"] if "solid" in records[0] else None
    # records are lazy np.load mappings: the writer reads one trajectory at a time
    well.write_parameter_set(path, dataset_name=cfg.name, trajectories=records, times=np.asarray(cfg.times()),
                             x=x, y=x, boundary=case.boundary, parameters=parameters, attrs=attrs,
                             provenance_attrs=provenance, dtype=cfg.dtype, solid=solid, coarse=coarse,
                             coarse_solver={coarse_runs.group_name(f): (f, cfg.coarse_solver_horizon)
                                            for f in cfg.coarse_solver_factors},
                             provenance_keys=PROVENANCE_KEYS)


def training_statistics(out: Path, train_files: list[str]) -> dict:
    """Mean, std and rms of every field and of its one-step change, over the whole training split
    (the Well's stats.yaml keys). Accumulated in float64, one trajectory at a time."""
    acc: dict[str, dict[str, np.ndarray]] = {}

    def add(name, key, arr):
        a = np.asarray(arr, dtype=np.float64)
        axes = tuple(range(a.ndim - 1)) if name == "velocity" else None
        s = acc.setdefault(f"{name}/{key}", {"n": 0, "sum": 0.0, "sumsq": 0.0})
        s["n"] += a.size // (a.shape[-1] if name == "velocity" else 1)
        s["sum"] = s["sum"] + a.sum(axis=axes)
        s["sumsq"] = s["sumsq"] + (a * a).sum(axis=axes)

    for rel in train_files:
        with well.open_file(out / rel) as f:
            w = f["t0_fields/vorticity"]
            u = f["t1_fields/velocity"] if "velocity" in f["t1_fields"] else None
            for i in range(w.shape[0]):
                wi = w[i]
                add("vorticity", "value", wi)
                add("vorticity", "delta", np.diff(wi, axis=0))
                if u is not None:
                    ui = u[i]
                    add("velocity", "value", ui)
                    add("velocity", "delta", np.diff(ui, axis=0))
    stats: dict[str, dict] = {k: {} for k in ("mean", "std", "rms", "mean_delta", "std_delta", "rms_delta")}
    for key, s in acc.items():
        name, kind = key.split("/")
        mean = s["sum"] / max(s["n"], 1)
        ms = s["sumsq"] / max(s["n"], 1)
        std = np.sqrt(np.maximum(ms - mean**2, 0.0))
        rms = np.sqrt(ms)
        suffix = "" if kind == "value" else "_delta"
        for stat, val in (("mean", mean), ("std", std), ("rms", rms)):
            stats[stat + suffix][name] = val.tolist() if isinstance(val, np.ndarray) else float(val)
    return stats


def _well_metadata(cfg: DataConfig, files: dict, summaries: dict) -> dict:
    """The Well's per-data-set metadata file (<dataset_name>.yaml)."""
    bc_types = set()
    for split in files:
        for c in cfg.cases(split):
            bc_types.update(spec["bc_type"] for spec in well.boundary_groups(c.boundary, cfg.n).values())
    n_files = sum(len(v) for v in files.values())
    n_sims = sum(s["n_trajectories"] for v in summaries.values() for s in v)
    scalars = ["Re", "viscosity", "drag", "forcing_wavenumber"]
    return {
        "dataset_name": cfg.name, "n_spatial_dims": 2, "spatial_resolution": [cfg.n, cfg.n],
        "scalar_names": [], "constant_scalar_names": scalars,
        "field_names": {0: ["vorticity"], 1: ["velocity_x", "velocity_y"] if cfg.store_velocity else [], 2: []},
        "constant_field_names": {0: [], 1: [], 2: []},
        "boundary_condition_types": sorted(bc_types),
        "n_files": n_files, "n_simulations": n_sims,
        "n_steps_per_simulation": [cfg.snapshots] * n_sims,
        "grid_type": "cartesian",
    }


# ---- command line ----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, help="data-set config file (TOML, or JSON)")
    src.add_argument("--preset", help="a shipped preset (default: tiny); one of " + ", ".join(_safe_presets()))
    parser.add_argument("--out", type=Path, help="output directory of the data set")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a data set in --out that was made with another config")
    parser.add_argument("--slab", action="store_true",
                        help="under MPI: split each trajectory over all ranks (solver slab decomposition) "
                             "instead of dealing trajectories to ranks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar / per-rank lines")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (files, trajectories) and exit")
    g = parser.add_argument_group("overrides of common config fields")
    g.add_argument("--name")
    g.add_argument("--n", type=int, help="fine grid size n (n x n)")
    g.add_argument("--reynolds", type=_float_list, help="training Reynolds numbers, comma-separated")
    g.add_argument("--boundaries", type=_str_list, help="training boundary conditions, comma-separated")
    g.add_argument("--forcing-wavenumber", type=int)
    g.add_argument("--train", type=int, help="training trajectories per case")
    g.add_argument("--valid", type=int, help="validation trajectories per case")
    g.add_argument("--test", type=int, help="test trajectories per case")
    g.add_argument("--spinup", type=float, help="spin-up time before the first snapshot")
    g.add_argument("--snapshots", type=int, help="snapshots per trajectory")
    g.add_argument("--interval", type=float, help="time between snapshots")
    g.add_argument("--seed", type=int)
    g.add_argument("--backend", help="solver backend: numpy, scipy, pyfftw, cupy")
    g.add_argument("--dtype", help="storage dtype: float32 (default) or float64")
    g.add_argument("--coarsen-method", choices=COARSEN_METHODS)
    g.add_argument("--coarsen-factors", type=_int_list)
    g.add_argument("--store-coarse", action="store_true", default=None, help="also store coarse fields")
    g.add_argument("--no-velocity", action="store_true", help="do not store t1_fields/velocity")
    g.add_argument("--no-ood", action="store_true", help="drop the out-of-distribution sets")


def _safe_presets():
    try:
        return preset_names()
    except Exception:  # pragma: no cover - help text only
        return ["tiny", "default", "large"]


def _float_list(s: str) -> list[float]:
    try:
        return [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def _int_list(s: str) -> list[int]:
    try:
        return [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def _str_list(s: str) -> list[str]:
    return [v.strip() for v in s.split(",") if v.strip()]


OVERRIDES = ("name", "n", "reynolds", "boundaries", "forcing_wavenumber", "train", "valid", "test", "spinup",
             "snapshots", "interval", "seed", "backend", "dtype", "coarsen_method", "coarsen_factors", "store_coarse")


def config_from_args(args) -> DataConfig:
    cfg = load_config(check_readable(args.config, "--config")) if args.config else load_preset(args.preset or "tiny")
    changes = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k, None) is not None}
    if getattr(args, "no_velocity", False):
        changes["store_velocity"] = False
    if getattr(args, "no_ood", False):
        changes["ood"] = []
    return cfg.replace(**changes).validate()


def run(args) -> int:
    """The command's body (the ``flexcouple`` command runs it collectively: under MPI any rank's
    failure ends every rank, reported once)."""
    return _run(args, world_comm())


def _run(args, comm) -> int:
    cfg = agreed(comm, config_from_args, args)
    rank = 0 if comm is None else comm.rank
    if args.print_config:
        if rank == 0:
            print(to_toml(cfg), end="")
        return 0
    if args.dry_run:
        if rank == 0:
            tasks = plan(cfg)
            for split in cfg.split_names():
                for case in cfg.cases(split):
                    print(f"data/{split}/{case.stem(cfg.physics)}.hdf5: {cfg.trajectories(split)} trajectories")
            print(f"{len(tasks)} trajectories x {cfg.snapshots} snapshots of {cfg.n}x{cfg.n}; simulated time per "
                  f"trajectory {cfg.times()[-1]:g}")
        return 0
    if args.out is None:
        agree(comm, "--out DIR is required (the directory to write the data set to)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnderResolvedWarning)  # summarised once at the end instead
        generate(cfg, args.out, overwrite=args.overwrite, comm=comm, slab=args.slab, progress=not args.no_progress)
    return 0
