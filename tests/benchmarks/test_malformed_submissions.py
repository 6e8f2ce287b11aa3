"""Malformed submissions end as INVALID with a reason, the --json report is still written, and
nothing is written outside the extraction folder (issue 11, item 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anytalker.cli import main
from tests.badinputs import build_bad_submissions


@pytest.fixture(scope="module")
def bad_zips(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("bad_zips")
    return root, build_bad_submissions(root)


def test_every_malformed_zip_is_invalid_with_a_reason_and_a_report(bad_zips, tmp_path, capsys, monkeypatch):
    root, expected = bad_zips
    assert len(expected) >= 11
    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setenv("TMPDIR", str(work))  # the extraction folder's parent: must be empty after
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(work))
    before = set(root.iterdir())
    for name, must_say in expected.items():
        report = tmp_path / f"{name}.json"
        rc = main(["bench", "validate", str(root / name), "--items", "interact_11", "--json", str(report)])
        out = capsys.readouterr()
        assert rc == 1, (name, out.out, out.err)
        assert "Traceback" not in out.err and "RESULT: INVALID" in out.out, (name, out)
        assert must_say in out.out, (name, out.out)
        doc = json.loads(report.read_text())
        assert doc["ok"] is False and any(c["problems"] for c in doc["checks"]), name
    assert set(root.iterdir()) == before  # nothing written next to the zips
    assert list(work.iterdir()) == []  # extraction folders removed


def test_oversized_frames_are_invalid_before_decoding(tmp_path, ffmpeg):
    from benchmarks.manifest import load_benchmark
    from benchmarks.submission import probe_video
    from tests.conftest import run_ffmpeg

    video = tmp_path / "big.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=4608x2592:rate=5:duration=0.4", "-c:v", "libx264",
               "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(video))
    item = load_benchmark().item("interact_11")
    facts, problems = probe_video(video, item, load_benchmark().protocol)
    assert any("exceed the limit" in p.message for p in problems), problems
    assert "decoded_frames" not in facts  # refused from the header, no frame decoded
