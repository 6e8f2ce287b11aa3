"""Build ``benchmarks/interactive_eyes/v1/manifest.json`` from the shared data's ground truth.

Inputs (read-only): ``SOURCES.md`` (the per-track table: original AnyTalker WAV path, size, sha256,
git blob; FLAC copy size, sha256, duration) and ``anytalker_benchmark/speaker_duration.json``
(speaking intervals). Usage::

    python -m benchmarks.interactive_eyes.build_manifest [--data ../shared/data] [--out PATH]

The output is deterministic (sorted keys, no timestamps) so a rebuild that changes nothing leaves
the committed file byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from kernel.data import default_data_root

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_OUT = HERE / "v1" / "manifest.json"

UPSTREAM_REPO = "HKUST-C4G/AnyTalker"
UPSTREAM_COMMIT = "e5490b60dc6add439ff5ecec5bd7559606a78d53"
N_ITEMS = 29
SIDES = ("left", "right")  # person index 0 = leftmost, as in pipelines/schema.py

# the sampling protocol a submission must follow (checked by ``anytalker bench validate``)
PROTOCOL = {
    "video_file_pattern": "{item_id}.mp4",
    "container": "mp4",
    # the only benchmark video published (interact_11.mp4) is 24 fps; generators commonly emit
    # 16-30 fps, and the metrics take the frame rate from the file, so a range is accepted
    "fps_min": 15.0,
    "fps_max": 60.0,
    "reference_fps": 24.0,
    # a video must cover its item's audio (the per-person tracks share one length per item)
    "min_duration_slack_s": 0.25,
    "max_extra_duration_s": 2.0,
    "audio_track_required": True,
    "min_width": 64,
    "min_height": 64,
}

# one row of the per-track table in SOURCES.md
_ROW = re.compile(
    r"^\| `anytalker_benchmark/audio_(?P<side>left|right)/interact_(?P<n>\d+)_(?P=side)\.flac` "
    r"\| `(?P<orig_path>[^`]+)` \| (?P<orig_size>\d+) \| `(?P<orig_sha>[0-9a-f]{64})` "
    r"\| `(?P<blob>[0-9a-f]{40})` \| (?P<flac_size>\d+) \| `(?P<flac_sha>[0-9a-f]{64})` "
    r"\| (?P<dur>[0-9.]+) s; flac (?P<sr>\d+) Hz, (?P<ch>\d+) ch \|"
)


def parse_sources(text: str) -> dict[tuple[int, str], dict]:
    tracks: dict[tuple[int, str], dict] = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            tracks[(int(m["n"]), m["side"])] = m.groupdict()
    return tracks


def _max_fraction(intervals: dict) -> float:
    vals = [v for spans in intervals.values() for span in spans for v in span]
    return max(round(v - int(v), 6) for v in vals)


def build(data: Path) -> dict:
    sources_md = data / "SOURCES.md"
    durations_json = data / "anytalker_benchmark" / "speaker_duration.json"
    for p in (sources_md, durations_json):
        if not p.is_file():
            raise SystemExit(f"{p}: missing; pass --data pointing at the shared data folder")
    tracks = parse_sources(sources_md.read_text(encoding="utf-8"))
    intervals = json.loads(durations_json.read_text(encoding="utf-8"))
    items = []
    max_frac = 0.0
    for n in range(1, N_ITEMS + 1):
        item_id = f"interact_{n}"
        spans = intervals.get(f"{item_id}.mp4")
        if spans is None:
            raise SystemExit(f"{durations_json}: no entry for {item_id}.mp4")
        max_frac = max(max_frac, _max_fraction(spans))
        persons = []
        durations = set()
        for index, side in enumerate(SIDES):
            t = tracks.get((n, side))
            if t is None:
                raise SystemExit(f"{sources_md}: no table row for {item_id} {side}")
            raw = [[float(a), float(b)] for a, b in spans[side]]
            durations.add(float(t["dur"]))
            persons.append({
                "index": index,
                "side": side,
                # stored exactly as in speaker_duration.json, incl. the [[0.0, 0.0]] "silent" entries
                "speaking_intervals": raw,
                "speaks": any(b > a for a, b in raw),
                "audio": {
                    "path": f"audio_{side}/{item_id}_{side}.flac",
                    "sha256": t["flac_sha"],
                    "size": int(t["flac_size"]),
                    "sample_rate": int(t["sr"]),
                    "channels": int(t["ch"]),
                    "duration_s": float(t["dur"]),
                    "original": {
                        "path": f"audio_{side}/{item_id}_{side}.wav",
                        "upstream_path": t["orig_path"],
                        "sha256": t["orig_sha"],
                        "size": int(t["orig_size"]),
                        "git_blob": t["blob"],
                    },
                },
            })
        audio_duration = max(durations)
        items.append({
            "item_id": item_id,
            "video_file": PROTOCOL["video_file_pattern"].format(item_id=item_id),
            "num_persons": len(persons),
            "audio_duration_s": audio_duration,
            "min_duration_s": round(audio_duration - PROTOCOL["min_duration_slack_s"], 3),
            "max_duration_s": round(audio_duration + PROTOCOL["max_extra_duration_s"], 3),
            "persons": persons,
        })
    return {
        "format": "anytalker-benchmark-manifest/1",
        "benchmark": "interactive_eyes",
        "version": "v1",
        "description": "InteractiveEyes (AnyTalker, arXiv 2511.23475): 29 two-person clips; each item gives one "
                       "audio track per person (left, right) and who speaks when. A submission is one generated "
                       "video per item, both people in frame, left person driven by the left track.",
        "source": {
            "repository": UPSTREAM_REPO,
            "commit": UPSTREAM_COMMIT,
            "license": "Apache-2.0",
            "intervals_file": "benchmark/speaker_duration.json",
            "intervals_sha256": hashlib.sha256(durations_json.read_bytes()).hexdigest(),
            "audio_note": "Each track is listed twice: the 16 kHz mono FLAC copy (`audio.path`, `audio.sha256`) and "
                          "the upstream 48 kHz stereo WAV (`audio.original`); a file verifies if it matches either.",
        },
        "intervals": {
            "stored_as": "speaker_duration.json values, unchanged; per person left -> right",
            "default_format": "seconds",
            "formats": ["seconds", "timecode30"],
            "note": "Read as seconds by default. Every value's fractional part is below 0.30 (max "
                    f"{max_frac:.2f}), which also fits an 's.ff' timecode at 30 fps; metrics accept "
                    "interval_format='timecode30' for that reading. [[0.0, 0.0]] means the person never speaks.",
            "max_fractional_part": max_frac,
        },
        "protocol": PROTOCOL,
        "items": items,
    }


def render(manifest: dict) -> str:
    return json.dumps(manifest, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None,
                    help="shared data folder (holds SOURCES.md; default: the kernel.data resolver)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed file differs from a rebuild")
    args = ap.parse_args(argv)
    text = render(build(args.data or default_data_root(need=("SOURCES.md",))))
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'differs from a rebuild'}")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
