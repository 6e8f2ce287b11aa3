"""`faces`: who is on screen, where, and whether the people stay the same people."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curation.base import Filter, Reason, Resources, Row
from curation.decode import load_frames
from curation.faces import FaceAnalysis, analyze_video, order_violations
from curation.fields import PERSON, Field
from curation.identity import Embedder, cosine, get_embedder

# numbers that go into rows are rounded: sub-pixel / 1e-4 detail is noise and bloats shards
_BOX_DECIMALS = 2
_SIGNAL_DECIMALS = 4


def _finite_or_none(v: float, nd: int) -> float | None:
    return round(float(v), nd) if v is not None and math.isfinite(v) else None


@dataclass
class FacesParams:
    """Parameters of ``faces`` (see the stage docstring for the measurements behind them)."""

    expected_persons: int = 1
    analysis_fps: float | None = 25.0
    min_frac_exact: float = 0.8
    min_face_size: float = 64.0
    max_order_violations_frac: float = 0.05
    identity_backend: str = "dlib"
    identity_model_path: str | None = None
    identity_swap_threshold: float = 0.14
    identity_samples: int = 4
    identity_spacing_s: float = 2.5
    max_faces: int = 6
    min_track_frac: float = 0.3
    detect_every: int = 5
    landmarks: bool = True


def _lip_rows(landmarks: np.ndarray | None, detected: np.ndarray) -> list[list[float] | None]:
    """Per frame: ``curation.sync_judge.features.lip_features`` (None where no mesh)."""
    from curation.sync_judge.features import lip_features

    if landmarks is None:
        return [None] * len(detected)
    feats = lip_features(landmarks)
    return [[round(float(v), _SIGNAL_DECIMALS) for v in f] if ok and np.isfinite(f).all() else None
            for f, ok in zip(feats, detected)]


class FacesStage(Filter):
    """Detect, track and identify the faces of a clip; keep clips with exactly
    ``expected_persons`` stable, large-enough people who keep their left/right order and
    identity.

    Backends: mediapipe full-range face detection + refined 478-point face mesh
    (``curation.faces``) and, for identity, dlib's ResNet descriptor by default or a
    user-supplied ArcFace model (``curation.identity``). Faces are analysed at
    ``analysis_fps`` (25 fps, the rate of the sync stage and SyncNet; None = every source
    frame). ``persons[i].frames`` holds the source frame index of each analysed frame, so a
    24 fps source analysed at 25 fps repeats about one frame in 24; ``boxes`` and the extra
    keys ``mouth_open`` (inner-lip opening / face height, per person) and ``lip_features``
    (per person and frame, the sync judge's eye-aligned lip landmarks) are aligned with it.

    Frames come from the shared decode of the clip (``curation.decode``: upright, bounded
    size, constant-rate timeline); boxes are in full-size upright pixels. Cost controls,
    measured in ``benchmarks/perf/faces_cost.py``: the detector runs on every
    ``detect_every``-th analysed frame (5: five times a second at 25 fps; boxes in between are
    interpolated), the face mesh runs only when a later stage reads the landmarks
    (``landmarks``: the mouth opening for the landmark sync backend; set False with the
    syncnet backend), on the frames where a person has a box.

    Defaults and the measurements behind them (mediapipe 0.10.21, dlib 20.0.1, whole clips
    of ``shared/data/talking`` and ``anytalker_benchmark/interact_11.mp4`` at 25 fps):

    * ``min_frac_exact`` 0.8: the fraction of analysed frames whose raw detection count
      equals ``expected_persons`` is 1.00 on sadtalker (200 frames), interact_11 (213),
      latentsync (250) and infinitetalk (375), and 0.92 on syncnet_example_video (head bent
      down over a guitar; the detector misses 11 of 133 frames). 0.8 keeps all of them and
      rejects clips where a person is missing, or an extra face is present, for more than
      1 s in 5 s.
    * ``min_face_size`` 64 px (median box side): measured 310 (sadtalker, 512x512),
      171 / 193 (interact_11, 832x448), 210 (latentsync, 1080x1920), 232 (infinitetalk,
      458x458), 227 (syncnet, 976x528). The speaking mouth opening measured on interact_11 is
      0.04-0.19 of face height, i.e. 3-12 px on a 64 px face: below that the lip signal
      the sync stage relies on is at the level of landmark noise.
    * ``max_order_violations_frac`` 0.05: 0 of 213 interact_11 frames have the two box
      centres out of track order; 5% tolerates a brief overlap when people lean together.
    * ``identity_samples`` 4 / ``identity_spacing_s`` 2.5: the tracks are embedded at up to 4
      frames at least 2.5 s apart (2 at minimum: first and last frame); a 4 s single-person
      span gets 2 (was 3 with 5 / 1.5 s: a dlib descriptor costs about as much as 20 mesh
      frames). A swap is a lasting change of who a track follows, so the last frame shows it;
      the half-swapped interact_11 test video is still caught.
    * ``identity_swap_threshold`` 0.14 (cosine distance of L2-normalised dlib descriptors):
      the largest drift of a track from its first embedding over 5 samples is 0.025
      (sadtalker), 0.065 (interact_11), 0.032 (latentsync), 0.011 (infinitetalk) and 0.097
      (syncnet, strongly bent head), while different people are 0.175-0.185 apart (obama vs
      biden 0.185, obama2 vs biden 0.175 on the face_recognition photos; interact_11 woman
      vs man 0.178 in the half-swapped test video; obama vs obama2: 0.033). 0.14 is the
      midpoint of 0.097 and 0.175. With two or more people a swap is also flagged when a
      track at a later sample is closer to another track's first embedding than to its own
      (interact_11 margin +0.11; the half-swapped video -0.15).
    """

    name = "faces"
    version = "3"
    requires = ("source_abs_path", "start_frame", "end_frame", "fps")
    produces = ("num_persons", "frac_exact_n_faces", "min_face_size", "order_stable",
                "identity_swap", "persons")
    fields = {
        "num_persons": Field(pa.int32(), None, "person tracks"),
        "frac_exact_n_faces": Field(pa.float64(), "1", "fraction of analysed frames with exactly expected_persons faces"),
        "frac_more_faces": Field(pa.float64(), "1"), "frac_fewer_faces": Field(pa.float64(), "1"),
        "analysis_fps": Field(pa.float64(), "1/s", "rate of persons.frames"),
        "face_backend": Field(pa.struct([("detector", pa.string()), ("mesh", pa.string())]), None,
                              "name@version of each face model used"),
        "min_face_size": Field(pa.float64(), "px", "smallest median box side"),
        "order_violations_frac": Field(pa.float64(), "1"), "order_stable": Field(pa.bool_()),
        "identity_backend": Field(pa.string()), "identity_swap": Field(pa.bool_()),
        "identity_max_drift": Field(pa.float64(), "cosine distance"),
        "identity_cross_margin": Field(pa.float64(), "cosine similarity"),
        "persons": Field(pa.list_(PERSON), None, "left to right"),
        "mouth_open": Field(pa.list_(pa.list_(pa.float64())), "face height",
                            "inner-lip opening per person, aligned with persons.frames (null without landmarks)"),
        "lip_features": Field(pa.list_(pa.list_(pa.list_(pa.float32()))), "inter-ocular distance",
                              "per person and analysed frame: the sync judge's eye-aligned lip points "
                              "(curation.sync_judge.features), null where the mesh missed"),
        "faces_if_rotated": Field(pa.int32(), "degree",
                                  "clockwise turn that makes faces appear when none is upright (no_face)"),
    }
    resources = Resources(cpus=1)
    uses_model = True
    params = FacesParams

    def setup(self) -> None:
        if int(self.expected_persons) < 1:
            raise ValueError(f"faces: expected_persons must be >= 1, got {self.expected_persons}")
        self._embedder: Embedder = get_embedder(self.identity_backend, self.identity_model_path)
        # the mediapipe graphs analyze_video uses, built now (once per worker) rather than
        # during the first clip
        from curation.faces import _cached

        _cached("det")
        if self.landmarks:
            _cached("mesh")

    # -- measurements --------------------------------------------------------------------------
    def measure(self, row: Row) -> Row:
        path = row["source_abs_path"]
        start = int(row.get("start_frame") or 0)
        end = row.get("end_frame")
        fps = self.analysis_fps
        clip = load_frames(path, start, None if end is None else int(end), rate=float(row["fps"]))
        fa = analyze_video(path, start, None if end is None else int(end), clip=clip,
                           fps=None if fps in (None, 0) else float(fps), with_landmarks=bool(self.landmarks),
                           max_faces=int(self.max_faces), min_track_frac=float(self.min_track_frac),
                           detect_every=int(self.detect_every))
        n_expected = int(self.expected_persons)
        fpf = fa.faces_per_frame
        out: Row = {
            "num_persons": len(fa.tracks),
            "frac_exact_n_faces": float(np.mean(fpf == n_expected)) if len(fpf) else 0.0,
            "frac_more_faces": float(np.mean(fpf > n_expected)) if len(fpf) else 0.0,
            "frac_fewer_faces": float(np.mean(fpf < n_expected)) if len(fpf) else 1.0,
            "analysis_fps": fa.fps,
            "face_backend": fa.backend,
        }
        sizes = [tr.face_size for tr in fa.tracks]
        out["min_face_size"] = float(min(sizes)) if sizes else 0.0
        viol = order_violations(fa.tracks)
        out["order_violations_frac"] = viol
        out["order_stable"] = bool(viol <= float(self.max_order_violations_frac))
        out.update(self._identity(clip, fa))
        out["persons"] = [self._person(i, fa, tr) for i, tr in enumerate(fa.tracks)]
        out["mouth_open"] = [
            [_finite_or_none(v, _SIGNAL_DECIMALS) for v in tr.mouth_open] for tr in fa.tracks
        ] if self.landmarks else None
        # the sync judge's inputs: eye-aligned lip landmarks per person and frame
        out["lip_features"] = [
            _lip_rows(tr.landmarks, tr.detected) for tr in fa.tracks
        ] if self.landmarks else None
        if not fa.tracks:
            out["faces_if_rotated"] = self._faces_if_rotated(clip, fa)
        return out

    def _faces_if_rotated(self, clip, fa: FaceAnalysis) -> int | None:
        """Clockwise degrees (90/180/270) that make faces appear in a clip with none upright:
        the cause of a ``no_face`` is then wrong or missing rotation metadata, not the content."""
        import cv2

        from curation.faces import _cached

        det = _cached("det")
        picks = fa.frame_indices[np.linspace(0, len(fa.frame_indices) - 1, min(5, len(fa.frame_indices))).astype(int)]
        imgs = clip.at(picks)
        for deg, code in ((90, cv2.ROTATE_90_CLOCKWISE), (180, cv2.ROTATE_180), (270, cv2.ROTATE_90_COUNTERCLOCKWISE)):
            hits = sum(bool(det.detect(cv2.rotate(np.ascontiguousarray(f), code))) for f in imgs)
            if hits * 2 > len(imgs):
                return deg
        return None

    @staticmethod
    def _person(index: int, fa: FaceAnalysis, tr) -> Row:
        boxes = [
            [round(float(v), _BOX_DECIMALS) for v in b] if np.isfinite(b).all() else None
            for b in tr.boxes
        ]
        ref = next((b for b in boxes if b is not None), None)
        return {
            "index": index,
            "frames": [int(f) for f in fa.frame_indices],
            "boxes": boxes,
            "ref_box": ref,
            "face_size": _finite_or_none(tr.face_size, _BOX_DECIMALS),
        }

    def _identity(self, clip, fa: FaceAnalysis) -> Row:
        """Embed every track at ``identity_samples`` frames where all tracks were detected
        (each track's own detected frames if they never coincide); flag a swap when a track
        drifts from its first embedding by more than the threshold, or matches another
        track's first embedding better than its own."""
        emb = self._embedder
        res: Row = {"identity_backend": emb.backend, "identity_swap": False,
                    "identity_max_drift": None, "identity_cross_margin": None}
        if not fa.tracks:
            return res
        # at most identity_samples, at least identity_spacing_s apart: a 4 s speech span gets
        # 2 samples (0, 4 s), a 12 s clip 4; each dlib descriptor costs ~20 face-mesh frames
        dur = len(fa.frame_indices) / max(fa.fps, 1e-6)
        k = max(2, min(int(self.identity_samples), 1 + int(dur // float(self.identity_spacing_s))))
        det = np.stack([tr.detected for tr in fa.tracks])  # (P, T)
        common = np.flatnonzero(det.all(0))
        if len(common) >= 2:
            picks = [common[np.linspace(0, len(common) - 1, k).round().astype(int)]] * len(fa.tracks)
        else:
            picks = []
            for row in det:
                own = np.flatnonzero(row)
                picks.append(own[np.linspace(0, len(own) - 1, k).round().astype(int)])
        need = sorted({int(t) for p in picks for t in p})
        frames = dict(zip(need, clip.at(fa.frame_indices[need])))
        embs = []  # (P, K, D); boxes are in full-size pixels, the shared frames at analysis size
        for tr, p in zip(fa.tracks, picks):
            embs.append([emb.embed(frames[int(t)], tr.boxes[int(t)] / clip.scale) for t in p])
        refs = [e[0] for e in embs]
        drift = max(1.0 - cosine(e, ref) for es, ref in zip(embs, refs) for e in es[1:])
        res["identity_max_drift"] = round(float(drift), _SIGNAL_DECIMALS)
        swap = drift > float(self.identity_swap_threshold)
        if len(fa.tracks) >= 2:
            margins = []
            for p, es in enumerate(embs):
                for e in es[1:]:
                    own = cosine(e, refs[p])
                    other = max(cosine(e, refs[q]) for q in range(len(refs)) if q != p)
                    margins.append(own - other)
            margin = min(margins)
            res["identity_cross_margin"] = round(float(margin), _SIGNAL_DECIMALS)
            swap = swap or margin < 0
        res["identity_swap"] = bool(swap)
        return res

    # -- decision ------------------------------------------------------------------------------
    def keep(self, row: Row) -> tuple[bool, Reason | None, str]:
        n = int(self.expected_persons)
        num = int(row["num_persons"])
        frac = float(row["frac_exact_n_faces"])
        if num == 0:
            rot = row.get("faces_if_rotated")
            if rot:
                return False, Reason.NO_FACE, (
                    f"no face upright, but faces appear when the frames are turned {rot} degrees clockwise: "
                    f"the file's rotation metadata (now {row.get('rotation') or 0}) is missing or wrong; "
                    f"fix it (ffmpeg -display_rotation) or re-encode upright")
            return False, Reason.NO_FACE, "no face track in the clip"
        if num > n:
            return False, Reason.TOO_MANY_FACES, f"{num} persons tracked, expected {n}"
        if num < n:
            return False, Reason.TOO_FEW_FACES, f"{num} persons tracked, expected {n}"
        if frac < float(self.min_frac_exact):
            more, fewer = row["frac_more_faces"], row["frac_fewer_faces"]
            reason = Reason.TOO_MANY_FACES if more > fewer else Reason.TOO_FEW_FACES
            return False, reason, (f"exactly {n} faces in {frac:.2f} of frames < min_frac_exact="
                                   f"{self.min_frac_exact} (more: {more:.2f}, fewer: {fewer:.2f})")
        if float(row["min_face_size"]) < float(self.min_face_size):
            return False, Reason.FACE_TOO_SMALL, (f"smallest face {row['min_face_size']:.0f}px < "
                                                  f"min_face_size={self.min_face_size}")
        if not row["order_stable"]:
            return False, Reason.ORDER_UNSTABLE, (
                f"left-right order broken in {row['order_violations_frac']:.2f} of frames > "
                f"max_order_violations_frac={self.max_order_violations_frac}")
        if row["identity_swap"]:
            return False, Reason.IDENTITY_SWAP, (
                f"identity drift {row['identity_max_drift']} (threshold "
                f"{self.identity_swap_threshold}), cross-match margin {row['identity_cross_margin']}")
        return True, None, ""
