"""Curation runs: inputs -> deterministic partitions -> one executor stream -> shards, resumable.

All sources of the run that still need work go to the executor as one stream (one Ray dataset
per run); a partition's shards and completion marker are written as soon as its last source is
back. A rerun skips partitions whose completion marker exists, cleans the files of incomplete
ones, ``retry_failed`` re-runs only the sources that have a ``failed`` row, ``overwrite`` starts
over. A fresh local run starts its worker processes right after input discovery, so that
their imports and model loads overlap the driver's own config load and hashing; a fresh Ray run
starts its Ray runtime there (the workers Ray prestarts import Ray Data as they start:
``pipelines.rayutil``), for the same reason. Sources are
hashed before any stage runs, so identical sources are deduplicated before the expensive
stages (the first in partition order is curated, later copies become one ``duplicate`` reject
row each).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kernel import __version__
from kernel.errors import UserError
from pipelines import shards
from pipelines.staging import StagingDir, sweep_stale
from pipelines.storage import Storage, is_uri
from pipelines.executors import make_executor, prestart_local_workers, sort_rows, start_ray, stop_ray
from pipelines.pipeline import PipelineConfig, load_config
from pipelines.schema import SCHEMA_VERSION, clip_id_for, utf8_safe

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".ts", ".wmv"}
# A source whose rows stay ``failed`` after this many runs is not retried by --retry-failed again.
MAX_ATTEMPTS = 3


@dataclass
class Skipped:
    """Paths found under the input that did not become rows, counted by reason (with examples)."""

    counts: collections.Counter = field(default_factory=collections.Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, path: str | os.PathLike, n: int = 1) -> None:
        self.counts[reason] += n
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(str(path))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict:
        return {"total": self.total, "by_reason": dict(self.counts.most_common()), "examples": self.examples}

    def describe(self) -> str:
        if not self.total:
            return "skipped: 0"
        return f"skipped: {self.total} (" + ", ".join(f"{r} {n}" for r, n in self.counts.most_common()) + ")"


@dataclass
class RunSummary:
    run_dir: str
    totals: dict[str, int]
    reasons: dict[str, int]
    partitions_done: int
    partitions_skipped: int
    seconds: float
    manifest: dict = field(default_factory=dict)
    skipped: Skipped = field(default_factory=Skipped)
    not_retried: int = 0  # failed sources whose attempts reached MAX_ATTEMPTS
    worker_peak_rss_mb: dict[str, float] = field(default_factory=dict)  # peak RSS of each worker process
    # per worker process: set-up, busy (running sources) and CPU seconds (executors.WorkerClock)
    worker_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    # epoch seconds of the executor's start-up steps (Ray: executor_init, ray_ready, preflight_done,
    # dataset_start, first_result), to split the time before the first source
    executor_phases: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        t = self.totals
        lines = [
            f"shards: {self.run_dir}/clips (accepted) and {self.run_dir}/rejects; manifest: {self.run_dir}/manifest.json",
            f"accepted {t.get('ok', 0)} clips; rejected {t.get('filtered', 0) + t.get('failed', 0)} "
            f"(filtered {t.get('filtered', 0)}, failed {t.get('failed', 0)})",
        ]
        for reason, n in self.reasons.items():
            lines.append(f"  {reason}: {n}")
        lines.append(self.skipped.describe() + " inputs found but not curated (by reason; examples in manifest.json)"
                     if self.skipped.total else "skipped: 0 (every input found is a row)")
        if self.not_retried:
            lines.append(f"not retried: {self.not_retried} source(s) failed {MAX_ATTEMPTS} times; their rows stay "
                         "failed (fix the cause, then --overwrite)")
        lines.append(f"partitions: {self.partitions_done} run, {self.partitions_skipped} already complete; "
                     f"{self.seconds:.1f}s")
        return "\n".join(lines)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def discover_inputs(input_path: str | os.PathLike, data_root: str | os.PathLike | None = None,
                    skipped: Skipped | None = None) -> tuple[str, list[str]]:
    """Return (data_root, sorted source paths relative to it); paths found but not taken are
    counted in ``skipped`` by reason, so that no input vanishes.

    A directory is scanned recursively for names with a video extension: files, links, FIFOs,
    devices and even directories named ``x.mp4`` each become a row (the non-regular ones a
    ``not_a_file`` reject); a directory named ``x.mp4`` is scanned too. Other names, folders that
    cannot be read and symlinked folders (not followed: loops) are counted skips. A file with a
    video extension is one input. Any other file is a list of paths, one per line (``#``
    comments), relative to the list's folder or absolute; repeated lines are counted skips. A URI
    (``s3://bucket/prefix``, ``file:///...``) is listed through pyarrow's filesystems.
    """
    skipped = skipped if skipped is not None else Skipped()
    if is_uri(input_path):
        store = Storage(input_path)
        if not store.exists():
            raise UserError(f"{input_path}: input location does not exist or is not reachable; check the URI "
                            "and credentials (AWS_* variables for s3://)")
        rels = []
        for r in store.walk_files():
            if Path(r).suffix.lower() not in VIDEO_EXTENSIONS:
                skipped.add("not_a_video_name", r)
            elif Path(r).name.startswith("."):
                skipped.add("hidden", r)
            else:
                rels.append(r)
        return str(input_path).rstrip("/"), rels
    p = Path(input_path)
    if not p.exists():
        raise UserError(f"{p}: input does not exist; pass a folder of videos or a text file listing them")
    if p.is_dir():
        root = Path(data_root) if data_root else p
        found = []

        def unreadable(err: OSError) -> None:
            skipped.add("unreadable_folder", err.filename or p)

        for dirpath, dirnames, filenames in os.walk(p, followlinks=False, onerror=unreadable):
            for name in filenames:  # includes broken links, link loops, FIFOs, devices, sockets
                if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                    found.append(Path(dirpath) / name)
                else:
                    skipped.add("not_a_video_name", Path(dirpath) / name)
            keep = []
            for d in dirnames:
                sub = Path(dirpath) / d
                if Path(d).suffix.lower() in VIDEO_EXTENSIONS:
                    found.append(sub)  # a folder named like a video: a not_a_file row, contents scanned
                    if not sub.is_symlink():
                        keep.append(d)
                elif sub.is_symlink():
                    skipped.add("symlinked_folder", sub)  # not followed: it may loop or leave the input
                else:
                    keep.append(d)
            dirnames[:] = keep
        rels = sorted({_rel(f.absolute(), root.absolute()) for f in found})
        return str(root.absolute()), rels
    if not p.is_file():
        raise UserError(f"{p}: not a folder, a video or a text file (a FIFO or device?); pass a folder of videos "
                        "or a list file")
    if p.suffix.lower() in VIDEO_EXTENSIONS:  # one video
        root = Path(data_root) if data_root else p.parent
        return str(root.absolute()), [_rel(p.absolute(), root.absolute())]
    entries = []
    try:
        text = p.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(f"{p}: cannot read it as a text list of video paths ({e}); pass a folder, a video, or a "
                        "UTF-8 text file with one path per line") from e
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        q = Path(line)
        entries.append(q if q.is_absolute() else (p.parent / q))
    if not entries:
        raise UserError(f"{p}: the input list names no files; put one video path per line")
    root = Path(data_root) if data_root else Path(os.path.commonpath([str(e.absolute().parent) for e in entries]))
    rels = [_rel(e.absolute(), root.absolute()) for e in entries]
    for rel, n in collections.Counter(rels).items():
        if n > 1:
            skipped.add("repeated_in_list", rel, n - 1)
    return str(root.absolute()), sorted(set(rels))


def _not_a_regular_file(path: str) -> str | None:
    """Why ``path`` is not a regular file (stat only: never opens it, so a FIFO cannot block),
    or None; a missing path or broken link is left to the first stage (``not_found``)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode):
        return None
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
            else "a character device" if stat.S_ISCHR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
    return f"{path} is {kind}, not a regular file"


def make_partitions(sources: list[str], size: int) -> dict[str, list[str]]:
    size = max(1, size)
    return {f"part-{i // size:05d}": sources[i : i + size] for i in range(0, len(sources), size)}


def source_rows(sources: list[str], data_root: str, partition: str,
                stage_dir: "Path | StagingDir | None" = None) -> list[dict[str, Any]]:
    """Source rows of one partition. Inputs on a remote filesystem are first copied to
    ``stage_dir`` on the driver (decoders need local files); a copy that fails becomes an
    ``unreadable`` reject row instead of stopping the run. A ``StagingDir`` is made only when
    a source needs it."""

    def staged() -> Path | None:
        return stage_dir.path() if isinstance(stage_dir, StagingDir) else stage_dir

    rows = []
    remote = is_uri(data_root)
    store = Storage(data_root) if remote else None
    for s in sources:
        row: dict[str, Any] = {"source_path": s, "partition": partition, "status": "ok"}
        if not remote:
            row["source_abs_path"] = str(Path(s) if Path(s).is_absolute() else Path(data_root) / s)
            why = _not_a_regular_file(row["source_abs_path"])
            if why:  # refused before any stage opens it (opening a FIFO blocks)
                row.update(status="filtered", reason="not_a_file", error_detail=why, failed_stage="input")
            elif utf8_safe(row["source_abs_path"]) != row["source_abs_path"] and stage_dir is not None:
                # a name that is not UTF-8 (decord and others cannot open it): a UTF-8 link to it
                link = staged() / f"non-utf8-{hashlib.sha1(os.fsencode(s)).hexdigest()[:16]}{Path(s).suffix}"
                with contextlib.suppress(FileExistsError):
                    os.symlink(os.path.abspath(row["source_abs_path"]), link)
                row["source_abs_path"] = str(link)
        else:
            local = (staged() or Path(".")) / s
            try:
                store.download(s, local)
                row["source_abs_path"] = str(local)
            except OSError as e:
                row.update(source_abs_path=str(local), status="filtered", reason="unreadable",
                           error_detail=f"{data_root}/{s}: cannot copy to local stage: {e}", failed_stage="stage_in")
        rows.append(row)
    return rows


def finalize_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row its deterministic clip_id and drop run-local keys."""
    out = []
    for r in rows:
        key = r.get("source_sha256") or f"path:{r['source_path']}"
        r = {k: v for k, v in r.items() if k != "source_abs_path"}
        r["clip_id"] = clip_id_for(key, r.get("start_frame"), r.get("end_frame"))
        r.setdefault("reason", None)
        out.append(r)
    return out


def hash_sources(rows: list[dict[str, Any]], threads: int = 4) -> None:
    """Set ``source_sha256`` on every readable source row (None where the file cannot be read:
    the probe stage then gives the reason). hashlib releases the GIL, so threads overlap."""
    # the probe's own reader: one non-blocking descriptor, checked to be a regular file
    from curation.stages.probe import _size_and_sha256

    def one(row):
        path = row.get("source_abs_path")
        if row.get("status") != "ok" or not path or _not_a_regular_file(path) or not os.path.exists(path):
            return None
        try:
            return _size_and_sha256(path)[1]
        except OSError:
            return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for row, sha in zip(rows, pool.map(one, rows)):
            row["source_sha256"] = sha


def duplicate_row(row: dict[str, Any], first: str) -> dict[str, Any]:
    sha, src = row["source_sha256"], row["source_path"]
    return {"source_path": src, "source_sha256": sha, "partition": row.get("partition"),
            "status": "filtered", "reason": "duplicate", "failed_stage": "dedupe",
            "error_detail": f"identical bytes to {first}",
            "clip_id": clip_id_for(f"{sha}:duplicate:{src}", None, None)}


def _stage_seconds(rows: list[dict]) -> dict[str, float]:
    c: collections.Counter = collections.Counter()
    for r in rows:
        c.update(r.get("stage_seconds") or {})
    return {k: round(v, 4) for k, v in c.items()}


def _prepare_run_dir(store: Storage, cfg: PipelineConfig, data_root: str, sources: list[str],
                     overwrite: bool, executor: str) -> dict:
    try:
        if overwrite and store.exists():
            for sub in ("clips", "rejects", "_markers"):
                store.delete_dir(sub)
            for f in ("run.json", "manifest.json"):
                store.delete(f)
        if store.is_file("run.json"):
            info = store.read_json("run.json")
            if info.get("config_sha256") != cfg.sha256:
                raise UserError(f"{store.path('run.json')}: this output folder holds a run of a different config "
                                f"({info.get('config_name')}); use a new --output or add --overwrite")
            if info.get("sources") != sources:
                raise UserError(f"{store.path('run.json')}: the input set differs from the run being resumed; use "
                                "the same --input/--limit, a new --output, or --overwrite")
            return info
        store.makedirs()
        info = {
            "run_id": str(uuid.uuid4()),
            "toolkit_version": __version__,
            "schema_version": SCHEMA_VERSION,
            "config_name": cfg.name,
            "config_sha256": cfg.sha256,
            "config": cfg.raw,
            "data_root": data_root,
            "sources": sources,
            "partition_size": cfg.partition_size,
            "executor": executor,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        store.write_json("run.json", info)
        return info
    except OSError as e:
        raise UserError(f"{store}: cannot write the output folder ({e.strerror or e}); choose a writable --output "
                        "with free space") from e


def run_curation(config: str | os.PathLike, input_path: str | os.PathLike, output: str | os.PathLike,
                 *args: Any, **kwargs: Any) -> RunSummary:
    """Run a pipeline config over inputs into an output folder (other arguments: ``_run_curation``).

    The output folder is locked for the run (``pipelines.runlock``: a second run into it is
    refused, naming the first); every process the run starts gets /dev/null as standard input
    (``pipelines.rayutil``).
    """
    from pipelines.rayutil import stdin_from_devnull
    from pipelines.runlock import run_lock

    from pipelines.rayutil import end_orphans

    with sigterm_as_exit(), run_lock(output), stdin_from_devnull():
        ended = end_orphans()  # Ray processes of an earlier run whose driver was killed
        if ended:
            log.warning("ended %d leftover Ray process(es) of an earlier run whose driver was killed", len(ended))
        swept = sweep_stale()  # staging folders of earlier runs that were killed
        if swept:
            log.info("removed %d staging folder(s) left by killed runs", len(swept))
        return _run_curation(config, input_path, output, *args, **kwargs)


@contextlib.contextmanager
def sigterm_as_exit():
    """SIGTERM (``kill PID``, a job scheduler, a test timeout) raises ``SystemExit(143)`` in
    the run instead of ending the process on the spot, so the run's cleanup runs: the staging
    folder, worker processes, a Ray runtime it started. Only from the main thread, and only
    where nobody installed a handler of their own."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_curation(
    config: str | os.PathLike,
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    executor: str = "local",
    limit: int | None = None,
    retry_failed: bool = False,
    overwrite: bool = False,
    data_root: str | os.PathLike | None = None,
    workers: int | None = None,
    cpus_per_worker: int | None = None,
    ray_address: str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    on_partition: Callable[[str, dict], None] | None = None,
) -> RunSummary:
    t0 = time.time()
    not_curated = Skipped()
    root, sources = discover_inputs(input_path, data_root, not_curated)
    if limit is not None:
        for s in sources[max(0, int(limit)):]:
            not_curated.add("beyond_limit", s)
        sources = sources[: max(0, int(limit))]
    if not sources:
        raise UserError(f"{input_path}: no video files found (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})")
    store = Storage(output)
    warm = None
    owns_ray = False
    fresh = not retry_failed and (overwrite or not store.is_file("run.json"))
    if executor == "local" and fresh:
        # a fresh run: its worker processes start now and load the config and their models
        # while this process loads it too, hashes the sources and prepares the run folder
        # (a resumed run may have nothing left to do: its workers start when work is found)
        warm = prestart_local_workers(config, overrides, len(sources), workers, cpus_per_worker)
    elif executor == "ray" and fresh:
        # the same for Ray: its runtime starts now, and the workers it prestarts come up (and
        # import Ray Data) while this process loads the config and hashes the sources; the
        # executor then finds Ray running
        owns_ray = start_ray(workers, ray_address, cpus_per_worker)
    try:
        return _run_loaded(config, overrides, input_path, output, store, root, sources, not_curated, t0, executor,
                           retry_failed, overwrite, data_root, workers, cpus_per_worker, ray_address, progress,
                           on_partition, warm)
    finally:
        if warm is not None:
            warm.close()  # not adopted by the executor (an error, or nothing left to run)
        if owns_ray:
            stop_ray()


def _run_loaded(config, overrides, input_path, output, store: Storage, root: str, sources: list[str],
                not_curated: Skipped, t0: float, executor: str, retry_failed: bool, overwrite: bool,
                data_root, workers: int | None, cpus_per_worker: int | None, ray_address: str | None,
                progress: bool, on_partition, warm) -> RunSummary:
    cfg = load_config(config, overrides)  # contracts and cross-stage parameters checked here
    schema = cfg.schema
    run_dir = str(output)
    info = _prepare_run_dir(store, cfg, root, sources, overwrite, executor)
    info["skipped"] = not_curated.to_dict()  # this invocation's scan; goes into manifest.json
    partitions = make_partitions(sources, info.get("partition_size", cfg.partition_size))
    metadata = {"toolkit_version": __version__, "config_sha256": cfg.sha256, "config_name": cfg.name,
                "run_id": info["run_id"],
                # where the relative source_path values point: as the user gave it, and resolved
                "data_root": str(data_root if data_root is not None else input_path), "data_root_abs": root}

    todo: list[tuple[str, list[str], list[dict] | None]] = []
    skipped = 0
    not_retried = 0
    seen_sha: dict[str, str] = {}  # content of sources in completed partitions, for dedupe
    for part, srcs in partitions.items():
        marker = shards.read_marker(store, part)
        for src, sha in ((marker or {}).get("source_sha256") or {}).items():
            if sha:
                seen_sha.setdefault(sha, src)
        if marker is None:
            removed = shards.clean_partition(store, part)
            if removed:
                log.info("partition %s was incomplete: removed %d orphan file(s)", part, len(removed))
            todo.append((part, srcs, None))
        elif retry_failed and marker["status"].get("failed", 0):
            old = shards.read_partition_rows(store, part)
            tries = _failed_attempts(old)
            exhausted = [src for src, n in tries.items() if n >= MAX_ATTEMPTS]
            not_retried += len(exhausted)
            if len(exhausted) < len(tries):
                todo.append((part, srcs, old))
            else:
                skipped += 1
        else:
            skipped += 1

    from tqdm import tqdm

    counts: collections.Counter = collections.Counter()
    n_inputs = sum(len(srcs) if old is None else
                   len([s for s, n in _failed_attempts(old).items() if n < MAX_ATTEMPTS]) for _, srcs, old in todo)
    # mininterval 0: every finished input is shown (inputs take seconds each, so it never floods)
    bar = tqdm(total=n_inputs, desc=f"curate {cfg.name}", unit="input", disable=not progress, smoothing=0.1,
               mininterval=0, miniters=1)

    def count(rows: list[dict]) -> None:
        counts.update(r.get("status") for r in rows)
        bar.set_postfix(collections.OrderedDict(ok=counts["ok"], filtered=counts["filtered"], failed=counts["failed"]),
                        refresh=False)

    results: dict[str, list[dict]] = {}
    attempts_of: dict[str, dict[str, int]] = {}  # partition -> {source: earlier runs} (retries)
    pending: dict[str, set[str]] = {}
    inputs_of = {part: srcs for part, srcs, _ in todo}
    t_stream = time.time()

    def write(part: str) -> None:
        rows = sort_rows(finalize_rows(results.pop(part)))
        shas = {r["source_path"]: r.get("source_sha256") for r in rows}
        try:
            marker = shards.write_partition(store, part, rows, metadata, inputs_of[part], time.time() - t_stream,
                                            extra={"stage_seconds": _stage_seconds(rows), "source_sha256": shas},
                                            schema=schema)
        except OSError as e:
            raise UserError(f"{run_dir}: cannot write partition {part} ({e.strerror or e}); completed "
                            "partitions are intact — free space or fix permissions, then re-run the same "
                            "command to resume") from e
        if on_partition:
            on_partition(part, marker)

    ex = None
    try:
        with StagingDir() as stage_dir:  # made only if an input needs staging
            submit: list[dict] = []
            for part, srcs, old in todo:
                if old is None:
                    run_srcs, kept, tries = srcs, [], {}
                else:
                    tries = {src: n for src, n in _failed_attempts(old).items() if n < MAX_ATTEMPTS}
                    stored = {utf8_safe(x): x for x in srcs}  # shard paths of non-UTF-8 names are escaped
                    run_srcs = sorted(stored.get(x, x) for x in tries)
                    kept = [r for r in old if r["source_path"] not in tries]
                results[part] = kept
                attempts_of[part] = tries
                rows = source_rows(run_srcs, root, part, stage_dir)
                hash_sources(rows)
                pending[part] = set()
                for row in rows:
                    sha = row.get("source_sha256")
                    first = seen_sha.setdefault(sha, row["source_path"]) if sha else None
                    if first is not None and first != row["source_path"]:
                        dup = _with_attempts([duplicate_row(row, first)], tries)
                        results[part].extend(dup)
                        count(dup)
                        bar.update(1)
                    else:
                        submit.append(row)
                        pending[part].add(row["source_path"])
            for part in [p for p, left in pending.items() if not left]:
                write(part)
            if submit:
                ex = make_executor(executor, cfg.stages, batch_size=cfg.batch_size, workers=workers,
                                   cpus_per_worker=cpus_per_worker,
                                   address=ray_address, prestarted=warm)
                for src, out in ex.run_stream(submit):
                    part = src["partition"]
                    results[part].extend(_with_attempts(out, attempts_of[part]))
                    pending[part].discard(src["source_path"])
                    count(out)
                    bar.update(1)
                    if not pending[part]:
                        write(part)
        bar.close()
    finally:
        if ex is not None:
            ex.close()
    peak_rss = dict(getattr(ex, "peak_rss_mb", {}) or {})
    try:
        manifest = shards.build_manifest(store, info, list(partitions))
    except OSError as e:
        raise UserError(f"{run_dir}: cannot write manifest.json ({e.strerror or e}); all partitions are complete — "
                        "free space or fix permissions, then re-run the same command") from e
    return RunSummary(run_dir=run_dir, totals=manifest["totals"], reasons=manifest["reasons"],
                      partitions_done=len(todo), partitions_skipped=skipped, seconds=time.time() - t0,
                      manifest=manifest, skipped=not_curated, not_retried=not_retried,
                      worker_peak_rss_mb=peak_rss,
                      worker_seconds=dict(getattr(ex, "worker_seconds", {}) or {}),
                      executor_phases=dict(getattr(ex, "phases", {}) or {}))


def _failed_attempts(rows: list[dict]) -> dict[str, int]:
    """{source with a failed row: runs so far} (rows written before attempts existed count 1)."""
    out: dict[str, int] = {}
    for r in rows:
        if r.get("status") == "failed":
            out[r["source_path"]] = max(out.get(r["source_path"], 0), int(r.get("attempts") or 1))
    return out


def _with_attempts(rows: list[dict], previous: dict[str, int]) -> list[dict]:
    """Stamp each row with how many times its source has been run, this run included."""
    for r in rows:
        r["attempts"] = previous.get(utf8_safe(r["source_path"]), 0) + 1
    return rows


def run_status(run_dir: str | os.PathLike) -> dict:
    store = Storage(run_dir)
    if not store.is_file("run.json"):
        raise UserError(f"{store.path('run.json')} does not exist: {run_dir} is not a curation run folder "
                        "(pass the --output folder of `anytalker curate run`)")
    info = store.read_json("run.json")
    parts = make_partitions(info["sources"], info.get("partition_size", 4))
    done = {p: shards.read_marker(store, p) for p in parts}
    totals: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    for m in done.values():
        if m:
            totals.update(m["status"])
            reasons.update(m["reasons"])
    return {
        "run_dir": str(run_dir), "config": info["config_name"], "sources": len(info["sources"]),
        "partitions": len(parts), "partitions_complete": sum(1 for m in done.values() if m),
        "complete": store.is_file("manifest.json"),
        "totals": {k: int(totals.get(k, 0)) for k in ("ok", "filtered", "failed")},
        "reasons": dict(reasons.most_common()),
        "skipped": (store.read_json("manifest.json").get("skipped") or {}).get("by_reason", {})
        if store.is_file("manifest.json") else {},
    }
