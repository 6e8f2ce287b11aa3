"""Reader for the AnyTalker benchmark's ``speaker_duration.json`` (speaking intervals per person).

Format: ``{"video.mp4": {"left": [[s, e], ...], "right": [[s, e], ...]}}``; persons are ordered
left to right; ``[[0.0, 0.0]]`` means the person never speaks (it yields no interval here).

The values look like 30 fps ``SS.FF`` timecodes (fractional parts never exceed .29), not decimal
seconds. The released scorer reads them as seconds, so ``fmt="seconds"`` is the default for
parity; ``fmt="timecode30"`` reads 4.16 as 4 + 16/30 s. Callers record which reading was used.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from kernel.errors import UserError

INTERVAL_FORMATS = ("seconds", "timecode30")

# left-to-right order of the named positions; numeric keys ("0", "1", ...) sort by value
_POSITION_ORDER = {"left": 0, "middle": 1, "center": 1, "centre": 1, "right": 2}


def convert_value(x: float, fmt: str) -> float:
    """One interval endpoint in seconds under the given reading."""
    if fmt == "seconds":
        return float(x)
    if fmt == "timecode30":
        whole = math.floor(float(x) + 1e-9)
        frames = round((float(x) - whole) * 100)
        if frames >= 30:
            raise ValueError(f"{x} is not a 30 fps SS.FF timecode (frame part {frames} >= 30)")
        return whole + frames / 30.0
    raise ValueError(f"unknown interval format {fmt!r}; use one of {INTERVAL_FORMATS}")


def _person_sort_key(key: str):
    k = key.strip().lower()
    if k in _POSITION_ORDER:
        return (0, _POSITION_ORDER[k], k)
    m = re.fullmatch(r"(?:person|p|speaker|spk)?_?(\d+)", k)
    if m:
        return (1, int(m.group(1)), k)
    return (2, 0, k)


def parse_person_intervals(raw, fmt: str = "seconds") -> list[tuple[float, float]]:
    """``[[s, e], ...]`` -> sorted non-empty ``(start_s, end_s)`` tuples; ``[[0, 0]]`` -> []."""
    out = []
    for pair in raw or []:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"interval {pair!r} is not a [start, end] pair")
        s, e = convert_value(pair[0], fmt), convert_value(pair[1], fmt)
        if e < s:
            raise ValueError(f"interval {pair!r} ends before it starts")
        if e - s > 0:
            out.append((s, e))
    return sorted(out)


def load_speaker_durations(path, fmt: str = "seconds") -> dict[str, list[list[tuple[float, float]]]]:
    """Read a speaker_duration.json: ``{video_name: [person0_intervals, person1_intervals, ...]}``
    with persons left -> right and intervals in seconds under reading ``fmt``."""
    path = Path(path)
    if fmt not in INTERVAL_FORMATS:
        raise UserError(f"{path}: unknown interval format {fmt!r}; use one of {', '.join(INTERVAL_FORMATS)}")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; pass the benchmark's speaker_duration.json") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e}); fix the file or pass another --intervals") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected an object {{video_name: {{left: [[s, e]], right: ...}}}}")
    out: dict[str, list[list[tuple[float, float]]]] = {}
    for video, persons in data.items():
        try:
            if isinstance(persons, dict):
                keys = sorted(persons, key=_person_sort_key)
                out[video] = [parse_person_intervals(persons[k], fmt) for k in keys]
            elif isinstance(persons, list):  # already ordered left -> right
                out[video] = [parse_person_intervals(p, fmt) for p in persons]
            else:
                raise ValueError("expected {left: [...], right: [...]}")
        except ValueError as e:
            raise UserError(f"{path}: entry {video!r}: {e}; fix the entry (format "
                            f"{{\"left\": [[s, e]], \"right\": [[s, e]]}})") from None
    return out


def lookup_intervals(table: dict, video_path) -> list[list[tuple[float, float]]] | None:
    """Intervals for a video by file name (with or without extension)."""
    name = Path(video_path).name
    if name in table:
        return table[name]
    stem = Path(video_path).stem
    for k, v in table.items():
        if Path(k).stem == stem:
            return v
    return None


def intervals_to_mask(intervals, times_s) -> "np.ndarray":
    """(T,) bool: which sample times fall inside any [start, end] interval (ends inclusive, as
    in the released interactivity scorer; ``curation.intervals.mask``)."""
    from curation.intervals import mask

    return mask(intervals or [], times_s, closed=True)
