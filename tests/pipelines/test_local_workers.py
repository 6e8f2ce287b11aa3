"""Local executor with worker processes: the rows of the in-process path, each worker capped to
its CPU share, and a worker that dies costs only the source that killed it."""

from __future__ import annotations

import os
from pathlib import Path

from curation.base import Stage
from pipelines import executors, registry, shards
from pipelines.executors import LocalExecutor, prestart_local_workers
from pipelines.runner import run_curation


def _rows_without_timings(run: Path) -> dict[str, dict]:
    rows = shards.read_rows(run, "clips") + shards.read_rows(run, "rejects")
    return {r["clip_id"]: {k: v for k, v in r.items() if k != "stage_seconds"} for r in rows}


def test_worker_processes_give_the_in_process_rows(small_inputs, tmp_path, monkeypatch):
    pools = []
    spawn = executors._spawn_pool
    monkeypatch.setattr(executors, "_spawn_pool", lambda *a: pools.append(spawn(*a)) or pools[-1])
    one = run_curation("video_only", small_inputs, tmp_path / "one", progress=False, workers=1)
    two = run_curation("video_only", small_inputs, tmp_path / "two", progress=False, workers=2)
    # one pool: started before the config was loaded, then adopted by the executor
    assert len(pools) == 1 and pools[0]._initargs[0] is None
    assert _rows_without_timings(tmp_path / "two") == _rows_without_timings(tmp_path / "one")
    assert list(one.worker_peak_rss_mb) == [f"local:{os.getpid()}"]
    pids = {k.split(":")[1] for k in two.worker_peak_rss_mb}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two worker processes did the work


class CapsOrCrash(Stage):
    """Ends its worker process on the source named ``crash``; elsewhere fails the row unless the
    worker is capped to one compute thread (a 2-worker pool on a machine of <= 3 CPUs)."""

    name = "caps_or_crash"
    produces = ()

    def process(self, row):
        if row["source_path"] == "crash":
            os._exit(3)  # as a native crash would: no Python clean-up, no exception
        import cv2

        caps = (os.environ.get("OMP_NUM_THREADS"), cv2.getNumThreads())
        if caps != ("1", 1):
            raise RuntimeError(f"worker not capped to one thread: {caps}")
        return row


def test_a_dead_worker_costs_only_its_source_and_workers_keep_their_share(monkeypatch):
    monkeypatch.setitem(registry.STAGES, "caps_or_crash", f"{__name__}:CapsOrCrash")
    monkeypatch.setattr("pipelines.executors.machine_cpus", lambda: 2)  # share = 1 CPU each
    sources = [{"source_path": name, "status": "ok"} for name in ("a", "b", "crash", "c", "d")]
    ex = LocalExecutor([{"name": "caps_or_crash"}], workers=2)
    rows = {r["source_path"]: r for r in ex.run(sources)}
    assert sorted(rows) == ["a", "b", "c", "crash", "d"]
    assert {k: (r["status"], r.get("reason")) for k, r in rows.items() if k != "crash"} == \
        {k: ("ok", None) for k in ("a", "b", "c", "d")}
    assert (rows["crash"]["status"], rows["crash"]["reason"]) == ("failed", "worker_died")


class RegistersTeardown(Stage):
    """Its set-up registers an exit handler that leaves a file: it stands for the interpreter's
    teardown, which a worker skips once the pool has shut it down."""

    name = "registers_teardown"
    produces = ()
    params = {"marker_dir": ""}

    def setup(self):
        import atexit

        marker = Path(self.config["marker_dir"], f"teardown-{os.getpid()}")
        atexit.register(marker.touch)

    def process(self, row):
        return row


def test_workers_exit_without_teardown_and_unused_prestarted_workers_end(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.STAGES, "registers_teardown", f"{__name__}:RegistersTeardown")
    specs = [{"name": "registers_teardown", "params": {"marker_dir": str(tmp_path)}}]
    sources = [{"source_path": name, "status": "ok"} for name in ("a", "b", "c")]
    ex = LocalExecutor(specs, workers=2)
    assert sorted(r["source_path"] for r in ex.run(sources)) == ["a", "b", "c"]
    assert ex.worker_seconds and f"local:{os.getpid()}" not in ex.worker_seconds  # worker processes ran them
    assert not list(tmp_path.glob("teardown-*"))

    # workers started for more sources than are left (duplicates): ended, the run goes in-process
    warm = prestart_local_workers("video_only", None, n_sources=2, workers=2)
    procs = list(warm.pool._processes.values())
    ex = LocalExecutor(specs, workers=None, prestarted=warm)
    assert [r["source_path"] for r in ex.run(sources[:1])] == ["a"]
    assert list(ex.worker_seconds) == [f"local:{os.getpid()}"]
    assert procs and all(not p.is_alive() for p in procs)
