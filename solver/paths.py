"""Output paths checked before any work, so a long run never ends in a PermissionError.

Used by every command that writes (``simulate``, ``generate``, ``train``, ``evaluate``): the path,
or the nearest folder above it that exists, must be a writable directory, and the path itself must
not be the wrong kind of thing (a folder where a file goes, a file where a folder goes).
"""
from __future__ import annotations

import os
from pathlib import Path


def check_writable(path, what: str, *, directory: bool = False) -> None:
    """Raise ValueError naming ``what`` (e.g. "--out") when ``path`` cannot be written.

    ``directory``: the path is a folder the command creates or fills, else a file it writes.
    """
    path = Path(path)
    if path.exists():
        if directory and not path.is_dir():
            raise ValueError(f"{what} {path} is a file, not a directory")
        if not directory and path.is_dir():
            raise ValueError(f"{what} {path} is a directory; give a file name")
        if not os.access(path, os.W_OK | (os.X_OK if directory else 0)):
            raise ValueError(f"{what} {path} is not writable")
        if directory:
            return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: the folder {parent} is not writable")
