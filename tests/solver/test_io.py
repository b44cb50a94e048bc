"""solver.io: the one atomic writer, its exact temporary-name pattern, and the one-line OS errors."""
import errno
import os

import pytest

from solver import io


def test_only_exact_temporaries_of_the_given_files_are_removed(tmp_path):
    with pytest.raises(RuntimeError):
        with io.atomic_path(tmp_path / "a.h5") as tmp:
            tmp.write_bytes(b"partial")
            killed = tmp.name
            raise RuntimeError("killed")
    assert io.is_temporary(killed) and io.is_temporary(killed, {"a.h5"}) and not io.is_temporary(killed, {"b.h5"})
    stale = [tmp_path / ".a.h5.tmp-abc_1234", tmp_path / ".b.json.tmp-zzzzzzzz"]
    users = [tmp_path / "backup.tmp-2024.txt", tmp_path / "a.h5.tmp-abc_1234", tmp_path / ".a.h5.tmp-1",
             tmp_path / ".a.h5.tmp-ABCDEFGH", tmp_path / "notes" / ".a.h5.tmp-abc_1234"]
    for p in stale + users:
        p.parent.mkdir(exist_ok=True)
        p.write_text("x")
    assert io.remove_temporaries(tmp_path, {"a.h5"}) == [stale[0]]
    assert io.remove_temporaries(tmp_path) == [stale[1]]
    assert all(p.exists() for p in users)  # not the pattern, or below the folder


def test_a_full_disk_removes_the_temporary_and_says_what_to_do(tmp_path, full_disk):
    with pytest.raises(io.NoSpaceError) as caught:
        io.write_text_atomic(tmp_path / "x.json", "{}")
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert str(caught.value).startswith(f"no space left on device while writing {tmp_path / 'x.json'} (file system ")
    assert str(caught.value).endswith(": free space and rerun") and list(tmp_path.iterdir()) == []
    # libraries that wrap the OS error in their own text (h5py, safetensors) are recognised too
    assert io.is_disk_full(RuntimeError("I/O error: No space left on device (os error 28)"))


def test_os_errors_read_as_one_line_with_the_path_and_what_to_do():
    exists = io.os_error_message(FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), "out/demo"))
    assert exists == "out/demo: file exists; something is in the way: move it, or choose another path"
    denied = io.os_error_message(PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data/x.h5"))
    assert denied.startswith("/data/x.h5: permission denied; check its permissions")
    assert io.os_error_message(FileNotFoundError("restart file a.npy does not exist")) == \
        "restart file a.npy does not exist"  # our own messages pass through
    full = io.os_error_message(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/y.png"))
    assert full.startswith("no space left on device while writing /x/y.png")
