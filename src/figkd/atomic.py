"""Atomic file writes: a file is either its old content or its complete new content, never a part.

The content is written to a temporary file in the same folder, flushed to disk, and renamed onto
the destination (``os.replace`` is atomic on POSIX and Windows). Checkpoints, caches, configs and
metrics summaries are written this way so that a run killed at any instant loses nothing complete.

The file gets the permissions of any file the process creates (``0o666`` less the umask: with the
usual umask 022, readable by everyone, e.g. a teammate's TensorBoard), not the ``0o600`` of the
temporary file. A failed write (full disk, read-only file system, no permission) removes the
temporary file and raises :class:`WriteError`, whose message names the file, the file system and
what to do.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["WriteError", "atomic_write", "atomic_write_bytes", "atomic_write_text", "write_error"]


class WriteError(OSError):
    """A file could not be written; ``errno`` is the system's, the message says where and what to do."""

    def __init__(self, code: int | None, message: str):
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _free_space(folder: Path) -> str:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return f"{shutil.disk_usage(candidate).free / 2**20:.1f} MB free"
            except OSError:
                return "free space unknown"
    return "free space unknown"


def _mount_point(folder: Path) -> Path:
    path = folder.resolve() if folder.exists() else folder.absolute()
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def write_error(path: str | os.PathLike, error: OSError) -> WriteError:
    """A :class:`WriteError` for ``error`` raised while writing ``path``: what happened, where, the fix."""
    if isinstance(error, WriteError):
        return error
    path = Path(path)
    code = error.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left" if code == errno.ENOSPC else "disk quota exceeded"
        return WriteError(code, f"{what} on the file system mounted at {_mount_point(path.parent)} "
                                f"({_free_space(path.parent)}) while writing {path}: free some space there "
                                "or write elsewhere")
    if code == errno.EROFS:
        return WriteError(code, f"cannot write {path}: {path.parent} is on a read-only file system; "
                                "write elsewhere")
    if code in (errno.EACCES, errno.EPERM):
        return WriteError(code, f"cannot write {path}: permission denied; write elsewhere or change the "
                                f"permissions of {path.parent}")
    reason = error.strerror or str(error)
    return WriteError(code, f"cannot write {path}: {reason}")


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read (set and restore)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path``, fsync it, then rename it onto ``path``.

    The file's mode is ``0o666 & ~umask``. An ``OSError`` on the way is raised as :class:`WriteError`
    (after the temporary file is removed); ``path`` keeps its old content, if it had one.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise write_error(path, error) from error
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):  # mkstemp makes the file 0o600
                os.fchmod(fh.fileno(), 0o666 & ~_umask())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException as error:
        tmp_path.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise write_error(path, error) from error
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))
