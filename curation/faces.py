"""Face primitives: detection, 478-point mesh with iris, per-person tracks, mouth opening.

Backends are mediapipe 0.10.21's bundled legacy solutions (the tflite models ship inside the
wheel, so everything runs offline):

* detection: ``mediapipe.solutions.face_detection`` with ``model_selection=1`` (the
  full-range BlazeFace model, faces up to ~5 m), run on a copy of the frame downscaled to
  ``max_side`` px because the model itself works at 192x192;
* landmarks: ``mediapipe.solutions.face_mesh`` with ``refine_landmarks=True`` (468 mesh
  points + 10 iris points = 478) in static-image mode, run once per detected face on a padded
  crop around it so that every face in a multi-person frame gets its own landmarks.

``analyze_video`` links detections into per-person tracks (IoU against a constant-velocity
prediction, Hungarian assignment), fills short misses by interpolation, smooths the boxes
with a Savitzky-Golay filter and sorts tracks left to right.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from curation.media import MediaError, VideoReader, probe, sample_indices

# --- landmark index tables (mediapipe 478-point topology) ------------------------------------
# "left"/"right" are the subject's, as in mediapipe's FACEMESH_LEFT_EYE etc. and in the iBUG
# 68-point scheme: the subject's right eye is on the image's left.
#
# The 22 eye+brow points are listed in iBUG-68 order (brows 17-26, eyes 36-47). The JD
# 106-point layout (used by InsightFace-style 106 landmark models) contains the same 22
# semantic points as 33-42 (upper brow contours, 5 per brow) and 52-63 (eye contours, 6 per
# eye); ``EYE_BROW_22`` maps each mediapipe index to its iBUG-68 and JD-106 number.
EYE_BROW_POINTS: dict[str, list[int]] = {
    # outer -> inner along the top of the brow
    "right_brow": [70, 63, 105, 66, 107],
    # inner -> outer
    "left_brow": [336, 296, 334, 293, 300],
    # outer corner, upper lid (2), inner corner, lower lid (2)
    "right_eye": [33, 160, 158, 133, 153, 144],
    # inner corner, upper lid (2), outer corner, lower lid (2)
    "left_eye": [362, 385, 387, 263, 373, 380],
    # iris centre first, then 4 iris contour points (only with refine_landmarks=True)
    "right_iris": [468, 469, 470, 471, 472],
    "left_iris": [473, 474, 475, 476, 477],
}

# (mediapipe index, iBUG-68 index, JD-106 index) for the 22 eye+brow points.
EYE_BROW_22: list[tuple[int, int, int]] = (
    [(mp, 17 + i, 33 + i) for i, mp in enumerate(EYE_BROW_POINTS["right_brow"])]
    + [(mp, 22 + i, 38 + i) for i, mp in enumerate(EYE_BROW_POINTS["left_brow"])]
    + [(mp, 36 + i, 52 + i) for i, mp in enumerate(EYE_BROW_POINTS["right_eye"])]
    + [(mp, 42 + i, 58 + i) for i, mp in enumerate(EYE_BROW_POINTS["left_eye"])]
)

# Inner-lip contour: vertically paired points of the upper and lower inner lip (left to
# right in the image), plus the inner mouth corners.
LIP_POINTS: dict[str, list[int]] = {
    "upper_inner": [81, 82, 13, 312, 311],
    "lower_inner": [178, 87, 14, 317, 402],
    "corners_inner": [78, 308],
}

# Face height reference for normalisation: forehead top (10) to chin (152).
FACE_TOP, FACE_CHIN = 10, 152
# ArcFace-style 5 points from the mesh: eye centres (iris), nose tip, mouth corners.
FIVE_POINTS = {"right_eye": 468, "left_eye": 473, "nose": 1, "mouth_right": 61, "mouth_left": 291}
NUM_LANDMARKS = 478


def _mediapipe_version() -> str:
    import mediapipe

    return mediapipe.__version__


# --- geometry helpers ------------------------------------------------------------------------
def square_box(box, scale: float = 1.0) -> np.ndarray:
    """Square box around the centre of ``box`` (x1, y1, x2, y2); side = max(w, h) * scale."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1) * scale / 2
    return np.array([cx - half, cy - half, cx + half, cy + half], dtype=np.float64)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (N, 4) and b (M, 4)."""
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip opening: mean vertical gap of the paired inner-lip points divided by the face
    height (forehead 10 to chin 152). ~0 closed, ~0.05-0.15 when speaking. NaN if missing."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 468 or not np.isfinite(lm[:, :2]).all():
        return float("nan")
    upper = lm[LIP_POINTS["upper_inner"], :2]
    lower = lm[LIP_POINTS["lower_inner"], :2]
    gap = np.linalg.norm(lower - upper, axis=1).mean()
    face_h = np.linalg.norm(lm[FACE_CHIN, :2] - lm[FACE_TOP, :2])
    if face_h <= 0:
        return float("nan")
    return float(gap / face_h)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(5, 2) ArcFace-order points from a 478 mesh: right eye, left eye (subject's; image
    left first), nose tip, right mouth corner, left mouth corner."""
    lm = np.asarray(landmarks, dtype=np.float64)
    order = ["right_eye", "left_eye", "nose", "mouth_right", "mouth_left"]
    return lm[[FIVE_POINTS[k] for k in order], :2]


# --- detection -------------------------------------------------------------------------------
@dataclass
class Detection:
    box: np.ndarray  # (x1, y1, x2, y2) px in the full frame, float
    score: float


class FaceDetector:
    """mediapipe full-range face detector (BlazeFace, bundled model, offline)."""

    name = "mediapipe_face_detection_full_range"

    def __init__(self, min_score: float = 0.5, max_side: int = 640):
        from curation.quiet import apply_env, native_stderr_quiet

        apply_env()
        with native_stderr_quiet():  # TFLite / absl print start-up lines on fd 2
            import mediapipe as mp

            self.version = _mediapipe_version()
            self.min_score = float(min_score)
            self.max_side = int(max_side)
            self._det = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_score
            )

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        import cv2

        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        img = rgb if scale >= 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)),
                                                  interpolation=cv2.INTER_AREA)
        from curation.quiet import native_stderr_quiet

        with native_stderr_quiet():  # graph threads log absl warnings while processing
            res = self._det.process(np.ascontiguousarray(img))
        out: list[Detection] = []
        for d in res.detections or []:
            rb = d.location_data.relative_bounding_box
            x1, y1 = rb.xmin * w, rb.ymin * h
            x2, y2 = x1 + rb.width * w, y1 + rb.height * h
            box = np.array([max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)])
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            out.append(Detection(box=box, score=float(d.score[0])))
        out.sort(key=lambda d: -d.score)
        return out

    def close(self) -> None:
        self._det.close()


class FaceMesh:
    """mediapipe face mesh, ``refine_landmarks=True`` -> 478 points (468 mesh + 10 iris)."""

    name = "mediapipe_face_mesh_refined"

    def __init__(self, crop_scale: float = 1.8, crop_max_side: int = 384, min_score: float = 0.5):
        from curation.quiet import apply_env, native_stderr_quiet

        apply_env()
        self.version = _mediapipe_version()
        self.crop_scale = float(crop_scale)
        self.crop_max_side = int(crop_max_side)
        # static mode: every call detects afresh (crops of different people come in turn);
        # two faces allowed so that a neighbour's face in the padding cannot hide ours.
        with native_stderr_quiet():  # TFLite / absl print start-up lines on fd 2
            import mediapipe as mp

            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=2, refine_landmarks=True,
                min_detection_confidence=min_score,
            )

    def landmarks(self, rgb: np.ndarray, box: np.ndarray | None = None) -> np.ndarray | None:
        """(478, 3) landmarks in full-frame px (x, y, z * width) for the face in ``box`` (or the
        most central face of the frame when ``box`` is None); None if no face is found."""
        import cv2

        h, w = rgb.shape[:2]
        if box is None:
            x0, y0, x1, y1 = 0, 0, w, h
        else:
            sq = square_box(box, self.crop_scale)
            x0, y0 = int(max(0, np.floor(sq[0]))), int(max(0, np.floor(sq[1])))
            x1, y1 = int(min(w, np.ceil(sq[2]))), int(min(h, np.ceil(sq[3])))
            if x1 - x0 < 8 or y1 - y0 < 8:
                return None
        crop = rgb[y0:y1, x0:x1]
        ch, cw = crop.shape[:2]
        scale = min(1.0, self.crop_max_side / max(ch, cw))
        if scale < 1.0:
            crop = cv2.resize(crop, (max(1, round(cw * scale)), max(1, round(ch * scale))),
                              interpolation=cv2.INTER_AREA)
        from curation.quiet import native_stderr_quiet

        with native_stderr_quiet():  # graph threads log absl warnings while processing
            res = self._mesh.process(np.ascontiguousarray(crop))
        if not res.multi_face_landmarks:
            return None
        best, best_d = None, np.inf
        target = (np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]) if box is not None
                  else np.array([w / 2, h / 2]))
        for face in res.multi_face_landmarks:
            pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64)
            # normalised crop coords -> full-frame px; z uses the same scale as x
            pts[:, 0] = x0 + pts[:, 0] * cw
            pts[:, 1] = y0 + pts[:, 1] * ch
            pts[:, 2] = pts[:, 2] * cw
            d = np.linalg.norm(pts[:, :2].mean(0) - target)
            if d < best_d:
                best, best_d = pts, d
        if best is None or best.shape[0] != NUM_LANDMARKS:
            return None
        if box is not None:
            # the mesh must describe the face we were asked about, not a neighbour
            bw = max(box[2] - box[0], box[3] - box[1])
            if best_d > 0.5 * bw:
                return None
        return best

    def close(self) -> None:
        self._mesh.close()


# --- tracking --------------------------------------------------------------------------------
@dataclass
class Track:
    """One person; arrays aligned with ``FaceAnalysis.frame_indices``."""

    boxes: np.ndarray  # (T, 4) smoothed boxes; NaN rows where the person is absent
    detected: np.ndarray  # (T,) bool: a detection was linked at this frame
    landmarks: np.ndarray | None = None  # (T, 478, 3), NaN where missing
    mouth_open: np.ndarray | None = None  # (T,) inner-lip opening / face height
    scores: np.ndarray | None = None  # (T,) detector score, NaN where missed
    raw_boxes: np.ndarray | None = None  # (T, 4) detector boxes before filling / smoothing

    @property
    def face_size(self) -> float:
        """Median box side (max of w, h) in px over frames with a box."""
        ok = np.isfinite(self.boxes).all(1)
        if not ok.any():
            return float("nan")
        b = self.boxes[ok]
        return float(np.median(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))

    @property
    def centre_x(self) -> np.ndarray:
        return (self.boxes[:, 0] + self.boxes[:, 2]) / 2


@dataclass
class FaceAnalysis:
    frame_indices: np.ndarray  # source frame indices analysed
    fps: float  # sampling rate of frame_indices
    width: int
    height: int
    faces_per_frame: np.ndarray  # (T,) raw detection count
    tracks: list[Track] = field(default_factory=list)  # left -> right
    backend: dict = field(default_factory=dict)  # names + versions of the models used


class _Tracklet:
    def __init__(self, tid: int):
        self.tid = tid
        self.t: list[int] = []
        self.boxes: list[np.ndarray] = []
        self.det_ids: list[int] = []

    def predict(self, t: int) -> np.ndarray:
        # constant velocity from the last two observations, per frame step
        if len(self.t) >= 2 and self.t[-1] != self.t[-2]:
            v = (self.boxes[-1] - self.boxes[-2]) / (self.t[-1] - self.t[-2])
            return self.boxes[-1] + v * (t - self.t[-1])
        return self.boxes[-1]


def link_detections(dets_per_frame: list[list[Detection]], iou_min: float = 0.2,
                    max_miss: int = 12) -> list[_Tracklet]:
    """Greedy-optimal (Hungarian) IoU linking of detections to tracklets with a
    constant-velocity box prediction; a tracklet unseen for more than ``max_miss`` frames ends."""
    from scipy.optimize import linear_sum_assignment

    active: list[_Tracklet] = []
    finished: list[_Tracklet] = []
    next_id = 0
    for t, dets in enumerate(dets_per_frame):
        still = []
        for tr in active:
            (still if t - tr.t[-1] <= max_miss else finished).append(tr)
        active = still
        unmatched = list(range(len(dets)))
        if active and dets:
            pred = np.stack([tr.predict(t) for tr in active])
            boxes = np.stack([d.box for d in dets])
            iou = iou_matrix(pred, boxes)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= iou_min:
                    active[r].t.append(t)
                    active[r].boxes.append(dets[c].box)
                    active[r].det_ids.append(c)
                    unmatched.remove(c)
        for c in unmatched:
            tr = _Tracklet(next_id)
            next_id += 1
            tr.t.append(t)
            tr.boxes.append(dets[c].box)
            tr.det_ids.append(c)
            active.append(tr)
    return finished + active


def _stitch(tracklets: list[_Tracklet], max_gap: int) -> list[_Tracklet]:
    """Join a tracklet that starts within ``max_gap`` frames after another ends, near where
    that one ended (IoU > 0 or centre within one face width): a face the linker lost when the
    box jumped."""
    tracklets = sorted(tracklets, key=lambda tr: tr.t[0])
    merged: list[_Tracklet] = []
    for tr in tracklets:
        best = None
        best_d = np.inf
        for m in merged:
            gap = tr.t[0] - m.t[-1]
            if gap <= 0 or gap > max_gap:
                continue
            a, b = m.boxes[-1], tr.boxes[0]
            d = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
            if iou_matrix(a, b)[0, 0] > 0 or d < max(a[2] - a[0], a[3] - a[1]):
                # prefer the spatially closest candidate not already overlapping in time
                if d < best_d:
                    best, best_d = m, d
        if best is None:
            merged.append(tr)
        else:
            best.t += tr.t
            best.boxes += tr.boxes
            best.det_ids += tr.det_ids
    return merged


def _fill_and_smooth(raw: np.ndarray, max_gap: int, window: int) -> np.ndarray:
    """Interpolate NaN gaps of at most ``max_gap`` frames inside a track, then smooth each
    contiguous run with a Savitzky-Golay filter (order 2)."""
    from scipy.signal import savgol_filter

    out = raw.copy()
    ok = np.isfinite(out).all(1)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    # interpolate short interior gaps
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= max_gap + 1:
            w = (np.arange(a + 1, b) - a) / (b - a)
            out[a + 1:b] = out[a] * (1 - w)[:, None] + out[b] * w[:, None]
    ok = np.isfinite(out).all(1)
    # smooth runs
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(int), 0]))
    for s, e in zip(edges[::2], edges[1::2]):
        n = e - s
        win = min(window, n if n % 2 == 1 else n - 1)
        if win >= 5:
            out[s:e] = savgol_filter(out[s:e], win, 2, axis=0, mode="interp")
    return out


# --- video analysis --------------------------------------------------------------------------
_MODELS: dict[tuple, object] = {}


def _cached(kind: str, **kw):
    # one detector / mesh per process and configuration: mediapipe graphs are slow to build
    key = (kind, os.getpid(), tuple(sorted(kw.items())))
    if key not in _MODELS:
        _MODELS[key] = FaceDetector(**kw) if kind == "det" else FaceMesh(**kw)
    return _MODELS[key]


def _held_crop(box: np.ndarray, held: list[np.ndarray], tol: float) -> np.ndarray:
    """``box``, or the previous frame's crop box of the same face when the face has not moved:
    centre shift and side change both below ``tol`` x side."""
    side = max(box[2] - box[0], box[3] - box[1], 1e-6)
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    for h in held:
        h_side = max(h[2] - h[0], h[3] - h[1], 1e-6)
        h_centre = np.array([(h[0] + h[2]) / 2, (h[1] + h[3]) / 2])
        if np.linalg.norm(centre - h_centre) < tol * side and abs(side - h_side) < tol * side:
            return h
    return box


def analyze_video(
    path: str | os.PathLike | None,
    start_frame: int = 0,
    end_frame: int | None = None,
    fps: float | None = 25.0,
    with_landmarks: bool = True,
    max_faces: int = 6,
    min_track_frac: float = 0.3,
    frames: np.ndarray | None = None,
    *,
    detector: FaceDetector | None = None,
    mesh: FaceMesh | None = None,
    max_gap: int = 6,
    smooth_window: int = 7,
    chunk: int = 32,
    mesh_crop_hold: float = 0.05,
) -> FaceAnalysis:
    """Detect, track and (optionally) landmark every face of ``path`` in [start, end).

    Frames are sampled at ``fps`` (None = every source frame) with the nearest-frame rule of
    ``curation.media.sample_indices``. ``frames`` may be given instead of decoding ``path``:
    an RGB uint8 (T, H, W, 3) array taken as consecutive frames starting at ``start_frame``
    at rate ``fps`` (25 if None). ``max_gap`` is the longest miss (in analysed frames) filled
    by interpolation; tracks detected in fewer than ``min_track_frac`` of the frames are
    dropped as spurious. The mesh crop of a face is held from the previous frame while its
    detection box moves (centre and side) by less than ``mesh_crop_hold`` of the box side: the
    detector's box jitters with pixels elsewhere in the frame, and a still face must give the
    same landmarks from the same pixels.
    """
    detector = detector or _cached("det")
    if with_landmarks:
        mesh = mesh or _cached("mesh")

    if frames is not None:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3) RGB uint8, got shape {frames.shape}")
        a_fps = float(fps or 25.0)
        frame_indices = np.arange(int(start_frame), int(start_frame) + len(frames))
        height, width = frames.shape[1:3]
        unique = frame_indices
        inverse = np.arange(len(frame_indices))

        def get(idxs):
            return frames[np.asarray(idxs) - int(start_frame)]
    else:
        if path is None:
            raise ValueError("analyze_video needs a path or frames")
        reader = VideoReader(path)
        n = len(reader)
        src_fps = reader.fps or (probe(path).fps or 25.0)
        end = n if end_frame is None else min(int(end_frame), n)
        start = max(0, int(start_frame))
        if end <= start:
            raise MediaError(f"{path}: empty frame range [{start_frame}, {end_frame}) of {n} frames")
        if fps is None:
            a_fps = float(src_fps)
            frame_indices = np.arange(start, end)
        else:
            a_fps = float(fps)
            frame_indices = sample_indices(start, end, src_fps, a_fps)
        unique, inverse = np.unique(frame_indices, return_inverse=True)
        first = reader.get([unique[0]])
        height, width = first.shape[1:3]
        get = reader.get

    # pass 1 over unique frames (chunked: a 1080x1920 clip does not fit in memory at once)
    det_u: list[list[Detection]] = []
    lm_u: list[list[np.ndarray | None]] = []
    held: list[np.ndarray] = []  # mesh crop boxes of the previous frame
    for s in range(0, len(unique), chunk):
        batch = get(unique[s:s + chunk])
        for img in batch:
            dets = detector.detect(img)[:max_faces]
            det_u.append(dets)
            if with_landmarks:
                crops = [_held_crop(np.asarray(d.box, float), held, mesh_crop_hold) for d in dets]
                lm_u.append([mesh.landmarks(img, c) for c in crops])
                held = crops

    T = len(frame_indices)
    dets_per_frame = [det_u[i] for i in inverse]
    faces_per_frame = np.array([len(d) for d in dets_per_frame], dtype=np.int64)

    tracklets = link_detections(dets_per_frame, max_miss=max_gap * 2)
    tracklets = _stitch(tracklets, max_gap=max_gap)

    tracks: list[Track] = []
    for tr in tracklets:
        raw = np.full((T, 4), np.nan)
        scores = np.full(T, np.nan)
        detected = np.zeros(T, bool)
        lms = np.full((T, NUM_LANDMARKS, 3), np.nan) if with_landmarks else None
        for t, box, c in zip(tr.t, tr.boxes, tr.det_ids):
            raw[t] = box
            detected[t] = True
            scores[t] = dets_per_frame[t][c].score
            if with_landmarks:
                lm = lm_u[inverse[t]][c]
                if lm is not None:
                    lms[t] = lm
        if detected.sum() < min_track_frac * T:
            continue
        boxes = _fill_and_smooth(raw, max_gap=max_gap, window=smooth_window)
        mouth = None
        if with_landmarks:
            mouth = np.array([mouth_opening(lms[t]) if detected[t] else np.nan for t in range(T)])
        tracks.append(Track(boxes=boxes, detected=detected, landmarks=lms, mouth_open=mouth,
                            scores=scores, raw_boxes=raw))
    tracks.sort(key=lambda tr: float(np.nanmedian(tr.centre_x)))
    backend = {"detector": f"{detector.name}@mediapipe-{detector.version}"}
    if with_landmarks:
        backend["mesh"] = f"{mesh.name}@mediapipe-{mesh.version}"
    return FaceAnalysis(frame_indices=np.asarray(frame_indices), fps=a_fps, width=int(width),
                        height=int(height), faces_per_frame=faces_per_frame, tracks=tracks,
                        backend=backend)


def order_violations(tracks: list[Track]) -> float:
    """Fraction of frames (where >= 2 tracks have boxes) whose left-to-right order of box
    centres differs from the track order."""
    if len(tracks) < 2:
        return 0.0
    cx = np.stack([tr.centre_x for tr in tracks], axis=1)  # (T, P)
    ok = np.isfinite(cx)
    bad = total = 0
    for row, m in zip(cx, ok):
        if m.sum() < 2:
            continue
        total += 1
        vals = row[m]
        bad += int(np.any(np.diff(vals) < 0))
    return bad / total if total else 0.0
