"""The README's curate commands run from an ordinary terminal, in the foreground and as a
background job (``cmd &``), with both executors.

Before the fix, importing scenedetect ran ``ffmpeg -v quiet`` with the terminal as its standard
input; from a background process group the kernel stopped it (SIGTTOU) together with the job, and
with Ray the stopped worker left the run waiting forever.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.badinputs import talking_like

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory, ffmpeg) -> Path:
    root = tmp_path_factory.mktemp("tty_inputs")
    talking_like(root / "clip.mp4", seconds=2.5)
    return root


def _run_in_terminal(mode: str, executor: str, inputs: Path, out: Path, timeout_s: float, workers: int = 1):
    cmd = [sys.executable, "-m", "anytalker.cli", "curate", "run", "video_only", "--input", str(inputs),
           "--output", str(out), "--executor", executor, "-q"]
    if executor == "ray" or workers != 1:
        cmd += ["--workers", str(workers)]
    return subprocess.run([sys.executable, "-m", "tests.terminal", mode, str(timeout_s), *cmd], cwd=REPO,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s + 60)


@pytest.mark.parametrize("mode", ["fg", "bg"])
def test_local_run_finishes_with_a_terminal_as_stdin(mode, one_clip, tmp_path):
    res = _run_in_terminal(mode, "local", one_clip, tmp_path / "run", 180)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    assert "accepted 1 clips" in res.stdout
    assert (tmp_path / "run" / "manifest.json").is_file()


def test_local_worker_processes_finish_as_a_background_job(one_clip, tmp_path):
    import shutil

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(one_clip / "clip.mp4", inputs / "a.mp4")
    with open(inputs / "b.mp4", "wb") as f:  # other bytes (not deduplicated): a second worker's input
        f.write((one_clip / "clip.mp4").read_bytes() + b"\0")
    res = _run_in_terminal("bg", "local", inputs, tmp_path / "run", 180, workers=2)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    assert "accepted 2 clips" in res.stdout


@pytest.mark.ray
@pytest.mark.parametrize("mode", ["bg", pytest.param("fg", marks=pytest.mark.slow)])
def test_ray_run_finishes_with_a_terminal_as_stdin(mode, one_clip, tmp_path):
    res = _run_in_terminal(mode, "ray", one_clip, tmp_path / "run", 420)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    assert "accepted 1 clips" in res.stdout
    assert (tmp_path / "run" / "manifest.json").is_file()


def test_terminal_harness_detects_a_stopped_background_job():
    """Control: without -nostdin, ffmpeg in a background group is stopped, and the harness says so."""
    res = subprocess.run([sys.executable, "-m", "tests.terminal", "bg", "60", "ffmpeg", "-v", "quiet"],
                         cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert res.returncode == 99, res.stderr


@pytest.mark.ray
def test_actors_that_do_not_come_up_end_the_run_with_a_one_line_hint(one_clip, tmp_path):
    """A bounded wait for a stage's actor pool (here 1 s, shorter than the camera-motion model's
    set-up): the run stops with a hint naming the log folder and the setting, not a hang."""
    import os

    cmd = [sys.executable, "-m", "anytalker.cli", "curate", "run", "video_only", "--input", str(one_clip),
           "--output", str(tmp_path / "run"), "--executor", "ray", "--workers", "1", "-q"]
    res = subprocess.run(cmd, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "ANYTALKER_RAY_START_TIMEOUT_S": "1"})
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("anytalker: error: Ray: a stage's actors did not come up within 1s")
    assert "ANYTALKER_RAY_START_TIMEOUT_S" in last and "Traceback" not in res.stderr
