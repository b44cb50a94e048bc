"""A hybrid run's directory: its run state (for resume), its outputs and its decision log.

``out/`` holds, while a run goes on and after it:

- ``state.npz``: everything a resumed run needs (:data:`STATE_KEYS` in its metadata, the solver's
  state and the checks' windows as arrays), rewritten atomically at every output;
- ``outputs/000000.npz`` ...: one file per output (the field, its source, the ensemble std);
- ``decisions.jsonl``: one line per surrogate decision, appended as it happens; a resumed run cuts it
  back to the decisions its state had counted, so a line is never written twice.

A run resumes only a state of its own identity (:func:`run_identity`: the config's hash, the model
by its content digest); a damaged file is named, never silently replaced.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np

from solver.io import atomic_path, is_temporary, write_text_atomic

STATE_FILE = "state.npz"
DECISIONS_FILE = "decisions.jsonl"
OUTPUTS_DIR = "outputs"
# the files a run writes in its directory (paths relative to it, a regular expression)
RUN_FILES = rf"({re.escape(STATE_FILE)}|{re.escape(DECISIONS_FILE)}|{OUTPUTS_DIR}/\d{{6}}\.npz)"
# every key the metadata of a run state must have to resume
STATE_KEYS = ("tick", "t_solver", "calls", "streak", "suspended_until", "accepted_outputs", "decisions",
              "previous_trusted_tick", "wall_s", "config_hash", "timers", "counts", "history_solver",
              "recent_max", "samples")
# what reading a truncated or foreign .npz raises
_DAMAGE = (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile)


def run_identity(config) -> str:
    """The config's part of a run's identity: its hash without the checkpoint's path, since the
    model is identified by its content digest (recorded beside it), wherever it was loaded from; a
    calibration likewise by its file's digest."""
    changes = {"checkpoint": ""}
    if config.calibration and Path(config.calibration).is_file():
        from coupling.calibration import file_digest
        changes["calibration"] = file_digest(config.calibration)
    return config.replace(**changes).config_hash()


def sort_files(root: Path, ours: str) -> tuple[list[Path], list[Path]]:
    """(ours, others): the files under ``root`` whose path relative to it matches the regular
    expression ``ours``, or that are temporaries of an atomic write; and every other file."""
    mine, others = [], []
    for p in sorted(root.rglob("*")) if root.is_dir() else []:
        if p.is_file() or p.is_symlink():
            own = re.fullmatch(ours, p.relative_to(root).as_posix()) or is_temporary(p.name)
            (mine if own else others).append(p)
    return mine, others


def listed(paths: list[Path], root: Path, most: int = 5) -> str:
    """``paths`` relative to ``root``, the first ``most`` of them, for a message."""
    return ", ".join(str(p.relative_to(root)) for p in paths[:most]) + (" ..." if len(paths) > most else "")


def damaged(path: Path, exc: BaseException) -> ValueError:
    return ValueError(f"{path}: a damaged run state ({type(exc).__name__}: {exc}); the run cannot resume from it: "
                      "rerun with --overwrite to start over, or use another --out")


class RunDirectory:
    """The files of one run in ``root`` (rank 0 writes them; nothing here is collective)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def log_path(self) -> Path:
        return self.root / DECISIONS_FILE

    def output_path(self, i: int) -> Path:
        return self.root / OUTPUTS_DIR / f"{i:06d}.npz"

    # ---- run state ----------------------------------------------------------------------------
    def read_state(self) -> tuple[dict, dict] | None:
        """(meta, arrays) of the run state, None where there is none; a ValueError naming the file
        when it is damaged. A decision log without a state is removed (nothing to resume)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.state_path
        if not path.is_file():
            if self.log_path.exists():
                self.log_path.unlink()
            return None
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: np.asarray(z[k]) for k in z.files if k != "meta"}
            missing = [k for k in STATE_KEYS if k not in meta] + ([] if "solver" in arrays else ["the solver state"])
            if missing:
                raise ValueError(f"it lacks {', '.join(missing)}")
        except _DAMAGE as exc:
            raise damaged(path, exc) from None
        return meta, arrays

    def write_state(self, meta: dict, arrays: dict) -> None:
        """Replace the run state atomically: the previous one stays whole until the new one is."""
        with atomic_path(self.state_path) as tmp, open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)

    # ---- outputs --------------------------------------------------------------------------------
    def write_output(self, i: int, field: np.ndarray, std: np.ndarray | None, source: str) -> None:
        with atomic_path(self.output_path(i)) as tmp, open(tmp, "wb") as f:
            arrays = {"field": field, "source": np.array(source)}
            if std is not None:
                arrays["std"] = std
            np.savez(f, **arrays)

    def read_output(self, i: int) -> tuple[np.ndarray, np.ndarray | None, str]:
        path = self.output_path(i)
        try:
            with np.load(path) as z:
                return z["field"], z["std"] if "std" in z.files else None, str(z["source"])
        except _DAMAGE as exc:
            raise damaged(path, exc) from None

    # ---- decision log -----------------------------------------------------------------------------
    def append_decision(self, entry: dict) -> None:
        with open(self.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def cut_log(self, keep: int) -> list[dict]:
        """Keep the first ``keep`` decisions of the log (a resumed run's state counted that many;
        lines after them were written after its last state) and return them."""
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        lines = lines[:keep]
        write_text_atomic(self.log_path, "".join(line + "\n" for line in lines))
        return [json.loads(line) for line in lines]
