"""`anytalker metrics ls|run`."""

from __future__ import annotations

import json
import os

import pytest

from anytalker.cli import main
from tests.conftest import shared_file


def test_ls_lists_every_metric(capsys):
    assert main(["metrics", "ls"]) == 0
    out = capsys.readouterr().out
    for name in ("sync_c", "sync_d", "sync_c_star", "identity", "interactivity", "fid", "fvd"):
        assert name in out
    assert main(["metrics", "ls", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"interactivity", "fvd"}


def test_run_on_the_benchmark_layout(tmp_path, capsys):
    video = shared_file("anytalker_benchmark/interact_11.mp4")
    bench = video.parent
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "interact_11.mp4").symlink_to(video)  # the generated-videos dir; media stays in place
    out = tmp_path / "results.json"
    code = main(["metrics", "run", "--metric", "interactivity", "--metric", "sync_c_star",
                 "--videos", str(videos), "--intervals", str(bench / "speaker_duration.json"),
                 "--interval-format", "timecode30", "--audio-dir", str(bench), "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["interval_format"] == "timecode30"
    res = {r["name"]: r for r in doc["results"]}
    assert res["interactivity"]["n_scored"] == 1 and res["interactivity"]["value"] > 0
    star = res["sync_c_star"]
    assert star["n_scored"] == 1 and star["backend"] == "landmark"
    item = star["items"][0]
    assert item["components"]["per_speaker_audio"] is True
    assert item["components"]["persons"][0]["audio"].endswith("interact_11_left.flac")
    assert item["components"]["interval_format"] == "timecode30"


@pytest.mark.parametrize("argv, needle", [
    (["--videos", "/nonexistent/dir"], "/nonexistent/dir: not a directory"),
    (["--videos", ".", "--intervals", "/nonexistent/speaker_duration.json"], "speaker_duration.json: intervals file not found"),
    (["--videos", ".", "--weights", "/nonexistent/w.pt"], "w.pt: weights file not found"),
])
def test_run_errors_name_the_file_and_the_fix(tmp_path, capsys, argv, needle):
    code = main(["metrics", "run", "--metric", "sync_c", *argv, "--output", str(tmp_path / "r.json")])
    assert code == 2
    assert needle in capsys.readouterr().err


def test_run_on_a_directory_without_videos_is_a_user_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    code = main(["metrics", "run", "--metric", "identity", "--videos", str(tmp_path), "--output", str(tmp_path / "r.json")])
    assert code == 2
    assert "no video files" in capsys.readouterr().err


def test_weights_go_to_the_metrics_that_load_that_network(tmp_path, capsys):
    from anytalker.cli_metrics import _backend_options

    w = tmp_path / "w.pt"
    w.write_bytes(b"x")
    opts = _backend_options(["sync_c", "sync_c_star", "interactivity"], "syncnet", w)
    assert opts["sync_c"] == opts["sync_c_star"] == {"backend": "syncnet", "weights": str(w)}
    assert opts["interactivity"] == {}
    assert _backend_options(["fid", "identity"], None, w) == {"fid": {"weights": str(w)}, "identity": {}}
    videos = tmp_path / "v"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"")
    for argv, needle in [(["--metric", "fid", "--metric", "fvd"], "ambiguous"),
                         (["--metric", "sync_c"], "no chosen metric loads a network file"),
                         (["--metric", "fid", "--backend", "syncnet"], "none of ['fid'] has this backend")]:
        code = main(["metrics", "run", *argv, "--videos", str(videos), "--weights", str(w),
                     "--output", str(tmp_path / "r.json")])
        assert code == 2
        assert needle in capsys.readouterr().err


def test_items_that_all_fail_exit_nonzero_with_reasons_and_nothing_vanishes(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "text.mp4").write_text("not a video\n")
    (videos / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    (videos / "folder.mp4").mkdir()
    os.mkfifo(videos / "fifo.mp4")  # must fail unopened, not block
    (videos / "notes.txt").write_text("x")
    (videos / "sub").mkdir()
    out = tmp_path / "r.json"
    code = main(["metrics", "run", "--metric", "identity", "--videos", str(videos), "--output", str(out)])
    cap = capsys.readouterr()
    assert code == 1
    assert "identity scored nothing (4 failed" in cap.err and "Traceback" not in cap.err
    doc = json.loads(out.read_text())
    res = doc["results"][0]
    assert res["n_scored"] == 0 and res["n_failed"] == 4
    reasons = {it["item_id"]: it["reason"] for it in res["items"]}
    assert reasons["dangling.mp4"] == "not_found"
    assert reasons["folder.mp4"] == reasons["fifo.mp4"] == "not_a_file"
    assert doc["skipped"] == {"not_a_video_name": 1, "folder_not_scanned": 1}
    assert "skipped (not scored, not items): 2" in cap.out


def test_required_intervals_are_checked_before_any_work(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"x")
    (videos / "b.mp4").write_bytes(b"x")
    code = main(["metrics", "run", "--metric", "interactivity", "--videos", str(videos), "--output", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "needs speaking intervals: pass --intervals" in err and len(err.strip().splitlines()) == 1
    intervals = tmp_path / "speaker_duration.json"
    intervals.write_text(json.dumps({"a.mp4": {"left": [[0, 1]], "right": [[1, 2]]}}))
    code = main(["metrics", "run", "--metric", "interactivity", "--videos", str(videos), "--intervals", str(intervals),
                 "--output", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "no speaking intervals for 1 video(s)" in err and "b.mp4" in err
    assert not (tmp_path / "r.json").exists()
