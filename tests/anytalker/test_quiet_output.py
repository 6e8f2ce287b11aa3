"""A curation run through the CLI prints only its own lines: no mediapipe / absl / TFLite / Ray
start-up output unless -v is given (then that output is back, which shows the filter is what
keeps it away)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_ffmpeg, shared_file

# The lines a curation run is meant to print (pipelines.runner's summary).
OWN_LINE = re.compile(r"^(shards: |accepted \d+ clips|  [a-z_]+: \d+$|partitions: |skipped: \d+|anytalker: note: )")
# What third-party output looks like (absl/glog prefixes, TFLite, Ray's log format).
THIRD_PARTY = re.compile(r"^[IWEF]\d{4} |absl|TensorFlow Lite|XNNPACK|^\[\d{4}-\d\d-\d\d [\d:,]+ [IWEF] |"
                         r"\t(INFO|WARNING) \S+\.py:\d+ -- |mediapipe|inference_feedback|Ray instance")


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory, ffmpeg) -> Path:
    """3 s of a real talking clip: enough for probe, shots, the face detector and clips."""
    src = shared_file("talking/latentsync_demo1_video.mp4")
    out = tmp_path_factory.mktemp("quiet") / "clip.mp4"
    run_ffmpeg("-i", str(src), "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(out))
    return out


def _run(args: list[str], tmp: Path) -> tuple[list[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANYTALKER_VERBOSE", "GLOG_", "TF_CPP", "RAY_"))}
    env["PYTHONPATH"] = str(REPO)
    p = subprocess.run([sys.executable, "-m", "anytalker.cli", *args], cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout.splitlines(), p.stderr.splitlines()


def _stray(stdout: list[str], stderr: list[str]) -> list[str]:
    return [ln for ln in stdout if not OWN_LINE.match(ln)] + [ln for ln in stderr if ln.strip()]


def test_local_run_prints_no_third_party_lines_and_v_brings_them_back(short_clip, tmp_path):
    args = ["curate", "run", "video_only", "--input", str(short_clip.parent), "--data", str(short_clip.parent), "-q"]
    out, err = _run([*args, "--output", str(tmp_path / "quiet")], tmp_path)
    assert _stray(out, err) == [], "stray lines in a quiet run"
    assert any(ln.startswith("accepted ") for ln in out)

    out_v, err_v = _run([*args, "--output", str(tmp_path / "loud"), "-v"], tmp_path)
    assert [ln for ln in out_v + err_v if THIRD_PARTY.search(ln)], \
        "with -v the mediapipe/TFLite start-up lines are expected again"


@pytest.mark.ray
def test_ray_run_prints_no_third_party_lines(short_clip, tmp_path):
    out, err = _run(["curate", "run", "video_only", "--input", str(short_clip.parent), "--data",
                     str(short_clip.parent), "--output", str(tmp_path / "r"), "--executor", "ray", "--workers", "1",
                     "-q"], tmp_path)
    assert _stray(out, err) == [], "stray lines in a quiet Ray run"


def test_chatter_patterns_keep_errors():
    from curation.quiet import is_chatter

    assert is_chatter("W0000 00:00:1796041798.732511   12370 inference_feedback_manager.cc:114] Feedback manager")
    assert is_chatter("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert is_chatter("[2026-11-30 12:32:04,519 I 16601 16601] logging.cc:303: Set ray log level")
    assert not is_chatter("E0000 00:00:1796041798.732511   12370 calculator_graph.cc:887] INTERNAL: graph failed")
    assert not is_chatter("[2026-11-30 12:32:04,519 E 16601 16601] raylet_client.cc:10: lost connection")
    assert not is_chatter("ffmpeg: Invalid data found when processing input")


def test_native_stderr_quiet_replays_what_matters(capfd):
    from curation.quiet import native_stderr_quiet

    with native_stderr_quiet(enabled=True):
        os.write(2, b"W0000 00:00:1.0   1 landmark_projection_calculator.cc:186] Using NORM_RECT\n")
        os.write(2, b"E0000 00:00:1.0   1 graph.cc:1] real problem\n")
    err = capfd.readouterr().err
    assert "landmark_projection" not in err
    assert "real problem" in err
