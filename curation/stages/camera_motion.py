"""`camera_motion`: reject clips whose camera shakes or pans (background motion outside faces).

The paper filters camera motion with CoTracker point tracks; CoTracker weights cannot be
downloaded here, so the embedded backend is sparse Lucas-Kanade optical flow on background
corners (faces masked out) with a RANSAC similarity fit per frame pair: the fitted translation
is the camera's motion, independent of the talking people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curation.base import Filter, Reason, Resources, Row
from curation.decode import load_frames
from curation.fields import Field
from curation.media import sample_indices

BACKEND = "lk-ransac"


def global_motion(gray: list[np.ndarray], masks: list[np.ndarray | None]) -> np.ndarray:
    """Per consecutive frame pair: (dx, dy, rotation rad, log scale) of the background; NaN rows
    where too few background points could be tracked."""
    import cv2

    out = np.full((max(0, len(gray) - 1), 4), np.nan)
    for i in range(len(gray) - 1):
        pts = cv2.goodFeaturesToTrack(gray[i], maxCorners=300, qualityLevel=0.01, minDistance=7,
                                      mask=masks[i])
        if pts is None or len(pts) < 12:
            continue
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(gray[i], gray[i + 1], pts, None, winSize=(21, 21), maxLevel=3)
        good = st.reshape(-1) == 1
        if good.sum() < 12:
            continue
        m, inl = cv2.estimateAffinePartial2D(pts[good], nxt[good], method=cv2.RANSAC, ransacReprojThreshold=2.0)
        if m is None:
            continue
        scale = float(np.hypot(m[0, 0], m[1, 0]))
        out[i] = (m[0, 2], m[1, 2], float(np.arctan2(m[1, 0], m[0, 0])), np.log(max(scale, 1e-6)))
    return out


def shake_scores(motion: np.ndarray, fps: float, diag: float) -> tuple[float, float]:
    """(shake, pan): RMS of the high-frequency part of the camera path, and median camera speed,
    both in frame diagonals (per second for pan)."""
    ok = ~np.isnan(motion[:, 0])
    if ok.sum() < 3:
        return float("nan"), float("nan")
    d = np.where(ok[:, None], motion[:, :2], 0.0)
    path = np.cumsum(d, axis=0)
    win = max(3, int(round(fps)) | 1)  # ~1 s moving average = intended camera path
    pad = np.pad(path, ((win // 2, win // 2), (0, 0)), mode="edge")
    kernel = np.ones(win) / win
    smooth = np.stack([np.convolve(pad[:, k], kernel, mode="valid") for k in range(2)], axis=1)
    jitter = path - smooth
    shake = float(np.sqrt(np.mean(np.sum(jitter[ok] ** 2, axis=1)))) / diag
    pan = float(np.median(np.hypot(d[ok, 0], d[ok, 1]))) * fps / diag
    return shake, pan


@dataclass
class CameraMotionParams:
    """Parameters of ``camera_motion`` (see the stage docstring for the measurements behind them)."""

    analysis_fps: float = 8.0
    analysis_width: int = 320
    max_shake: float = 0.006
    max_pan: float = 0.15
    mask_faces: bool = True


class CameraMotionStage(Filter):
    """Samples ``analysis_fps`` frames of the shared overview decode (``curation.decode``,
    long side <= 320 px) scaled to ``analysis_width`` px, masks faces (mediapipe
    detections from ``curation.faces``, dilated), fits the background motion.

    Measured (analysis 8 fps, 320 px wide): latentsync_demo1 0.0001, syncnet_example (singer,
    moving head and guitar) 0.0025; the close-up clips (sadtalker, infinitetalk, interact_11)
    leave too little background outside the masked faces and give NaN (kept: nothing indicates
    motion). latentsync_demo1 with synthetic hand-held jitter of up to 14 px per frame gives
    0.0156 (tests/curation/test_camera_motion.py). Defaults: ``max_shake`` 0.006, between the two;
    ``max_pan`` 0.15 diagonals/s (a slow pan across a third of the frame in ~2 s passes).
    """

    name = "camera_motion"
    version = "2"
    requires = ("source_abs_path", "start_frame", "end_frame", "fps")
    produces = ("shake_score",)
    fields = {
        "shake_score": Field(pa.float64(), "frame diagonal", "RMS of the high-frequency camera path"),
        "pan_speed": Field(pa.float64(), "frame diagonal/s", "median camera speed"),
        "camera_motion_backend": Field(pa.string()),
        "motion_valid_frac": Field(pa.float64(), "1", "fraction of frame pairs with a motion fit"),
    }
    resources = Resources(cpus=1)
    uses_model = True
    params = CameraMotionParams

    def setup(self) -> None:
        self._detector = None
        if self.mask_faces:
            from curation.faces import _cached

            # the process's one detector (stateless per image), shared with the faces stage:
            # one mediapipe graph build per worker instead of two
            self._detector = _cached("det")

    def _face_mask(self, frame: np.ndarray, scale: float) -> np.ndarray | None:
        import cv2

        if self._detector is None:
            return None
        h, w = frame.shape[:2]
        mask = np.full((h, w), 255, np.uint8)
        for det in self._detector.detect(frame):
            x1, y1, x2, y2 = det.box
            bw, bh = x2 - x1, y2 - y1
            # dilate: the whole head and shoulders move when people talk
            cv2.rectangle(mask, (int(x1 - 0.5 * bw), int(y1 - 0.6 * bh)), (int(x2 + 0.5 * bw), int(y2 + 1.5 * bh)), 0, -1)
        return cv2.resize(mask, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)

    def measure(self, row: Row) -> Row:
        import cv2

        fps = float(row["fps"])
        a, b = int(row["start_frame"]), int(row["end_frame"])
        idx = sample_indices(a, b, fps, min(fps, self.analysis_fps))
        # the shared overview decode (<= 320 px, upright), not a decode of our own
        frames = load_frames(row["source_abs_path"], a, b, rate=fps, overview=True).at(idx)
        h, w = frames.shape[1:3]
        scale = min(1.0, self.analysis_width / w)  # never upscale the overview
        gray = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), None, fx=scale, fy=scale,
                           interpolation=cv2.INTER_AREA) for f in frames]
        masks: list[np.ndarray | None] = [None] * len(frames)
        if self._detector is not None and len(frames):
            # faces move slowly relative to the sampling; refresh the mask every ~1 s
            step = max(1, int(round(self.analysis_fps)))
            for i in range(0, len(frames), step):
                m = self._face_mask(frames[i], scale)
                for j in range(i, min(len(frames), i + step)):
                    masks[j] = m
        motion = global_motion(gray, masks)
        diag = float(np.hypot(*gray[0].shape)) if gray else 1.0
        shake, pan = shake_scores(motion, min(fps, self.analysis_fps), diag)
        return {"shake_score": shake, "pan_speed": pan, "camera_motion_backend": BACKEND,
                "motion_valid_frac": float(np.mean(~np.isnan(motion[:, 0]))) if len(motion) else 0.0}

    def keep(self, row: Row):
        shake, pan = row.get("shake_score"), row.get("pan_speed")
        if shake is None or not np.isfinite(shake):
            # a textureless background gives no points: nothing indicates motion, keep it
            return True, None, ""
        if shake > self.max_shake:
            return False, Reason.CAMERA_SHAKE, f"shake {shake:.4f} > {self.max_shake}"
        if pan is not None and np.isfinite(pan) and pan > self.max_pan:
            return False, Reason.CAMERA_SHAKE, f"pan {pan:.3f} diag/s > {self.max_pan}"
        return True, None, ""
