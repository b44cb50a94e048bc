"""Atomic file writes, and one clear error for every failed write or read of a file.

Every file a command writes goes through :func:`atomic_path`: the data go to a temporary
``.<final name>.tmp-<8 random characters>`` beside the final file (``mkstemp``), are fsync'ed and
renamed onto the final name (atomic on POSIX), so a killed run never leaves a half-written file under a
final name. Any failure removes the temporary; a full disk or quota (ENOSPC, EDQUOT) raises
:class:`NoSpaceError` ("no space left on device while writing FILE ...: free space and rerun"), so
the rerun works once space is freed. :func:`remove_temporaries` deletes, in one folder, only names of
exactly that pattern: the temporaries a killed writer left.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

TMP_MARK = ".tmp-"
_TMP_NAME = re.compile(r"\.(?P<final>.+)\.tmp-[a-z0-9_]{8}")  # mkstemp's random part: 8 of [a-z0-9_]
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# libraries that wrap the OS error in their own text: h5py ("errno = 28, error message = 'No space
# left on device'"), safetensors (Rust: "No space left on device (os error 28)", StorageFull)
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "StorageFull", "QuotaExceeded")


class NoSpaceError(OSError):
    """The file system filled up while writing ``filename``; the temporary was removed."""

    def __str__(self) -> str:
        return (f"no space left on device while writing {self.filename} (file system {mount_point(self.filename)}): "
                f"free space and rerun")


def no_space(path) -> NoSpaceError:
    return NoSpaceError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def mount_point(path) -> str:
    """The mount point of the file system that holds ``path`` (or would hold it)."""
    p = Path(os.path.abspath(path))
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return str(p)


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return True
    return any(text in str(exc) for text in _DISK_FULL_TEXT)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    The temporary is removed whatever happens; a full disk raises :class:`NoSpaceError`."""
    path = Path(path)
    if path.is_dir():  # else the rename at the end fails, naming the temporary
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the final file gets the usual permissions
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except Exception as exc:
        if is_disk_full(exc):  # also a nested atomic_path's NoSpaceError: it names our temporary
            raise no_space(path) from exc
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def is_temporary(name: str, finals: Iterable[str] | None = None) -> bool:
    """Whether ``name`` is one of :func:`atomic_path`'s temporaries (of one of ``finals``, if given)."""
    m = _TMP_NAME.fullmatch(name)
    return m is not None and (finals is None or m["final"] in set(finals))


def remove_temporaries(directory: str | os.PathLike, finals: Iterable[str] | None = None) -> list[Path]:
    """Delete the temporaries a killed writer left in ``directory`` (not below it): regular files
    named exactly ``.<final>.tmp-<8 characters>``, only for the final names ``finals`` if given."""
    directory = Path(directory)
    finals = None if finals is None else set(finals)
    removed = []
    if directory.is_dir():
        for p in sorted(directory.iterdir()):
            if is_temporary(p.name, finals) and p.is_file() and not p.is_symlink():
                p.unlink()
                removed.append(p)
    return removed


# ---- reporting ---------------------------------------------------------------------------------
_HINTS = {
    errno.EACCES: "check its permissions, or choose another path",
    errno.EPERM: "check its permissions, or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.EISDIR: "a directory is where a file is expected: give a file, or move the directory",
    errno.ENOTDIR: "a file is where a directory is expected: check the path",
    errno.EEXIST: "something is in the way: move it, or choose another path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "use a shorter path",
}


def os_error_message(exc: OSError) -> str:
    """One line for the user: what failed, on which path, and what to do (no errno in brackets)."""
    if is_disk_full(exc):
        return str(exc if isinstance(exc, NoSpaceError) else no_space(exc.filename or "a file"))
    if exc.errno is None:  # raised with our own message
        return str(exc)
    reason = (exc.strerror or str(exc)).lower()
    where = f"{exc.filename}: " if exc.filename else ""
    if exc.filename2:
        where = f"{exc.filename} -> {exc.filename2}: "
    hint = _HINTS.get(exc.errno)
    return f"{where}{reason}" + (f"; {hint}" if hint else "")
