"""`anytalker train-set`: a clips run from face tracks, with the held-out tail listed and every
input a row (ok / filtered / failed with a reason)."""

import json

from anytalker.cli import main
from model.shard_reader import read_clip_rows
from tests.conftest import shared_file


def test_train_set_holds_out_the_tail_and_keeps_bad_inputs_as_rows(tmp_path, capsys):
    video = shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4")
    root = tmp_path / "data"
    root.mkdir()
    (root / "aoc.mp4").symlink_to(video)
    (root / "junk.mp4").write_bytes(b"not a video")
    out = tmp_path / "set"
    assert main(["train-set", "aoc.mp4", "junk.mp4", "--data", str(root), "--output", str(out),
                 "--holdout", "0.3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clips_ok"] == 1 and result["rows"] == 2 and "junk.mp4" in result["filtered"]
    manifest, rows = read_clip_rows(out)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 1 and manifest["totals"]["failed"] == 1
    split = json.loads((out / "split.json").read_text())
    (held,) = split["heldout"]
    assert held["start_s"] >= ok[0]["end_s"] - 1e-6  # the held-out span starts after the training span
    assert ok[0]["persons"][0]["audio_ref"] == "mix:aoc.mp4"


def test_train_set_names_a_missing_video(tmp_path, capsys):
    assert main(["train-set", "nope.mp4", "--data", str(tmp_path), "--output", str(tmp_path / "s")]) == 2
    assert "nope.mp4" in capsys.readouterr().err


def test_train_set_uses_a_clip_whose_container_counts_one_frame_more_than_decodes(tmp_path, capsys):
    # the shared syncnet example probes at 133 frames and decodes 132; it used to become a failed
    # row ("Out of bound indices") and was lost for training
    video = shared_file("talking/syncnet_example_video.avi")
    root = tmp_path / "data"
    root.mkdir()
    (root / "syncnet.avi").symlink_to(video)
    out = tmp_path / "set"
    assert main(["train-set", "syncnet.avi", "--data", str(root), "--output", str(out), "--holdout", "0.3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clips_ok"] == 1, result["filtered"]
