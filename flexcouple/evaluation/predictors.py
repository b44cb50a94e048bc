"""What ``flexcouple evaluate`` evaluates: a trained checkpoint or a baseline (bicubic, spectral,
persistence) as a :class:`Predictor`, with its normalisation and what it was trained for."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

BASELINES = {"bicubic": "superres", "spectral": "superres", "persistence": "forecast"}


@dataclass
class Predictor:
    """A model (or baseline) with its normalisation and what it was trained for."""

    label: str
    model: object
    kind: str  # "checkpoint" | "baseline"
    tasks: tuple[str, ...]
    config: dict = field(default_factory=dict)
    source: str = ""

    @property
    def normalization(self) -> dict | None:
        return self.config.get("normalization")

    @property
    def cond_snapshots(self) -> int:
        return int(self.config.get("cond_snapshots", 2))

    def describe(self) -> dict:
        keys = ("model", "size", "tasks", "image_size", "cond_snapshots", "space", "normalization", "code_version")
        d = {"label": self.label, "kind": self.kind, "source": self.source}
        d.update({k: self.config[k] for k in keys if k in self.config})
        if self.kind == "checkpoint":
            d["parameters"] = int(sum(p.numel() for p in self.model.parameters()))
            data = self.config.get("data") or {}
            d["data"] = {k: data[k] for k in ("root", "crop", "splits", "superres_options", "forecast_options")
                         if k in data}
        return d

    def training_options(self, task: str) -> dict:
        """How the checkpoint's training data were made (``flexcouple train`` records the data set's
        ``factor`` / ``coarsen_method`` or ``past`` / ``lead`` under data.<task>_options)."""
        data = self.config.get("data") or {}
        opts = dict(data.get(f"{task}_options") or {})
        for key in ("factor", "coarsen_method", "lead"):  # flatter configs written by hand
            if key not in opts and data.get(key) is not None:
                opts[key] = data[key]
        return opts

    def training_factor(self) -> int | None:
        """The super-resolution factor the checkpoint was trained with, when its config records it."""
        f = self.training_options("superres").get("factor")
        return None if f is None else int(f)

    def divisor(self) -> int:
        backbone = getattr(self.model, "backbone", None)
        return int(getattr(backbone, "divisor", 1))


def load_predictor(spec: str, task: str, *, device: str = "cpu", label: str | None = None,
                   cond_snapshots: int = 2, allow_unverified: bool = False) -> Predictor:
    """A checkpoint directory or a baseline name -> Predictor (refuses a model without ``task``)."""
    if spec in BASELINES:
        from flexcouple.models import build_model
        if BASELINES[spec] != task:
            raise ValueError(f"the {spec} baseline does {BASELINES[spec]}, not {task}; use "
                             f"{' or '.join(b for b, t in BASELINES.items() if t == task)} for --task {task}")
        model = build_model(spec, tasks=(task,), cond_snapshots=cond_snapshots)
        return Predictor(label or spec, model, "baseline", (task,), dict(model.config), spec)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {spec} does not exist (give a checkpoint directory written by "
                                f"'flexcouple train', or one of the baselines {', '.join(BASELINES)})")
    from flexcouple.checkpoint import load_checkpoint
    model, config = load_checkpoint(path, device=device, allow_unverified=allow_unverified)
    model.eval()
    tasks = tuple(config.get("tasks", ()))
    if task not in tasks:
        raise ValueError(f"checkpoint {spec} was trained for {', '.join(tasks) or 'no task'}, not {task}; "
                         f"evaluate it with --task {tasks[0] if tasks else '...'} or pick another checkpoint")
    if not config.get("normalization"):
        raise ValueError(f"checkpoint {spec} has no normalization in its config; it cannot be evaluated")
    return Predictor(label or path.name, model, "checkpoint", tasks, config, str(path))


def _unique_labels(specs: list[str], labels: list[str] | None) -> list[str]:
    if labels:
        if len(labels) != len(specs):
            raise ValueError(f"{len(labels)} --label values for {len(specs)} checkpoints; give one per checkpoint")
        out = list(labels)
    else:
        out = [s if s in BASELINES else Path(s).name or s for s in specs]
    seen: dict[str, int] = {}
    for i, name in enumerate(out):
        if name in seen:
            seen[name] += 1
            out[i] = f"{name}-{seen[name]}"
        else:
            seen[name] = 1
    return out
