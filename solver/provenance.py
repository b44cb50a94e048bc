"""Where a result came from: the source tree's git commit, one definition for every writer (data sets,
checkpoints, calibrations, benchmarks)."""
from __future__ import annotations

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
