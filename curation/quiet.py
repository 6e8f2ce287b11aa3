"""Keep third-party start-up chatter (mediapipe / TFLite / absl C++ logging, Ray) off the terminal.

mediapipe's C++ graph code logs through absl straight to file descriptor 2: Python's ``logging``
never sees those lines and ``GLOG_minloglevel`` / ``TF_CPP_MIN_LOG_LEVEL`` do not reach absl's
logger. :func:`native_stderr_quiet` therefore points fd 2 at a temporary file while native code
runs (model creation, the first ``process`` calls) and afterwards copies back every line that
is not known chatter, so errors and unknown warnings still reach the user.

Verbosity travels in the environment (``ANYTALKER_VERBOSE=1``), so Ray workers and subprocesses
started by the CLI behave like the driver. ``-v`` on the command line sets it and turns all of
this off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from typing import Iterator

VERBOSE_ENV = "ANYTALKER_VERBOSE"

# Environment that native libraries read when they load (must be set before their import).
QUIET_ENV = {
    "GLOG_minloglevel": "2",        # glog (older mediapipe builds): errors only
    "TF_CPP_MIN_LOG_LEVEL": "2",    # TensorFlow / TFLite C++: errors only
    "ABSL_MIN_LOG_LEVEL": "2",      # absl builds that read it
    "RAY_USAGE_STATS_ENABLED": "0",  # "Usage stats collection is ..." notice
    "RAY_DEDUP_LOGS": "1",
}

# Lines printed by native libraries that carry no information for a user of this toolkit.
# absl/glog prefix: severity letter, MMDD (or 0000), time, thread, file:line].
_CHATTER = [
    re.compile(r"^[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "),  # absl/glog INFO and WARNING lines
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(r"^INFO: Created TensorFlow Lite"),
    re.compile(r"^INFO: Initialized TensorFlow Lite"),
    # Ray's C++ core on the driver: INFO/WARNING lines, and an ERROR-level notice about the
    # restart policy Ray Data itself chose for its actor pools
    re.compile(r"^\[[\d\- :,.]+ [IW] \d+ \d+\] \S+:\d+: "),
    re.compile(r"^\[[\d\- :,.]+ E \d+ \d+\] core_worker\.cc:\d+: Actor with class name: .* has constructor "
               r"arguments in the object store and max_restarts > 0"),
    re.compile(r"^\s*$"),
]

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_capture = None


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
    """Record the verbosity for this process and every process it starts (Ray workers too)."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)
    apply_env()


def apply_env() -> None:
    """Set the native libraries' log-level variables (unless verbose). Call before importing them."""
    if verbose():
        return
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)


def is_chatter(line: str) -> bool:
    return any(p.search(line) for p in _CHATTER)


def _replay(data: bytes) -> None:
    keep = [ln for ln in data.decode("utf-8", "replace").splitlines() if not is_chatter(ln)]
    if keep:
        os.write(_saved_fd if _saved_fd is not None else 2, ("\n".join(keep) + "\n").encode())


@contextlib.contextmanager
def native_stderr_quiet(enabled: bool | None = None) -> Iterator[None]:
    """Send fd 2 to a temporary file for the duration; afterwards re-print what is not chatter.

    Nested and concurrent uses share one redirection (the first in redirects, the last out
    restores and replays). Python-level writes to ``sys.stderr`` inside the block are captured
    and replayed too, so nothing that matters is lost, only delayed to the end of the block.
    """
    global _depth, _saved_fd, _capture
    if enabled is None:
        enabled = not verbose()
    if not enabled:
        yield
        return
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError):
                pass
            try:
                _capture = tempfile.TemporaryFile()
                _saved_fd = os.dup(2)
                os.dup2(_capture.fileno(), 2)
            except OSError:  # no fd 2 (daemonised) or no temp dir: run unredirected
                _capture, _saved_fd = None, None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                try:
                    sys.stderr.flush()
                except (AttributeError, ValueError):
                    pass
                os.dup2(_saved_fd, 2)
                try:
                    _capture.seek(0)
                    _replay(_capture.read())
                finally:
                    os.close(_saved_fd)
                    _capture.close()
                    _saved_fd, _capture = None, None


@contextlib.contextmanager
def filtered_process_stderr(enabled: bool | None = None) -> Iterator[None]:
    """For a command-line driver: native code (and child processes) that write to fd 2 go
    through a filter that drops known chatter; Python's own ``sys.stderr`` (progress bars,
    warnings, tracebacks) keeps writing to the real stderr directly, unfiltered and unbuffered.

    Lines from C++ libraries (absl/glog, TFLite, Ray's core worker) cannot be silenced any other
    way once the library is loaded; this also covers lines that appear long after model
    creation, from a library's own threads.
    """
    if enabled is None:
        enabled = not verbose()
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
        r, w = os.pipe()
    except (OSError, AttributeError, ValueError):
        yield
        return
    import io

    old_stderr = sys.stderr
    try:
        on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, ValueError, OSError):  # already captured in Python (pytest capsys)
        on_fd2 = False
    if on_fd2:
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(real), "wb", buffering=0), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True, write_through=True)
    import faulthandler

    # a segfault's Python traceback goes straight to the real stderr, not through the pipe
    own_faulthandler = not faulthandler.is_enabled()
    if own_faulthandler:
        faulthandler.enable(file=sys.stderr if on_fd2 else real)
    os.dup2(w, 2)
    os.close(w)

    def pump() -> None:
        buf = b""
        with os.fdopen(r, "rb", buffering=0) as src:
            while True:
                try:
                    chunk = src.read(65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                keep = [ln for ln in lines if not is_chatter(ln.decode("utf-8", "replace"))]
                if keep:
                    try:
                        os.write(real, b"\n".join(keep) + b"\n")
                    except OSError:
                        pass
        if buf and not is_chatter(buf.decode("utf-8", "replace")):
            try:
                os.write(real, buf + b"\n")
            except OSError:
                pass

    t = threading.Thread(target=pump, name="anytalker-stderr-filter", daemon=True)
    t.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        # fd 2 back to the real stderr; the pipe closes once no child holds it any more
        os.dup2(real, 2)
        if own_faulthandler:
            faulthandler.disable()
        t.join(timeout=0.5)  # children (a local Ray runtime) may still hold the pipe
        if sys.stderr is not old_stderr:
            sys.stderr.close()
            sys.stderr = old_stderr
        if not t.is_alive():
            os.close(real)


def quiet_python_loggers() -> None:
    """Third-party Python loggers that announce routine start-up at INFO level."""
    if verbose():
        return
    for name in ("absl", "ray", "ray.data", "ray.train", "ray.tune", "pyscenedetect", "jax", "numexpr"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:  # absl's Python logger (mediapipe imports it) prints a warning about STDERR otherwise
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


# Ray notices that need no action from a user of this toolkit (the toolkit chose the setting).
_RAY_NOTICES = (
    "Token authentication is enabled for this Ray cluster",
    "Progress bars disabled",
)


class RayConsoleFilter(logging.Filter):
    """On Ray's console handlers: drops INFO start-up lines and notices about Ray's own
    settings; keeps every ERROR and every other WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        if record.levelno < logging.WARNING:
            return False
        if "issue_detect" in record.name:  # operator memory advice about Ray Data internals
            return False
        msg = record.getMessage()
        return not any(msg.startswith(n) for n in _RAY_NOTICES)


def quiet_ray() -> None:
    """Filter the console handlers of the driver's ``ray`` and ``ray.data`` loggers (their log
    files keep everything). Call after ``import ray`` and before ``ray.init``."""
    if verbose():
        return
    import ray  # noqa: F401  (creates the "ray" handlers)
    import ray.data  # noqa: F401  (creates the "ray.data" handlers)

    for name in ("ray", "ray.data"):
        for h in logging.getLogger(name).handlers:
            if h.name == "file" or type(h).__name__.endswith("FileHandler"):
                continue
            if not any(isinstance(f, RayConsoleFilter) for f in h.filters):
                h.addFilter(RayConsoleFilter())


def ray_init_kwargs() -> dict:
    """Arguments for ``ray.init`` that keep its start-up and worker output off the terminal
    unless verbose (worker logs stay in Ray's session log folder)."""
    if verbose():
        return {"log_to_driver": True, "logging_level": logging.INFO}
    # a local runtime's workers inherit this process's environment (ANYTALKER_VERBOSE, QUIET_ENV)
    return {"log_to_driver": False, "logging_level": logging.WARNING}
