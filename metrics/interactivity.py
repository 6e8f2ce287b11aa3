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
    motion_sum: float = 0.0  # sum of per-frame motion * listening time it covers (px * s)
    weight_s: float = 0.0  # listening time covered by steps (s)
    n_steps: int = 0
    n_landmark_outliers: int = 0
    n_centre_outliers: int = 0
    n_reanchors: int = 0  # outlier runs that outlived max_outlier_run: the face really moved
    steps: list = field(default_factory=list)  # per-frame motion of each counted step (reference-crop px)

    @property
    def mean(self) -> float:
        return self.motion_sum / self.weight_s if self.weight_s > 0 else float("nan")


def listening_motion(landmarks: np.ndarray, boxes: np.ndarray, listening: np.ndarray, fps: float,
                     crop_side: float, frame_size: tuple[int, int], points: list[int],
                     target_size: int = 224, outlier_px: float = 10.0, ema_alpha: float = 0.7,
                     still_px: float = 0.05, max_outlier_run: int = 3) -> ListeningMotion:
    """Released-scorer motion of one person, with the corrections listed in docs/metrics.md.

    landmarks: (T, K, >=2) full-frame px, NaN where missing; boxes: (T, 4) detector face boxes
    (unsmoothed), NaN where missing; listening: (T,) bool; crop_side: the video's unified crop
    side (px); frame_size: (width, height).

    * The reference crop holds still while the face does: its centre follows the box centre
      (outlier rule + EMA, as released) except in frames whose landmarks moved less than
      ``still_px`` (mean over all points, full-frame px) since the last frame with landmarks, so
      identical pixels (identical landmarks) keep identical crop coordinates.
    * A step across a gap of g frames is the per-frame motion (displacement / g) and covers the
      listening frames among those g.
    * A landmark outlier reuses the last stable landmarks (as released) for at most
      ``max_outlier_run`` frames; a longer run is a real move: the reference re-anchors there
      and that one jump adds no step.
    """
    width, height = frame_size
    scale = target_size / float(crop_side)
    out = ListeningMotion()
    ema_centre = stable_centre = None
    prev_lm = stable_lm = None
    prev_t = None
    outlier_run = 0
    last_full = None  # full-frame landmarks of the last frame that had them
    pts = np.asarray(points)
    listening = np.asarray(listening, bool)
    for t in range(len(landmarks)):
        lm = landmarks[t, :, :2]
        have_lm = bool(np.isfinite(lm).all())
        if have_lm and np.isfinite(boxes[t]).all():
            sq = clamped_square_box(boxes[t], width, height)
            centre = np.array([(sq[0] + sq[2]) / 2, (sq[1] + sq[3]) / 2])
            if ema_centre is None:
                ema_centre = centre
                stable_centre = centre.copy()
            elif last_full is None or np.linalg.norm(lm - last_full, axis=-1).mean() >= still_px:
                is_outlier = np.linalg.norm(centre - stable_centre) > outlier_px
                if is_outlier:
                    centre = stable_centre.copy()
                    out.n_centre_outliers += 1
                ema_centre = ema_alpha * centre + (1 - ema_alpha) * ema_centre
                if not is_outlier:
                    stable_centre = ema_centre.copy()
        if ema_centre is None or not have_lm:
            continue
        last_full = lm.copy()
        origin = ema_centre - crop_side / 2.0
        lm_crop = (lm - origin) * scale
        reanchor = False
        if stable_lm is not None and np.linalg.norm(lm_crop - stable_lm, axis=-1).mean() > outlier_px:
            outlier_run += 1
            if outlier_run > max_outlier_run:
                reanchor = True
                out.n_reanchors += 1
                outlier_run = 0
            else:
                lm_crop = stable_lm.copy()
                out.n_landmark_outliers += 1
        else:
            outlier_run = 0
        if prev_lm is not None and not reanchor:
            gap = t - prev_t
            covered = int(listening[prev_t + 1:t + 1].sum())
            if covered:
                per_frame = float(np.linalg.norm(lm_crop[pts] - prev_lm[pts], axis=-1).mean()) / gap
                out.motion_sum += per_frame * covered / fps
                out.weight_s += covered / fps
                out.n_steps += 1
                out.steps.append(per_frame)
        prev_lm, prev_t = lm_crop, t
        if outlier_run == 0:
            stable_lm = lm_crop.copy()
    return out


class Interactivity(Metric):
    name = "interactivity"
    version = "2"
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
        "min_detected_frac": 0.5,  # of a person's listening frames with landmarks, else failed
        "still_px": 0.05,  # landmarks moving less than this (px) = a still face: the crop holds
        "max_outlier_run": 3,  # longer landmark-outlier runs re-anchor (a real move)
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
        # the reference face pass (every frame detected and landmarked afresh), as the
        # released scorer does: the figures below were measured with it
        analysis = _analysis.analyze(sample.video_path, fps=None if fps is None else float(fps),
                                     with_landmarks=True, reference=True)
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
        def detector_boxes(tr):
            # the detector's own boxes: smoothed boxes move over identical pixels near a change
            raw = tr.raw_boxes if tr.raw_boxes is not None else tr.boxes
            return np.where(tr.detected[:, None], raw, np.nan)

        for tr in tracks:
            b_all = detector_boxes(tr)
            for b in b_all[np.isfinite(b_all).all(1)]:
                sq = clamped_square_box(b, W, H)
                crop_side = max(crop_side, float(int(sq[2] - sq[0])))

        points = eye_brow_indices()
        total_sum = total_w = 0.0
        persons = []
        for i, (tr, ivs) in enumerate(zip(tracks, sample.speaking_intervals)):
            listening = ~intervals_to_mask(ivs, times)
            n_listen = int(listening.sum())
            # gate on landmarks, not boxes: the released scorer needs landmarks to score a frame
            has_lm = np.isfinite(tr.landmarks[:, :, :2]).all(axis=(1, 2)) & tr.detected
            held = float((has_lm & listening).sum() / n_listen) if n_listen else 1.0
            if n_listen and held < float(self.params["min_detected_frac"]):
                raise MetricSkip("track_lost", f"person {i} (left->right) has landmarks in {held:.0%} of "
                                 f"the listening frames (< {self.params['min_detected_frac']:.0%}); the "
                                 "released scorer returns -1 for such a video")
            m = listening_motion(tr.landmarks, detector_boxes(tr), listening, analysis.fps, crop_side, (W, H),
                                 points, int(self.params["target_size"]), float(self.params["outlier_px"]),
                                 float(self.params["ema_alpha"]), float(self.params["still_px"]),
                                 int(self.params["max_outlier_run"]))
            total_sum += m.motion_sum
            total_w += m.weight_s
            persons.append({"index": i, "motion": m.mean, "listening_s": round(n_listen / analysis.fps, 4),
                            "scored_s": round(m.weight_s, 4), "n_steps": m.n_steps,
                            "detected_frac_listening": round(float((tr.detected & listening).sum() / max(n_listen, 1)), 4),
                            "landmark_frac_listening": round(held, 4),
                            "landmark_outliers": m.n_landmark_outliers, "centre_outliers": m.n_centre_outliers,
                            "reanchors": m.n_reanchors})
        if total_w <= 0:
            raise MetricSkip("no_listening", "no person has a scored listening frame")
        return ItemResult(sample.item_id, True, total_sum / total_w, {
            "persons": persons, "crop_side_px": crop_side, "fps": analysis.fps, "n_frames": T,
            "interval_format": sample.interval_format, "face_backend": _analysis.backend_label(analysis),
            "points": "mediapipe eye+brow 22 (curation.faces.EYE_BROW_POINTS)",
        })
