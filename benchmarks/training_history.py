"""A shipped model's training curve across stages: append a finished run as one stage, replot.

Each training run keeps its history (loss every 10 steps, validation every ``--val-every``) in
``training_state.json``; a run folder is local to the machine that trained it, so the model card's
curve is kept in the model's folder as ``training_history.json`` (``{"stages": {label: {"run",
"wall_s", "history"}}}``) and drawn as ``training_curve.png`` (training loss, and every validation
metric the runs recorded, against the step counted from the first recorded stage).

    .venv/bin/python benchmarks/training_history.py flexcouple/shipped/flex-c24s4-superres256x2 \\
        --add runs/c24s4-j --label "I: the same settings, 4000 steps from stage H"
    .venv/bin/python benchmarks/training_history.py flexcouple/shipped/flex-c24s4-superres256x2   # replot only

A stage already recorded (its label or its run) is refused rather than counted twice.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from solver.io import write_text_atomic

HISTORY = "training_history.json"
CURVE = "training_curve.png"


def load(model: Path) -> dict:
    path = model / HISTORY
    if not path.is_file():
        return {"stages": {}}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise ValueError(f"{path} is not a training history ({{'stages': {{...}}}})")
    return data


def add_stage(data: dict, run: Path, label: str) -> dict:
    """``data`` with the finished run at ``run`` appended as stage ``label``."""
    state_path = run / "training_state.json"
    if not state_path.is_file():
        raise FileNotFoundError(f"{state_path} not found: --add takes a training run folder (flexcouple train --out)")
    info = json.loads(state_path.read_text()).get("info", {})
    steps = info.get("train_config", {}).get("steps")
    if not info.get("history") or info.get("step") != steps:
        raise ValueError(f"{run} is not finished (step {info.get('step')} of {steps}): finish it with "
                         "`flexcouple train ... --resume` first")
    if label in data["stages"]:
        raise ValueError(f"stage {label!r} is already recorded")
    runs = {stage.get("run") for stage in data["stages"].values()}
    if str(run) in runs:
        raise ValueError(f"run {run} is already recorded as a stage")
    stages = dict(data["stages"])
    stages[label] = {"run": str(run), "wall_s": info.get("wall_s"), "history": info["history"]}
    return {**data, "stages": stages}


def plot(data: dict, out: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(9, 3.2))
    offset, val = 0, {}  # every validation metric the runs recorded (val_rfne_<task>, val_lsd_<task>, ...)
    for label, stage in data["stages"].items():
        rows = stage["history"]
        loss = [(offset + r["step"], r["loss"]) for r in rows if "loss" in r]
        if loss:
            ax_loss.plot(*zip(*loss), lw=0.8, label=f"stage {label.split(':')[0]}")
        for r in rows:
            for key, value in r.items():
                if key.startswith("val_"):
                    val.setdefault(key, []).append((offset + r["step"], value))
        offset += max((r["step"] for r in rows), default=0)
    ax_loss.set(xlabel="step (from the first recorded stage)", ylabel="training loss (10-step mean)", title=title)
    ax_loss.legend(fontsize=8)
    for (key, points), marker in zip(sorted(val.items()), "osd^v<>"):
        ax_val.plot(*zip(*points), marker=marker, label=key.removeprefix("val_").replace("_", " "))
    ax_val.set(xlabel="step (from the first recorded stage)", title="validation")
    ax_val.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="the model's folder (holds training_history.json)")
    p.add_argument("--add", type=Path, help="a finished training run folder to append as one stage")
    p.add_argument("--label", help="the new stage's label (with --add), e.g. 'I: 4000 steps from stage H'")
    p.add_argument("--title", default=None, help="the loss panel's title (default: the stages' letters)")
    args = p.parse_args(argv)
    if not args.model.is_dir():
        p.error(f"{args.model} is not a folder")
    if (args.add is None) != (args.label is None):
        p.error("--add and --label go together")
    try:
        data = load(args.model)
        if args.add is not None:
            data = add_stage(data, args.add, args.label)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not data["stages"]:
        print(f"error: {args.model / HISTORY} has no stages to plot: add one with --add RUN --label L", file=sys.stderr)
        return 2
    title = args.title or "stages " + ", ".join(label.split(":")[0] for label in data["stages"])
    if args.add is not None:
        write_text_atomic(args.model / HISTORY, json.dumps(data))
    plot(data, args.model / CURVE, title)
    print(f"{len(data['stages'])} stages; wrote {args.model / CURVE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
