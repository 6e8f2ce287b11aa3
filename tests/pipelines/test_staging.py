"""The driver's staging folder never outlives its run: a normal end, an exception, SIGTERM
(cleaned up by the run itself) and SIGKILL (removed by the next run, whose owner lock is free).

Before this, every run made an ``anytalker-stage-*`` folder in /tmp with
``tempfile.TemporaryDirectory``, and every run ended by a signal (the suite's kill tests, a
timeout) left it there: /tmp held 121 of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.staging import PREFIX, StagingDir, sweep_stale

REPO = Path(__file__).resolve().parents[2]


def _staging_dirs(parent: Path) -> list[Path]:
    return sorted(parent.glob(PREFIX + "*"))


def test_a_killed_owner_s_folder_is_swept_and_a_live_or_foreign_one_is_kept(tmp_path):
    # a process that makes a staging folder, then dies by SIGKILL (no cleanup can run)
    code = textwrap.dedent(f"""
        import os, signal
        from pipelines.staging import StagingDir
        d = StagingDir({str(tmp_path)!r}); d.path(); (d.path() / "copy.mp4").write_bytes(b"x")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.DEVNULL,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
    assert res.returncode == -signal.SIGKILL, res.stderr.decode()
    (killed,) = _staging_dirs(tmp_path)
    live = StagingDir(tmp_path)
    live_path = live.path()
    foreign = tmp_path / (PREFIX + "older-version")  # no owner file: not ours to judge
    foreign.mkdir()
    try:
        assert sweep_stale(tmp_path) == [str(killed)]
        assert not killed.exists() and live_path.exists() and foreign.exists()
    finally:
        live.cleanup()
    assert not live_path.exists()


def test_a_run_that_needs_no_staging_makes_no_folder_and_one_that_raises_removes_it(tmp_path, monkeypatch):
    import tempfile

    from pipelines import runner

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    clip = tmp_path / "in" / "a.mp4"
    clip.parent.mkdir()
    clip.write_bytes(b"not a video")
    runner.run_curation("video_only", clip.parent, tmp_path / "out", progress=False, workers=1)
    assert _staging_dirs(tmp_path / "tmp") == []  # local UTF-8 inputs: nothing to stage

    latin1 = clip.parent / os.fsdecode(b"caf\xe9.mp4")  # needs a UTF-8 link in the staging folder
    latin1.write_bytes(b"not a video either")

    def boom(*a, **k):
        assert len(_staging_dirs(tmp_path / "tmp")) == 1  # made, and in use
        raise RuntimeError("executor failed")

    monkeypatch.setattr(runner, "make_executor", boom)
    with pytest.raises(RuntimeError, match="executor failed"):
        runner.run_curation("video_only", clip.parent, tmp_path / "out2", progress=False, workers=1)
    assert _staging_dirs(tmp_path / "tmp") == []


def test_a_duplicate_with_a_non_utf8_name_is_a_row_not_a_crash(tmp_path):
    from pipelines import runner
    from pipelines.shards import read_rows

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.mp4").write_bytes(b"same bytes")
    (inputs / os.fsdecode(b"caf\xe9.mp4")).write_bytes(b"same bytes")  # sorted after a.mp4: the duplicate
    runner.run_curation("video_only", inputs, tmp_path / "out", progress=False, workers=1)
    rows = {r["source_path"]: r for r in read_rows(tmp_path / "out", kind="rejects")}
    dup = rows[r"caf\xe9.mp4"]  # stored with its byte escaped
    assert dup["reason"] == "duplicate" and dup["error_detail"] == "identical bytes to a.mp4"
    assert rows["a.mp4"]["reason"] != "duplicate"


def test_sigterm_mid_run_removes_the_staging_folder_and_ends_the_workers(tmp_path, ffmpeg):
    import psutil

    inputs = tmp_path / "in"
    inputs.mkdir()
    for hz, name in ((220, os.fsdecode(b"caf\xe9.mp4")), (330, "b.mp4")):  # non-UTF-8: the run stages a link
        subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                        "-f", "lavfi", "-i", f"sine=frequency={hz}", "-t", "60", "-shortest", str(inputs / name)],
                       check=True, stdin=subprocess.DEVNULL)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = ("from pipelines.runner import run_curation; import sys; "
            "run_curation('single_person', sys.argv[1], sys.argv[2], progress=False, workers=2)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(inputs), str(tmp_path / "out")], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)})
    try:
        deadline = time.time() + 120
        workers: list[psutil.Process] = []
        while time.time() < deadline and proc.poll() is None:
            try:
                workers = [p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]
            except psutil.Error:  # a child ended while being read
                continue
            if _staging_dirs(tmp) and len(workers) == 2:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be interrupted: {proc.stderr.read().decode()[-2000:]}")
        assert _staging_dirs(tmp) and len(workers) == 2
        time.sleep(0.5)  # mid-run: workers starting or running sources (a minute of video each)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err.decode()[-2000:]
    assert _staging_dirs(tmp) == []
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"worker processes left running: {[p.pid for p in alive]}"
