"""camera_motion: a static talking clip passes; the same clip with synthetic camera shake fails."""

from __future__ import annotations

import numpy as np

from curation.base import run_stage_batch
from curation.media import read_frames, write_video
from curation.stages.camera_motion import CameraMotionStage
from tests.conftest import shared_file


def _row(path, n, fps=25.0):
    return {"source_abs_path": str(path), "start_frame": 0, "end_frame": n, "fps": fps, "status": "ok"}


def test_static_clip_passes_and_shaken_copy_is_rejected(tmp_path):
    src = shared_file("talking/latentsync_demo1_video.mp4")
    frames = read_frames(src, 0, 100, width=360, height=640)
    stage = CameraMotionStage()
    (static,) = run_stage_batch(stage, [_row(src, 100)])
    assert static["status"] == "ok", static
    assert static["shake_score"] < 0.002

    # hand-held jitter: random translation of up to 14 px per frame, cropped to hide borders
    rng = np.random.default_rng(0)
    m = 16
    shaken = []
    for f in frames:
        dx, dy = rng.integers(-14, 15, size=2)
        shaken.append(f[m + dy : f.shape[0] - m + dy, m + dx : f.shape[1] - m + dx])
    path = tmp_path / "shaken.mp4"
    write_video(path, np.stack(shaken), fps=25)
    (bad,) = run_stage_batch(stage, [_row(path, len(shaken))])
    assert bad["status"] == "filtered" and bad["reason"] == "camera_shake", bad.get("shake_score")
    assert bad["shake_score"] > 2 * stage.max_shake
