"""Test helper: a small clips run directory over the shared talking videos, in the engine's
manifest format (rows as the curation pipeline writes them; faces from curation.faces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curation.media import VideoReader, probe
from model.shard_reader import write_test_run

SINGLE = ["talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4", "talking/infinitetalk_ref_video.mp4",
          "talking/syncnet_example_video.avi"]
TWO_PERSON = ("anytalker_benchmark/interact_11.mp4",
              ["anytalker_benchmark/audio_left/interact_11_left.flac",
               "anytalker_benchmark/audio_right/interact_11_right.flac"])


def clip_row(data_root: Path, rel: str, seconds: float, audio_refs: list[str] | None = None) -> dict:
    from curation.faces import FaceDetector

    info = probe(data_root / rel)
    end = min(int(info.num_frames), int(round(seconds * info.fps)))
    frames = list(range(0, end, int(round(info.fps))))  # one detection per second is enough here
    vr = VideoReader(data_root / rel)
    det = FaceDetector()
    per_frame = [sorted(det.detect(f), key=lambda d: d.box[0]) for f in vr.get(frames)]
    n = max(len(d) for d in per_frame)
    persons = []
    for i in range(n):
        boxes = [d[i].box.tolist() if len(d) == n else None for d in per_frame]
        ref = next(b for b in boxes if b is not None)
        persons.append({"index": i, "frames": frames, "boxes": boxes, "ref_box": ref,
                        "face_size": float(np.median([max(b[2] - b[0], b[3] - b[1]) for b in boxes if b])),
                        "audio_ref": (audio_refs[i] if audio_refs else f"mix:{rel}")})
    return {"clip_id": f"{Path(rel).stem}-0", "source_path": rel, "status": "ok", "fps": info.fps,
            "width": info.width, "height": info.height, "start_frame": 0, "end_frame": end,
            "start_s": 0.0, "end_s": end / info.fps, "clip_num_frames": end, "num_persons": n,
            "persons": persons}


def make_run(run_dir: Path, data_root: Path, seconds: float = 4.0, two_person: bool = False) -> Path:
    """Single-person rows carry lip landmarks (as ``anytalker train-set`` writes them); the
    two-person row has none (the loader's and the motion head's "no labels" path)."""
    from model.trainset import TRAIN_LIPS, span_lips

    rows = [clip_row(data_root, rel, seconds) for rel in SINGLE]
    for row in rows:
        (lips,) = span_lips(data_root / row["source_path"], row["end_frame"], [row["persons"][0]["boxes"]])
        if lips is not None:
            row["lips"] = lips.reshape(-1).tolist()
    if two_person:
        rows.append(clip_row(data_root, TWO_PERSON[0], seconds, TWO_PERSON[1]))
    return write_test_run(run_dir, rows, data_root, fields={"lips": TRAIN_LIPS})
