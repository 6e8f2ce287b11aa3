"""Extra CPU cost of the sync judge's mouth-crop input (``TrainConfig.crops``, round 4b), per
second of video, next to the landmark-only judge, in one run.

    .venv/bin/python benchmarks/perf/sync_crops_cost.py [--video interact_11.mp4] [--width 80]

Parts, each timed on the same video (its face analysis read from the sync-judge cache, made once
if absent and not timed):

* ``decode + warp``: decoding the analysed 25 fps frames again and warping every track's mouth
  crop (``features.face_crops``, the suite / metric path: ``analyze_video`` does not hand its
  frames out); ``warp only``: the crops from frames already in memory (the curation path, which
  holds the clip's decoded frames);
* ``judge landmarks`` / ``judge crops``: the similarity curve of every track (+-15 frames) by a
  3-net ensemble of each kind. The nets are untrained (cost does not depend on the weights).

CPU time is process time (all threads); ``--threads`` torch threads (default 1, the metric's).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kernel.data import default_data_root  # noqa: E402

SHARED = default_data_root()


def _timed(fn, repeats: int = 2):
    """(result, min CPU s, min wall s) over ``repeats`` calls."""
    best_cpu = best_wall = float("inf")
    out = None
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        best_cpu, best_wall = min(best_cpu, time.process_time() - c), min(best_wall, time.perf_counter() - w)
    return out, best_cpu, best_wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, default=SHARED / "anytalker_benchmark" / "interact_11.mp4")
    p.add_argument("--width", type=int, default=80, help="temporal tower width of the crop judge")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if not args.video.is_file():
        print(f"{args.video}: video not found; pass --video or set ANYTALKER_DATA", file=sys.stderr)
        return 2

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from curation.media import VideoReader, load_audio
    from curation.sync_judge import track_sims
    from curation.sync_judge.features import face_crops, face_tracks, lip_features, mouth_crops
    from curation.sync_judge.model import SyncJudgeNet, count_parameters
    from curation.sync_judge.train import TrainConfig

    analysis = face_tracks(args.video)
    seconds = len(analysis["frame_indices"]) / 25.0
    wav = load_audio(args.video)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # a fresh cache folder per call: the crops are made, not read
        calls = iter(range(10))
        crops, cpu, wall = _timed(lambda: face_crops(args.video, analysis, cache=Path(tmp) / str(next(calls))))
    rows.append(("decode + warp (face_crops)", cpu, wall))
    frames = VideoReader(args.video).get(analysis["frame_indices"])
    _, cpu, wall = _timed(lambda: [mouth_crops(frames, t["landmarks"], t["detected"]) for t in analysis["tracks"]])
    rows.append(("warp only (frames in memory)", cpu, wall))
    del frames
    torch.manual_seed(0)
    shipped_width = TrainConfig().width
    shipped = [SyncJudgeNet(shipped_width).eval() for _ in range(3)]
    with_crops = [SyncJudgeNet(args.width, crops=True).eval() for _ in range(3)]
    for name, nets, use in ((f"judge landmarks (3 x width {shipped_width}, shipped kind)", shipped, False),
                            (f"judge crops (3 x width {args.width})", with_crops, True)):
        def run():
            for i, t in enumerate(analysis["tracks"]):
                lips = lip_features(t["landmarks"])
                lips[~t["detected"]] = np.nan
                track_sims(nets, lips, wav, 15, crops=crops["crops"][i] if use else None)
        _, cpu, wall = _timed(run)
        rows.append((f"{name}, {count_parameters(nets[0]) * 3 / 1e6:.2f} M params", cpu, wall))
    print(f"{args.video.name}: {seconds:.1f} s of video, {len(analysis['tracks'])} face track(s), "
          f"torch threads {args.threads}")
    print(f"{'part':62s} {'cpu s':>7s} {'cpu/video s':>12s} {'wall s':>7s}")
    for name, cpu, wall in rows:
        print(f"{name:62s} {cpu:7.2f} {cpu / seconds:12.4f} {wall:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
