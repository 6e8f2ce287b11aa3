"""Run lock on the output folder, and Ray processes left behind by a killed driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines import shards
from pipelines.rayutil import OWNER_ENV
from pipelines.runlock import LOCK_NAME, RunLocked, run_lock
from tests.badinputs import talking_like

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "anytalker.cli", *args]


def test_second_lock_is_refused_naming_the_holder(tmp_path):
    with run_lock(tmp_path / "out") as me:
        with pytest.raises(RunLocked, match=f"pid {me['pid']} on "):
            with run_lock(tmp_path / "out"):
                pass
    assert not (tmp_path / "out" / LOCK_NAME).exists()  # released
    with run_lock(tmp_path / "out"):
        pass


def test_lock_of_a_killed_process_is_stale(tmp_path):
    out = tmp_path / "out"
    code = ("import sys, time; from pipelines.runlock import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(RunLocked):
        with run_lock(out):
            pass
    proc.kill()
    proc.wait()
    holder = json.loads((out / LOCK_NAME).read_text())
    assert holder["pid"] == proc.pid  # the file stays behind after kill -9 ...
    with run_lock(out) as me:  # ... and is taken over: its process is gone
        assert me["pid"] == os.getpid()


def test_lock_recorded_by_a_dead_pid_without_flock_is_stale(tmp_path):
    """A lock file left by a holder whose pid no longer exists (e.g. copied from elsewhere)."""
    out = tmp_path / "out"
    out.mkdir()
    import socket

    (out / LOCK_NAME).write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": socket.gethostname(),
                                             "pid_started": 1.0, "started_at": "then"}))
    with run_lock(out):
        pass


def test_two_concurrent_cli_runs_one_refused_other_complete(tmp_path, ffmpeg):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        talking_like(inputs / f"c{i}.mp4", seconds=2.0)
    out = tmp_path / "run"
    cmd = _cli("curate", "run", "video_only", "--input", str(inputs), "--output", str(out), "-q")
    first = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "run.json").exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "first run ended before the second started"
    second = subprocess.run(cmd, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "another run is writing this output folder" in lines[0]
    assert f"pid {first.pid}" in lines[0]
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    rows = shards.read_rows(out, "clips") + shards.read_rows(out, "rejects")  # sha256-verified
    assert len({r["source_path"] for r in rows}) == 3


def _owned_by(pid: int, workers_only: bool = False) -> list[int]:
    import psutil

    out = []
    for p in psutil.process_iter():
        try:
            if (p.environ().get(OWNER_ENV) or "").startswith(f"{pid}:"):
                if not workers_only or "default_worker.py" in " ".join(p.cmdline()) or p.name().startswith("ray::"):
                    out.append(p.pid)
        except (psutil.Error, OSError):
            pass
    return out


def _start_and_kill_driver(inputs: Path, out: Path) -> tuple[int, list[int]]:
    """Start a Ray run, kill -9 its driver once workers run, return (driver pid, leftovers 3 s later)."""
    cmd = _cli("curate", "run", "video_only", "--input", str(inputs), "--output", str(out),
               "--executor", "ray", "--workers", "1", "-q")
    driver = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and driver.poll() is None and not _owned_by(driver.pid, True):
            time.sleep(0.2)
        assert driver.poll() is None, "the run ended before a Ray worker was up"
        time.sleep(1)
    finally:
        os.kill(driver.pid, signal.SIGKILL)  # the driver only, as `kill -9 PID` does
        driver.wait()
    time.sleep(3)
    return driver.pid, _owned_by(driver.pid)


@pytest.mark.ray
@pytest.mark.parametrize("ender", ["cleanup", "next_run"])
def test_ray_processes_of_a_killed_driver_are_ended(ender, tmp_path, ffmpeg):
    """After kill -9 of the driver, Ray workers that were starting outlive the runtime (Ray ends
    the registered ones itself, so whether any is left depends on timing: up to 4 tries to get
    one; when Ray ended them all itself there is nothing to clean and the test skips, saying so);
    ``anytalker curate cleanup``, or the next run, ends every process of the killed run."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    talking_like(inputs / "clip.mp4", seconds=2.0)
    drivers = []
    try:
        for i in range(6):
            pid, left = _start_and_kill_driver(inputs, tmp_path / f"run{i}")
            drivers.append(pid)
            if left:
                break
        if not left:  # a timing matter (seen once in ~10 runs), not a failure of the cleanup
            pytest.skip("Ray ended every process of the killed driver itself in 6 tries: nothing to clean")
        if ender == "cleanup":
            res = subprocess.run(_cli("curate", "cleanup"), cwd=REPO, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=120)
            assert res.returncode == 0, res.stderr[-2000:]
            assert "ended " in res.stdout and "leftover Ray process" in res.stdout
        else:
            res = subprocess.run(_cli("curate", "run", "video_only", "--input", str(inputs), "--output",
                                      str(tmp_path / "next"), "-q"), cwd=REPO, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=300)
            assert res.returncode == 0, res.stderr[-2000:]
        assert [p for d in drivers for p in _owned_by(d)] == []
    finally:
        for pid in [p for d in drivers for p in _owned_by(d)]:  # only processes this test's drivers started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_object_store_outputs_get_a_best_effort_lock_object(tmp_path):
    """URIs go through pyarrow filesystems (no flock): a lock object with the holder, refused
    while that holder lives, taken over when its pid on this host is gone."""
    import socket

    from pipelines.runlock import REMOTE_LOCK_NAME

    uri = f"file://{tmp_path}/out"
    with run_lock(uri) as me:
        assert json.loads((tmp_path / "out" / REMOTE_LOCK_NAME).read_text())["pid"] == me["pid"]
        with pytest.raises(RunLocked, match="another run is writing"):
            with run_lock(uri):
                pass
    assert not (tmp_path / "out" / REMOTE_LOCK_NAME).exists()
    (tmp_path / "out" / REMOTE_LOCK_NAME).write_text(json.dumps(
        {"pid": 2 ** 22 + 54321, "host": socket.gethostname(), "pid_started": 1.0}))
    with run_lock(uri):
        pass
