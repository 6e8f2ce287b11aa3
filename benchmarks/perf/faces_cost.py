"""Cost of the face primitives per frame, side by side on the shared talking clips.

    .venv/bin/python benchmarks/perf/faces_cost.py [--frames 50] [--data ../shared/data]

For each clip, over its first ``--frames`` frames: decode only (the shared ffmpeg decode at the
analysis size, ``curation.decode``), detection (mediapipe full-range, frame downscaled to
640 px), detection + the reference static-mode mesh (``StaticFaceMesh``, what every frame cost
before ANALYSIS_VERSION 2), detection + the region-of-interest mesh (``FaceMesh``, batched),
the whole default pass ``analyze_video`` (detection every 5th frame, boxes tracked between,
ROI mesh on every frame of a track), and one dlib identity embedding per detected face. Times
exclude decoding except in the decode column; ratios are relative to decoding. CPU time of
this process (all threads; mediapipe's graph threads included) and of the decoder child, so
other jobs on the machine disturb it less than wall time; one-off imports and model loads are
paid before timing; the load average is printed at the end.
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


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished children (the ffmpeg decoder)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def _ms(c0: float, n: int) -> float:
    return (_cpu() - c0) * 1000.0 / max(1, n)


def measure(path: Path, n_frames: int, detector, mesh, static_mesh, embedder) -> dict:
    from curation.decode import decode_frames
    from curation.faces import MeshRequest, analyze_video

    c0 = _cpu()
    frames = decode_frames(path, end_frame=n_frames).frames
    n = len(frames)
    decode = _ms(c0, n)

    c0 = _cpu()
    dets = [detector.detect(f) for f in frames]
    detect = _ms(c0, n)

    c0 = _cpu()
    for f in frames:
        for d in detector.detect(f):
            static_mesh.landmarks(f, d.box)
    detect_static = _ms(c0, n)

    c0 = _cpu()
    reqs = [MeshRequest(f, d.box, d.eyes) for f in frames for d in detector.detect(f)]
    mesh.landmarks_batch(reqs)
    detect_roi = _ms(c0, n)

    c0 = _cpu()
    analyze_video(None, frames=frames, fps=25.0, detector=detector, mesh=mesh)
    stage = _ms(c0, n)

    n_faces = sum(len(d) for d in dets)
    c0 = _cpu()
    for f, ds in zip(frames, dets):
        for d in ds:
            embedder.embed(f, d.box)
    embed = _ms(c0, n)
    h, w = frames.shape[1:3]
    return {"clip": path.name, "size": f"{w}x{h}", "frames": n,
            "faces/frame": n_faces / max(1, n), "decode": decode, "detect": detect,
            "det+static": detect_static, "det+roi": detect_roi, "pass": stage, "dlib_embed": embed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--data", default=None, help="data root (default: kernel.data resolver: $ANYTALKER_DATA, ../shared/data, fetched set)")
    args = ap.parse_args()
    args.data = args.data or default_data_root()

    import torch

    torch.set_num_threads(1)
    from curation.faces import FaceDetector, FaceMesh, StaticFaceMesh
    from curation.identity import DlibEmbedder

    import scipy.signal  # noqa: F401 (analyze_video's smoother: a one-off import, not a per-frame cost)

    detector, mesh, static_mesh, embedder = FaceDetector(), FaceMesh(), StaticFaceMesh(), DlibEmbedder()
    print(f"backends: {detector.name}@mediapipe-{detector.version}, {mesh.name} (reference {static_mesh.name}), "
          f"{embedder.backend}; CPU ms per frame")
    rows = []
    for rel in CLIPS:
        p = Path(args.data) / rel
        if not p.exists():
            print(f"skip {rel}: not found under {args.data}")
            continue
        rows.append(measure(p, args.frames, detector, mesh, static_mesh, embedder))

    cols = ["decode", "detect", "det+static", "det+roi", "pass", "dlib_embed"]
    head = f"{'clip':44s} {'size':>9s} {'faces':>5s} " + " ".join(f"{c:>11s}" for c in cols)
    print(head + "   ratios to decode (" + ", ".join(cols[1:]) + ")")
    for r in rows:
        vals = " ".join(f"{r[c]:11.1f}" for c in cols)
        ratios = ", ".join(f"{r[c] / r['decode']:.1f}x" for c in cols[1:])
        print(f"{r['clip'][:44]:44s} {r['size']:>9s} {r['faces/frame']:5.2f} {vals}   {ratios}")
    if rows:
        mean = {c: float(np.mean([r[c] for r in rows])) for c in cols}
        print(f"{'mean':44s} {'':>9s} {'':>5s} " + " ".join(f"{mean[c]:11.1f}" for c in cols))
    print(f"load average during run: {os.getloadavg()}")


if __name__ == "__main__":
    main()
