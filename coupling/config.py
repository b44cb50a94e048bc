"""``HybridConfig``: every setting of a hybrid run, read from and written to TOML.

The sibling of :mod:`flexcouple.data.config`: a flat dataclass whose fields live in TOML sections,
unknown keys refused with a "did you mean" hint, every problem reported at once::

    mode = "superres"                 # superres | leapfrog | pure
    [grid]        n = 256   factor = 4
    [flow]        reynolds = 1000.0   forcing = "kolmogorov"   forcing_wavenumber = 4   drag = 0.1 ...
    [time]        t_end = 10.0   output_interval = 0.5   spinup = 0.0
    [initial_condition]   seed = 0   peak_wavenumber = 4.0   energy = 0.5   file = ""
    [solver]      backend = "pyfftw"   dtype = "float64"   cfl = 0.5   max_dt = 0.01 ...
    [surrogate]   kind = "flex"   checkpoint = ""   steps = 2   ensemble = 1   seed = 0 ...
    [superres]    reanchor_every = 0   reanchor_time = 0.0
    [leapfrog]    stretch = 1   jumps = 1   relax = 0
    [checks]      warmup = 2   k_mad = 5.0   window = 32   max_rejections = 3   cooldown = 4 ...
    [checks.thresholds]   energy_budget = 0.05 ...   (fixed thresholds; absent = the default rule)
    [harvest]     enabled = false   dir = ""

[flow] and the solver's cfl, max_dt, dealias and penalization are one ``solver.FlowSpec``
(:meth:`HybridConfig.flow`), checked by its rules and handed to the solver as the data-set config does.
Times are in the solver's units. In ``leapfrog`` every interval is a multiple of the surrogate's lead
time (a "tick"); ``stretch``, ``relax`` and ``cooldown`` count ticks there, outputs otherwise.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexcouple.data.config import _suggest, _toml_value
from solver.physics import FlowSpec

MODES = ("superres", "leapfrog", "pure")
SURROGATES = ("flex", "spectral", "bicubic", "oracle", "persistence")
STRATEGIES = ("gather", "ensemble")
PRECISIONS = ("float32", "bfloat16")
CHECK_NAMES = ("finite", "max_vorticity", "energy_budget", "enstrophy_budget", "tendency", "coarse_forecast",
               "spectrum_resolved",
               "spectrum_tail", "superres_consistency", "ensemble_spread", "solid_velocity")

SECTIONS = {
    "mode": None, "name": None,
    "n": "grid", "factor": "grid",
    "reynolds": "flow", "forcing": "flow", "forcing_wavenumber": "flow", "drag": "flow", "boundary": "flow",
    "pressure_gradient": "flow", "inflow_velocity": "flow",
    "t_end": "time", "output_interval": "time", "spinup": "time",
    "init_seed": "initial_condition", "init_peak_wavenumber": "initial_condition",
    "init_energy": "initial_condition", "init_file": "initial_condition",
    "backend": "solver", "dtype": "solver", "cfl": "solver", "max_dt": "solver", "dealias": "solver",
    "penalization": "solver",
    "surrogate_kind": "surrogate", "checkpoint": "surrogate", "device": "surrogate", "sample_steps": "surrogate",
    "ensemble": "surrogate", "seed": "surrogate", "strategy": "surrogate", "timeout": "surrogate",
    "torch_threads": "surrogate", "lead_time": "surrogate", "allow_unverified": "surrogate", "precision": "surrogate",
    "reanchor_every": "superres", "reanchor_time": "superres",
    "stretch": "leapfrog", "jumps": "leapfrog", "relax": "leapfrog",
    "warmup": "checks", "k_mad": "checks", "window": "checks", "max_rejections": "checks",
    "cooldown": "checks", "disabled_checks": "checks", "calibration": "checks", "thresholds": "checks",
    "floors": "checks", "harvest_enabled": "harvest", "harvest_dir": "harvest", "harvest_audit_every": "harvest",
}
# TOML key inside its section when it differs from the field name
TOML_KEYS = {"init_seed": "seed", "init_peak_wavenumber": "peak_wavenumber", "init_energy": "energy",
             "init_file": "file", "surrogate_kind": "kind", "sample_steps": "steps", "harvest_enabled": "enabled",
             "harvest_dir": "dir", "harvest_audit_every": "audit_every", "disabled_checks": "disabled"}
# the fields that make up the run's solver.FlowSpec
FLOW_FIELDS = ("reynolds", "forcing", "forcing_wavenumber", "drag", "boundary", "pressure_gradient", "inflow_velocity",
               "cfl", "max_dt", "dealias", "penalization")
# flow keys that enter the config hash only when set: runs written before the hybrid config had them
# keep their identity, so they still resume
HASHED_WHEN_SET = ("pressure_gradient", "inflow_velocity", "max_dt", "dealias", "penalization", "calibration",
                   "precision")


@dataclass
class HybridConfig:
    """Every setting of a hybrid run (see the module docstring for the TOML layout)."""

    mode: str = "superres"                # superres | leapfrog | pure
    name: str = "kolmogorov-hybrid"       # a label, written into the output files
    # grid: the fine grid n; the coarse grid of ``superres`` is n / factor
    n: int = 256
    factor: int = 4
    # physics, as in solver.FlowSpec
    reynolds: float = 1000.0
    forcing: str = "kolmogorov"            # kolmogorov | none
    forcing_wavenumber: int = 4
    drag: float = 0.1
    boundary: str = "periodic"             # periodic | free-slip | channel | cylinder | square
    pressure_gradient: float = 0.0         # drives the no-slip channel (boundary "channel")
    inflow_velocity: float = 1.0           # free stream past an obstacle ("cylinder", "square")
    # time: outputs at output_interval, 2 output_interval, ..., t_end (t = 0 is output 0)
    t_end: float = 5.0
    output_interval: float = 0.5
    spinup: float = 5.0                    # fine-solver time from the random field before t = 0
    # initial condition: solver.random_field(n, seed, peak_wavenumber, energy), or a file
    init_seed: int = 0
    init_peak_wavenumber: float = 4.0
    init_energy: float = 0.5
    init_file: str = ""
    # solver
    backend: str = "pyfftw"
    dtype: str = "float64"
    cfl: float = 0.5
    max_dt: float | None = None            # bound on the adaptive step; absent: eta for penalised flows
    dealias: bool = True                   # 2/3-rule dealiasing of the advection term
    penalization: float = 1e-2             # Brinkman eta of penalised solids
    # surrogate
    surrogate_kind: str = "flex"           # flex | spectral | bicubic | oracle | persistence
    checkpoint: str = ""                   # empty: the shipped default model
    device: str = "cpu"                    # cpu | cuda | cuda:<i> (rank r takes local_rank mod count)
    sample_steps: int = 2
    ensemble: int = 1
    seed: int = 0
    strategy: str = "gather"               # gather | ensemble (how MPI ranks share surrogate calls)
    timeout: float = 120.0                 # seconds per call; a slower call is rejected
    torch_threads: int = 0                 # per rank; 0: cores / ranks
    lead_time: float = 0.0                 # forecast stand-ins only (FLEX: from its checkpoint)
    allow_unverified: bool = False         # load a checkpoint whose config.json records no hash of itself
    precision: str = "float32"             # float32 | bfloat16 (autocast; fast on CPUs with AMX / AVX512-BF16)
    # superres mode
    reanchor_every: int = 0                # every N outputs a fine burst re-anchors the coarse run; 0: never
    reanchor_time: float = 0.0             # length of that burst (<= output_interval)
    # leapfrog mode (in ticks of the surrogate's lead time)
    stretch: int = 1                       # solver ticks per cycle (>= history_length - 1)
    jumps: int = 1                         # surrogate jumps per cycle
    relax: int = 0                         # solver ticks after the jumps, kept out of the history
    # drift checks
    warmup: int = 4                        # all-solver ticks before the first surrogate call (leapfrog)
    k_mad: float = 5.0                     # adaptive threshold = median + k_mad * MAD of solver values
    window: int = 32                       # rolling window of solver values
    max_rejections: int = 3                # rejections in a row before the surrogate is suspended
    cooldown: int = 4                      # ticks (outputs in superres) of suspension
    disabled_checks: list[str] = field(default_factory=list)
    calibration: str = ""                  # calibration.json of `flexcouple calibrate`: replaces the defaults
    thresholds: dict[str, float] = field(default_factory=dict)  # fixed thresholds by check name
    floors: dict[str, float] = field(default_factory=dict)      # lower bounds of adaptive thresholds
    # harvest of rejected calls (a data set loadable by SuperResDataset / ForecastDataset)
    harvest_enabled: bool = False
    harvest_dir: str = ""                  # empty: <out>/harvest
    harvest_audit_every: int = 0           # superres: also every Nth ACCEPTED call, with the fine solver's answer

    # ------------------------------------------------------------------------------------------
    def validate(self) -> "HybridConfig":
        """Raise one ValueError listing every problem."""
        problems: list[str] = []

        def err(msg):
            problems.append(msg)

        if self.mode not in MODES:
            err(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not _is_int(self.n) or self.n < 16 or self.n % 2:
            err(f"n must be an even integer >= 16, got {self.n!r}")
        if not _is_int(self.factor) or self.factor < 1:
            err(f"factor must be a positive integer, got {self.factor!r}")
        elif _is_int(self.n) and self.mode == "superres" and (self.n % self.factor or (self.n // self.factor) % 2
                                                             or self.n // self.factor < 8):
            err(f"factor {self.factor} must divide n = {self.n} into an even coarse grid >= 8")
        grid, where = self._coarsest_grid()
        problems += self.flow().problems(grid, grid=where)
        for key in ("t_end", "output_interval"):
            v = getattr(self, key)
            if not _is_num(v) or not v > 0 or not math.isfinite(v):
                err(f"{key} must be a positive finite number, got {v!r}")
        if _is_num(self.t_end) and _is_num(self.output_interval) and self.output_interval > 0:
            ratio = self.t_end / self.output_interval
            if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
                err(f"t_end ({self.t_end}) must be a multiple of output_interval ({self.output_interval})")
        if not _is_num(self.spinup) or not 0 <= self.spinup < math.inf:
            err(f"spinup must be a finite number >= 0, got {self.spinup!r}")
        if self.backend not in ("numpy", "scipy", "pyfftw", "cupy"):
            err(f"backend must be numpy, scipy, pyfftw or cupy, got {self.backend!r}")
        if self.dtype not in ("float64", "float32"):
            err(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        if self.surrogate_kind not in SURROGATES:
            err(f"surrogate kind must be one of {', '.join(SURROGATES)}, got {self.surrogate_kind!r}")
        elif self.mode == "superres" and self.surrogate_kind == "persistence":
            err("the persistence surrogate forecasts; use mode = 'leapfrog' or a super-resolution surrogate")
        elif self.mode == "leapfrog" and self.surrogate_kind in ("spectral", "bicubic"):
            err(f"the {self.surrogate_kind} surrogate super-resolves; use mode = 'superres' or a forecasting surrogate")
        if self.surrogate_kind in ("oracle", "persistence") and self.mode == "leapfrog" and not self.lead_time > 0:
            err(f"the {self.surrogate_kind} stand-in needs [surrogate] lead_time > 0 (FLEX reads it from its checkpoint)")
        if not _is_int(self.sample_steps) or self.sample_steps < 1:
            err(f"surrogate steps must be an integer >= 1, got {self.sample_steps!r}")
        if not _is_int(self.ensemble) or self.ensemble < 1:
            err(f"ensemble must be an integer >= 1, got {self.ensemble!r}")
        if self.strategy not in STRATEGIES:
            err(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if not _is_num(self.timeout) or not self.timeout > 0:
            err(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if not _is_int(self.harvest_audit_every) or self.harvest_audit_every < 0:
            err(f"harvest audit_every must be an integer >= 0, got {self.harvest_audit_every!r}")
        elif self.harvest_audit_every and not (self.harvest_enabled and self.mode == "superres"):
            err("[harvest] audit_every harvests accepted super-resolution calls: it needs enabled = true and "
                "mode = 'superres'")
        if self.precision not in PRECISIONS:
            err(f"surrogate precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.allow_unverified, bool):
            err(f"surrogate allow_unverified must be true or false, got {self.allow_unverified!r}")
        if not _is_int(self.torch_threads) or self.torch_threads < 0:
            err(f"torch_threads must be an integer >= 0, got {self.torch_threads!r}")
        if not (self.device == "cpu" or self.device == "cuda" or str(self.device).startswith("cuda:")):
            err(f"device must be 'cpu', 'cuda' or 'cuda:<index>', got {self.device!r}")
        if not _is_int(self.reanchor_every) or self.reanchor_every < 0:
            err(f"reanchor_every must be an integer >= 0, got {self.reanchor_every!r}")
        if not _is_num(self.reanchor_time) or self.reanchor_time < 0 or (
                _is_num(self.output_interval) and self.reanchor_time > self.output_interval):
            err(f"reanchor_time must be in [0, output_interval], got {self.reanchor_time!r}")
        if self.reanchor_every and not self.reanchor_time > 0:
            err("reanchor_every > 0 needs reanchor_time > 0 (the length of the fine burst)")
        for key, low in (("stretch", 1), ("jumps", 1), ("relax", 0), ("warmup", 0), ("window", 4),
                         ("max_rejections", 1), ("cooldown", 0)):
            v = getattr(self, key)
            if not _is_int(v) or v < low:
                err(f"{key} must be an integer >= {low}, got {v!r}")
        if not _is_num(self.k_mad) or self.k_mad < 0:
            err(f"k_mad must be >= 0, got {self.k_mad!r}")
        for key in ("thresholds", "floors"):
            table = getattr(self, key)
            if not isinstance(table, dict):
                err(f"[checks.{key}] must be a table of check names to numbers")
                continue
            for name, v in table.items():
                if name not in CHECK_NAMES:
                    err(f"unknown check {name!r} in [checks.{key}]{_suggest(name, CHECK_NAMES)}")
                elif not _is_num(v) or v < 0:
                    err(f"[checks.{key}] {name} must be a number >= 0, got {v!r}")
        if not isinstance(self.calibration, str):
            err(f"[checks] calibration must be the path of a calibration.json (a string), got {self.calibration!r}")
        elif self.calibration and not Path(self.calibration).is_file():
            err(f"[checks] calibration {self.calibration!r} is not a file: write one with `flexcouple calibrate`, "
                "or drop the key to use the checks' default thresholds")
        if not isinstance(self.disabled_checks, list):
            err("checks.disabled must be a list of check names")
        else:
            for name in self.disabled_checks:
                if name not in CHECK_NAMES:
                    err(f"unknown check {name!r} in checks.disabled{_suggest(str(name), CHECK_NAMES)}")
        if problems:
            raise ValueError("invalid hybrid config:\n  - " + "\n  - ".join(problems))
        return self

    def _coarsest_grid(self) -> tuple[int | None, str | None]:
        """The smallest grid a solver of this run integrates on (the forcing must be resolved there),
        and how messages name it; (None, None) while n or factor is itself wrong."""
        if not _is_int(self.n) or self.n < 16 or self.n % 2:
            return None, None
        if self.mode == "superres":
            if not _is_int(self.factor) or self.factor < 1 or self.n % self.factor or (self.n // self.factor) % 2:
                return None, None
            return self.n // self.factor, f"the coarse grid n / factor = {self.n // self.factor}"
        if self.mode == "leapfrog" and isinstance(self.disabled_checks, list) \
                and "coarse_forecast" not in self.disabled_checks:
            from coupling.checks import forecast_factor
            grid = self.n // forecast_factor(self.n)
            if grid < self.n:
                return grid, f"the coarse_forecast check's grid n = {grid} ([checks] disabled = [\"coarse_forecast\"] drops it)"
        return self.n, None

    # ------------------------------------------------------------------------------------------
    @property
    def n_outputs(self) -> int:
        """Outputs including t = 0."""
        return int(round(self.t_end / self.output_interval)) + 1

    def output_times(self) -> list[float]:
        return [i * self.output_interval for i in range(self.n_outputs)]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def config_hash(self) -> str:
        """Identity of a run: everything that changes its trajectory (not where it writes)."""
        d = self.to_dict()
        # the fields under the names they had when identities were first hashed, so identities stay
        d["surrogate"], d["harvest"] = d.pop("surrogate_kind"), d.pop("harvest_enabled")
        for key in ("harvest", "harvest_dir", "harvest_audit_every", "name", "torch_threads", "timeout",
                    "allow_unverified"):
            d.pop(key, None)
        defaults = HybridConfig()
        for key in HASHED_WHEN_SET:
            if d[key] == getattr(defaults, key):
                d.pop(key)
        from solver.provenance import digest
        return digest(d, length=16)

    def replace(self, **changes) -> "HybridConfig":
        return dataclasses.replace(self, **changes)

    def flow(self) -> FlowSpec:
        """The run's flow specification (the same one a data-set config gives its cases)."""
        return FlowSpec(**{f: getattr(self, f) for f in FLOW_FIELDS})

    def solver_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of solver.NavierStokes2D (besides n and comm) for this run."""
        return self.flow().solver_kwargs(backend=self.backend, dtype=self.dtype)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "HybridConfig":
        """From the sectioned TOML structure; unknown sections and keys are errors with a hint."""
        by_section: dict[str | None, dict[str, str]] = {}
        for fname, section in SECTIONS.items():
            by_section.setdefault(section, {})[TOML_KEYS.get(fname, fname)] = fname
        flat: dict[str, Any] = {}
        problems = []
        for key, value in raw.items():
            if isinstance(value, dict):
                fields = by_section.get(key)
                if fields is None:
                    problems.append(f"unknown section [{key}]{_suggest(key, [s for s in by_section if s])}")
                    continue
                for k, v in value.items():
                    if k not in fields:
                        problems.append(f"unknown key {k!r} in [{key}]{_suggest(k, fields)}")
                    else:
                        flat[fields[k]] = v
            else:
                fields = by_section[None]
                if key not in fields:
                    problems.append(f"unknown key {key!r}{_suggest(key, list(fields) + [s for s in by_section if s])}")
                else:
                    flat[fields[key]] = value
        if problems:
            raise ValueError(f"{source}: " + "; ".join(problems))
        for key in ("reynolds", "drag", "t_end", "output_interval", "spinup", "cfl", "timeout", "lead_time",
                    "reanchor_time", "k_mad", "init_peak_wavenumber", "init_energy", "pressure_gradient",
                    "inflow_velocity", "max_dt", "penalization"):
            if _is_int(flat.get(key)):
                flat[key] = float(flat[key])  # TOML integers where a float is meant
        return cls(**flat).validate()

    @classmethod
    def from_toml(cls, path: str | Path) -> "HybridConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"hybrid config {path} does not exist; write an example with "
                                    f"`flexcouple run --print-config > {path.name}`")
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(raw, source=str(path))

    def to_toml(self, comments: bool = True) -> str:
        """The config as TOML (every field), loadable by ``from_toml``; with comments for --print-config."""
        notes = _field_comments() if comments else {}
        sections: dict[str | None, list[str]] = {}
        nested: list[str] = []
        for fname, section in SECTIONS.items():
            value = getattr(self, fname)
            key = TOML_KEYS.get(fname, fname)
            if value is None:  # TOML has no null: an absent key means the default
                if fname in notes:
                    sections.setdefault(section, []).append(f"{'# ' + key + ' = <number>':<40} # {notes[fname]}")
                continue
            if isinstance(value, dict):
                body = [f"{k} = {_toml_value(v)}" for k, v in value.items()]
                nested += ["", f"[{section}.{key}]" + (f"   # {notes[fname]}" if fname in notes else "")] + body
                continue
            line = f"{key} = {_toml_value(value)}"
            if fname in notes:
                line = f"{line:<40} # {notes[fname]}"
            sections.setdefault(section, []).append(line)
        lines = ["# flexcouple hybrid-run config: `flexcouple run --config THIS.toml`"]
        lines += sections.pop(None, [])
        for section, items in sections.items():
            lines += ["", f"[{section}]"] + items
        return "\n".join(lines + nested) + "\n"


def _field_comments() -> dict[str, str]:
    """The comment after each field in the dataclass source (for a self-documenting example)."""
    import inspect
    import re
    notes = {}
    for line in inspect.getsource(HybridConfig).splitlines():
        m = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
        if m:
            notes[m.group(1)] = m.group(2).strip()
    return notes


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))
