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


def test_bench_score_exits_nonzero_when_a_metric_scored_nothing(tmp_path, monkeypatch, capsys):
    """The exit status and the terminal lines come from the results document (scoring itself is
    tested in test_score.py): a metric with no scored item, or one asked for that did not run."""
    import benchmarks.scoring as scoring

    def fake_score(*args, **kwargs):
        failed = {"n_scored": 0, "n_failed": 2, "failures": {"no_face": 2}, "value": None, "ci_low": None,
                  "ci_high": None, "backend": "b", "backend_version": "1", "version": "1",
                  "items": [{"ok": False, "components": {"detail": "no face in 90% of frames"}}]}
        return {"benchmark": "interactive_eyes", "version": "v1", "items": ["interact_11", "interact_12"],
                "submission": {"model": "m"}, "metrics": {"interactivity": failed},
                "not_run": {"identity": "no reference frame"}, "pinning": {"ok": True, "differences": []}}

    monkeypatch.setattr(scoring, "score_submission", fake_score)
    out = tmp_path / "r.json"
    rc = main(["bench", "score", str(tmp_path), "--output", str(out), "--metric", "interactivity", "--metric", "identity"])
    err = capsys.readouterr().err
    assert rc == 1 and out.is_file()
    assert 'interactivity scored nothing (2 failed: {"no_face": 2}); first: no face in 90% of frames' in err
    assert "identity was asked for but not run: no reference frame" in err
