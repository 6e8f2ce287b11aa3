"""Process hygiene for curation runs: standard input, Ray start-up, Ray leftovers.

Why standard input matters: importing PySceneDetect runs ``ffmpeg -v quiet``, and ffmpeg
reconfigures a terminal on its standard input. A process that does that from a background
process group (a Ray worker, or ``anytalker curate run ... &``) is stopped by the kernel
(SIGTTOU), and so is its whole process group: the run hangs forever. Every process a run starts
therefore gets ``/dev/null`` as standard input: the driver's children through
``stdin_from_devnull``, the processes of a Ray runtime started here by inheriting it (Ray is
started inside ``stdin_from_devnull``), the workers of a cluster started elsewhere through the
``worker_setup`` hook in the job's runtime environment.

Ray leftovers: every Ray process of a runtime that a run starts itself carries
``ANYTALKER_RAY_OWNER=<pid>:<start time>:<host>`` in its environment. When that driver is gone
(kill -9), ``find_orphans`` finds them and ``end_orphans`` ends them; the next run does this
first, and ``anytalker curate cleanup`` does it on demand.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from typing import Any, Iterator

OWNER_ENV = "ANYTALKER_RAY_OWNER"
# Bounded waits: a worker that cannot start (or an actor whose setup hangs) must end the run with
# a hint, not hang it. Model set-up of the person stages takes ~10-40 s on a busy 2-core machine.
START_TIMEOUT_ENV = "ANYTALKER_RAY_START_TIMEOUT_S"
WORKER_NICENESS_ENV = "RAY_worker_niceness"  # Ray's config: nice levels its workers add to the raylet's
DEFAULT_START_TIMEOUT_S = 300.0
# Warm start (default on; "0" turns it off, for a same-run comparison): every worker of a runtime
# started here imports Ray Data as it starts, so the workers Ray prestarts at ray.init have done
# it by the time the run's actors land on them (a fresh Ray run starts Ray before it loads its
# config and hashes its sources: pipelines.runner), instead of while the actors set up.
# Not done: creating Ray Data's three helper actors at ray.init too. They then took the
# prestarted workers, and the run's actors waited for fresh ones: first source 8.77 vs 7.23 s
# (Ray x1, 1 CPU) and 12.67 vs 9.45 s (Ray x2) on 3 inputs, 2026-12-01 08:46 UTC, load 4-5.
WARM_ENV = "ANYTALKER_RAY_WARM"
# Modules a worker imports before it takes work: what every actor of a run (Ray Data's map
# actors and its helper actors) imports first.
WORKER_PRELOAD_MODULES = ("ray.data",)


def warm_start() -> bool:
    return os.environ.get(WARM_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def start_timeout_s() -> float:
    try:
        return max(1.0, float(os.environ.get(START_TIMEOUT_ENV, DEFAULT_START_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_START_TIMEOUT_S


# --- standard input ---------------------------------------------------------------------------


def _devnull_onto_fd0() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(fd, 0)
    finally:
        os.close(fd)


def detach_stdin() -> None:
    """Make /dev/null this process's standard input (fd 0 and ``sys.stdin``), for good."""
    _devnull_onto_fd0()
    try:
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - wraps fd 0, lives as long as the process
    except OSError:
        pass


def worker_setup() -> None:
    """Ray ``worker_process_setup_hook``: runs in every worker before any task or actor."""
    detach_stdin()


@contextlib.contextmanager
def stdin_from_devnull() -> Iterator[None]:
    """/dev/null on fd 0 while the block runs, so every child process started in it (ffmpeg from
    a scenedetect import, the Ray runtime and its workers) inherits it; fd 0 is restored after."""
    try:
        saved = os.dup(0)
    except OSError:  # no fd 0 at all: children get nothing to read either way
        saved = None
    _devnull_onto_fd0()
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 0)
            os.close(saved)


# --- Ray start-up -----------------------------------------------------------------------------


def owner_token() -> str:
    import psutil

    me = psutil.Process()
    return f"{me.pid}:{me.create_time():.3f}:{socket.gethostname()}"


def runtime_env() -> dict[str, Any]:
    return {"worker_process_setup_hook": "pipelines.rayutil.worker_setup"}


def init_ray(address: str | None, num_cpus: int, env_vars: dict[str, str] | None = None) -> None:
    """``ray.init`` with standard input from /dev/null everywhere and, for a runtime started
    here, the owner tag on every Ray process (for ``end_orphans``); ``env_vars`` reach every
    worker before it imports anything (thread caps)."""
    import ray

    from curation.quiet import quiet_ray, ray_init_kwargs

    quiet_ray()  # Ray's start-up lines off the console unless -v (curation/quiet.py)
    kwargs: dict[str, Any] = {"include_dashboard": False, "ignore_reinit_error": True, **ray_init_kwargs()}
    if address:
        env = runtime_env()
        if env_vars:
            env = {**env, "env_vars": dict(env_vars)}
        kwargs["address"] = address
        kwargs["runtime_env"] = env
        with stdin_from_devnull():
            ray.init(**kwargs)
        return
    end_orphans()  # a killed earlier run's Ray processes would hold CPUs and memory
    kwargs["num_cpus"] = num_cpus
    if warm_start():  # the raylet passes them to every worker it starts (--worker-preload-modules)
        kwargs["_system_config"] = {"preload_python_modules": list(WORKER_PRELOAD_MODULES)}
    # A runtime started here needs no runtime environment: its processes inherit this process's
    # environment (the owner tag, the thread caps) and /dev/null as standard input. A job with a
    # runtime environment cannot use the workers Ray prestarts at ray.init: each actor waited for
    # a fresh worker to be set up through the runtime-env agent (2.3-3.1 s from request to the
    # actor's constructor at load 5, vs 0.23 s on a prestarted worker; benchmarks/perf/STAGE_COSTS.md)
    inherited = {OWNER_ENV: owner_token(), **(env_vars or {})}
    # Ray runs its workers 15 nice levels below the driver (RAY_worker_niceness, capped at 19),
    # so the actors doing all of a run's work yielded to the driver, the raylet, the GCS and
    # every other process on the machine, while a local worker has the driver's priority.
    # Same priority as the driver (the raylet's own config, read from its environment at start;
    # a value the user set is kept; a cluster started elsewhere keeps its own setting).
    inherited.setdefault(WORKER_NICENESS_ENV, os.environ.get(WORKER_NICENESS_ENV, "0"))
    saved = {k: os.environ.get(k) for k in inherited}
    os.environ.update(inherited)  # inherited by the runtime's processes, not by later ones
    try:
        with stdin_from_devnull():
            ray.init(**kwargs)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _preflight_probe() -> dict:
    # the import that used to stop workers; failing here names the cause before any real work
    try:
        import scenedetect  # noqa: F401
    except ImportError:
        pass
    return {"pid": os.getpid(), "stdin_tty": os.isatty(0)}


def log_dir_hint() -> str:
    try:
        import ray

        node = ray._private.worker.global_worker.node  # noqa: SLF001 - only for the hint text
        return f"{node.get_session_dir_path()}/logs"
    except Exception:  # noqa: BLE001 - a hint must never fail
        return "/tmp/ray/session_latest/logs"


def start_preflight():
    """Submit the preflight probe (one Ray worker running the imports a stage needs) without
    waiting for it: its worker starts while the run's dataset starts its actors (~2 s of a run's
    start-up when the run waited for it first). ``check_preflight`` reads its answer."""
    import ray

    return ray.remote(num_cpus=0)(_preflight_probe).remote()


def check_preflight(ref, timeout_s: float | None = None) -> None:
    """The preflight probe's answer within ``timeout_s`` (default: the start timeout, at least a
    minute); raise a one-line ``UserError`` with the likely cause instead of letting the run
    hang; warn when the workers have a terminal as standard input."""
    import ray

    from kernel.errors import UserError

    # a bare worker starts in seconds; never wait less than a minute for one (the actor bound
    # is for model set-up, which a low setting is meant to cut short)
    timeout_s = max(60.0, start_timeout_s()) if timeout_s is None else timeout_s
    try:
        info = ray.get(ref, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        ray.cancel(ref, force=True)
        raise UserError(f"Ray: no worker came up within {timeout_s:.0f}s; see the worker logs in "
                        f"{log_dir_hint()} (worker-*.err), check free memory/CPUs, or raise "
                        f"{START_TIMEOUT_ENV}") from None
    except ray.exceptions.RayError as e:
        raise UserError(f"Ray: a worker failed to start: {first_line(e)}; see {log_dir_hint()}") from None
    if info.get("stdin_tty"):  # the setup hook did not run: a runtime started elsewhere with a tty
        import logging

        logging.getLogger(__name__).warning(
            "Ray workers have a terminal as standard input; a worker that touches it in the background "
            "is stopped by the kernel. Restart the cluster with `ray start ... < /dev/null`")


def preflight_failed(ref):
    """The preflight probe's error as a ``UserError`` if it has already failed, else None (not
    answered yet, or fine): a failed run names a worker that could not start before anything else."""
    import ray

    from kernel.errors import UserError

    ready, _ = ray.wait([ref], timeout=0)
    if not ready:
        return None
    try:
        check_preflight(ref, timeout_s=1.0)
    except UserError as e:
        return e
    return None


def preflight(timeout_s: float | None = None) -> None:
    """Start one Ray worker and run the imports a stage needs, within a bounded time (blocking)."""
    check_preflight(start_preflight(), timeout_s)


def _chain(e: BaseException) -> list[BaseException]:
    out = [e]
    for _ in range(20):
        cur = out[-1]
        nxt = getattr(cur, "cause", None)
        nxt = nxt if isinstance(nxt, BaseException) else (cur.__cause__ or cur.__context__)
        if nxt is None or any(nxt is x for x in out):
            break
        out.append(nxt)
    return out


def first_line(e: BaseException) -> str:
    """The innermost cause with a message of a (possibly wrapped) Ray error, as one line."""
    for cause in reversed(_chain(e)):
        lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
        if lines:
            return f"{type(cause).__name__}: {lines[-1]}"[:300]
    return type(e).__name__


def explain_run_error(e: BaseException):
    """A failed Ray dataset execution as a one-line ``UserError`` (stage set-up errors, actors
    that did not come up in time); anything else is returned unchanged."""
    from kernel.errors import UserError

    chain = _chain(e)
    text = " ".join(str(x) for x in chain).lower()
    if "starting actors" in text or ("actor" in text and "timed out" in text):
        return UserError(f"Ray: a stage's actors did not come up within {start_timeout_s():.0f}s (model set-up "
                         f"stuck, out of memory, or too few CPUs); see {log_dir_hint()}, or raise "
                         f"{START_TIMEOUT_ENV}")
    if any(type(x).__module__.startswith("ray") for x in chain):
        return UserError(f"Ray: the run failed in a worker: {first_line(e)}; full log in {log_dir_hint()}")
    return e


def configure_data_context() -> None:
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.verbose_stats_logs = False
    # an actor pool that never reaches its minimum size is an error after this long, not a hang
    ctx.wait_for_min_actors_s = int(start_timeout_s())
    # no per-task memory sampling: a thread in every actor read /proc/PID/smaps once a second
    # (8.4 ms of CPU per read for a 1.2 GB worker: 0.8 % of an actor); the run measures each
    # worker's peak RSS itself
    ctx.memory_usage_poll_interval_s = None
    # Ray Data logs its own stack trace before raising; the run re-raises the error as one line
    # naming the log folder, which holds that trace too
    import logging

    logging.getLogger("ray.data.exceptions").setLevel(logging.CRITICAL)


# --- Ray leftovers ----------------------------------------------------------------------------


def _owner_alive(token: str) -> bool:
    import psutil

    try:
        pid_s, created_s, host = token.split(":", 2)
        pid, created = int(pid_s), float(created_s)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # cannot judge another host's process: leave its processes alone
    try:
        return abs(psutil.Process(pid).create_time() - created) < 0.01
    except psutil.Error:
        return False


def find_orphans() -> list[int]:
    """Pids of Ray processes started by an anytalker run whose driver is gone."""
    import psutil

    me = os.getpid()
    out = []
    for p in psutil.process_iter(["pid"]):
        if p.pid == me:
            continue
        try:
            token = p.environ().get(OWNER_ENV)
        except (psutil.Error, OSError):
            continue
        if token and not _owner_alive(token):
            out.append(p.pid)
    return sorted(out)


def end_orphans(grace_s: float = 3.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``grace_s``, every orphaned Ray process; returns their pids."""
    import psutil

    pids = find_orphans()
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            p.send_signal(signal.SIGTERM)
            procs.append(p)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    if pids:
        time.sleep(0.1)  # let the kernel reap before a new runtime binds the same ports
    return pids
