"""HDF5 files in the layout of the Well (PolymathicAI ``the_well``): writer, reader, validator.

One file holds one parameter set (Reynolds number, boundary condition, forcing wavenumber) and all
its trajectories of one split::

    /                         @dataset_name @grid_type='cartesian' @n_spatial_dims=2 @n_trajectories
                              @simulation_parameters=['Re', 'drag', 'forcing_wavenumber', ...] @Re ...
                              @flexcouple_format (version of this layout) @config_hash @config_toml ...
    dimensions/               @spatial_dims=['x', 'y']; time (n_t), x (n), y (n)  [@sample_varying ...]
    boundary_conditions/      x_periodic, y_periodic | y_wall | solid: @bc_type @associated_dims ... mask
    scalars/                  @field_names; Re, drag, forcing_wavenumber, viscosity (constant scalars)
    t0_fields/vorticity       float32 (n_traj, n_t, n, n)
    t1_fields/velocity        float32 (n_traj, n_t, n, n, 2)
    t2_fields/                (empty)
    provenance/               per-trajectory seeds, dt statistics, steps, wall time, resolution check;
                              @solver_settings (JSON), @package_version, @git_commit, @created ...
    coarse/<method>_x<f>/vorticity   (only with storage.store_coarse) (n_traj, n_t, n/f, n/f)

``the_well`` reads only the groups it knows, so ``provenance`` and ``coarse`` ride along unseen.
A data set directory holds ``data/<split>/*.hdf5`` for train, valid, test and the OOD sets, the
Well's metadata file ``<dataset_name>.yaml``, its normalisation file ``stats.yaml`` (training split),
and ``flexcouple_dataset.json`` (config, hash, file list, normalisation, status) which this package
reads back.

Every file is written under a temporary name, fsync'ed and renamed (atomic on POSIX; ``solver.io``):
a killed run never leaves a half-written file under a final name.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from solver.io import TMP_MARK, atomic_path, write_text_atomic  # noqa: F401  (imported from here too)

FORMAT_VERSION = 1
METADATA_FILE = "flexcouple_dataset.json"
STATS_FILE = "stats.yaml"


class WellFormatError(ValueError):
    """A file that is missing, truncated, foreign or does not follow the layout. Message names the file."""


# ---- atomic writes (solver.io: the one home of the temporary-name pattern and its clean-up) ----
def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ---- boundary conditions ---------------------------------------------------------------------
def boundary_groups(boundary: str, n: int, solid: np.ndarray | None = None) -> dict[str, dict]:
    """The Well's ``boundary_conditions`` entries for one of the solver's boundaries.

    periodic: both axes PERIODIC. free-slip: x PERIODIC, y WALL (walls at y = 0 and y = 2 pi; the
    solver's sine series makes psi = omega = 0 there). channel: x PERIODIC, y WALL (penalised solid
    slabs at both ends of y). cylinder/square: both axes PERIODIC plus a 2D ``solid`` WALL mask
    (chi > 1/2 of the Brinkman solid fraction).
    """
    edge = np.zeros(n, dtype=bool)
    edge[0] = edge[-1] = True
    groups = {"x_periodic": {"bc_type": "PERIODIC", "associated_dims": ["x"], "mask": edge}}
    if boundary in ("periodic", "cylinder", "square"):
        groups["y_periodic"] = {"bc_type": "PERIODIC", "associated_dims": ["y"], "mask": edge}
    elif boundary in ("free-slip", "channel"):
        groups["y_wall"] = {"bc_type": "WALL", "associated_dims": ["y"], "mask": edge,
                            "description": "free-slip walls at y = 0 and y = 2 pi" if boundary == "free-slip"
                            else "no-slip walls (Brinkman-penalised solid slabs at both ends of y)"}
    else:
        raise ValueError(f"no Well boundary description for boundary {boundary!r}")
    if boundary in ("cylinder", "square") and solid is not None:
        groups["solid"] = {"bc_type": "WALL", "associated_dims": ["x", "y"], "mask": np.asarray(solid) > 0.5,
                           "description": f"no-slip {boundary} obstacle (Brinkman penalisation)"}
    return groups


# ---- writer ----------------------------------------------------------------------------------
def write_parameter_set(
    path: str | Path,
    *,
    dataset_name: str,
    trajectories: list[dict],
    times: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    boundary: str,
    parameters: dict[str, float],
    attrs: dict[str, Any],
    provenance_attrs: dict[str, Any],
    dtype: str = "float32",
    solid: np.ndarray | None = None,
    coarse: dict[str, tuple[int, str]] | None = None,
    coarse_solver: dict[str, tuple[int, int]] | None = None,
    provenance_keys: tuple[str, ...] | None = None,
) -> None:
    """Write one parameter set atomically. ``trajectories``: dicts with ``vorticity`` (n_t, n, n),
    optional ``velocity`` (n_t, n, n, 2), and provenance scalars (``seed``, ``dt_min`` ...); they are
    written one at a time (memory holds one trajectory's arrays, not the whole file). Any mapping
    works, e.g. a lazily-read ``np.load`` of an ``.npz`` checkpoint. ``provenance_keys``: the
    per-trajectory scalars to store (default: every key but the fields).

    ``coarse``: {group name: (factor, method)} coarse copies to store, computed here with
    :func:`flexcouple.data.coarsen.coarsen`. ``coarse_solver``: {group name: (factor, horizon)} coarse-solver
    states (:mod:`flexcouple.data.coarse_runs`) each trajectory carries under that name, with their
    ``coarse_solver_horizon`` per snapshot."""
    import h5py

    n_traj = len(trajectories)
    if n_traj == 0:
        raise ValueError(f"{path}: no trajectories to write")
    first = trajectories[0]
    n_t, nx, ny = np.shape(first["vorticity"])
    has_velocity = "velocity" in first and first["velocity"] is not None
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["dataset_name"] = dataset_name
        f.attrs["grid_type"] = "cartesian"
        f.attrs["n_spatial_dims"] = 2
        f.attrs["n_trajectories"] = n_traj
        f.attrs["simulation_parameters"] = list(parameters)
        for k, v in parameters.items():
            f.attrs[k] = v
        f.attrs["flexcouple_format"] = FORMAT_VERSION
        for k, v in attrs.items():
            f.attrs[k] = v

        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["x", "y"]
        for key, val in (("time", times), ("x", x), ("y", y)):
            d = dims.create_dataset(key, data=np.asarray(val, dtype=np.float32))
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False

        bcs = f.create_group("boundary_conditions")
        for name, spec in boundary_groups(boundary, nx, solid).items():
            g = bcs.create_group(name)
            g.attrs["bc_type"] = spec["bc_type"]
            g.attrs["associated_dims"] = spec["associated_dims"]
            g.attrs["associated_fields"] = []
            g.attrs["sample_varying"] = False
            g.attrs["time_varying"] = False
            if "description" in spec:
                g.attrs["description"] = spec["description"]
            g.create_dataset("mask", data=spec["mask"])

        sc = f.create_group("scalars")
        sc.attrs["field_names"] = list(parameters)
        for k, v in parameters.items():
            d = sc.create_dataset(k, data=np.float32(v))
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False

        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = ["vorticity"]
        w = t0.create_dataset("vorticity", shape=(n_traj, n_t, nx, ny), dtype=dtype,
                              chunks=(1, 1, nx, ny))
        _field_attrs(w)
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = ["velocity"] if has_velocity else []
        if has_velocity:
            u = t1.create_dataset("velocity", shape=(n_traj, n_t, nx, ny, 2), dtype=dtype,
                                  chunks=(1, 1, nx, ny, 2))
            _field_attrs(u)
        t2 = f.create_group("t2_fields")
        t2.attrs["field_names"] = []

        coarse_dsets = {}
        if coarse:
            cg = f.create_group("coarse")
            for name, (factor, method) in coarse.items():
                g = cg.create_group(name)
                g.attrs["factor"] = factor
                g.attrs["method"] = method
                coarse_dsets[name] = (g.create_dataset("vorticity", shape=(n_traj, n_t, nx // factor, ny // factor),
                                                       dtype=dtype), factor, method)
        solver_dsets = {}
        if coarse_solver:
            cg = f.require_group("coarse")
            for name, (factor, horizon) in coarse_solver.items():
                g = cg.create_group(name)
                g.attrs["factor"], g.attrs["method"], g.attrs["horizon"] = factor, "solver", horizon
                g.create_dataset("horizon", data=np.asarray(first["coarse_solver_horizon"], dtype=np.int64))
                solver_dsets[name] = g.create_dataset("vorticity", shape=(n_traj, n_t, nx // factor, ny // factor),
                                                      dtype=dtype)

        prov = f.create_group("provenance")
        for k, v in provenance_attrs.items():
            prov.attrs[k] = v
        per_traj_keys = list(provenance_keys if provenance_keys is not None
                             else [k for k in first if k not in ("vorticity", "velocity")])
        per_traj = {k: [] for k in per_traj_keys}
        for i, traj in enumerate(trajectories):
            vort = np.asarray(traj["vorticity"])
            if vort.shape != (n_t, nx, ny):
                raise ValueError(f"{path}: trajectory {i} has shape {vort.shape}, expected {(n_t, nx, ny)}")
            w[i] = vort.astype(dtype, copy=False)
            if has_velocity:
                u[i] = np.asarray(traj["velocity"]).astype(dtype, copy=False)
            if coarse_dsets:
                from flexcouple.data.coarsen import coarsen
                for dset, factor, method in coarse_dsets.values():
                    dset[i] = coarsen(vort.astype(np.float64), factor, method).astype(dtype)
            for name, dset in solver_dsets.items():
                dset[i] = np.asarray(traj[name]).astype(dtype, copy=False)
            for k in per_traj_keys:
                per_traj[k].append(traj[k])
        for k, vals in per_traj.items():
            prov.create_dataset(k, data=np.asarray(vals))


def _field_attrs(d) -> None:
    d.attrs["dim_varying"] = [True, True]
    d.attrs["sample_varying"] = True
    d.attrs["time_varying"] = True


# ---- validator / reader ----------------------------------------------------------------------
REQUIRED_ROOT_ATTRS = ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories", "simulation_parameters")
REQUIRED_GROUPS = ("dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields")


def open_file(path: str | Path):
    """Open an HDF5 file for reading, turning h5py's errors into WellFormatError naming the file."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.stat().st_size == 0:
        raise WellFormatError(f"{path}: empty file (a killed copy or write?); delete it and regenerate")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise WellFormatError(f"{path}: not a readable HDF5 file (truncated or not HDF5: {exc}); "
                              f"delete it and regenerate the data set") from None


def validate_file(path: str | Path, *, config_hash: str | None = None, full: bool = False) -> dict:
    """Check one file against the Well's layout and this package's additions.

    Raises WellFormatError (a ValueError) naming the file and the first problem found; returns a
    summary dict (n_traj, n_t, n, parameters, config_hash). ``full=True`` also reads every
    vorticity value (catches truncation inside the data and non-finite values)."""
    path = Path(path)
    with open_file(path) as f:
        try:
            return _validate_open(f, path, config_hash, full)
        except WellFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise WellFormatError(f"{path}: unreadable or inconsistent content ({type(exc).__name__}: {exc})") from None


def _validate_open(f, path: Path, config_hash: str | None, full: bool) -> dict:
    def bad(msg):
        raise WellFormatError(f"{path}: {msg}")

    if "flexcouple_format" not in f.attrs:
        missing = [a for a in REQUIRED_ROOT_ATTRS if a not in f.attrs]
        if missing:
            bad(f"not a Well-format file (root attributes {missing} are missing); is it from another tool?")
        bad("a Well-format file, but not written by flexcouple (no 'flexcouple_format' attribute)")
    if int(f.attrs["flexcouple_format"]) != FORMAT_VERSION:
        bad(f"layout version {f.attrs['flexcouple_format']} but this flexcouple reads version {FORMAT_VERSION}")
    for a in REQUIRED_ROOT_ATTRS:
        if a not in f.attrs:
            bad(f"root attribute '{a}' is missing")
    for g in REQUIRED_GROUPS:
        if g not in f:
            bad(f"group '{g}' is missing")
    if int(f.attrs["n_spatial_dims"]) != 2 or _s(f.attrs["grid_type"]) != "cartesian":
        bad("expected a 2D cartesian grid")
    dims = f["dimensions"]
    if [_s(d) for d in dims.attrs.get("spatial_dims", [])] != ["x", "y"]:
        bad("dimensions/@spatial_dims must be ['x', 'y']")
    for d in ("time", "x", "y"):
        if d not in dims:
            bad(f"dimensions/{d} is missing")
    n_traj = int(f.attrs["n_trajectories"])
    n_t, nx, ny = dims["time"].shape[0], dims["x"].shape[0], dims["y"].shape[0]
    t0 = f["t0_fields"]
    if "vorticity" not in t0 or "vorticity" not in [_s(s) for s in t0.attrs.get("field_names", [])]:
        bad("t0_fields/vorticity is missing (or not listed in t0_fields/@field_names)")
    w = t0["vorticity"]
    if w.shape != (n_traj, n_t, nx, ny):
        bad(f"t0_fields/vorticity has shape {w.shape}, expected (n_trajectories, time, x, y) = {(n_traj, n_t, nx, ny)}")
    for key in ("dim_varying", "sample_varying", "time_varying"):
        if key not in w.attrs:
            bad(f"t0_fields/vorticity has no @{key}")
    t1 = f["t1_fields"]
    if "velocity" in [_s(s) for s in t1.attrs.get("field_names", [])]:
        if "velocity" not in t1 or t1["velocity"].shape != (n_traj, n_t, nx, ny, 2):
            bad(f"t1_fields/velocity must have shape {(n_traj, n_t, nx, ny, 2)}")
    params = [_s(p) for p in f.attrs["simulation_parameters"]]
    for p in params:
        if p not in f.attrs:
            bad(f"simulation parameter '{p}' is listed but has no root attribute")
        if p not in f["scalars"]:
            bad(f"simulation parameter '{p}' has no scalars/{p} data set")
    if "Re" not in params:
        bad("no Reynolds number ('Re' simulation parameter)")
    for name, g in f["boundary_conditions"].items():
        for a in ("bc_type", "associated_dims"):
            if a not in g.attrs:
                bad(f"boundary_conditions/{name} has no @{a}")
        if "mask" not in g:
            bad(f"boundary_conditions/{name} has no mask")
    file_hash = _s(f.attrs.get("config_hash", ""))
    if config_hash is not None and file_hash != config_hash:
        bad(f"made with another config (hash {file_hash[:12]}, expected {config_hash[:12]})")
    if full:
        for i in range(n_traj):
            block = w[i]
            if not np.all(np.isfinite(block)):
                bad(f"trajectory {i} holds non-finite vorticity")
    return {
        "path": str(path), "n_trajectories": n_traj, "n_t": n_t, "n": nx,
        "parameters": {p: float(f.attrs[p]) for p in params},
        "boundary": _s(f.attrs.get("boundary", "")), "config_hash": file_hash,
        "has_velocity": "velocity" in t1,
        "coarse": sorted(f["coarse"].keys()) if "coarse" in f else [],
    }


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_provenance(path: str | Path) -> dict:
    """The provenance group of a file as plain Python values."""
    with open_file(path) as f:
        if "provenance" not in f:
            raise WellFormatError(f"{path}: no provenance group")
        g = f["provenance"]
        out = {k: (_try_json(_s(v)) if isinstance(v, (str, bytes)) else _plain(v)) for k, v in g.attrs.items()}
        out["trajectories"] = {k: np.asarray(g[k]).tolist() for k in g}
        return out


def _plain(v):
    return v.item() if isinstance(v, np.generic) else (v.tolist() if isinstance(v, np.ndarray) else v)


def _try_json(s: str):
    try:
        return json.loads(s)
    except (json.JSONDecodeError, ValueError):
        return s


# ---- the Well's data-set metadata and stats files (YAML, written without a YAML library) ------
def to_yaml(obj: Any, indent: int = 0) -> str:
    """Block-style YAML for nested dicts/lists of str, int, float, bool (enough for the Well's files)."""
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            key = _yaml_scalar(k)
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{key}:\n" + to_yaml(v, indent + (0 if isinstance(v, list) else 1)))
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(v) if not isinstance(v, (dict, list)) else ('{}' if isinstance(v, dict) else '[]')}\n")
        return "".join(lines)
    if isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                body = to_yaml(v, indent + 1).lstrip()
                lines.append(f"{pad}- {body}")
            else:
                lines.append(f"{pad}- {_yaml_scalar(v)}\n")
        return "".join(lines)
    return pad + _yaml_scalar(obj) + "\n"


def _yaml_scalar(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return ".nan"
        if math.isinf(v):
            return ".inf" if v > 0 else "-.inf"
        s = repr(v)
        if "e" in s and "." not in s.split("e")[0]:
            # PyYAML (YAML 1.1) reads 1e-05 as a string; 1.0e-05 is a float
            mantissa, exp = s.split("e")
            s = f"{mantissa}.0e{exp}"
        return s
    if v is None:
        return "null"
    s = str(v)
    if s == "" or not all(c.isalnum() or c in "_-." for c in s) or s.lower() in ("true", "false", "null", "yes", "no", "on", "off"):
        return json.dumps(s)
    return s
