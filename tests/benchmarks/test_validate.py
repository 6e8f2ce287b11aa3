"""`anytalker bench validate` on a real benchmark video and on broken submissions."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from anytalker.cli import main
from benchmarks.manifest import load_benchmark
from benchmarks.submission import validate_submission
from tests.conftest import run_ffmpeg, shared_file

META = {"benchmark": "interactive_eyes", "version": "v1", "model": "upstream-real-video", "revision": "e5490b6"}


def make_submission(tmp_path: Path, meta: dict | None = None) -> Path:
    """Submission folder holding the real benchmark clip under the manifest's file name."""
    src = shared_file("anytalker_benchmark/interact_11.mp4")
    sub = tmp_path / "submission"
    sub.mkdir()
    item = load_benchmark().item("interact_11")
    shutil.copyfile(src, sub / item.video_file)
    (sub / "submission.json").write_text(json.dumps(meta or META))
    return sub


def test_real_clip_validates_for_its_item_and_is_incomplete_otherwise(tmp_path, capsys):
    sub = make_submission(tmp_path)
    assert main(["bench", "validate", str(sub), "--items", "interact_11", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "RESULT: VALID" in out and "[FAIL]" not in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] and report["videos"]["interact_11"]["fps"] == pytest.approx(24.0)
    assert report["videos"]["interact_11"]["has_audio"] is True

    assert main(["bench", "validate", str(sub)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] files: 1/29 expected video(s) present, 28 missing" in out
    missing = [line for line in out.splitlines() if line.strip().startswith("- interact_") and ": missing;" in line]
    assert len(missing) == 28
    assert "interact_1.mp4: missing; render item interact_1" in out
    assert "interact_11.mp4: missing" not in out
    assert "RESULT: INVALID (28 problem(s)" in out


def test_zip_submission_validates(tmp_path):
    sub = make_submission(tmp_path)
    z = tmp_path / "sub.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(sub.iterdir()):
            zf.write(f, f"mymodel/{f.name}")
    work = tmp_path / "work"
    report, opened = validate_submission(z, load_benchmark(), ["interact_11"], work)
    assert report.ok, report.render()
    assert opened.kind == "zip" and opened.root.is_relative_to(work.resolve())


def test_metadata_and_file_set_problems_are_listed(tmp_path, capsys):
    sub = make_submission(tmp_path, {"benchmark": "other_bench", "version": "v1", "model": "m", "extra_key": 1})
    (sub / "notes.txt").write_text("hi")
    (sub / "nested").mkdir()
    shutil.copyfile(sub / "interact_11.mp4", sub / "nested" / "interact_3.mp4")
    assert main(["bench", "validate", str(sub), "--items", "interact_11"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] metadata" in out
    assert "'revision' is a required property" in out
    assert "Additional properties are not allowed ('extra_key'" in out
    assert "benchmark is 'other_bench'" in out
    assert "notes.txt: not part of interactive_eyes v1; remove it" in out
    assert "nested/interact_3.mp4: inside a sub-folder; move it to the submission root" in out
    assert "[PASS] videos" in out  # the real clip itself is fine


def test_broken_videos_get_one_line_per_problem(tmp_path, ffmpeg):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "submission.json").write_text(json.dumps(META))
    # interact_3: 2 s at 10 fps without audio -> fps, duration, audio problems
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=10:duration=2", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", str(sub / "interact_3.mp4"))
    # interact_4: not a video at all
    (sub / "interact_4.mp4").write_bytes(b"\x00garbage" * 100)
    report, _ = validate_submission(sub, load_benchmark(), ["interact_3", "interact_4"])
    assert not report.ok
    videos = next(c for c in report.checks if c.name == "videos")
    text = [str(p) for p in videos.problems]
    assert any(t.startswith("interact_3.mp4: frame rate 10.000 fps outside") for t in text), text
    assert any(t.startswith("interact_3.mp4: 2.000 s is shorter than its audio (6.") for t in text), text
    assert any(t.startswith("interact_3.mp4: has no audio track") for t in text), text
    assert any(t.startswith("interact_4.mp4: ffprobe cannot read it") for t in text), text
    assert "meet the protocol" in videos.summary and videos.summary.startswith("2 video(s)")


def test_missing_submission_is_a_user_error(tmp_path, capsys):
    assert main(["bench", "validate", str(tmp_path / "nope")]) == 2
    assert "nope: submission not found" in capsys.readouterr().err
