"""Cost of the face primitives per frame, side by side on the shared talking clips.

    .venv/bin/python benchmarks/perf/faces_cost.py [--frames 50] [--data ../shared/data]

For each clip, over its first ``--frames`` frames: decode only (decord, full resolution),
detection (mediapipe full-range, frame downscaled to 640 px), detection + 478-point mesh on
every detected face, and one dlib identity embedding per detected face. Times exclude
decoding except in the decode column; ratios are relative to decoding. Single-threaded
torch/mediapipe work; numbers depend on the machine's load (printed at the end).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kernel.data import default_data_root  # noqa: E402

CLIPS = [
    "talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4",
    "talking/infinitetalk_ref_video.mp4",
    "talking/syncnet_example_video.avi",
    "talking/latentsync_demo1_video.mp4",
    "anytalker_benchmark/interact_11.mp4",
]


def _ms(t0: float, n: int) -> float:
    return (time.perf_counter() - t0) * 1000.0 / max(1, n)


def measure(path: Path, n_frames: int, detector, mesh, embedder) -> dict:
    from curation.media import VideoReader

    reader = VideoReader(path)
    idx = list(range(min(n_frames, len(reader))))
    t0 = time.perf_counter()
    frames = reader.get(idx)
    decode = _ms(t0, len(idx))

    t0 = time.perf_counter()
    dets = [detector.detect(f) for f in frames]
    detect = _ms(t0, len(idx))

    t0 = time.perf_counter()
    for f in frames:
        for d in detector.detect(f):
            mesh.landmarks(f, d.box)
    detect_mesh = _ms(t0, len(idx))

    n_faces = sum(len(d) for d in dets)
    t0 = time.perf_counter()
    for f, ds in zip(frames, dets):
        for d in ds:
            embedder.embed(f, d.box)
    embed = _ms(t0, len(idx))
    h, w = frames.shape[1:3]
    return {"clip": path.name, "size": f"{w}x{h}", "frames": len(idx),
            "faces/frame": n_faces / max(1, len(idx)), "decode": decode, "detect": detect,
            "detect+mesh": detect_mesh, "dlib_embed": embed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--data", default=None, help="data root (default: kernel.data resolver: $ANYTALKER_DATA, ../shared/data, fetched set)")
    args = ap.parse_args()
    args.data = args.data or default_data_root()

    import torch

    torch.set_num_threads(1)
    from curation.faces import FaceDetector, FaceMesh
    from curation.identity import DlibEmbedder

    detector, mesh, embedder = FaceDetector(), FaceMesh(), DlibEmbedder()
    print(f"backends: {detector.name}@mediapipe-{detector.version}, {mesh.name}, {embedder.backend}")
    rows = []
    for rel in CLIPS:
        p = Path(args.data) / rel
        if not p.exists():
            print(f"skip {rel}: not found under {args.data}")
            continue
        rows.append(measure(p, args.frames, detector, mesh, embedder))

    cols = ["decode", "detect", "detect+mesh", "dlib_embed"]
    head = f"{'clip':44s} {'size':>9s} {'faces':>5s} " + " ".join(f"{c + ' ms':>14s}" for c in cols)
    print(head + "   ratios to decode (detect, det+mesh, embed)")
    for r in rows:
        vals = " ".join(f"{r[c]:14.1f}" for c in cols)
        ratios = ", ".join(f"{r[c] / r['decode']:.1f}x" for c in cols[1:])
        print(f"{r['clip'][:44]:44s} {r['size']:>9s} {r['faces/frame']:5.2f} {vals}   {ratios}")
    if rows:
        mean = {c: float(np.mean([r[c] for r in rows])) for c in cols}
        print(f"{'mean':44s} {'':>9s} {'':>5s} " + " ".join(f"{mean[c]:14.1f}" for c in cols))
    print(f"load average during run: {os.getloadavg()}")


if __name__ == "__main__":
    main()
