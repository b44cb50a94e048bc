"""Data-set configs: a dataclass, read from and written to TOML, plus the presets shipped with the package.

A config says which flows to simulate and how to store them. The training set is the product
``reynolds x boundaries`` at one forcing wavenumber; ``trajectories.train/valid/test`` trajectories per
case, which differ only by the seed of the random initial vorticity (splits by seed). Out-of-distribution
(OOD) sets change one parameter (a Reynolds number outside the training range, an unseen boundary
condition, an unseen forcing wavenumber) and reuse the *test* seeds, so an OOD trajectory differs from
its test twin only in that parameter.

File format (TOML, read with the standard library's ``tomllib``)::

    name = "kolmogorov-tiny"
    physics = "kolmogorov"        # kolmogorov | decaying | free_slip_channel | no_slip_channel | obstacle
    seed = 0
    [grid]            n = 64
    [flow]            reynolds = [100.0, 200.0]   boundaries = ["periodic"]   forcing_wavenumber = 4 ...
    [time]            spinup = 5.0   snapshots = 20   interval = 0.25
    [trajectories]    train = 2   valid = 1   test = 1
    [solver]          backend = "numpy"   dtype = "float64"   cfl = 0.5 ...
    [storage]         dtype = "float32"   coarsen_factors = [4, 8]   coarsen_method = "spectral" ...
    [[ood]]           name = "re_high"   reynolds = [800.0]

Every key has a default (the physics preset fills in boundary, forcing and drag); unknown keys are
errors, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from solver.physics import FlowSpec
from solver.io import write_text_atomic
from solver.resample import COARSEN_METHODS

SPLITS = ("train", "valid", "test")
BACKENDS = ("numpy", "scipy", "pyfftw", "cupy")
FLOAT_DTYPES = ("float32", "float64")
MAX_TRAJECTORIES = 1000  # per case and split: keeps the seed blocks of the splits disjoint

# Physics presets: what each named flow means in solver terms. A config may override any of these.
PHYSICS = {
    "kolmogorov": {"boundaries": ["periodic"], "forcing": "kolmogorov", "drag": 0.1},
    "decaying": {"boundaries": ["periodic"], "forcing": "none", "drag": 0.0},
    "free_slip_channel": {"boundaries": ["free-slip"], "forcing": "kolmogorov", "drag": 0.1},
    "no_slip_channel": {"boundaries": ["channel"], "forcing": "kolmogorov", "drag": 0.1},
    "obstacle": {"boundaries": ["cylinder"], "forcing": "none", "drag": 0.0},
}

# field name -> TOML section (None: top level). The dataclass stays flat so that CLI flags map 1:1.
SECTIONS = {
    "name": None, "description": None, "physics": None, "seed": None,
    "n": "grid",
    "reynolds": "flow", "boundaries": "flow", "forcing": "flow", "forcing_wavenumber": "flow",
    "drag": "flow", "pressure_gradient": "flow", "inflow_velocity": "flow",
    "ic_peak_wavenumber": "initial_condition", "ic_energy": "initial_condition",
    "spinup": "time", "snapshots": "time", "interval": "time",
    "train": "trajectories", "valid": "trajectories", "test": "trajectories",
    "backend": "solver", "solver_dtype": "solver", "cfl": "solver", "max_dt": "solver",
    "dealias": "solver", "penalization": "solver",
    "dtype": "storage", "store_velocity": "storage", "coarsen_factors": "storage",
    "coarsen_method": "storage", "store_coarse": "storage",
    "coarse_solver_factors": "storage", "coarse_solver_horizon": "storage",
    "resolution_tolerance": "checks",
}
# TOML key inside its section when it differs from the field name
TOML_KEYS = {"solver_dtype": "dtype", "ic_peak_wavenumber": "peak_wavenumber", "ic_energy": "energy"}
# the fields shared by every case's solver.FlowSpec (reynolds, boundary and forcing_wavenumber vary by case)
FLOW_FIELDS = ("forcing", "drag", "pressure_gradient", "inflow_velocity", "cfl", "max_dt", "dealias", "penalization")


@dataclass
class OODSet:
    """An out-of-distribution set: the training cases with one parameter changed. Unset fields
    (None) keep the training values; trajectories default to the test split's count."""

    name: str
    reynolds: list[float] | None = None
    boundaries: list[str] | None = None
    forcing_wavenumber: int | None = None
    trajectories: int | None = None
    description: str = ""


@dataclass
class DataConfig:
    """Everything that determines a generated data set (its hash names the data set's identity)."""

    name: str = "kolmogorov-tiny"
    description: str = ""
    physics: str = "kolmogorov"
    seed: int = 0
    # grid
    n: int = 64
    # flow
    reynolds: list[float] = field(default_factory=lambda: [100.0, 200.0])
    boundaries: list[str] | None = None          # None: the physics preset's
    forcing: str | None = None                    # "kolmogorov" | "none"; None: the physics preset's
    forcing_wavenumber: int = 4
    drag: float | None = None                     # linear drag alpha; None: the physics preset's
    pressure_gradient: float = 0.0                # drives the no-slip channel (boundary "channel")
    inflow_velocity: float = 1.0                  # free stream past an obstacle ("cylinder", "square")
    # initial condition (solver.initial_conditions.random_field)
    ic_peak_wavenumber: float = 4.0
    ic_energy: float = 0.5
    # time: snapshots at spinup + i * interval, i = 0 .. snapshots - 1
    spinup: float = 5.0
    snapshots: int = 20
    interval: float = 0.25
    # trajectories per case and split
    train: int = 2
    valid: int = 1
    test: int = 1
    # solver settings
    backend: str = "numpy"
    solver_dtype: str = "float64"
    cfl: float = 0.5
    max_dt: float | None = None
    dealias: bool = True
    penalization: float = 1e-2                    # Brinkman eta (the solver's default)
    # storage
    dtype: str = "float32"
    store_velocity: bool = True
    coarsen_factors: list[int] = field(default_factory=lambda: [4, 8])
    coarsen_method: str = "spectral"
    store_coarse: bool = False
    # coarse-solver states (flexcouple.data.coarse_runs): the solver rerun on n / f from the restricted
    # fine snapshot, restarted every ``coarse_solver_horizon`` snapshots; stored as coarse/solver_x<f>
    coarse_solver_factors: list[int] = field(default_factory=list)
    coarse_solver_horizon: int = 4
    # checks: warn when E(k_cutoff) / max E(k) exceeds this
    resolution_tolerance: float = 1e-4
    ood: list[OODSet] = field(default_factory=list)

    def __post_init__(self):
        preset = PHYSICS.get(self.physics)
        if preset is not None:
            if self.boundaries is None:
                self.boundaries = list(preset["boundaries"])
            if self.forcing is None:
                self.forcing = preset["forcing"]
            if self.drag is None:
                self.drag = preset["drag"]
        self.ood = [o if isinstance(o, OODSet) else OODSet(**o) for o in self.ood]

    # ---- derived -------------------------------------------------------------------------
    def trajectories(self, split: str) -> int:
        if split in SPLITS:
            return getattr(self, split)
        ood = next((o for o in self.ood if o.name == split), None) or self.ood_set(split)
        return ood.trajectories if ood.trajectories is not None else self.test

    def ood_set(self, split: str) -> OODSet:
        for o in self.ood:
            if o.name == split:
                return o
        raise ValueError(f"unknown split {split!r}; this data set has {', '.join(list(SPLITS) + [o.name for o in self.ood])}")

    def split_names(self) -> list[str]:
        """Every split with at least one trajectory (a split set to 0 trajectories is left out)."""
        return [s for s in list(SPLITS) + [o.name for o in self.ood] if self.trajectories(s) > 0]

    def cases(self, split: str) -> list["Case"]:
        """The parameter sets (one HDF5 file each) of a split."""
        reynolds, boundaries, kf = self.reynolds, self.boundaries, self.forcing_wavenumber
        if split not in SPLITS:
            o = self.ood_set(split)
            reynolds = o.reynolds if o.reynolds is not None else reynolds
            boundaries = o.boundaries if o.boundaries is not None else boundaries
            kf = o.forcing_wavenumber if o.forcing_wavenumber is not None else kf
        return [Case(float(re_), b, int(kf)) for b in boundaries for re_ in reynolds]

    def flow(self, case: "Case") -> FlowSpec:
        """The solver's flow specification of one case."""
        return FlowSpec(reynolds=case.reynolds, boundary=case.boundary, forcing_wavenumber=case.forcing_wavenumber,
                        **{f: getattr(self, f) for f in FLOW_FIELDS})

    def solver_kwargs(self, case: "Case") -> dict[str, Any]:
        """Keyword arguments of solver.NavierStokes2D (besides n and comm) for one case."""
        return self.flow(case).solver_kwargs(backend=self.backend, dtype=self.solver_dtype)

    def ic_seed(self, split: str, trajectory: int) -> int:
        """Seed of a trajectory's initial vorticity. Train, valid and test use disjoint blocks;
        OOD sets reuse the test seeds (they differ from the test set by parameter only)."""
        block = SPLITS.index(split) if split in SPLITS else SPLITS.index("test")
        return self.seed * 10 * MAX_TRAJECTORIES + block * MAX_TRAJECTORIES + trajectory

    def times(self) -> list[float]:
        return [self.spinup + i * self.interval for i in range(self.snapshots)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """sha256 of everything that changes the data (the name too: files carry it; not descriptions)."""
        d = self.to_dict()
        d.pop("description")
        if not d["coarse_solver_factors"]:  # unused: data sets made before these keys keep their identity
            d.pop("coarse_solver_factors"), d.pop("coarse_solver_horizon")
        for o in d["ood"]:
            o.pop("description", None)
        from solver.provenance import digest
        return digest(d, compact=True)

    def replace(self, **changes) -> "DataConfig":
        new = copy.deepcopy(self)
        for k, v in changes.items():
            if not hasattr(new, k):
                raise ValueError(f"unknown config field {k!r}")
            setattr(new, k, v)
        return new

    # ---- validation ----------------------------------------------------------------------
    def validate(self) -> "DataConfig":
        """Raise ValueError naming every impossible setting; returns self."""
        errors: list[str] = []

        def err(msg):
            errors.append(msg)

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name or ""):
            err(f"name {self.name!r} must be letters, digits, '-', '_' or '.' (it names files)")
        if self.physics not in PHYSICS:
            err(f"physics {self.physics!r} is unknown; choose one of {', '.join(PHYSICS)}")
        if not _is_int(self.seed) or self.seed < 0:
            err(f"seed must be a non-negative integer, got {self.seed!r}")
        if not _is_int(self.n) or self.n < 8 or self.n % 2:
            err(f"grid n must be an even integer >= 8, got {self.n!r}")
        _check_reynolds(self.reynolds, "flow.reynolds", err)
        _check_boundaries(self.boundaries, "flow.boundaries", err)
        for problem in self._flow_problems():
            err(problem)
        if not _is_number(self.ic_peak_wavenumber) or self.ic_peak_wavenumber <= 0:
            err(f"initial_condition.peak_wavenumber must be > 0, got {self.ic_peak_wavenumber!r}")
        if not _is_number(self.ic_energy) or self.ic_energy <= 0:
            err(f"initial_condition.energy must be > 0, got {self.ic_energy!r}")
        if not _is_number(self.spinup) or self.spinup < 0:
            err(f"time.spinup must be >= 0, got {self.spinup!r}")
        if not _is_int(self.snapshots) or self.snapshots < 1:
            err(f"time.snapshots must be an integer >= 1, got {self.snapshots!r}")
        if not _is_number(self.interval) or self.interval <= 0:
            err(f"time.interval must be > 0, got {self.interval!r}")
        for split in SPLITS:
            v = getattr(self, split)
            lo = 1 if split == "train" else 0
            if not _is_int(v) or not lo <= v < MAX_TRAJECTORIES:
                err(f"trajectories.{split} must be an integer in [{lo}, {MAX_TRAJECTORIES}), got {v!r}")
        if self.backend not in BACKENDS:
            err(f"solver.backend {self.backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
        if self.solver_dtype not in FLOAT_DTYPES:
            err(f"solver.dtype must be one of {FLOAT_DTYPES}, got {self.solver_dtype!r}")
        if self.dtype not in FLOAT_DTYPES:
            err(f"storage.dtype must be one of {FLOAT_DTYPES}, got {self.dtype!r}")
        if self.coarsen_method not in COARSEN_METHODS:
            err(f"storage.coarsen_method must be one of {COARSEN_METHODS}, got {self.coarsen_method!r}")
        _check_factors("coarsen_factors", self.coarsen_factors, self.n, 4, err, allow_empty=False)
        # the coarse solver runs on n / f: at least 16 points
        _check_factors("coarse_solver_factors", self.coarse_solver_factors, self.n, 16, err, allow_empty=True)
        if self.coarse_solver_factors and any(b != "periodic" for b in (self.boundaries or [])):
            err("storage.coarse_solver_factors needs periodic boundaries (the coarse state is a spectral "
                f"truncation), got {self.boundaries}")
        if not _is_int(self.coarse_solver_horizon) or self.coarse_solver_horizon < 1:
            err(f"storage.coarse_solver_horizon must be an integer >= 1 (snapshot intervals), "
                f"got {self.coarse_solver_horizon!r}")
        if not _is_number(self.resolution_tolerance) or self.resolution_tolerance <= 0:
            err(f"checks.resolution_tolerance must be > 0, got {self.resolution_tolerance!r}")
        names = set()
        for o in self.ood:
            where = f"ood set {o.name!r}"
            if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", str(o.name)):
                err(f"{where}: name must be lower-case letters, digits and '_' (it names a directory)")
            if o.name in SPLITS or o.name in names:
                err(f"{where}: name is already used by another split")
            names.add(o.name)
            if o.reynolds is None and o.boundaries is None and o.forcing_wavenumber is None:
                err(f"{where}: changes nothing; set reynolds, boundaries or forcing_wavenumber")
            if o.reynolds is not None:
                _check_reynolds(o.reynolds, f"{where}: reynolds", err)
            if o.boundaries is not None:
                _check_boundaries(o.boundaries, f"{where}: boundaries", err)
            if o.trajectories is not None and (not _is_int(o.trajectories) or not 1 <= o.trajectories < MAX_TRAJECTORIES):
                err(f"{where}: trajectories must be an integer in [1, {MAX_TRAJECTORIES})")
        if errors:
            raise ValueError(f"invalid data config {self.name!r}:\n  - " + "\n  - ".join(errors))
        return self

    def _flow_problems(self) -> list[str]:
        """solver.FlowSpec's problems with every case of every split, each message once, named by the
        TOML key (or the OOD set) that set the value."""
        labels = {f: f"{SECTIONS[f]}.{TOML_KEYS.get(f, f)}" for f in FLOW_FIELDS + ("reynolds", "forcing_wavenumber")}
        labels["boundary"] = "flow.boundaries"
        variants = [(self.reynolds, self.boundaries, self.forcing_wavenumber, labels)]
        for o in self.ood:
            changed = {"reynolds": o.reynolds, "boundary": o.boundaries, "forcing_wavenumber": o.forcing_wavenumber}
            variants.append((self.reynolds if o.reynolds is None else o.reynolds,
                             self.boundaries if o.boundaries is None else o.boundaries,
                             self.forcing_wavenumber if o.forcing_wavenumber is None else o.forcing_wavenumber,
                             dict(labels, **{k: f"ood set {o.name!r}: {'boundaries' if k == 'boundary' else k}"
                                             for k, v in changed.items() if v is not None})))
        n = self.n if _is_int(self.n) and self.n >= 8 and not self.n % 2 else None  # else reported on its own
        problems: dict[str, None] = {}
        for reynolds, boundaries, kf, names in variants:
            # a malformed list is reported on its own; the default stands in so the rest is still checked
            for re_ in _listed(reynolds, FlowSpec.reynolds):
                for b in _listed(boundaries, FlowSpec.boundary):
                    spec = FlowSpec(reynolds=re_, boundary=b, forcing_wavenumber=kf,
                                    **{f: getattr(self, f) for f in FLOW_FIELDS})
                    problems.update(dict.fromkeys(spec.problems(n, labels=names)))
        return list(problems)


@dataclass(frozen=True)
class Case:
    """One parameter set: one HDF5 file per split."""

    reynolds: float
    boundary: str
    forcing_wavenumber: int

    def stem(self, physics: str) -> str:
        b = self.boundary.replace("-", "")
        return f"{physics}_{b}_Re{self.reynolds:.10g}_kf{self.forcing_wavenumber}"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _listed(values, default) -> list:
    return values if isinstance(values, list) and values else [default]


def _check_reynolds(values, where, err):
    """The list itself; each value is checked by solver.FlowSpec."""
    if not isinstance(values, list) or not values:
        err(f"{where} must be a non-empty list of numbers, got {values!r}")
        return
    for r in values:
        if isinstance(r, float) and math.isinf(r) and r > 0:  # the solver's inviscid run; data sets record Re
            err(f"{where}: {r!r} is not a finite Reynolds number (a data set records Re and models condition on it)")
    if len(set(values)) != len(values):
        err(f"{where}: repeated values {values}")


def _check_boundaries(values, where, err):
    """The list itself; each value is checked by solver.FlowSpec."""
    if not isinstance(values, list) or not values:
        err(f"{where} must be a non-empty list, got {values!r}")


# ---- TOML in and out -------------------------------------------------------------------------
def _check_factors(key, factors, n, min_points, err, allow_empty):
    """storage.<key>: a list of integers >= 2 that divide n into coarse grids of >= ``min_points``."""
    if not isinstance(factors, list) or (not factors and not allow_empty):
        err(f"storage.{key} must be a {'' if allow_empty else 'non-empty '}list of integers, got {factors!r}")
        return
    for f in factors:
        if not _is_int(f) or f < 2:
            err(f"storage.{key}: {f!r} is not an integer >= 2")
        elif _is_int(n) and (n % f or n // f < min_points):
            err(f"storage.{key}: {f} does not divide n = {n} into a coarse grid of >= {min_points} points")


def from_dict(raw: dict[str, Any], source: str = "config") -> DataConfig:
    """Build a config from the sectioned TOML structure, rejecting unknown keys."""
    raw = dict(raw)
    flat: dict[str, Any] = {}
    by_section: dict[str | None, dict[str, str]] = {}
    for fname, section in SECTIONS.items():
        by_section.setdefault(section, {})[TOML_KEYS.get(fname, fname)] = fname
    ood = raw.pop("ood", [])
    for key, value in raw.items():
        if isinstance(value, dict):
            fields = by_section.get(key)
            if fields is None:
                raise ValueError(f"{source}: unknown section [{key}]{_suggest(key, [s for s in by_section if s])}")
            for k, v in value.items():
                if k not in fields:
                    raise ValueError(f"{source}: unknown key {k!r} in [{key}]{_suggest(k, fields)}")
                flat[fields[k]] = v
        else:
            fields = by_section[None]
            if key not in fields:
                raise ValueError(f"{source}: unknown key {key!r}{_suggest(key, list(fields) + [s for s in by_section if s])}")
            flat[fields[key]] = value
    if not isinstance(ood, list):
        raise ValueError(f"{source}: 'ood' must be an array of tables ([[ood]])")
    ood_fields = {f.name for f in dataclasses.fields(OODSet)}
    sets = []
    for i, o in enumerate(ood):
        unknown = set(o) - ood_fields
        if unknown:
            k = sorted(unknown)[0]
            raise ValueError(f"{source}: unknown key {k!r} in [[ood]] #{i + 1}{_suggest(k, ood_fields)}")
        if "name" not in o:
            raise ValueError(f"{source}: [[ood]] #{i + 1} has no name")
        sets.append(OODSet(**o))
    # TOML has integers and floats; Reynolds numbers are floats whatever the user typed
    for key in ("reynolds",):
        if isinstance(flat.get(key), list):
            flat[key] = [float(v) if _is_number(v) else v for v in flat[key]]
    for o in sets:
        if isinstance(o.reynolds, list):
            o.reynolds = [float(v) if _is_number(v) else v for v in o.reynolds]
    return DataConfig(**flat, ood=sets)


def _suggest(key, options) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(sorted(options))}"


def load_config(path: str | Path) -> DataConfig:
    """Read a TOML (or JSON) config file; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from None
    return from_dict(raw, source=str(path))


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("flexcouple.presets").iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> DataConfig:
    """A config shipped with the package (flexcouple/presets/NAME.toml)."""
    res = resources.files("flexcouple.presets").joinpath(f"{name}.toml")
    if not res.is_file():
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(preset_names())}")
    return from_dict(tomllib.loads(res.read_text()), source=f"preset {name}")


def to_toml(cfg: DataConfig) -> str:
    """The config as TOML, every field written out (defaults included), loadable by load_config."""
    sections: dict[str | None, list[tuple[str, Any]]] = {}
    for fname, section in SECTIONS.items():
        value = getattr(cfg, fname)
        if value is None:
            continue  # TOML has no null: an absent key means "the default"
        sections.setdefault(section, []).append((TOML_KEYS.get(fname, fname), value))
    lines = [f"# flexcouple data-set config (written by flexcouple {_version()})"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in sections.pop(None, [])]
    for section, items in sections.items():
        lines += ["", f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in items]
    for o in cfg.ood:
        lines += ["", "[[ood]]"]
        for f in dataclasses.fields(OODSet):
            v = getattr(o, f.name)
            if v is not None and not (f.name == "description" and not v):
                lines.append(f"{f.name} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # shortest round-trip repr; always has '.', 'e' or 'inf' so TOML reads a float
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {type(v).__name__} {v!r} to TOML")


def save_config(cfg: DataConfig, path: str | Path) -> None:
    write_text_atomic(path, to_toml(cfg))


def _version() -> str:
    from flexcouple import __version__
    return __version__
