"""Build a training set (a clips run directory, the engine's manifest format) directly from
face tracks of talking videos, with held-out spans for evaluation.

Faster than a full curation run when the inputs are known to be talking heads: per video the
face detector (``curation.faces.FaceDetector``) runs ``detect_hz`` times per second, the
largest face is the person (or every face, left -> right, when per-person audio files are
given: one single-person row per person, each with its own audio), and the video's first ``1 - holdout`` of the duration becomes one training clip row;
the last ``holdout`` is left out of the shards and listed in ``split.json`` (with the face
box on its first frame) for evaluation on clips the model did not see. Every input becomes a
row: ``ok`` or ``filtered`` with a reason (no face, too short, no audio, unreadable).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation.media import MediaError, VideoReader, probe
from model.shard_reader import write_test_run
from pipelines.schema import Field  # the shard column declaration (model reads shards via pipelines)

# the columns a training set adds to the shard schema
TRAIN_REF_FRAME = Field(pa.int64(), "frame", "first source frame of the span with a detected face")
# per source frame of [start_frame, end_frame): the LIP_POINTS of the mediapipe mesh in source-frame
# pixels, flattened (frame, point, xy), NaN where the mesh found no face. Source pixels, not crop
# pixels: the crop depends on the model config (crop_scale, crop size), the loader maps them.
TRAIN_LIPS = Field(pa.list_(pa.float32()), "px", "lip landmarks (LIP_POINTS, x y) of every source frame "
                   "of the span, flattened frame-major, NaN where the mesh found no face")
# outer + inner lip contour of the mediapipe mesh (as the sync judge's features; no chin): the
# motion head's labels and the warp's control points
LIP_POINTS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
              78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191]

log = logging.getLogger(__name__)


def _track(reader: VideoReader, frames: list[int], detector, n_persons: int | None):
    """Per sampled frame, the boxes of the ``n_persons`` largest faces sorted left -> right."""
    per_frame = []
    for img in reader.get(frames):
        dets = sorted(detector.detect(img), key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        per_frame.append(sorted((d.box.tolist() for d in dets[: n_persons or 1]), key=lambda b: b[0]))
    return per_frame


def span_lips(path: Path, end: int, person_boxes: list[list | None], detector=None) -> list[np.ndarray | None]:
    """Per person (boxes as in ``video_rows``, left -> right), the (end, len(LIP_POINTS), 2) lip
    landmarks of source frames 0..end-1 (NaN where missing), from one face analysis of the span
    (``curation.faces.analyze_video``: detection, tracks, mesh on every source frame). A person
    is bound to the track whose median centre is nearest the person's median box centre; None
    when no track is near (then the row has no lip labels, and the loader skips its lip loss)."""
    from curation.faces import analyze_video

    fa = analyze_video(path, 0, end, fps=None, with_landmarks=True, detector=detector)
    out: list[np.ndarray | None] = []
    for boxes in person_boxes:
        good = [b for b in boxes if b is not None]
        if not good or not fa.tracks:
            out.append(None)
            continue
        g = np.asarray(good, np.float64)
        cx, side = float(np.median((g[:, 0] + g[:, 2]) / 2)), float(np.median(g[:, 2] - g[:, 0]))
        dist = [abs(float(np.nanmedian(tr.centre_x)) - cx) for tr in fa.tracks]
        k = int(np.argmin(dist))
        if dist[k] > 0.5 * side or fa.tracks[k].landmarks is None:
            out.append(None)
            continue
        lips = np.full((end, len(LIP_POINTS), 2), np.nan, np.float32)
        idx = np.asarray(fa.frame_indices)
        keep = (idx >= 0) & (idx < end)
        lips[idx[keep]] = fa.tracks[k].landmarks[keep][:, LIP_POINTS, :2]
        out.append(lips)
    return out


def video_rows(data_root: Path, rel: str, holdout: float, detect_hz: float = 2.0,
               audio_refs: list[str] | None = None, min_seconds: float = 1.0, detector=None,
               with_lips: bool = True) -> tuple[list[dict], list[dict]]:
    """(clip rows, held-out span records) for one video: one row per person."""
    base = {"clip_id": f"{Path(rel).stem}-train", "source_path": rel, "status": "ok"}
    try:
        info = probe(data_root / rel)
    except MediaError as e:
        return [{**base, "status": "failed", "reason": f"unreadable: {e}"}], []
    if not info.has_video or not info.fps or not info.num_frames:
        return [{**base, "status": "failed", "reason": "no_video_stream"}], []
    if not audio_refs and not info.has_audio:
        return [{**base, "status": "filtered", "reason": "no_audio"}], []
    reader = VideoReader(data_root / rel)
    # the container's frame count can exceed what decodes (syncnet_example_video.avi: 133 probed,
    # 132 decodable); indices past the last decodable frame would fail the whole clip
    n = min(int(info.num_frames), len(reader))
    end = int(n * (1.0 - holdout))
    if end / info.fps < min_seconds:
        return [{**base, "status": "filtered", "reason": "too_short"}], []
    step = max(1, int(round(info.fps / detect_hz)))
    frames = list(range(0, n, step))
    n_persons = len(audio_refs) if audio_refs else 1
    per_frame = _track(reader, frames, detector, n_persons)
    good = [len(b) == n_persons for b in per_frame]
    if sum(good) < max(2, 0.5 * len(frames)):
        return [{**base, "status": "filtered", "reason": "no_face" if not any(good) else "face_not_tracked"}], []
    rows, held = [], []
    lips_per_person: list[np.ndarray | None] = [None] * n_persons
    if with_lips:
        try:
            lips_per_person = span_lips(data_root / rel, end, [[b[i] if ok else None for b, ok in zip(per_frame, good)]
                                                              for i in range(n_persons)], detector)
        except MediaError as e:  # the clip stays usable without lip labels; the log says why
            log.warning("%s: no lip landmarks (%s)", rel, e)
    for i in range(n_persons):
        # one single-person row per person: per-person audio files make each person of a
        # multi-person video a face-centred training identity of its own
        boxes = [b[i] if ok else None for b, ok in zip(per_frame, good)]
        tracked = [(f, b) for f, b in zip(frames, boxes) if f < end and b is not None]
        suffix = f"-p{i}" if n_persons > 1 else ""
        if not tracked:
            rows.append({**base, "clip_id": base["clip_id"] + suffix, "status": "filtered",
                         "reason": "no_face_in_train_span"})
            continue
        person = {"index": 0, "frames": [f for f in frames if f < end], "boxes": [b for f, b in zip(frames, boxes) if f < end],
                  "ref_box": tracked[0][1],
                  "face_size": float(np.median([max(b[2] - b[0], b[3] - b[1]) for _, b in tracked])),
                  "audio_ref": audio_refs[i] if audio_refs else f"mix:{rel}"}
        rows.append({**base, "clip_id": base["clip_id"] + suffix, "fps": info.fps, "width": info.width,
                     "height": info.height, "start_frame": 0, "end_frame": end, "start_s": 0.0, "end_s": end / info.fps,
                     "clip_num_frames": end, "num_persons": 1, "persons": [person],
                     "ref_frame": tracked[0][0],
                     **({"lips": lips_per_person[i].reshape(-1).tolist()} if lips_per_person[i] is not None else {})})
        later = next(((f, b) for f, b in zip(frames, boxes) if f >= end and b is not None), None)
        if holdout > 0 and n - end >= info.fps * min_seconds and later is not None:
            held.append({"source_path": rel, "person": i, "start_s": later[0] / info.fps, "end_s": n / info.fps,
                         "first_frame": later[0], "box": later[1],
                         "audio_ref": audio_refs[i] if audio_refs else f"mix:{rel}"})
    return rows, held


def build_train_set(videos: list[str], data_root: str | Path, out: str | Path, holdout: float = 0.3,
                    detect_hz: float = 2.0, audio_refs: dict[str, list[str]] | None = None,
                    with_lips: bool = True) -> dict:
    """Write ``out`` (clips shard + manifest + split.json) from ``videos`` (paths relative to
    ``data_root``). ``audio_refs`` maps a video to its per-person audio files (left -> right)."""
    from curation.faces import FaceDetector

    data_root, out = Path(data_root).resolve(), Path(out)
    detector = FaceDetector()
    rows, held = [], []
    for rel in videos:
        try:
            new_rows, new_held = video_rows(data_root, rel, holdout, detect_hz, (audio_refs or {}).get(rel),
                                            detector=detector, with_lips=with_lips)
        except MediaError as e:
            new_rows, new_held = [{"clip_id": f"{Path(rel).stem}-train", "source_path": rel, "status": "failed",
                                   "reason": f"decode: {e}"}], []
        rows += new_rows
        held += new_held
        log.info("%s: %s", rel, ", ".join(f"{r['status']} {r.get('reason', '')}".strip() for r in new_rows))
    if not any(r["status"] == "ok" for r in rows):
        raise MediaError(f"{out}: none of the {len(rows)} videos gave a usable clip "
                         f"({[r.get('reason') for r in rows][:5]}); pass talking-head videos with audio")
    # rows that are not ok keep their reason; totals count them
    write_test_run(out, rows, data_root, fields={"ref_frame": TRAIN_REF_FRAME, "lips": TRAIN_LIPS})
    split = {"data_root": str(data_root), "holdout_fraction": holdout,
             "train": [{"clip_id": r["clip_id"], "source_path": r["source_path"], "end_s": r.get("end_s"),
                        "status": r["status"], "reason": r.get("reason"), "ref_frame": r.get("ref_frame"),
                        "ref_box": r["persons"][0]["ref_box"] if r.get("persons") else None,
                        "audio_ref": r["persons"][0]["audio_ref"] if r.get("persons") else None} for r in rows],
             "heldout": held}
    (out / "split.json").write_text(json.dumps(split, indent=2))
    return {"out": str(out), "clips_ok": sum(r["status"] == "ok" for r in rows),
            "clips_with_lips": sum(r["status"] == "ok" and "lips" in r for r in rows),
            "rows": len(rows), "heldout_spans": len(held),
            "filtered": {r["source_path"]: r.get("reason") for r in rows if r["status"] != "ok"}}
