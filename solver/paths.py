"""Paths checked before any work, so a long run never ends in a PermissionError.

Outputs (:func:`check_writable`, every command that writes): the path, or the nearest folder above it
that exists, must be a writable directory. Inputs (:func:`check_readable`): the path must exist and be
readable. Either must not be the wrong kind of thing (a folder where a file goes, a file where a
folder goes), and the message says which.
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
        _check_kind(path, what, directory)
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


def check_readable(path, what: str, *, directory: bool = False, hint: str = "") -> Path:
    """Raise naming ``what`` (e.g. "--data") when ``path`` cannot be read: FileNotFoundError when it
    is missing, ValueError when it is the wrong kind of thing or unreadable. ``hint`` (what to do)
    ends the message of a missing or wrong-kind path. Returns the path."""
    path = Path(path)
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{what} {path} does not exist{hint}") from None
    except PermissionError:
        raise ValueError(f"{what} {path} cannot be reached: a folder above it is not searchable "
                         f"(permission denied)") from None
    _check_kind(path, what, directory, hint)
    if not os.access(path, os.R_OK | (os.X_OK if directory else 0)):
        raise ValueError(f"{what} {path} is not readable; check its permissions")
    return path


def _check_kind(path: Path, what: str, directory: bool, hint: str = "") -> None:
    """Refuse a file where a folder goes, or a folder where a file goes."""
    if directory and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a directory{hint}")
    if not directory and path.is_dir():
        raise ValueError(f"{what} {path} is a directory; give a file name{hint}")
