"""`shots`: split a video into shots (fan-out: one row per shot)."""

from __future__ import annotations

from curation.base import Reason, Resources, Row, Stage, reject
from curation.decode import load_frames, timeline

# frames per decode window when the source is too long to hold at overview size
_WINDOW = 1500


class ShotsStage(Stage):
    """PySceneDetect's ContentDetector on HSV content change, fed with the shared overview
    frames (upright, <= 320 px, constant-rate timeline: ``curation.decode``) instead of its own
    full-resolution decode; PySceneDetect downscales to ~256 px itself, so the input it judges
    is the same.

    Default ``threshold`` 27 (PySceneDetect's default): on the hand-marked Tears of Steel clip it
    finds the cuts at frames 21, 65 and 185 exactly and none inside the hologram flicker
    (186-206) or the robot-to-face morph (207-235); 20 and the AdaptiveDetector give the same
    cuts there. Shots shorter than ``min_shot_s`` become reject rows (``shot_too_short``) so
    every frame of the source is accounted for.
    """

    name = "shots"
    version = "2"
    requires = ("source_abs_path", "fps", "num_frames")
    produces = ("shot_index", "start_frame", "end_frame", "start_s", "end_s")
    resources = Resources(cpus=1)
    params = {"threshold": 27.0, "min_scene_len": 15, "min_shot_s": 1.0}

    def cut_frames(self, path: str, fps: float, n: int) -> list[int]:
        """Timeline indices of the first frame of every new shot."""
        import cv2
        from scenedetect import ContentDetector

        det = ContentDetector(threshold=float(self.threshold), min_scene_len=int(self.min_scene_len))
        cuts: list[int] = []
        i = 0
        for a in range(0, max(1, n), _WINDOW):
            fr = load_frames(path, a, min(n, a + _WINDOW), rate=fps, overview=True)
            for f in fr.frames:
                cuts += det.process_frame(i, cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
                i += 1
            if fr.complete or len(fr.frames) == 0:
                break
        cuts += det.post_process(i)
        return sorted({c for c in cuts if 0 < c < n})

    def process(self, row: Row) -> list[Row]:
        fps = float(row["fps"])
        n = int(row["num_frames"] or timeline(row["source_abs_path"], fps)[1])
        cuts = self.cut_frames(row["source_abs_path"], fps, n)
        bounds = [0, *cuts, n]
        spans = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a] or [(0, n)]
        out = []
        for i, (a, b) in enumerate(spans):
            shot = {**row, "shot_index": i, "start_frame": a, "end_frame": b,
                    "start_s": a / fps, "end_s": b / fps, "num_shots": len(spans)}
            if (b - a) / fps < self.min_shot_s:
                shot = reject(shot, Reason.SHOT_TOO_SHORT, f"shot {i} is {(b - a) / fps:.2f}s", self.name)
            out.append(shot)
        return out
