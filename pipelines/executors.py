"""Executors run a pipeline's stages over source rows, one source start-to-end in one worker.

Local: worker processes on this machine (default one per CPU, each capped to its share of the
CPUs; ``workers=1`` runs in this process, one source after another). Ray: see below.

Both take the source rows of a whole run and yield ``(source_row, output_rows)`` as each source
finishes, so the runner can write a partition as soon as its last source is back. Rows leave
the stage adapter (``curation.base.run_stage_batch``) already encoded to their declared types,
so both executors give identical rows; Ray carries them pickled, losslessly, and the output
order is normalised by ``sort_rows``.

Ray: ONE Ray Data dataset per run. The stages are fused into one ``map_batches`` actor pool per
resource class (consecutive CPU stages share one pool, GPU stages get their own pool with GPUs
when the cluster has them), so a clip is processed start to end in one worker, the worker's
decode cache serves every stage, and each actor sets its stages up once for the whole run.
Sources stream through one-per-block so every worker stays busy; each worker caps torch,
OpenCV and BLAS threads to its CPU share; a runtime started here runs its workers at the
driver's priority and has them import Ray Data as they start (``rayutil.init_ray``).

Several workers (a local pool, two or more Ray actors) get the sources longest first
(``longest_first``: a container-header estimate per source, file size for very large runs),
so they finish together;
partitions, markers and rows do not depend on the order (``$ANYTALKER_SOURCE_ORDER=given`` keeps
the given order).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from contextlib import contextmanager
from typing import Any, Iterator

from curation.base import Row, Stage, run_stage_batch
from pipelines import registry
from pipelines.registry import build_stage, stage_class

log = logging.getLogger(__name__)

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def sort_key(r: Row):
    return (
        str(r.get("source_path")),
        -1 if r.get("start_frame") is None else int(r["start_frame"]),
        -1 if r.get("end_frame") is None else int(r["end_frame"]),
        str(r.get("clip_id") or ""),
    )


def sort_rows(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=sort_key)


def build_pipeline_stages(stage_specs: list[dict[str, Any]]) -> list[Stage]:
    from curation.base import check_contracts
    from pipelines.pipeline import SOURCE_COLUMNS

    stages = [build_stage(s["name"], s.get("params")) for s in stage_specs]
    check_contracts(stages, SOURCE_COLUMNS)  # also binds cross-stage parameters
    return stages


def run_stages(stages: list[Stage], rows: list[Row], batch_size: int = 1, clock: "WorkerClock | None" = None) -> list[Row]:
    """Every stage over ``rows`` (one source's rows), through the adapter. A stage is set up
    when a row first reaches it (timed by ``clock``)."""
    for stage in stages:
        if clock is not None and rows and not stage._is_setup:
            with clock.setup():
                stage.ensure_setup()
        out: list[Row] = []
        for i in range(0, len(rows), max(1, batch_size)):
            out.extend(run_stage_batch(stage, rows[i : i + max(1, batch_size)]))
        rows = out
    return rows


def cap_threads(n: int) -> None:
    """Limit this process's compute threads to ``n`` (its CPU share): env for libraries not yet
    loaded, and the runtime setters of those already loaded."""
    n = max(1, int(n))
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    try:
        import torch

        torch.set_num_threads(n)
        if torch.get_num_interop_threads() != n:
            try:
                torch.set_num_interop_threads(n)
            except RuntimeError:  # only settable before the first parallel op
                pass
    except ImportError:
        pass
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


class WorkerClock:
    """Seconds one worker spent setting its stages up and running sources (wall and process
    CPU, threads and reaped decoder children included): how busy a worker was, beside its
    peak RSS, in the run summary and the throughput benchmark."""

    def __init__(self) -> None:
        self.setup_s = 0.0
        self.busy_s = 0.0  # set-up inside a busy span (a lazily set-up stage) is not counted
        self.cpu_s = 0.0
        self._setup_cpu_s = 0.0
        # epoch seconds: the worker's processing window (set-up inside it moves its start on)
        self.first_start: float | None = None
        self.last_end: float | None = None
        # epoch seconds: when this worker process started and when its clock (set-up) began, so a
        # run's time to its first source splits into driver, process start, set-up and dispatch
        self.born = time.time()
        try:
            import psutil

            self.process_start: float | None = psutil.Process().create_time()
        except (ImportError, OSError):
            self.process_start = None

    @staticmethod
    def _cpu() -> float:
        import resource

        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    @contextmanager
    def setup(self):
        t, c = time.perf_counter(), self._cpu()
        try:
            yield
        finally:
            took = time.perf_counter() - t
            self.setup_s += took
            self._setup_cpu_s += self._cpu() - c
            if self.first_start is not None:  # a stage set up lazily, inside the window: not processing
                self.first_start += took

    @contextmanager
    def busy(self):
        t, c = time.perf_counter(), self._cpu()
        s0, sc0 = self.setup_s, self._setup_cpu_s
        if self.first_start is None:
            self.first_start = time.time()
        try:
            yield
        finally:
            self.busy_s += time.perf_counter() - t - (self.setup_s - s0)
            self.cpu_s += self._cpu() - c - (self._setup_cpu_s - sc0)
            self.last_end = time.time()

    def as_dict(self) -> dict[str, float]:
        return {"setup_s": round(self.setup_s, 3), "busy_s": round(self.busy_s, 3), "cpu_s": round(self.cpu_s, 3),
                "first_start": self.first_start, "last_end": self.last_end, "born": self.born,
                "process_start": self.process_start}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


SOURCE_ORDER_ENV = "ANYTALKER_SOURCE_ORDER"


def source_cost(row: Row) -> float | None:
    """A source's expected processing cost, from its container header only (OpenCV opens it
    in-process: 1.5-4 ms a file here, vs ~100 ms for an ffprobe process): seconds of video x
    (1 + megapixels / 4). The stages' work follows the analysed frames (a fixed analysis rate,
    so the duration); the decoder's also follows the source pixels (10 s of 1080x1920 took as
    much CPU as 15 s of 458x458 at one CPU: 7.4-7.9 vs 7.4-8.1 s). A coarse weight: only the
    order depends on it, never a row. None when it cannot be read (the file is refused, missing
    or not a video): such sources usually end early in ``probe``."""
    path = row.get("source_abs_path")
    if row.get("status", "ok") != "ok" or not path or not os.path.isfile(path):
        return None
    try:
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                return None
            frames, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
            w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        finally:
            cap.release()
    except Exception:  # noqa: BLE001 - an estimate only: an unreadable header is no error here
        return None
    if not (frames > 0 and fps > 0):
        return None
    return frames / fps * (1.0 + max(0.0, w * h) / 4e6)


def source_size(row: Row) -> float | None:
    """A source's file size in bytes: the cost proxy of a run too large for header reads (one
    ``stat``). Coarser than ``source_cost`` (a small file can be a long, dear clip), but it
    still puts a run's few huge files first. None for a source ``source_cost`` would skip."""
    path = row.get("source_abs_path")
    if row.get("status", "ok") != "ok" or not path:
        return None
    try:
        return float(os.stat(path).st_size) if os.path.isfile(path) else None
    except OSError:
        return None


# The driver reads every source's container header before the first source is handed out
# (1.5-4 ms a file here): beyond this many sources, or once the reads have taken this long,
# the order uses file sizes instead, so a run's start never waits more than about this long
# (plus one stat per file) however many sources it has.
HEADER_READS_MAX_SOURCES = 1000
HEADER_READS_BUDGET_S = 2.0


def source_costs(sources: list[Row]) -> list[float | None]:
    """``source_cost`` of every source, or ``source_size`` of every source when there are more
    than ``HEADER_READS_MAX_SOURCES`` or the header reads exceed ``HEADER_READS_BUDGET_S`` (one
    unit for all: costs and sizes never mix in one order)."""
    if len(sources) > HEADER_READS_MAX_SOURCES:
        return [source_size(s) for s in sources]
    # OpenCV's FFmpeg reads its log level once, at its first open: quiet, so a broken file's
    # header ("moov atom not found") does not print on the driver's console (its row says why);
    # restored after, so processes started later do not inherit it
    saved = os.environ.get("OPENCV_FFMPEG_LOGLEVEL")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    deadline = time.perf_counter() + HEADER_READS_BUDGET_S
    try:
        costs = []
        for s in sources:
            if time.perf_counter() > deadline:
                log.info("ordering %d sources by file size: their container headers take over %.1f s to read",
                         len(sources), HEADER_READS_BUDGET_S)
                return [source_size(s) for s in sources]
            costs.append(source_cost(s))
        return costs
    finally:
        if saved is None:
            os.environ.pop("OPENCV_FFMPEG_LOGLEVEL", None)


def longest_first(sources: list[Row]) -> list[Row]:
    """``sources`` ordered by ``source_costs``, largest first (longest-processing-time-first
    scheduling: the workers of a pool finish together instead of one idling while another runs a
    long source handed out last); sources without an estimate last, ties and unknowns in their
    given order. ``$ANYTALKER_SOURCE_ORDER=given`` keeps the given order."""
    if os.environ.get(SOURCE_ORDER_ENV, "longest_first").strip().lower() == "given" or len(sources) < 2:
        return list(sources)
    costs = source_costs(sources)
    order = sorted(range(len(sources)), key=lambda i: (costs[i] is None, -(costs[i] or 0.0), i))
    return [sources[i] for i in order]


LOCAL_WORKERS_ENV = "ANYTALKER_LOCAL_WORKERS"


def local_worker_count(workers: int | None, n_sources: int) -> int:
    """Worker processes of a local run: ``workers`` if given, else ``$ANYTALKER_LOCAL_WORKERS``,
    else one per CPU this process may run on, as many as the available memory holds; never more
    than there are sources (a one-clip run stays in-process)."""
    if not workers:
        try:
            workers = int(os.environ.get(LOCAL_WORKERS_ENV, "") or 0)
        except ValueError:
            workers = 0
    n = int(workers) if workers and workers > 0 else min(machine_cpus(), workers_memory_allows())
    return max(1, min(n, max(1, n_sources)))


# Peak RSS of one worker, rounded up: 1.18-1.25 GB measured on the shared clips, < 1.5 GB for a
# 4096x4096 source (issue 12); the default worker count never asks for more than memory holds.
WORKER_MEMORY_BYTES = int(1.5 * 2**30)


def workers_memory_allows() -> int:
    """How many workers the available memory holds (at least 1)."""
    try:
        import psutil

        return max(1, int(psutil.virtual_memory().available // WORKER_MEMORY_BYTES))
    except ImportError:
        return 1 << 30


def worker_share(cpus: float, workers: int) -> int:
    """Compute threads of one of ``workers`` workers sharing ``cpus`` CPUs (at least 1)."""
    return max(1, int(cpus // max(1, workers)))


# state of one local worker process (set by _local_worker_init, once per process)
_LOCAL_WORKER: dict[str, Any] = {}


def _end_with_parent(parent_pid: int) -> None:
    """Ask the kernel to end this process when its parent dies (Linux), so a killed driver
    never leaves worker processes behind; a parent that died before the request (while this
    worker was starting) is caught by the check after it."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


def _local_worker_init(stage_specs: list[dict[str, Any]] | None, threads: int,
                       stage_registry: dict[str, str], parent_pid: int,
                       config: tuple[Any, Any] | None = None) -> None:
    """Runs first in every worker process: caps its threads, then builds and sets up its stages
    (imports and model loads, the worker's whole start-up) before its first source arrives.
    ``stage_specs`` None: a pool started before the driver loaded the config
    (``prestart_local_workers``) loads ``config`` = (config, overrides) itself, at the same time
    as the driver. Nothing here may fail on a bad config (that would read as a dead worker):
    an error leaves the stages unbuilt, the first source builds them again and the error
    reaches the driver as the exception it is."""
    import atexit

    from pipelines import registry

    _end_with_parent(parent_pid)
    registry.STAGES.update(stage_registry)  # stages registered in the driver at run time
    clock = WorkerClock()
    _LOCAL_WORKER.update(specs=stage_specs, stages=None, clock=clock)
    with clock.setup():
        cap_threads(threads)  # sets the env first: before the stages import their libraries
        try:
            if stage_specs is None and config is not None:
                from pipelines.pipeline import load_config

                _LOCAL_WORKER["specs"] = load_config(*config).stages
            if _LOCAL_WORKER["specs"] is not None:
                stages = build_pipeline_stages(_LOCAL_WORKER["specs"])
                for stage in stages:
                    stage.ensure_setup()
                _LOCAL_WORKER["stages"] = stages
        except Exception:  # noqa: BLE001 - the first source rebuilds and reports it
            _LOCAL_WORKER["stages"] = None
    # registered last, so it runs first at exit: after the pool's shutdown the worker has
    # nothing left to hand back (results go through a synchronous queue, decoder children are
    # reaped per decode), and tearing down torch's and mediapipe's modules made the driver wait
    # 2.1-2.3 s for a warmed pool's shutdown at load 7 (0.16 s without; 0.8 s in a quiet
    # 3-clip profile)
    atexit.register(_exit_without_teardown)


def _exit_without_teardown() -> None:
    """A local worker's exit: flush what a worker may still hold (std streams, log handlers),
    then end the process without the interpreter's module teardown. The exit status is 0:
    the pool reads a worker's death from its sentinel, never from its status."""
    import logging
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(0)


def _local_worker_run(source: Row, stage_specs: list[dict[str, Any]],
                      batch_size: int) -> tuple[list[Row], int, float, dict]:
    """One source start to end in a worker process (stages built at worker start; again here
    if that failed or the driver's specs differ from the ones the worker loaded)."""
    w = _LOCAL_WORKER
    if w["stages"] is None or w["specs"] != stage_specs:
        with w["clock"].setup():
            w["specs"], w["stages"] = stage_specs, None
            w["stages"] = build_pipeline_stages(stage_specs)
    with w["clock"].busy():
        out = run_stages(w["stages"], [source], batch_size, w["clock"])
    return out, os.getpid(), peak_rss_mb(), w["clock"].as_dict()


def _submit(pool, fn, *args):
    """``pool.submit`` that never raises for a broken pool: a pool whose worker died before the
    driver noticed gives a future holding ``BrokenProcessPool``, handled where results are."""
    import concurrent.futures
    from concurrent.futures.process import BrokenProcessPool

    try:
        with _main_not_reimported():  # a worker process starts in submit()
            return pool.submit(fn, *args)
    except BrokenProcessPool as e:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        fut.set_exception(e)
        return fut


def _spawn_pool(workers: int, initargs: tuple):
    import concurrent.futures
    import multiprocessing

    # spawn: a fresh interpreter per worker (mediapipe, torch and OpenMP are not fork-safe)
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_local_worker_init, initargs=initargs)


class PrestartedWorkers:
    """Local worker processes started before the driver has loaded the config: each loads it
    and sets its stages up while the driver loads it too, hashes the sources and prepares the
    run folder. A ``LocalExecutor`` of the same worker count adopts the pool; otherwise (or if
    the run stops first) ``close`` ends the workers."""

    def __init__(self, workers: int, threads: int, config: Any, overrides: dict | None):
        from pipelines import registry

        self.workers, self.threads = workers, threads
        self.pool = _spawn_pool(workers, (None, threads, dict(registry.STAGES), os.getpid(),
                                          (config, overrides)))
        for _ in range(workers):  # processes are spawned one per submit
            _submit(self.pool, os.getpid)

    def take(self):
        pool, self.pool = self.pool, None
        return pool

    def close(self) -> None:
        if self.pool is not None:
            _end_pool(self.pool, abort=True)
            self.pool = None


def _end_pool(pool, abort: bool) -> None:
    if abort:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def prestart_local_workers(config: Any, overrides: dict | None, n_sources: int, workers: int | None = None,
                           cpus_per_worker: int | None = None) -> PrestartedWorkers | None:
    """The worker processes a local run over ``n_sources`` sources will use, started now (None
    when the run stays in-process)."""
    n = local_worker_count(workers, n_sources)
    if n <= 1:
        return None
    return PrestartedWorkers(n, int(cpus_per_worker or worker_share(machine_cpus(), n)), config, overrides)


def worker_died_row(source: Row, detail: str) -> Row:
    from curation.base import Reason, reject

    return reject(source, Reason.WORKER_DIED, detail, stage="worker")


@contextmanager
def _main_not_reimported():
    """While worker processes start: a ``__main__`` run from a script file is hidden from
    multiprocessing's spawn, which would otherwise run that script again in every worker (a
    script without an ``if __name__ == "__main__"`` guard would start a run in each). Workers
    only need this package's modules."""
    import sys
    import types

    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None or not getattr(main, "__file__", None):
        yield  # ``python -m ...`` / interactive: spawn imports it by name or not at all
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class LocalExecutor:
    """Local processes. ``workers`` 1: in this process, one source after another (tests,
    debugging, one-clip runs). More: that many worker processes (default one per CPU, at most
    one per source), each with an equal share of the CPUs as its compute threads (torch, OpenCV,
    BLAS, the ffmpeg decoder), its stages set up once; each source runs start to end in one
    worker through the same stage adapter, so rows equal the in-process rows. Workers set
    their stages up as they start (their initializer), may be started before the driver has
    loaded the config (``prestarted``, adopted when the worker count and share match), and
    end without the interpreter's teardown. A worker that
    dies (native crash, killed) takes no other source with it: the sources it may have held
    are run again one at a time in a fresh worker, and the one that ends a worker again
    becomes a ``worker_died`` row."""

    name = "local"

    def __init__(self, stage_specs: list[dict[str, Any]], batch_size: int = 1, workers: int | None = None,
                 cpus_per_worker: int | None = None, prestarted: PrestartedWorkers | None = None):
        self.specs = stage_specs
        self._prestarted = prestarted  # adopted by the first pool if it has the same shape
        self.cpus_per_worker = cpus_per_worker  # None: an equal share of this machine's CPUs
        self.stages = build_pipeline_stages(stage_specs)  # config errors here, before any worker
        self.batch_size = batch_size
        self.requested_workers = workers
        self.workers = 1
        self.peak_rss_mb: dict[str, float] = {}  # worker -> peak RSS (MB), for the run summary
        self.worker_seconds: dict[str, dict[str, float]] = {}  # worker -> WorkerClock.as_dict()
        self._clock = WorkerClock()
        self._pool = None
        self._streaming = False  # a pooled stream is running (not yet exhausted)

    def run_stream(self, sources: list[Row]) -> Iterator[tuple[Row, list[Row]]]:
        self.workers = local_worker_count(self.requested_workers, len(sources))
        if self._prestarted is not None and self.workers == 1:
            self._prestarted.close()  # fewer sources than expected (duplicates): in-process after all
            self._prestarted = None
        if self.workers == 1:
            yield from self._run_serial(sources)
        else:  # several workers: longest first, so they finish together
            yield from self._run_pool(longest_first(sources))

    def _run_serial(self, sources: list[Row]) -> Iterator[tuple[Row, list[Row]]]:
        key = f"local:{os.getpid()}"
        if self.cpus_per_worker:  # this process is the worker: capped as a worker process is
            cap_threads(int(self.cpus_per_worker))
        for src in sources:
            with self._clock.busy():
                out = sort_rows(run_stages(self.stages, [src], self.batch_size, self._clock))
            self.peak_rss_mb = {key: round(peak_rss_mb(), 1)}
            self.worker_seconds = {key: self._clock.as_dict()}
            yield src, out

    def _new_pool(self):
        self._shutdown(abort=True)  # a broken pool's survivors
        threads = int(self.cpus_per_worker or worker_share(machine_cpus(), self.workers))
        warm, self._prestarted = self._prestarted, None
        if warm is not None and (warm.workers, warm.threads) == (self.workers, threads):
            self._pool = warm.take()
            return self._pool
        if warm is not None:
            warm.close()
        self._pool = _spawn_pool(self.workers, (self.specs, threads, dict(registry.STAGES),
                                                os.getpid()))
        return self._pool

    def _note(self, pid: int, rss: float, secs: dict) -> None:
        key = f"local:{pid}"
        self.peak_rss_mb[key] = round(max(self.peak_rss_mb.get(key, 0.0), float(rss)), 1)
        self.worker_seconds[key] = secs

    def _run_pool(self, sources: list[Row]) -> Iterator[tuple[Row, list[Row]]]:
        import concurrent.futures
        from concurrent.futures.process import BrokenProcessPool

        todo = list(reversed(sources))  # popped from the end: sources in order
        suspects: list[Row] = []  # in flight when a worker died: each run again alone
        pool = self._new_pool()
        inflight: dict[concurrent.futures.Future, Row] = {}
        self._streaming = True
        try:
            while todo or suspects or inflight:
                # alone while a suspect runs, so that a second death names its source
                while not inflight and suspects:
                    src = suspects.pop(0)
                    fut = _submit(pool, _local_worker_run, src, self.specs, self.batch_size)
                    try:
                        out, pid, rss, secs = fut.result()
                    except BrokenProcessPool as e:
                        yield src, [worker_died_row(src, f"the worker process ended while running this source "
                                                         f"({e}); it ended a fresh worker too")]
                        pool = self._new_pool()
                        continue
                    self._note(pid, rss, secs)
                    yield src, sort_rows(out)
                while todo and len(inflight) < 2 * self.workers:
                    src = todo.pop()
                    inflight[_submit(pool, _local_worker_run, src, self.specs, self.batch_size)] = src
                if not inflight:
                    continue
                done, _ = concurrent.futures.wait(inflight, return_when=concurrent.futures.FIRST_COMPLETED)
                broken = False
                for fut in done:
                    src = inflight.pop(fut)
                    try:
                        out, pid, rss, secs = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        suspects.append(src)
                        continue
                    self._note(pid, rss, secs)
                    yield src, sort_rows(out)
                if broken:
                    log.warning("a local worker process died; re-running its %d in-flight source(s) one at a time",
                                len(suspects) + len(inflight))
                    suspects.extend(inflight.values())
                    inflight.clear()
                    pool = self._new_pool()
            self._streaming = False
        finally:
            self.close()  # ends the workers at once if the run stopped early (error, SIGTERM)

    def run(self, rows: list[Row]) -> list[Row]:
        return sort_rows([r for _, out in self.run_stream(rows) for r in out])

    def close(self) -> None:
        if self._prestarted is not None:  # never adopted (the run stopped before its sources ran)
            self._prestarted.close()
            self._prestarted = None
        self._shutdown(abort=self._streaming)  # stopped mid-run: do not wait for the sources in flight
        self._streaming = False

    def _shutdown(self, abort: bool) -> None:
        if self._pool is not None:
            _end_pool(self._pool, abort)
            self._pool = None


def resource_groups(stage_specs: list[dict[str, Any]], gpus_available: bool) -> list[dict[str, Any]]:
    """Consecutive stages of one resource class (GPU or CPU) fused into one group; a stage's GPU
    request counts only when the cluster has GPUs (otherwise it runs on CPU)."""
    groups: list[dict[str, Any]] = []
    for spec in stage_specs:
        res = stage_class(spec["name"]).resources
        gpu = bool(res.gpus) and gpus_available
        if groups and groups[-1]["gpu"] == gpu:
            g = groups[-1]
            g["specs"].append(spec)
            g["cpus"] = max(g["cpus"], res.cpus)
            g["gpus"] = max(g["gpus"], res.gpus if gpu else 0.0)
        else:
            groups.append({"gpu": gpu, "specs": [spec], "cpus": res.cpus, "gpus": res.gpus if gpu else 0.0})
    return groups


class _FusedStages:
    """Ray Data actor: a group of fused stages, set up once per actor for the whole run.

    Batches carry one source each, as ``payload``: the pickled list of that source's rows.
    """

    def __init__(self, stage_specs: list[dict[str, Any]], batch_size: int, threads: int):
        self.clock = WorkerClock()
        with self.clock.setup():
            cap_threads(threads)
            self.stages = build_pipeline_stages(stage_specs)
            for st in self.stages:
                st.ensure_setup()
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        import json

        import numpy as np

        out = []
        for p in batch["payload"]:
            with self.clock.busy():
                out.append(pickle.dumps(run_stages(self.stages, pickle.loads(p), self.batch_size), protocol=5))
        n = len(out)
        return {"key": np.asarray(batch["key"]), "payload": np.array(out, dtype=object),
                "worker": np.full(n, os.getpid()), "peak_rss_mb": np.full(n, peak_rss_mb()),
                "seconds": np.array([json.dumps(self.clock.as_dict())] * n, dtype=object)}


def machine_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def start_ray(workers: int | None, address: str | None = None, cpus_per_worker: int | None = None) -> bool:
    """Start (or join) Ray through ``pipelines.rayutil`` (stdin from /dev/null in every worker,
    owner tag for leftover cleanup); True if this call started it. A runtime started here has
    the machine's CPUs (at least one per worker), and each of its ``workers`` gets an equal
    share of them as compute threads, set before any import: one worker on a 2-core machine
    uses both cores, as the local executor does; two use one each."""
    import ray

    from pipelines import rayutil

    if ray.is_initialized():
        return False
    n_workers = int(workers or machine_cpus())
    cpus = max(n_workers, machine_cpus())
    share = int(cpus_per_worker or worker_share(cpus, n_workers))
    rayutil.init_ray(address, cpus, env_vars=None if address else {v: str(share) for v in THREAD_ENV_VARS})
    return True


def stop_ray() -> None:
    """End the Ray runtime (or the connection to a cluster) this process has."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


class RayDataExecutor:
    """Ray Data: one dataset per run; stages fused per resource class into long-lived actor pools.

    ``address`` None starts a local Ray runtime with the machine's CPUs (``workers`` actors, each
    with an equal share of them and as many compute threads); pass "auto" or
    "ray://host:10001" to use an existing cluster (``workers`` actors per pool, default: one per
    CPU of the cluster).
    """

    name = "ray"

    def __init__(self, stage_specs: list[dict[str, Any]], batch_size: int = 1, workers: int | None = None,
                 address: str | None = None, cpus_per_worker: int | None = None):
        import ray

        # epoch seconds of the driver's steps, so a run's time to its first source can be split
        self.phases: dict[str, float] = {"executor_init": time.time()}
        build_pipeline_stages(stage_specs)  # config errors surface in the driver, not in actors
        self.specs = stage_specs
        self.batch_size = batch_size
        self.peak_rss_mb: dict[str, float] = {}  # worker -> peak RSS (MB), for the run summary
        self.worker_seconds: dict[str, dict[str, float]] = {}  # worker -> WorkerClock.as_dict() (latest)
        self.cpus_per_worker = cpus_per_worker  # None: an equal share of the cluster's CPUs
        self._owns_ray = start_ray(workers, address, cpus_per_worker)
        cluster = ray.cluster_resources()
        self.cluster_cpus = float(cluster.get("CPU", 1.0))
        self.gpus_available = float(cluster.get("GPU", 0.0)) > 0
        self.workers = int(workers or max(1, self.cluster_cpus))
        from pipelines import rayutil

        self.phases["ray_ready"] = time.time()
        rayutil.configure_data_context()
        ray.data.DataContext.get_current().execution_options.preserve_order = False  # each source when done
        # the probe's worker starts beside the dataset's actors; its answer is read after the
        # first source (a worker that cannot start at all also keeps the actors from coming up,
        # which the actor pool's bounded wait reports)
        self._preflight = rayutil.start_preflight()
        self._preflight_checked = False

    def run_stream(self, sources: list[Row]) -> Iterator[tuple[Row, list[Row]]]:
        import json

        import numpy as np
        import ray

        if not sources:
            return
        if min(self.workers, len(sources)) > 1:  # several actors: longest first, so they finish together
            sources = longest_first(sources)
        self.phases["sources_ordered"] = time.time()
        items = [{"key": i, "payload": pickle.dumps([s], protocol=5)} for i, s in enumerate(sources)]
        # one source per block: blocks are the unit Ray Data hands to an idle actor
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        groups = resource_groups(self.specs, self.gpus_available)
        # each actor of a CPU pool gets an equal share of the cluster's CPUs
        share = max(1.0, self.cluster_cpus / self.workers) if len(groups) == 1 else 1.0
        if self.cpus_per_worker:
            share = float(self.cpus_per_worker)
        for g in groups:
            res: dict[str, Any] = {"num_cpus": min(share, self.cluster_cpus)}
            if g["gpu"]:
                res["num_gpus"] = g["gpus"]
            ds = ds.map_batches(
                _FusedStages,
                fn_constructor_kwargs={"stage_specs": g["specs"], "batch_size": self.batch_size,
                                       "threads": max(1, int(res["num_cpus"]))},
                batch_size=1, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(min_size=1 if g["gpu"] else min(self.workers, len(items)),
                                                   max_size=min(self.workers, len(items))),
                **res,
            )
        from pipelines import rayutil

        self.phases["dataset_start"] = time.time()
        batches = iter(ds.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0))
        while True:
            try:
                batch = next(batches)
                self.phases.setdefault("first_result", time.time())
                if not self._preflight_checked:  # an actor ran a source: workers start; a terminal warns
                    self._preflight_checked = True
                    rayutil.check_preflight(self._preflight)
            except StopIteration:
                return
            except Exception as e:  # worker errors reach the user as one line, with the log folder
                failed = rayutil.preflight_failed(self._preflight)
                if failed is not None:
                    raise failed from e
                explained = rayutil.explain_run_error(e)
                if explained is e:
                    raise
                raise explained from e
            for worker, rss, secs in zip(np.asarray(batch["worker"]).tolist(),
                                         np.asarray(batch["peak_rss_mb"]).tolist(), batch["seconds"]):
                key = f"ray:{worker}"
                self.peak_rss_mb[key] = round(max(self.peak_rss_mb.get(key, 0.0), float(rss)), 1)
                secs = json.loads(secs)
                if secs["busy_s"] >= self.worker_seconds.get(key, {}).get("busy_s", -1.0):
                    self.worker_seconds[key] = secs
            for key, payload in zip(np.asarray(batch["key"]).tolist(), batch["payload"]):
                yield sources[int(key)], sort_rows(pickle.loads(payload))

    def run(self, rows: list[Row]) -> list[Row]:
        return sort_rows([r for _, out in self.run_stream(rows) for r in out])

    def close(self) -> None:
        if self._owns_ray:
            stop_ray()


def make_executor(kind: str, stage_specs: list[dict[str, Any]], batch_size: int = 1,
                  workers: int | None = None, address: str | None = None, cpus_per_worker: int | None = None,
                  prestarted: PrestartedWorkers | None = None):
    """``cpus_per_worker``: CPUs (compute threads) of each worker; default an equal share.
    ``prestarted``: local worker processes started earlier (``prestart_local_workers``)."""
    if kind == "local":
        return LocalExecutor(stage_specs, batch_size=batch_size, workers=workers, cpus_per_worker=cpus_per_worker,
                             prestarted=prestarted)
    if kind == "ray":
        return RayDataExecutor(stage_specs, batch_size=batch_size, workers=workers, address=address,
                               cpus_per_worker=cpus_per_worker)
    raise ValueError(f"unknown executor {kind!r}: use 'local' or 'ray'")
