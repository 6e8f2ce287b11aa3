"""Mouth width / inter-ocular distance on the shared talking clips (``model.sync_guidance.
MOUTH_WIDTH_PER_IOD``): the training shards keep the lips only, and the sync judge reads lips
in inter-ocular units.

    python -m model.mouth_iod_ratio [--data ../shared/data] [--frames 0,10,20]

Per single-person talking clip of ``eval/labels.csv`` and every video of ``talking/``: the face
mesh on a few frames, mouth width = |p61 - p291|, IOD = |p33 - p263|; prints the median, mean and
10th / 90th percentiles over all frames with a face.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def clip_paths(data: Path) -> list[Path]:
    out = [data / "eval" / r["file"] for r in csv.DictReader((data / "eval" / "labels.csv").open())
           if r["persons"] == "1" and r["kind"].startswith("talking")]
    out += sorted(p for p in (data / "talking").iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mkv"))
    return [p for p in out if p.is_file()]


def main(argv=None) -> int:
    from curation.faces import FaceDetector, FaceMesh
    from curation.media import MediaError, VideoReader

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--frames", default="0,10,20")
    args = ap.parse_args(argv)
    frames = [int(f) for f in args.frames.split(",")]
    det, mesh = FaceDetector(), FaceMesh()
    ratios = []
    clips = clip_paths(Path(args.data))
    try:
        for path in clips:
            try:
                images = VideoReader(path).get(frames)
            except (MediaError, IndexError):
                continue
            for rgb in images:
                faces = det.detect(rgb)
                lm = mesh.landmarks(rgb, np.asarray(faces[0].box, np.float64)) if faces else None
                if lm is not None:
                    lm = np.asarray(lm)[:, :2]
                    ratios.append(np.linalg.norm(lm[61] - lm[291]) / np.linalg.norm(lm[33] - lm[263]))
    finally:
        mesh.close()
    x = np.asarray(ratios)
    if not len(x):
        print("no face found")
        return 1
    p10, p90 = np.percentile(x, [10, 90])
    print(f"{len(clips)} clips, {len(x)} frames: mouth width / IOD median {np.median(x):.3f} mean {x.mean():.3f} "
          f"p10 {p10:.3f} p90 {p90:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
