"""Interactivity (AnyTalker paper Eq. 5-6): how much a person's eyes and eyebrows move while
that person listens.

For each person, over the frames in which the person is not speaking, the mean over
consecutive frames of the mean L2 displacement of the eye + eyebrow landmarks, measured in a
face-centred square reference crop scaled to ``target_size`` px. The video score is the
listening-duration-weighted mean over persons.

Follows the released scorer (``benchmark/calculate_interactivity.py``):
- one crop side per video: the largest square face box of any person (at least target_size);
  landmarks are mapped into that crop around the person's crop centre and scaled by
  target_size / crop side;
- crop centre: the square face box centre; a centre more than ``outlier_px`` from the last
  stable centre is replaced by it; then an EMA (new = 0.7 * current + 0.3 * previous);
- a frame whose landmarks move more than ``outlier_px`` (reference-crop px, mean over all
  points) from the last stable landmarks reuses the stable landmarks;
- a frame without landmarks adds no step; the next step is measured from the last frame seen;
- a frame counts when its time ``t = k / fps`` is outside the person's speaking intervals
  (interval ends inclusive); each counted step weighs 1 / fps seconds.

Differences (documented in docs/metrics.md): the 22 eye+brow points are the mediapipe 478-mesh
equivalents (``curation.faces.EYE_BROW_POINTS``) of the 106-point model's; N persons instead
of exactly two; short detection gaps are tolerated; a video whose tracks cannot be held fails
with a reason instead of returning -1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from metrics import _analysis
from metrics.base import ItemResult, Metric, MetricSkip, Sample
from metrics.intervals import intervals_to_mask


def eye_brow_indices() -> list[int]:
    from curation.faces import EYE_BROW_POINTS

    return [i for k in ("right_brow", "left_brow", "right_eye", "left_eye") for i in EYE_BROW_POINTS[k]]


def clamped_square_box(box, width: int, height: int) -> np.ndarray:
    """The released scorer's square face box: side max(w, h), shifted back inside the frame."""
    from curation.faces import square_box

    x1, y1, x2, y2 = square_box(box)
    side = x2 - x1
    if x1 < 0:
        x1, x2 = 0.0, side
    if y1 < 0:
        y1, y2 = 0.0, side
    if x2 > width:
        x1, x2 = width - side, float(width)
    if y2 > height:
        y1, y2 = height - side, float(height)
    return np.array([max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)])


@dataclass
class ListeningMotion:
    motion_sum: float = 0.0  # sum of step motion * step weight (px * s)
    weight_s: float = 0.0  # listening time that produced a step (s)
    n_steps: int = 0
    n_landmark_outliers: int = 0
    n_centre_outliers: int = 0
    steps: list = field(default_factory=list)  # per-step motion (reference-crop px), listening only

    @property
    def mean(self) -> float:
        return self.motion_sum / self.weight_s if self.weight_s > 0 else float("nan")


def listening_motion(landmarks: np.ndarray, boxes: np.ndarray, listening: np.ndarray, fps: float,
                     crop_side: float, frame_size: tuple[int, int], points: list[int],
                     target_size: int = 224, outlier_px: float = 10.0, ema_alpha: float = 0.7
                     ) -> ListeningMotion:
    """Released-scorer motion of one person.

    landmarks: (T, K, >=2) full-frame px, NaN where missing; boxes: (T, 4) face boxes, NaN where
    missing; listening: (T,) bool; crop_side: the video's unified crop side (px);
    frame_size: (width, height).
    """
    width, height = frame_size
    scale = target_size / float(crop_side)
    out = ListeningMotion()
    ema_centre = stable_centre = None
    prev_lm = stable_lm = None
    pts = np.asarray(points)
    for t in range(len(landmarks)):
        lm = landmarks[t, :, :2]
        have_lm = bool(np.isfinite(lm).all())
        if have_lm and np.isfinite(boxes[t]).all():
            sq = clamped_square_box(boxes[t], width, height)
            centre = np.array([(sq[0] + sq[2]) / 2, (sq[1] + sq[3]) / 2])
            is_outlier = stable_centre is not None and np.linalg.norm(centre - stable_centre) > outlier_px
            if is_outlier:
                centre = stable_centre.copy()
                out.n_centre_outliers += 1
            if ema_centre is None:
                ema_centre = centre
                if not is_outlier:
                    stable_centre = centre.copy()
            else:
                ema_centre = ema_alpha * centre + (1 - ema_alpha) * ema_centre
                if not is_outlier:
                    stable_centre = ema_centre.copy()
        if ema_centre is None or not have_lm:
            continue
        origin = ema_centre - crop_side / 2.0
        lm_crop = (lm - origin) * scale
        lm_outlier = False
        if stable_lm is not None and np.linalg.norm(lm_crop - stable_lm, axis=-1).mean() > outlier_px:
            lm_crop = stable_lm.copy()
            lm_outlier = True
            out.n_landmark_outliers += 1
        if prev_lm is not None and listening[t]:
            step = float(np.linalg.norm(lm_crop[pts] - prev_lm[pts], axis=-1).mean())
            out.motion_sum += step / fps
            out.weight_s += 1.0 / fps
            out.n_steps += 1
            out.steps.append(step)
        prev_lm = lm_crop
        if not lm_outlier:
            stable_lm = lm_crop.copy()
    return out


class Interactivity(Metric):
    name = "interactivity"
    version = "1"
    higher_is_better = True
    requires = ("video_path", "speaking_intervals")
    backends = ("mediapipe-facemesh-478",)
    description = ("Eye+eyebrow landmark motion of each person while listening (paper Eq. 5-6), "
                   "listening-time-weighted over persons; reference-crop px per frame")
    params = {
        "target_size": 224,  # 224 in the released scorer, 256 in the paper
        "outlier_px": 10.0,
        "ema_alpha": 0.7,
        "fps": None,  # None = every source frame (the released scorer); a number resamples
        "min_detected_frac": 0.5,  # of a person's listening frames, else the track is not held
        "max_order_violations": 0.2,
    }

    def __init__(self, **options):
        super().__init__(**options)
        import mediapipe

        self.backend = "mediapipe-facemesh-478"
        self.backend_version = mediapipe.__version__

    def score(self, sample: Sample) -> ItemResult:
        from curation.faces import order_violations

        n_persons = len(sample.speaking_intervals)
        if n_persons == 0:
            raise MetricSkip("missing_intervals", "speaking_intervals lists no person")
        fps = self.params["fps"]
        analysis = _analysis.analyze(sample.video_path, fps=None if fps is None else float(fps),
                                     with_landmarks=True)
        tracks = _analysis.pick_persons(analysis, n_persons)
        if len(tracks) < n_persons:
            raise MetricSkip("too_few_faces", f"{len(analysis.tracks)} face track(s) held, "
                             f"{n_persons} person(s) in the speaking intervals")
        viol = order_violations(tracks)
        if viol > float(self.params["max_order_violations"]):
            raise MetricSkip("order_unstable", f"left-to-right order of the faces changes in {viol:.0%} of frames")

        T = len(analysis.frame_indices)
        times = np.arange(T) / analysis.fps
        W, H = analysis.width, analysis.height
        crop_side = float(self.params["target_size"])
        for tr in tracks:
            ok = np.isfinite(tr.boxes).all(1) & tr.detected
            for b in tr.boxes[ok]:
                sq = clamped_square_box(b, W, H)
                crop_side = max(crop_side, float(int(sq[2] - sq[0])))

        points = eye_brow_indices()
        total_sum = total_w = 0.0
        persons = []
        for i, (tr, ivs) in enumerate(zip(tracks, sample.speaking_intervals)):
            listening = ~intervals_to_mask(ivs, times)
            n_listen = int(listening.sum())
            held = float((tr.detected & listening).sum() / n_listen) if n_listen else 1.0
            if n_listen and held < float(self.params["min_detected_frac"]):
                raise MetricSkip("track_lost", f"person {i} (left->right) detected in {held:.0%} of "
                                 f"the listening frames (< {self.params['min_detected_frac']:.0%})")
            boxes = np.where(tr.detected[:, None], tr.boxes, np.nan)
            m = listening_motion(tr.landmarks, boxes, listening, analysis.fps, crop_side, (W, H), points,
                                 int(self.params["target_size"]), float(self.params["outlier_px"]),
                                 float(self.params["ema_alpha"]))
            total_sum += m.motion_sum
            total_w += m.weight_s
            persons.append({"index": i, "motion": m.mean, "listening_s": round(n_listen / analysis.fps, 4),
                            "scored_s": round(m.weight_s, 4), "n_steps": m.n_steps,
                            "detected_frac_listening": round(held, 4),
                            "landmark_outliers": m.n_landmark_outliers, "centre_outliers": m.n_centre_outliers})
        if total_w <= 0:
            raise MetricSkip("no_listening", "no person has a scored listening frame")
        return ItemResult(sample.item_id, True, total_sum / total_w, {
            "persons": persons, "crop_side_px": crop_side, "fps": analysis.fps, "n_frames": T,
            "interval_format": sample.interval_format, "face_backend": _analysis.backend_label(analysis),
            "points": "mediapipe eye+brow 22 (curation.faces.EYE_BROW_POINTS)",
        })
