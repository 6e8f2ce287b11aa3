"""Shot-cut detection against hand-marked cuts.

    python -m benchmarks.validity shots --data DIR [--annotations DIR2] --json OUT

Scores every video ``X.mp4`` (also .mkv/.mov/.avi/.webm; with or without audio) under DIR that
has an ``X.cuts.json`` beside it or, when ``--annotations`` is given (default: this package's
``annotations/shots`` folder), an ``X.cuts.json`` there. Format: that of
``scenes/clip_01_tears_of_steel.cuts.json``: ``cut_frames`` (0-based index of the first frame of
each new shot) and optional ``not_cuts`` (``{"frames": [a, b]}`` ranges where nothing must be
detected). A detection matches a marked cut within +-``--tolerance`` frames (one-to-one).
``false_in_not_cut_ranges`` counts unmatched detections inside a not-cut range. ``n_cuts`` is
the number of marked cuts; precision / recall / f1 are pooled over all videos.
"""

from __future__ import annotations

import json
from pathlib import Path

CHECK = "shots"
VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".webm")
DEFAULT_ANNOTATIONS = Path(__file__).resolve().parent / "annotations" / "shots"


def add_arguments(parser) -> None:
    parser.add_argument("--annotations", type=Path, default=DEFAULT_ANNOTATIONS,
                        help="extra folder of X.cuts.json matched to videos by name (default: the repo's "
                             "benchmarks/validity/annotations/shots); a cuts.json beside the video wins")
    parser.add_argument("--tolerance", type=int, default=1, help="frames a detection may be off a marked cut")


def find_annotated(data: Path, annotations: Path | None) -> list[tuple[Path, Path]]:
    out = []
    for video in sorted(p for p in data.rglob("*") if p.suffix.lower() in VIDEO_EXTS and p.is_file()):
        beside = video.with_name(video.stem + ".cuts.json")
        extra = annotations / f"{video.stem}.cuts.json" if annotations and annotations.is_dir() else None
        ann = beside if beside.is_file() else (extra if extra is not None and extra.is_file() else None)
        if ann is not None:
            out.append((video, ann))
    return out


def match(found: list[int], truth: list[int], tol: int) -> int:
    """Number of one-to-one matches within ``tol`` frames (greedy by distance)."""
    pairs = sorted((abs(f - t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth) if abs(f - t) <= tol)
    used_f, used_t, n = set(), set(), 0
    for _, i, j in pairs:
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            n += 1
    return n


def unmatched(found: list[int], truth: list[int], tol: int) -> list[int]:
    return [f for f in found if all(abs(f - t) > tol for t in truth)]


def run(args) -> dict:
    from curation.media import VideoReader
    from curation.shots import DOWNSCALE_WIDTH, CutParams, detect_cuts

    data = Path(args.data)
    items = find_annotated(data, args.annotations)
    if not items:
        return {"error": f"{data}: no video with an X.cuts.json", "n_cuts": 0}
    tp = n_found = n_true = false_in_ranges = 0
    videos = []
    for video, ann_path in items:
        ann = json.loads(ann_path.read_text())
        truth = [int(c) for c in ann.get("cut_frames", [])]
        reader = VideoReader(video, width=DOWNSCALE_WIDTH, height=-1)
        found = detect_cuts(reader.get(range(len(reader))), reader.fps)
        m = match(found, truth, args.tolerance)
        extra = unmatched(found, truth, args.tolerance)
        inside = [c for c in extra for r in ann.get("not_cuts", []) if r["frames"][0] <= c <= r["frames"][1]]
        tp, n_found, n_true = tp + m, n_found + len(found), n_true + len(truth)
        false_in_ranges += len(inside)
        videos.append({"video": str(video.relative_to(data)), "annotation": str(ann_path), "cuts": truth,
                       "found": found, "matched": m, "false_in_not_cut_ranges": len(inside)})
    precision = tp / n_found if n_found else 1.0
    recall = tp / n_true if n_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "false_in_not_cut_ranges": false_in_ranges, "n_cuts": n_true, "n_detected": n_found,
            "n_videos": len(items), "tolerance_frames": args.tolerance,
            "params": CutParams().as_dict(), "videos": videos}
