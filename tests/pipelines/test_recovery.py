"""Crash recovery: disk full and read-only output mid-run, kill -9 of a Ray worker or the driver."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curation.media import sha256_file
from pipelines import shards
from pipelines.runner import run_curation


def _mount(path: Path, opts: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}); needs root with mount rights")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _ids(run) -> list[str]:
    rows = shards.read_rows(run, "clips") + shards.read_rows(run, "rejects")
    ids = [r["clip_id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicated clip_id"
    return sorted(ids)


@pytest.fixture(scope="module")
def reference(small_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    run_curation("video_only", small_inputs, out, progress=False)
    return out


def test_disk_full_mid_run_keeps_completed_partitions_and_resumes(small_inputs, reference, tmp_path):
    from kernel.errors import UserError

    mnt = tmp_path / "small_disk"
    _mount(mnt, "size=96k")  # one or two partitions (~40 KB each with the self-describing schema), not all four
    try:
        with pytest.raises(UserError, match="free space"):
            run_curation("video_only", small_inputs, mnt / "run", progress=False)
        done = [p for p in (mnt / "run" / "_markers").glob("*.json")]
        assert done, "at least one partition should have completed before the disk filled"
        for m in done:
            marker = shards.read_marker(shards.storage(mnt / "run"), m.stem)
            assert marker is not None
            for f in marker["files"]:
                assert sha256_file(mnt / "run" / f["path"]) == f["sha256"]
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        resumed = run_curation("video_only", small_inputs, mnt / "run", progress=False)
        assert resumed.partitions_skipped == len(done)
        assert _ids(mnt / "run") == _ids(reference)
    finally:
        _umount(mnt)


def test_read_only_output_is_a_clear_error_and_resumes_after(small_inputs, reference, tmp_path):
    mnt = tmp_path / "ro"
    _mount(mnt, "size=8m")
    try:
        def go_read_only(part, marker):
            if part == "part-00000":
                subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)

        from kernel.errors import UserError

        with pytest.raises(UserError, match="cannot write") as ei:
            run_curation("video_only", small_inputs, mnt / "run", progress=False, on_partition=go_read_only)
        assert str(mnt / "run") in str(ei.value)
        # the CLI says the same in one line and exits 2
        res = subprocess.run([sys.executable, "-m", "anytalker.cli", "curate", "run", "video_only", "--input",
                              str(small_inputs), "--output", str(mnt / "run2"), "-q"], capture_output=True, text=True)
        assert res.returncode == 2 and "anytalker: error:" in res.stderr and "Traceback" not in res.stderr
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        resumed = run_curation("video_only", small_inputs, mnt / "run", progress=False)
        assert resumed.partitions_skipped == 1
        assert _ids(mnt / "run") == _ids(reference)
    finally:
        _umount(mnt)


def _ray_workers(root_pid: int) -> list:
    import psutil

    try:
        procs = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in procs:
        try:
            if "ray::" in " ".join(p.cmdline()) or "default_worker.py" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


@pytest.mark.ray
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_kill_worker_then_driver_at_seeded_points_then_resume(small_inputs, reference, tmp_path, seed):
    rng = random.Random(seed)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "anytalker.cli", "curate", "run", "video_only", "--input", str(small_inputs),
           "--output", str(out), "--executor", "ray", "--workers", "2", "-q"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # 1) kill -9 one Ray worker process once workers exist (seeded choice and delay)
        deadline = time.time() + 120
        workers = []
        while time.time() < deadline and proc.poll() is None and not workers:
            workers = _ray_workers(proc.pid)
            time.sleep(0.1)
        if workers:
            time.sleep(rng.uniform(0.0, 2.0))
            victim = rng.choice(workers)
            try:
                victim.send_signal(signal.SIGKILL)
            except Exception:
                pass
        # 2) kill -9 the driver (and its Ray runtime) at a seeded point
        time.sleep(rng.uniform(1.0, 6.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # partial shards are never visible to readers: no manifest unless the run got to the end
    if not (out / "manifest.json").exists():
        with pytest.raises(shards.ManifestError):
            shards.read_rows(out, "clips")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _ids(out) == _ids(reference)
    m = shards.read_manifest(out)
    assert m["totals"] == shards.read_manifest(reference)["totals"]
    for f in m["files"]:
        assert sha256_file(out / f["path"]) == f["sha256"]
