"""Fixtures shared by the tests of every package."""
import errno
import os

import pytest


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write (solver.io) fails as on a full disk: ENOSPC when the data are flushed.
    ``full_disk.undo()`` frees the space again."""
    import solver.io

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(solver.io.os, "fsync", fsync)
    return monkeypatch
