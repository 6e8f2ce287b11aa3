"""One curation run per output folder at a time.

Local folders (and NFS): ``<output>/.anytalker-run.lock`` is held with ``flock`` for the whole
run and names its holder (pid, host, process start time, command, start time). The kernel drops
a ``flock`` when its process dies, even by kill -9, so a stale lock never blocks: the file is
simply taken over. When ``flock`` is not enforced by the filesystem, the recorded holder decides:
a holder on this host whose pid is gone (or now belongs to a process started at another time) is
stale; a holder on another host is trusted until its file is removed.

Object-store outputs (``s3://`` ...) cannot be locked atomically through pyarrow: a best-effort
lock object ``_run.lock.json`` is written and checked the same way (same-host stale detection);
two runs started within the same second on different machines can both pass. Use one driver
per output prefix there.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from typing import Iterator

from kernel.errors import UserError
from pipelines.storage import Storage, is_uri

LOCK_NAME = ".anytalker-run.lock"
REMOTE_LOCK_NAME = "_run.lock.json"


class RunLocked(UserError):
    """Another run holds the output folder."""


def _me() -> dict:
    import psutil

    p = psutil.Process()
    return {"pid": p.pid, "host": socket.gethostname(), "pid_started": round(p.create_time(), 3),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(sys.argv)[:500]}


def holder_alive(holder: dict) -> bool:
    """False when ``holder`` is a process of this host that no longer runs."""
    import psutil

    if holder.get("host") != socket.gethostname():
        return True  # another machine's process: cannot be checked from here
    try:
        p = psutil.Process(int(holder["pid"]))
        started = holder.get("pid_started")
        return started is None or abs(p.create_time() - float(started)) < 0.01
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def describe(holder: dict) -> str:
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started_at')}"
            f" ({holder.get('command', '?')})")


def _refuse(where: str, holder: dict, lock_path: str) -> RunLocked:
    return RunLocked(f"{where}: another run is writing this output folder ({describe(holder)}); wait for it, "
                     f"stop it, or use another --output (if it is gone, delete {lock_path})")


@contextlib.contextmanager
def run_lock(output: str | os.PathLike) -> Iterator[dict]:
    """Hold the output folder's run lock for the block; raise ``RunLocked`` naming the holder."""
    if is_uri(output):
        with _remote_lock(Storage(output)) as me:
            yield me
        return
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as e:
        raise UserError(f"{output}: cannot create the output folder ({e.strerror or e}); choose a writable "
                        "--output") from e
    path = os.path.join(os.fspath(output), LOCK_NAME)
    try:
        fd = _acquire(output, path)
    except OSError as e:
        raise UserError(f"{output}: cannot write the run lock {LOCK_NAME} ({e.strerror or e}); choose a writable "
                        "--output with free space") from e
    try:
        yield _me_into(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # before unlocking: a waiter then sees a new file, not this one
        os.close(fd)


def _acquire(output: str | os.PathLike, path: str) -> int:
    """Open ``path`` and hold its flock; return the descriptor (refuse if a live run holds it)."""
    import fcntl

    while True:
        # read-only descriptor: flock works on it, and no file stays open for writing during the
        # run (that would keep the filesystem from being remounted read-only, for one)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_fd(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _refuse(os.fspath(output), holder, path) from None
            raise
        # the file may have been removed by a finishing holder between our open and flock
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        holder = _read_fd(fd)
        if holder and holder.get("host") != socket.gethostname():
            # flock may not reach across machines on this filesystem: trust the other host's record
            os.close(fd)
            raise _refuse(os.fspath(output), holder, path)
        return fd


def _me_into(path: str) -> dict:
    me = _me()
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(me, f)
    except OSError:
        pass  # a full disk: the flock still holds; only the holder's description is missing
    return me


def _read_fd(fd: int) -> dict:
    try:
        data = os.pread(fd, 65536, 0)
        return json.loads(data) if data.strip() else {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _remote_lock(store: Storage) -> Iterator[dict]:
    if store.is_file(REMOTE_LOCK_NAME):
        try:
            holder = store.read_json(REMOTE_LOCK_NAME)
        except (OSError, ValueError):
            holder = {}
        if holder and holder_alive(holder):
            raise _refuse(str(store), holder, store.path(REMOTE_LOCK_NAME))
    me = _me()
    store.makedirs()
    store.write_json(REMOTE_LOCK_NAME, me)
    try:
        yield me
    finally:
        with contextlib.suppress(OSError):
            store.delete(REMOTE_LOCK_NAME)
