"""Shot split on the hand-marked Tears of Steel clip."""

from __future__ import annotations

import json

from curation.base import run_stage_batch
from curation.stages.shots import ShotsStage
from tests.conftest import shared_file


def test_shots_match_hand_marked_cuts_and_ignore_flicker_and_morph():
    video = shared_file("scenes/clip_01_tears_of_steel.mp4")
    truth = json.loads(shared_file("scenes/clip_01_tears_of_steel.cuts.json").read_text())
    row = {"source_abs_path": str(video), "fps": 24.0, "num_frames": truth["num_frames"], "status": "ok"}
    shots = run_stage_batch(ShotsStage(), [row])
    cuts = [s["start_frame"] for s in shots[1:]]
    assert len(cuts) == len(truth["cut_frames"]), cuts
    for found, expected in zip(cuts, truth["cut_frames"]):
        assert abs(found - expected) <= 1, (cuts, truth["cut_frames"])
    for region in truth["not_cuts"]:
        a, b = region["frames"]
        assert not [c for c in cuts if a < c <= b], f"cut inside {region['what']}"
    # the spans tile the video
    assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == truth["num_frames"]
    assert all(x["end_frame"] == y["start_frame"] for x, y in zip(shots, shots[1:]))
    # the 21-frame first shot (0.875 s) is kept as a reject row, not dropped
    assert shots[0]["status"] == "filtered" and shots[0]["reason"] == "shot_too_short"
