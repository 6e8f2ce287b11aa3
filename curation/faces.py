"""Face primitives: detection, 478-point mesh with iris, per-person tracks, mouth opening.

Backends are mediapipe 0.10.21's bundled models (the tflite files ship inside the wheel, so
everything runs offline):

* detection: ``mediapipe.solutions.face_detection`` with ``model_selection=1`` (the
  full-range BlazeFace model, faces up to ~5 m), run on a copy of the frame downscaled to
  ``max_side`` px because the model itself works at 192x192;
* landmarks: mediapipe's face-landmark network with attention (the ``refine_landmarks=True``
  model of ``mediapipe.solutions.face_mesh``: 468 mesh points + 10 iris points = 478), run
  through mediapipe's own ``FaceLandmarkCpu`` subgraph on the region of interest that our
  tracked box and eyes give (``FaceMesh``), per person on a padded crop so that every face in a
  multi-person frame gets its own landmarks, many faces per graph wait. ``StaticFaceMesh``
  (the solution in static-image mode, which re-detects the face in every crop) is kept as the
  reference ``benchmarks/perf/faces_equivalence.py`` compares with.

``analyze_video`` links detections into per-person tracks (IoU against a constant-velocity
prediction, Hungarian assignment), fills short misses by interpolation, smooths the boxes
with a Savitzky-Golay filter and sorts tracks left to right.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from curation.media import MediaError, VideoReader, cpu_share, probe, sample_indices

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
# Version of what ``analyze_video`` returns for given inputs and defaults: part of the key of
# every cache of face analyses kept on disk (curation.sync_judge.features.face_tracks).
# 2: detection every 5th frame + interpolation by default, mesh on a region of interest from
# the tracked box and eyes (FaceMesh) instead of a static-mode re-detection per call.
ANALYSIS_VERSION = "2"


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


def face_crop(rgb: np.ndarray, box: np.ndarray | None, crop_scale: float, max_side: int,
              area_from: float = 1.0):
    """(crop, (x0, y0, width, height)) of the square ``crop_scale`` x ``box`` region (the whole
    frame when ``box`` is None), shrunk to <= ``max_side`` px: area averaging when the scale is
    <= ``area_from``, bilinear above it; None when the region is under 8 px."""
    import cv2

    h, w = rgb.shape[:2]
    if box is None:
        x0, y0, x1, y1 = 0, 0, w, h
    else:
        sq = square_box(box, crop_scale)
        x0, y0 = int(max(0, np.floor(sq[0]))), int(max(0, np.floor(sq[1])))
        x1, y1 = int(min(w, np.ceil(sq[2]))), int(min(h, np.ceil(sq[3])))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
    crop = rgb[y0:y1, x0:x1]
    ch, cw = crop.shape[:2]
    scale = min(1.0, max_side / max(ch, cw))
    if scale < 1.0:
        crop = cv2.resize(crop, (max(1, round(cw * scale)), max(1, round(ch * scale))),
                          interpolation=cv2.INTER_AREA if scale <= area_from else cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop), (x0, y0, cw, ch)


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
    # (2, 2) px: the subject's right eye then left eye (mediapipe keypoints 0 and 1); they set
    # the in-plane rotation of the mesh's region of interest, as in mediapipe's own graph
    eyes: np.ndarray | None = None


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
        # area averaging from a 2x shrink on; below that bilinear (cv2's non-integer area path
        # costs as much as the detector; the network itself resizes to 192x192 next)
        img = rgb if scale >= 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)),
                                                  interpolation=cv2.INTER_AREA if scale <= 0.5 else cv2.INTER_LINEAR)
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
            kp = d.location_data.relative_keypoints
            eyes = np.array([[kp[0].x * w, kp[0].y * h], [kp[1].x * w, kp[1].y * h]]) if len(kp) >= 2 else None
            out.append(Detection(box=box, score=float(d.score[0]), eyes=eyes))
        out.sort(key=lambda d: -d.score)
        return out

    def close(self) -> None:
        self._det.close()


_MESH_GRAPH = """
input_stream: "image"
input_stream: "detection"
output_stream: "landmarks"
node {
  calculator: "ConstantSidePacketCalculator"
  output_side_packet: "PACKET:with_attention"
  options: { [mediapipe.ConstantSidePacketCalculatorOptions.ext]: { packet { bool_value: true } } }
}
node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE:image" output_stream: "SIZE:image_size" }
node {
  calculator: "FaceDetectionFrontDetectionToRoi"
  input_stream: "DETECTION:detection"
  input_stream: "IMAGE_SIZE:image_size"
  output_stream: "ROI:roi"
}
node {
  calculator: "FaceLandmarkCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_stream: "LANDMARKS:landmarks"
}
"""


# The full-range detector's box, mapped to the box mediapipe's short-range detector draws around
# the same face (the detector the face-mesh solution re-runs on its crop; its region of interest
# is 1.5x that box): 0.93x the side, centre 0.05 of the height lower. Median over 153 faces of
# 26 clips of shared/data/eval (every other talking_real / talking_generated file; not the
# clips faces_equivalence.py compares on): side ratio 0.933 (per-clip means 0.89-0.96),
# vertical shift 0.048 (0.03-0.09); the horizontal shift follows head yaw (-0.05..+0.09 per
# clip) and is left at 0.
ROI_BOX_SCALE = 0.93
ROI_BOX_SHIFT_Y = 0.05


@dataclass
class MeshRequest:
    """One face to landmark: the frame, the face's box and (optionally) its eyes, in the
    frame's pixels."""

    rgb: np.ndarray
    box: np.ndarray
    eyes: np.ndarray | None = None


class FaceMesh:
    """mediapipe face mesh with attention (``refine_landmarks=True``) -> 478 points (468 mesh +
    10 iris), run on the region of interest that our own tracked face box gives.

    mediapipe's ``face_mesh`` solution in static-image mode finds the face again in every call
    (short-range BlazeFace) before the landmark network runs, and pays its Python plumbing per
    call: 8.5 ms per face here. This class builds mediapipe's own subgraphs into one graph
    (``FaceDetectionFrontDetectionToRoi`` -> ``FaceLandmarkCpu`` with attention, the same
    nodes and bundled models as the solution) and feeds it the face's detection instead: the
    region of interest is computed by mediapipe's code from our box and eye keypoints (square,
    1.5x, rotated to the eye line), and many faces are queued before one wait (3.7 ms per
    face). Input pixels are those of the static pass: a square crop of ``crop_scale`` x the
    box, shrunk to <= ``crop_max_side`` px with area averaging. Without eye keypoints the
    region is upright. The network itself never tracks: each call depends only on its own
    crop and box, so a still face gives the same landmarks from the same pixels."""

    name = "mediapipe_face_mesh_refined_roi"

    def __init__(self, crop_scale: float = 1.8, crop_max_side: int = 384, min_score: float = 0.5):
        from curation.quiet import apply_env, native_stderr_quiet

        apply_env()
        self.version = _mediapipe_version()
        self.crop_scale = float(crop_scale)
        self.crop_max_side = int(crop_max_side)
        self.min_score = float(min_score)  # kept for the signature: presence is gated at 0.5 by FaceLandmarkCpu
        self.threads = cpu_share()
        with native_stderr_quiet():  # TFLite / absl print start-up lines on fd 2
            self._start()

    def _start(self) -> None:
        import mediapipe as mp
        from google.protobuf import text_format
        from mediapipe.calculators.core import constant_side_packet_calculator_pb2  # noqa: F401 (options ext)
        from mediapipe.framework import calculator_pb2
        from mediapipe.python._framework_bindings import calculator_graph, resource_util
        from mediapipe.python import packet_getter

        # bundled .tflite files are looked up relative to site-packages, as SolutionBase does
        resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mp.__file__)))
        cfg = text_format.Parse(_MESH_GRAPH, calculator_pb2.CalculatorGraphConfig())
        if self.threads:  # the graph's executor threads: the worker's share (default: one per core)
            cfg.num_threads = self.threads
        self._graph = calculator_graph.CalculatorGraph(graph_config=cfg)
        self._out: dict[int, object] = {}
        # the serialized landmark list, decoded by ``_landmark_points``: the proto message path
        # (descriptor lookup, parse, 478 x 3 attribute reads) cost ~0.29 ms per face, the
        # numpy view of the bytes ~0.04 ms, same float32 values
        serialized = getattr(getattr(packet_getter, "_packet_getter", None), "_get_serialized_proto", None)
        grab = serialized or packet_getter.get_proto
        self._graph.observe_output_stream(
            "landmarks", lambda stream, packet: self._out.__setitem__(packet.timestamp.value, grab(packet)))
        self._graph.start_run()
        self._ts = 0

    def _crop(self, rgb: np.ndarray, box: np.ndarray | None):
        # area averaging against aliasing from a 2x shrink on; below that bilinear is as good,
        # and cv2's non-integer area path cost more than the network here (7 ms)
        return face_crop(rgb, box, self.crop_scale, self.crop_max_side, area_from=0.5)

    @staticmethod
    def _detection(box: np.ndarray, eyes: np.ndarray | None, origin, size):
        from mediapipe.framework.formats import detection_pb2, location_data_pb2

        x0, y0 = origin
        cw, ch = size
        d = detection_pb2.Detection()
        ld = d.location_data
        ld.format = location_data_pb2.LocationData.RELATIVE_BOUNDING_BOX
        rb = ld.relative_bounding_box
        rb.xmin, rb.ymin = (box[0] - x0) / cw, (box[1] - y0) / ch
        rb.width, rb.height = (box[2] - box[0]) / cw, (box[3] - box[1]) / ch
        if eyes is None or not np.isfinite(eyes).all():
            cy = (box[1] + box[3]) / 2
            eyes = np.array([[box[0], cy], [box[2], cy]])
        for ex, ey in eyes[:2]:
            kp = ld.relative_keypoints.add()
            kp.x, kp.y = (ex - x0) / cw, (ey - y0) / ch
        return d

    def landmarks_batch(self, requests: list[MeshRequest]) -> list[np.ndarray | None]:
        """Landmarks of every request ((478, 3) full-frame px: x, y, z * width; None where the
        mesh finds no face in the region), queued into the graph before one wait."""
        from curation.quiet import native_stderr_quiet

        try:
            return self._landmarks_batch(requests)
        except RuntimeError as e:
            # a graph error leaves the graph closed: start a fresh one for the next caller
            self.close()
            with native_stderr_quiet():
                self._start()
            raise MediaError(f"face mesh failed: {str(e).strip().splitlines()[0] if str(e).strip() else e}") from None

    def _landmarks_batch(self, requests: list[MeshRequest]) -> list[np.ndarray | None]:
        from curation.quiet import native_stderr_quiet

        self._out.clear()
        sent: list[tuple[int, tuple, MeshRequest] | None] = []
        queued: list[tuple[int, np.ndarray, object]] = []
        # with a one-CPU share, every crop is cut before the graph starts, so the graph's
        # threads never run beside this one (the worker keeps to its one core); with more,
        # each face is queued at once and the graph works while the next crop is cut
        overlap = self.threads != 1
        with native_stderr_quiet():  # graph threads log absl warnings while processing
            for req in requests:
                box = None if req.box is None else np.asarray(req.box, np.float64)
                cut = self._crop(req.rgb, box)
                if cut is None:
                    sent.append(None)
                    continue
                crop, (x0, y0, cw, ch) = cut
                h, w = req.rgb.shape[:2]
                if box is None:
                    roi_box = np.array([0.0, 0.0, w, h])
                else:
                    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2 + ROI_BOX_SHIFT_Y * (box[3] - box[1])
                    hw, hh = ROI_BOX_SCALE * (box[2] - box[0]) / 2, ROI_BOX_SCALE * (box[3] - box[1]) / 2
                    roi_box = np.array([cx - hw, cy - hh, cx + hw, cy + hh])
                det = self._detection(roi_box, req.eyes, (x0, y0), (cw, ch))
                self._ts += 1
                queued.append((self._ts, crop, det))
                sent.append((self._ts, (x0, y0, cw, ch), req))
                if overlap:
                    self._queue(queued)
            self._queue(queued)
            self._graph.wait_until_idle()
        out: list[np.ndarray | None] = []
        for item in sent:
            if item is None:
                out.append(None)
                continue
            ts, (x0, y0, cw, ch), req = item
            pts = _landmark_points(self._out.pop(ts, None))
            if pts is None:
                out.append(None)
                continue
            # normalised crop coords -> full-frame px; z uses the same scale as x
            pts[:, 0] = x0 + pts[:, 0] * cw
            pts[:, 1] = y0 + pts[:, 1] * ch
            pts[:, 2] = pts[:, 2] * cw
            if req.box is not None:
                # the mesh must describe the face we were asked about, not a neighbour
                box = req.box
                bw = max(box[2] - box[0], box[3] - box[1])
                target = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
                if np.linalg.norm(pts[:, :2].mean(0) - target) > 0.5 * bw:
                    out.append(None)
                    continue
            out.append(pts)
        self._out.clear()
        return out

    def _queue(self, queued: list) -> None:
        from mediapipe.python import packet_creator
        from mediapipe.python._framework_bindings import image_frame

        for ts, crop, det in queued:
            self._graph.add_packet_to_input_stream(
                "image", packet_creator.create_image_frame(image_format=image_frame.ImageFormat.SRGB,
                                                           data=crop).at(ts))
            self._graph.add_packet_to_input_stream("detection", packet_creator.create_proto(det).at(ts))
        queued.clear()

    def landmarks(self, rgb: np.ndarray, box: np.ndarray | None = None,
                  eyes: np.ndarray | None = None) -> np.ndarray | None:
        """(478, 3) landmarks in full-frame px (x, y, z * width) for the face in ``box`` (or a
        face filling the frame when ``box`` is None); None if the mesh finds no face there."""
        return self.landmarks_batch([MeshRequest(rgb, box, eyes)])[0]

    def close(self) -> None:
        try:
            self._graph.close()
        except RuntimeError:
            pass


# A serialized NormalizedLandmarkList whose landmarks carry exactly x, y, z (what the face mesh
# graph emits): per landmark, field 1 (tag 0x0a) of 15 bytes holding three float32 fields
# (tags 0x0d, 0x15, 0x1d), so the list is one fixed-stride record array.
_LANDMARK_RECORD = np.dtype([("tag", "u1"), ("len", "u1"), ("tx", "u1"), ("x", "<f4"), ("ty", "u1"), ("y", "<f4"),
                             ("tz", "u1"), ("z", "<f4")])


def _landmark_points(res) -> np.ndarray | None:
    """(NUM_LANDMARKS, 3) float64 normalised (x, y, z) of one mesh output (its serialized bytes,
    or the proto message), None when the mesh gave no face or another number of points. Bytes
    in the plain x/y/z layout are read as a record array; any other layout (visibility or
    presence set, another field order) is parsed as the proto: same values either way."""
    if res is None:
        return None
    if isinstance(res, bytes):
        if len(res) == NUM_LANDMARKS * _LANDMARK_RECORD.itemsize:
            rec = np.frombuffer(res, _LANDMARK_RECORD)
            if ((rec["tag"] == 0x0A) & (rec["len"] == 15) & (rec["tx"] == 0x0D) & (rec["ty"] == 0x15)
                    & (rec["tz"] == 0x1D)).all():
                return np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.float64)
        from mediapipe.framework.formats import landmark_pb2

        msg = landmark_pb2.NormalizedLandmarkList()
        msg.ParseFromString(res)
        res = msg
    if len(res.landmark) != NUM_LANDMARKS:
        return None
    return np.array([(p.x, p.y, p.z) for p in res.landmark], dtype=np.float64)


class StaticFaceMesh:
    """The reference pass: mediapipe's ``face_mesh`` solution in static-image mode (it finds the
    face again in every crop), ``refine_landmarks=True`` -> 478 points. ``FaceMesh`` replaced it
    in ``analyze_video`` (ANALYSIS_VERSION 2); ``benchmarks/perf/faces_equivalence.py`` compares
    the two."""

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
        h, w = rgb.shape[:2]
        cut = face_crop(rgb, box, self.crop_scale, self.crop_max_side, area_from=1.0)
        if cut is None:
            return None
        crop, (x0, y0, cw, ch) = cut
        from curation.quiet import native_stderr_quiet

        with native_stderr_quiet():  # graph threads log absl warnings while processing
            res = self._mesh.process(crop)
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

    def landmarks_batch(self, requests: list[MeshRequest]) -> list[np.ndarray | None]:
        return [self.landmarks(r.rgb, r.box) for r in requests]

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
    eyes: np.ndarray | None = None  # (T, 2, 2) detector eye keypoints (interpolated like raw_boxes)

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
        _MODELS[key] = {"det": FaceDetector, "mesh": FaceMesh, "static_mesh": StaticFaceMesh}[kind](**kw)
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


def _same_pixels(a: np.ndarray, b: np.ndarray, box: np.ndarray, mesh) -> bool:
    """Do frames ``a`` and ``b`` hold the same pixels in the mesh crop around ``box``?"""
    sq = square_box(box, float(getattr(mesh, "crop_scale", 1.8)))
    h, w = a.shape[:2]
    x0, y0 = int(max(0, np.floor(sq[0]))), int(max(0, np.floor(sq[1])))
    x1, y1 = int(min(w, np.ceil(sq[2]))), int(min(h, np.ceil(sq[3])))
    return bool(np.array_equal(a[y0:y1, x0:x1], b[y0:y1, x0:x1]))


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
    clip=None,
    detector: FaceDetector | None = None,
    mesh: FaceMesh | None = None,
    max_gap: int = 6,
    smooth_window: int = 7,
    chunk: int = 32,
    detect_every: int = 5,
    mesh_crop_hold: float = 0.05,
) -> FaceAnalysis:
    """Detect, track and (optionally) landmark every face of ``path`` in [start, end).

    Frames are sampled at ``fps`` (None = every source frame) with the nearest-frame rule of
    ``curation.media.sample_indices``. ``frames`` may be given instead of decoding ``path``:
    an RGB uint8 (T, H, W, 3) array taken as consecutive frames starting at ``start_frame``
    at rate ``fps`` (25 if None). ``clip`` (a ``curation.decode.Frames``) may be given
    instead: the shared decode of the clip at analysis size; frame indices are its timeline's
    and boxes / landmarks are returned in its display (full-size, upright) pixels.
    ``max_gap`` is the longest miss (in analysed frames) filled by interpolation; tracks
    detected in fewer than ``min_track_frac`` of the frames are dropped as spurious.

    Cost controls: ``detect_every`` N runs the detector on every N-th analysed frame only
    (and the last); boxes between two detections of a track are interpolated and the raw
    face count of a frame is that of its detection frame. The mesh runs per person on the
    frames where that person has a box, on the region of interest of that box (never on one
    derived from the previous frame's landmarks: mediapipe's tracking mode was measured to
    bend the mouth signal, moving sadtalker's lip-sync offset by 16 frames), one graph wait
    per ``chunk`` frames. The mesh crop of a face is held from the previous frame while its
    box moves (centre and side) by less than ``mesh_crop_hold`` of the box side: the
    detector's box jitters with pixels elsewhere in the frame, and a still face must give the
    same landmarks from the same pixels; when the crop's pixels are also unchanged, the
    previous answer is reused without running the network (a frozen video costs one call).
    """
    detector = detector or _cached("det")
    detect_every = max(1, int(detect_every))
    if with_landmarks:
        mesh = mesh or _cached("mesh")
    coord_scale = 1.0

    if clip is not None:
        src_fps = float(clip.rate)
        start = max(int(start_frame), clip.start_frame)
        end = clip.end_frame if end_frame is None else min(int(end_frame), clip.end_frame)
        if end <= start:
            raise MediaError(f"{path}: empty frame range [{start_frame}, {end_frame}) of the decoded clip "
                             f"[{clip.start_frame}, {clip.end_frame})")
        if fps is None:
            a_fps = src_fps
            frame_indices = np.arange(start, end)
        else:
            a_fps = float(fps)
            frame_indices = sample_indices(start, end, src_fps, a_fps)
        unique, inverse = np.unique(frame_indices, return_inverse=True)
        coord_scale = float(clip.scale)
        width, height = int(clip.display_width), int(clip.display_height)
        get = clip.at
    elif frames is not None:
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
            raise ValueError("analyze_video needs a path, frames or a decoded clip")
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

    U = len(unique)
    key_u = np.unique(np.r_[np.arange(0, U, detect_every), U - 1]) if U else np.zeros(0, int)
    # pass 1: detection on the key frames (chunked: a long clip does not fit in memory at once)
    det_k: list[list[Detection]] = []
    for s in range(0, len(key_u), chunk):
        for img in get(unique[key_u[s:s + chunk]]):
            dets = detector.detect(img)[:max_faces]
            for d in dets:
                d.box = d.box * coord_scale
            det_k.append(dets)

    T = len(frame_indices)
    # link on the key-frame sequence; gaps are counted in analysed frames
    max_miss_k = max(1, (max_gap * 2) // detect_every)
    tracklets = link_detections(det_k, max_miss=max_miss_k)
    tracklets = _stitch(tracklets, max_gap=max(1, max_gap // detect_every))
    # key-frame index of every unique frame (the latest key at or before it): its raw count
    key_of_u = np.searchsorted(key_u, np.arange(U), side="right") - 1
    faces_per_frame = np.array([len(det_k[key_of_u[u]]) for u in inverse], dtype=np.int64)

    fill_gap = max(max_gap, 2 * detect_every) if detect_every > 1 else max_gap
    tracks: list[Track] = []
    for tr in tracklets:
        raw_u = np.full((U, 4), np.nan)
        eyes_u = np.full((U, 2, 2), np.nan)
        scores_u = np.full(U, np.nan)
        det_u = np.zeros(U, bool)
        for k, box, c in zip(tr.t, tr.boxes, tr.det_ids):
            raw_u[key_u[k]] = box
            det_u[key_u[k]] = True
            scores_u[key_u[k]] = det_k[k][c].score
            if det_k[k][c].eyes is not None:
                eyes_u[key_u[k]] = det_k[k][c].eyes
        if det_u[key_u].sum() < min_track_frac * len(key_u):
            continue
        if detect_every > 1:
            # boxes (and eyes) between two detections of the track: linear interpolation ("tracked")
            dk = np.flatnonzero(det_u)
            for a, b in zip(dk[:-1], dk[1:]):
                if 1 < b - a <= fill_gap + 1:
                    w_ = (np.arange(a + 1, b) - a) / (b - a)
                    raw_u[a + 1:b] = raw_u[a] * (1 - w_)[:, None] + raw_u[b] * w_[:, None]
                    eyes_u[a + 1:b] = eyes_u[a] * (1 - w_)[:, None, None] + eyes_u[b] * w_[:, None, None]
                    det_u[a + 1:b] = True
        raw = raw_u[inverse]
        detected = det_u[inverse]
        boxes = _fill_and_smooth(raw, max_gap=max_gap, window=smooth_window)
        tracks.append(Track(boxes=boxes, detected=detected, scores=scores_u[inverse], raw_boxes=raw,
                            eyes=eyes_u[inverse]))

    if with_landmarks and tracks:
        # pass 2: landmarks of each tracked person on the frames where it has a box, in
        # chunks (one decoded chunk serves every person; its faces go to the mesh in one batch)
        lm_u = [np.full((U, NUM_LANDMARKS, 3), np.nan) for _ in tracks]
        box_u, eyes_uu = [], []
        for tr in tracks:
            b = np.full((U, 4), np.nan)
            e = np.full((U, 2, 2), np.nan)
            # the detector's own box where there is one (the crop the mesh was tuned with),
            # the smoothed / interpolated box elsewhere
            b[inverse] = np.where(np.isfinite(tr.raw_boxes).all(1)[:, None], tr.raw_boxes, tr.boxes)
            e[inverse] = tr.eyes
            ok = np.zeros(U, bool)
            ok[inverse] = tr.detected
            b[~ok] = np.nan
            box_u.append(b)
            eyes_uu.append(e)
        # each person's previous mesh input: (crop box, eyes, frame, u)
        held: list[tuple | None] = [None] * len(tracks)
        for s in range(0, U, chunk):
            sel = [u for u in range(s, min(U, s + chunk))
                   if any(np.isfinite(b[u]).all() for b in box_u)]
            if not sel:
                continue
            imgs = get(unique[sel])
            requests: list[MeshRequest] = []
            slots: list[tuple[int, int]] = []  # (person, u) of each request
            repeats: list[tuple[int, int, int]] = []  # (person, u, u of the identical earlier input)
            for img, u in zip(imgs, sel):
                for p, b in enumerate(box_u):
                    if not np.isfinite(b[u]).all():
                        held[p] = None
                        continue
                    box = b[u] / coord_scale
                    eyes = eyes_uu[p][u] / coord_scale
                    prev = held[p]
                    crop = _held_crop(box, [prev[0]] if prev is not None else [], mesh_crop_hold)
                    if prev is not None and crop is prev[0]:
                        eyes = prev[1]
                        if _same_pixels(img, prev[2], crop, mesh):
                            # same pixels, same region: the network's answer is known (a still
                            # or frozen video costs one frame)
                            repeats.append((p, u, prev[3]))
                            held[p] = (crop, eyes, img, u)
                            continue
                    held[p] = (crop, eyes, img, u)
                    requests.append(MeshRequest(img, crop, eyes))
                    slots.append((p, u))
            for (p, u), lm in zip(slots, mesh.landmarks_batch(requests)):
                if lm is not None:
                    lm[:, :3] *= coord_scale
                    lm_u[p][u] = lm
            for p, u, src in repeats:  # in frame order: a run of repeats copies its first answer
                lm_u[p][u] = lm_u[p][src]
        for tr, lm in zip(tracks, lm_u):
            tr.landmarks = lm[inverse]
            tr.mouth_open = np.array([mouth_opening(tr.landmarks[t]) if tr.detected[t] else np.nan
                                      for t in range(T)])
    tracks.sort(key=lambda tr: float(np.nanmedian(tr.centre_x)))
    backend = {"detector": f"{detector.name}@mediapipe-{detector.version}"}
    if detect_every > 1:
        backend["detector"] += f" every {detect_every} frames + box interpolation"
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
