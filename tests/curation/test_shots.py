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


def _frames(rel: str, n: int):
    from curation.media import VideoReader

    reader = VideoReader(shared_file(rel), width=160, height=-1)
    return reader.get(range(min(n, len(reader))))


def test_soft_cut_between_low_contrast_shots_is_found_and_flicker_is_not():
    import numpy as np

    from curation.shots import detect_cuts, downscale, frame_scores

    a = _frames("eval/talking_real/PC-AVS_Audio_Source_00015.mp4", 80).astype(np.float32)
    # a flat, grey, low-contrast picture (as in line-art animation) cut to the mirrored view of
    # the same scene: same colours, new layout; the content score stays far under 27
    grey = (128 + 0.6 * (a.mean(-1, keepdims=True).repeat(3, -1) - 128)).clip(0, 255).astype(np.uint8)
    clip = np.concatenate([grey[:40], grey[40:, :, ::-1]])
    content, _ = frame_scores(downscale(clip))
    assert content[40] < 20.0, content[40]
    assert detect_cuts(clip, 25.0) == [40]
    assert detect_cuts(grey[:40], 25.0) == []
    # brightness flicker every other frame inside one shot is not a cut
    flicker = a[:40].copy()
    flicker[10:30:2] *= 0.55
    assert detect_cuts(flicker.clip(0, 255).astype(np.uint8), 25.0) == []


def test_video_only_accepts_a_silent_source_and_splits_its_shots(tmp_path):
    from pipelines import shards
    from pipelines.runner import run_curation

    video = shared_file("scenes/clip_01_tears_of_steel.mp4")  # no audio stream
    listing = tmp_path / "list.txt"
    listing.write_text(f"{video}\n")
    run_curation("video_only", listing, tmp_path / "run", progress=False)
    rows = shards.read_rows(tmp_path / "run", "clips") + shards.read_rows(tmp_path / "run", "rejects")
    assert not [r for r in rows if r["reason"] == "no_audio"], rows
    starts = sorted({r["start_frame"] for r in rows if r.get("shot_index") is not None and r["reason"] != "shot_too_short"})
    assert {65, 185} <= set(starts), starts


def test_long_source_is_streamed_in_bounded_memory_with_the_same_cuts(tmp_path, monkeypatch, ffmpeg):
    """A 4-minute synthetic source (24 ten-second shots of four lavfi patterns at 10 fps): the
    stage streams it when it does not fit the frame cache, holds a few frames at a time, and
    finds the same cuts as the all-frames detector (and the true shot boundaries)."""
    import tracemalloc

    import numpy as np

    from curation import decode
    from curation.media import VideoReader
    from curation.shots import StreamingCutDetector, detect_cuts_all_frames
    from tests.conftest import run_ffmpeg

    fps, shot_s, w, h = 10, 10, 128, 72
    patterns = [f"testsrc2=s={w}x{h}:r={fps}", f"smptebars=s={w}x{h}:r={fps}",
                f"mandelbrot=s={w}x{h}:r={fps}", f"testsrc=s={w}x{h}:r={fps}"]
    parts = []
    for i, src in enumerate(patterns):
        part = tmp_path / f"p{i}.mp4"
        run_ffmpeg("-f", "lavfi", "-i", f"{src},trim=duration={shot_s}", "-c:v", "libx264", "-preset", "ultrafast",
                   "-g", "50", "-pix_fmt", "yuv420p", str(part))
        parts.append(part)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"file '{parts[i % 4]}'\n" for i in range(24)))
    video = tmp_path / "long.mp4"
    run_ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(video))
    n_frames = 24 * shot_s * fps
    truth = [k * shot_s * fps for k in range(1, 24)]

    # all frames at once (the reference rules): 2400 x 128x72 RGB = 66 MB in memory
    frames = VideoReader(video).get(range(n_frames))
    all_at_once = detect_cuts_all_frames(frames)
    del frames
    assert all_at_once == truth

    # the stage with a 4 MB frame cache: streamed, a few frames held, same cuts
    monkeypatch.setenv("ANYTALKER_FRAME_CACHE_MB", "4")
    monkeypatch.setattr(decode, "_CACHE", None)
    held = []
    real_finish = StreamingCutDetector.finish

    def finish(self):
        held.append(self.peak_frames_held)
        return real_finish(self)

    monkeypatch.setattr(StreamingCutDetector, "finish", finish)
    row = {"source_abs_path": str(video), "fps": float(fps), "num_frames": n_frames, "status": "ok"}
    tracemalloc.start()
    try:
        shots = run_stage_batch(ShotsStage(), [row])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [s["start_frame"] for s in shots[1:]] == truth
    assert shots[-1]["end_frame"] == n_frames
    assert held and held[0] <= 12, held
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MB for a 66 MB source"

    # chunking does not change the cuts
    det = StreamingCutDetector()
    rng = np.random.default_rng(0)
    reader = VideoReader(video)
    a = 0
    while a < n_frames:
        b = min(n_frames, a + int(rng.integers(1, 200)))
        det.feed(reader.get(range(a, b)))
        a = b
    assert det.finish() == truth
