"""The lock of a run directory: one process writes a run directory at a time.

`figkd.engine.rundir.RunDir.prepare` takes the lock (:meth:`RunLock.acquire`) before it decides anything
about the directory, and the engine releases it when the run ends, however it ends
(:meth:`RunLock.release`). It is an advisory ``flock`` on the open file ``run.lock`` in the directory, so
the operating system releases it when its process exits in any way, SIGKILL and power cuts included: a
lock left by a dead process is not held, and the next process simply takes it (the file's stale content is
overwritten). A second process that finds the lock held gets one line naming the holder (PID, host and
start time, which the holder writes into the file) and what to do.

The holder removes the file on release, still holding the lock; a process that locked the removed file in
that instant sees that the path no longer names the file it locked and tries again, so two processes never
both hold "the" lock. On a network file system ``flock`` is the server's lock (NFS: Linux emulates it with
byte-range locks); on a platform without ``fcntl`` (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path

from ..errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class RunLock:
    """The lock file ``path`` of the run directory ``run_dir`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, run_dir: str | os.PathLike):
        self.path = Path(path)
        self.run_dir = Path(run_dir)
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> None:
        """Take the lock (creating the run directory); a no-op when this object holds it already.
        ConfigError naming the holder when another process holds it."""
        if self.fd is not None or fcntl is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise ConfigError(f"{self.run_dir} is being written by another figkd process ({holder}): wait for "
                                  f"it to finish or stop it, or choose another --out{_orphan_note(holder)}") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder removed the file as we locked it: lock the current one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{datetime.now().isoformat(timespec='seconds')}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        """Remove the lock file and release the lock (a no-op when not held)."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if _same_file(fd, self.path):
                self.path.unlink()
        except OSError:
            pass  # the folder went away or became read-only: the lock goes with the descriptor anyway
        finally:
            os.close(fd)

    def __del__(self) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _read(fd: int) -> str:
    """What the holder wrote (``pid N on HOST since TIME``), or a phrase when it has not written yet."""
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "it has not written its PID yet"


def _orphan_note(holder: str) -> str:
    """When the holder named is a process of this host that has ended: its data-loading workers (forked
    processes share the lock) still hold the lock for the seconds they take to notice."""
    parts = holder.split()
    if len(parts) < 4 or parts[0] != "pid" or not parts[1].isdigit() or parts[3] != socket.gethostname():
        return ""
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return (" (that process has ended; a process it started, such as a data-loading worker, still holds the "
                "lock and ends within seconds: try again)")
    except OSError:
        pass
    return ""
