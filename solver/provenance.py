"""Where a result came from and what it is: the source tree's git commit and the canonical digest of a
config, one definition each for every writer (data sets, checkpoints, runs, calibrations, benchmarks)."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout holding solver/, flexcouple/, coupling/


def git_commit(short: bool = False) -> str | None:
    """The commit of the source tree (abbreviated if ``short``), with ``-dirty`` when tracked files
    have local changes; None outside a git checkout (an installed wheel) or without git."""
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", *(["--short"] if short else []), "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def digest(obj, *, compact: bool = False, length: int | None = None, default=None) -> str:
    """SHA-256 (hex, its first ``length`` characters if given) of ``obj`` as canonical JSON: sorted
    keys, ASCII, and ``compact`` separators (no spaces) where asked; ``default`` as for json.dumps.
    Every identity in the project (data-set configs, checkpoint configs, hybrid runs, evaluation
    shards, benchmark protocols) is one of these, so two writers never hash one thing two ways."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":") if compact else None, default=default)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
