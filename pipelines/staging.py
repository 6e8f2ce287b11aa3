"""The driver's local staging folder: inputs that must be local before a stage opens them.

Remote inputs (``s3://...``) are copied here, and a source whose name is not UTF-8 gets a
UTF-8 link here. Most runs need neither, so the folder is made on first use only. It is removed
when the run ends, normally or by an exception (SIGTERM included: ``runner.run_curation``
turns it into ``SystemExit``). A run killed with SIGKILL cannot clean up; its folder carries an
owner file locked (``flock``) by the run's process, which the kernel releases when that process
dies, so the next run (or ``anytalker curate cleanup``) finds the lock free and removes the
folder. A folder whose owner is alive is never touched; one without an owner file (made by a
version before this one, or mid-creation) is left alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "anytalker-stage-"
OWNER_FILE = ".owner"


class StagingDir:
    """A temporary folder made on first ``path()``, owned (locked) by this process until
    ``cleanup()``."""

    def __init__(self, parent: str | os.PathLike | None = None) -> None:
        self.parent = parent
        self._path: Path | None = None
        self._owner_fd: int | None = None

    @property
    def made(self) -> bool:
        return self._path is not None

    def path(self) -> Path:
        if self._path is None:
            path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.parent))
            # lock a temporary name, then rename it: a sweeper only opens OWNER_FILE, which
            # therefore never exists unlocked while this process lives
            tmp = path / (OWNER_FILE + ".new")
            fd = os.open(tmp, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.rename(tmp, path / OWNER_FILE)
            self._path, self._owner_fd = path, fd
        return self._path

    def cleanup(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None
        if self._owner_fd is not None:
            os.close(self._owner_fd)
            self._owner_fd = None

    def __enter__(self) -> "StagingDir":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def sweep_stale(parent: str | os.PathLike | None = None) -> list[str]:
    """Remove staging folders whose owning process has ended; returns their paths."""
    removed = []
    for d in sorted(Path(parent or tempfile.gettempdir()).glob(PREFIX + "*")):
        try:
            fd = os.open(d / OWNER_FILE, os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # no owner file: an older version's folder, or one being made
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its run is alive
            os.close(fd)
            continue
        try:
            shutil.rmtree(d, ignore_errors=True)
            if not d.exists():
                removed.append(str(d))
        finally:
            os.close(fd)
    return removed
