"""Local executor with worker processes: the rows of the in-process path, each worker capped to
its CPU share, and a worker that dies costs only the source that killed it."""

from __future__ import annotations

import os
from pathlib import Path

from curation.base import Stage
from pipelines import registry, shards
from pipelines.executors import LocalExecutor
from pipelines.runner import run_curation


def _rows_without_timings(run: Path) -> dict[str, dict]:
    rows = shards.read_rows(run, "clips") + shards.read_rows(run, "rejects")
    return {r["clip_id"]: {k: v for k, v in r.items() if k != "stage_seconds"} for r in rows}


def test_worker_processes_give_the_in_process_rows(small_inputs, tmp_path):
    one = run_curation("video_only", small_inputs, tmp_path / "one", progress=False, workers=1)
    two = run_curation("video_only", small_inputs, tmp_path / "two", progress=False, workers=2)
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
