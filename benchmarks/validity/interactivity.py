"""Interactivity on real two-person videos vs the same videos with each listener frozen.

    python -m benchmarks.validity interactivity --data DIR --json OUT

Every ``X.mp4`` (found recursively) listed in a ``speaker_duration.json`` of DIR with two
persons is scored as it is (``real``) and as rebuilt by this check (``frozen``): in every run of
frames where a person listens, that person's half of the frame (split halfway between the two
faces' median centres) is replaced by its first frame of the run. The frozen video is encoded
losslessly (H.264 ``-crf 0``), so a frozen half has identical pixels from frame to frame; a
faithful scorer gives it ~0 motion. ``real`` / ``frozen`` are means over videos; per-video
figures and failures (e.g. a video with landmarks in under half of a person's listening frames
fails, the released scorer's -1) are listed under ``videos``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

CHECK = "interactivity"
VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".webm")


def add_arguments(parser) -> None:
    parser.add_argument("--interval-format", default="seconds", choices=("seconds", "timecode30"),
                        help="how to read speaker_duration.json values (the released scorer: seconds)")


def find_videos(data: Path, fmt: str) -> list[tuple[Path, list]]:
    from metrics.intervals import load_speaker_durations, lookup_intervals

    out = []
    for table_path in sorted(data.rglob("speaker_duration.json")):
        table = load_speaker_durations(table_path, fmt)
        for video in sorted(p for p in data.rglob("*") if p.suffix.lower() in VIDEO_EXTS):
            ivs = lookup_intervals(table, video)
            if ivs is not None and len(ivs) == 2:
                out.append((video, ivs))
    return out


def freeze_listeners(video: Path, intervals, out_path: Path) -> None:
    """Write ``video`` with each person's half frozen while that person listens."""
    from curation.intervals import mask
    from curation.media import VideoReader, write_video
    from metrics import _analysis

    reader = VideoReader(video)
    frames = reader.get(range(len(reader)))
    fps = float(reader.fps)
    analysis = _analysis.analyze(video, fps=None)
    tracks = _analysis.pick_persons(analysis, 2)
    if len(tracks) < 2:
        raise RuntimeError(f"{video}: fewer than two face tracks; cannot freeze listeners")
    centres = [float(np.nanmedian(tr.centre_x)) for tr in tracks]
    split = int(round((centres[0] + centres[1]) / 2))
    times = np.arange(len(frames)) / fps
    for person, (ivs, cols) in enumerate(zip(intervals, (slice(0, split), slice(split, None)))):
        listening = ~mask(ivs, times, closed=True)
        d = np.diff(np.r_[0, listening.astype(np.int8), 0])
        for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)):
            frames[a + 1:b, :, cols] = frames[a, :, cols]
    write_video(out_path, frames, fps, crf=0)


def run(args) -> dict:
    import torch

    from metrics import Sample, get_metric

    torch.set_num_threads(1)
    data = Path(args.data)
    videos = find_videos(data, args.interval_format)
    if not videos:
        return {"error": f"{data}: no two-person video listed in a speaker_duration.json", "n_videos": 0}
    metric = get_metric("interactivity")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for video, ivs in videos:
            row = {"video": str(video.relative_to(data))}
            real = metric.evaluate([Sample(video.stem, str(video), speaking_intervals=ivs,
                                           interval_format=args.interval_format)])
            row["real"] = None if real.n_scored == 0 else round(float(real.value), 4)
            try:
                frozen_path = Path(tmp) / video.name
                freeze_listeners(video, ivs, frozen_path)
                frozen = metric.evaluate([Sample(video.stem, str(frozen_path), speaking_intervals=ivs,
                                                 interval_format=args.interval_format)])
                row["frozen"] = None if frozen.n_scored == 0 else round(float(frozen.value), 4)
                row["frozen_persons"] = [round(float(p["motion"]), 4)
                                         for p in (frozen.items[0].components or {}).get("persons", [])]
                if frozen.n_failed:
                    row["frozen_failure"] = frozen.items[0].reason
            except Exception as e:  # noqa: BLE001 - a video that cannot be frozen is reported, not fatal
                row["frozen"], row["frozen_failure"] = None, f"{type(e).__name__}: {e}"
            if real.n_failed:
                row["real_failure"] = real.items[0].reason
            else:
                row["real_persons"] = [round(float(p["motion"]), 4) for p in real.items[0].components["persons"]]
            rows.append(row)
    real_vals = [r["real"] for r in rows if r["real"] is not None]
    frozen_vals = [r["frozen"] for r in rows if r.get("frozen") is not None]
    return {
        "real": round(float(np.mean(real_vals)), 4) if real_vals else None,
        "frozen": round(float(np.mean(frozen_vals)), 4) if frozen_vals else None,
        "n_videos": len(rows), "interval_format": args.interval_format,
        "metric_version": metric.version, "videos": rows,
    }
