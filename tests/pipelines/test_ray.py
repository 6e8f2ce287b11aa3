"""Ray executor: same rows as the local executor; a killed run resumes without loss or duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curation.media import sha256_file
from pipelines import shards
from pipelines.runner import run_curation

pytestmark = pytest.mark.ray


def _rows_without_timings(run: Path) -> dict[str, dict]:
    """Every column of every row (clips and rejects), keyed by clip id, except the timings."""
    rows = shards.read_rows(run, "clips") + shards.read_rows(run, "rejects")
    return {r["clip_id"]: {k: v for k, v in r.items() if k != "stage_seconds"} for r in rows}


def _ids_status(run: Path) -> dict[str, str]:
    rows = shards.read_rows(run, "clips") + shards.read_rows(run, "rejects")
    ids = [r["clip_id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicated clip_id"
    return {r["clip_id"]: r["status"] for r in rows}


@pytest.fixture(scope="module")
def local_run(small_inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "run"
    run_curation("video_only", small_inputs, out, progress=False)
    return out


def test_ray_and_local_executors_give_the_same_rows(small_inputs, local_run, tmp_path):
    import ray

    out = tmp_path / "ray"
    was_up = ray.is_initialized()
    summary = run_curation("video_only", small_inputs, out, executor="ray", workers=2, progress=False)
    if not was_up:  # the run started Ray (before loading its config), so the run ends it
        assert not ray.is_initialized()
    assert _ids_status(out) == _ids_status(local_run)
    # the driver's start-up steps, in order (the throughput script splits the time to the first source)
    phases = summary.executor_phases
    assert list(sorted(phases, key=phases.get)) == ["executor_init", "ray_ready", "sources_ordered", "dataset_start",
                                                           "first_result"]
    assert _rows_without_timings(out) == _rows_without_timings(local_run)


def test_killed_ray_run_resumes_without_lost_or_duplicated_clips(small_inputs, local_run, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "anytalker.cli", "curate", "run", "video_only", "--input", str(small_inputs),
           "--output", str(out), "--executor", "ray", "--workers", "2", "-q"]
    # own session: the kill takes the driver and the Ray processes it started
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    markers = out / "_markers"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if markers.is_dir() and any(markers.glob("*.json")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed; add inputs"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(markers.glob("*.json")))
    assert not (out / "manifest.json").exists()
    assert 1 <= done_before < len(shards.read_manifest(local_run)["files"])

    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{done_before} already complete" in res.stdout
    assert _ids_status(out) == _ids_status(local_run)
    m, ref = shards.read_manifest(out), shards.read_manifest(local_run)
    assert m["totals"] == ref["totals"] and m["reasons"] == ref["reasons"]
    for f in m["files"]:
        assert sha256_file(out / f["path"]) == f["sha256"]


def test_demo_pipeline_same_rows_on_local_and_ray(tmp_path):
    """The person-aware demo pipeline (faces, speech, sync models in actor pools) on a real clip."""
    from tests.conftest import shared_file

    clip = shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{clip}\n")
    runs = {}
    for ex in ("local", "ray"):
        runs[ex] = tmp_path / ex
        run_curation("single_person", listing, runs[ex], executor=ex, workers=2, progress=False,
                     data_root=clip.parent)
    local, ray_ = _ids_status(runs["local"]), _ids_status(runs["ray"])
    assert local == ray_ and "ok" in local.values()
    # every column (persons, sync matrices, intervals, versions...) equal, timings aside
    full_local, full_ray = _rows_without_timings(runs["local"]), _rows_without_timings(runs["ray"])
    for cid, row in full_local.items():
        assert full_ray[cid] == row, {k: (v, full_ray[cid].get(k)) for k, v in row.items() if full_ray[cid].get(k) != v}
