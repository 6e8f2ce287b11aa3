"""A self-contained HTML page that shows what a curation run kept, what it rejected and why.

    anytalker curate report RUN --html report.html

Everything is inline (CSS, a few lines of JS, SVG charts, thumbnails as base64 JPEG), so the
page opens from disk, from a CI artifact or an e-mail attachment without network access.
Thumbnails are decoded with ``curation.media.VideoReader`` from the run's sources (paths are
relative to ``run.json``'s ``data_root``); a source that cannot be decoded any more gets a
placeholder naming the error instead of a picture. See docs/report.md.
"""

from __future__ import annotations

import base64
import bisect
import collections
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from kernel import __version__
from kernel.errors import UserError
from curation.base import Reason
from curation.media import MediaError, VideoReader
from pipelines import shards
from pipelines.storage import Storage, is_uri

# limits that keep the page small enough to open in a browser (~10 kB per thumbnail)
DEFAULT_MAX_CLIPS = 200
DEFAULT_THUMBS_PER_CLIP = 4
DEFAULT_SAMPLES_PER_REASON = 2
DEFAULT_THUMB_WIDTH = 240
JPEG_QUALITY = 78
ERROR_SNIPPET_CHARS = 400

# one colour per person index (RGB); the SVG timeline uses the same colours as the boxes
PERSON_COLOURS = [(255, 140, 0), (30, 144, 255), (50, 205, 50), (186, 85, 211), (220, 20, 60),
                  (0, 206, 209), (255, 215, 0), (139, 69, 19)]
# inputs whose probe found no decodable video: do not hand them to the decoder again
_NO_PICTURE_REASONS = {Reason.NOT_FOUND.value, Reason.UNREADABLE.value, Reason.NOT_A_FILE.value,
                       Reason.EMPTY_FILE.value, Reason.DECODE_ERROR.value, Reason.NO_VIDEO.value}


def person_label(index: int) -> str:
    """Label drawn next to a face box: ``P0 (left)`` for the leftmost person, then ``P1``..."""
    return f"P{index} (left)" if index == 0 else f"P{index}"


def _colour(index: int) -> tuple[int, int, int]:
    return PERSON_COLOURS[index % len(PERSON_COLOURS)]


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % rgb


def _shown_path(path: Any) -> str:
    """A source path as text, control characters made visible (a newline in a file name
    would otherwise render as a space)."""
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in str(path))


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


# --------------------------------------------------------------------------- thumbnails


@dataclass
class Thumb:
    """A decoded, annotated thumbnail (base64 JPEG) or the reason there is none."""

    frame: int | None
    data_uri: str | None = None
    error: str | None = None


class _SourceCache:
    """Opens each source once (rows arrive sorted by source), remembering failures.

    Sources on a remote data root (``s3://...``) are downloaded to a temporary file first.
    """

    def __init__(self, data_root: str):
        self.data_root = data_root
        self.remote = Storage(data_root) if is_uri(data_root) else None
        self._tmp = tempfile.TemporaryDirectory(prefix="anytalker-report-") if self.remote else None
        self._path: tuple | None = None
        self._reader: VideoReader | None = None
        self._error: str | None = None

    def _local(self, source_path: str) -> Path:
        if self.remote is None or Path(source_path).is_absolute():
            return Path(self.data_root) / source_path  # an absolute source_path stays absolute
        dest = Path(self._tmp.name) / "source"
        try:
            return self.remote.download(source_path, dest)
        except (OSError, FileNotFoundError):
            return Path(self.remote.path(source_path))

    def reader(self, source_path: str, size: tuple[int, int] | None = None) -> tuple[VideoReader | None, str | None]:
        """A reader of ``source_path`` that decodes at ``size`` (w, h) when given: an 8K source
        then costs thumbnail-sized memory, not 100 MB per frame."""
        if (source_path, size) != self._path:
            self._path, self._reader, self._error = (source_path, size), None, None
            path = self._local(source_path)
            if not path.is_file():
                self._error = f"source not found: {path}"
            else:
                try:
                    w, h = size or (-1, -1)
                    self._reader = VideoReader(path, width=w, height=h)
                except MediaError as e:
                    self._error = str(e)
        return self._reader, self._error

    def close(self) -> None:
        self._reader = None
        if self._tmp is not None:
            self._tmp.cleanup()


def _nearest_box(person: dict, frame: int, max_gap: int) -> list[float] | None:
    frames = person.get("frames") or []
    boxes = person.get("boxes") or []
    if not frames or len(frames) != len(boxes):
        return None
    i = bisect.bisect_left(frames, frame)
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(frames) and (best is None or abs(frames[j] - frame) < abs(frames[best] - frame)):
            best = j
    if best is None or abs(frames[best] - frame) > max_gap:
        return None
    box = boxes[best]
    return list(box) if box is not None and len(box) == 4 else None


def _annotate(rgb: np.ndarray, persons: list[dict], frame: int, fps: float | None, thumb_width: int,
              source_width: int) -> np.ndarray:
    """Resize a frame to ``thumb_width`` and draw each person's box (source pixel coordinates,
    ``source_width`` wide) and label on it."""
    import cv2

    h, w = rgb.shape[:2]
    if w != thumb_width:
        rgb = cv2.resize(rgb, (thumb_width, max(1, int(round(h * thumb_width / w)))), interpolation=cv2.INTER_AREA)
    out = np.ascontiguousarray(rgb)
    scale = thumb_width / float(source_width)
    max_gap = max(1, int(round((fps or 25.0) * 0.2)))  # faces are analysed at 25 fps, not every frame
    for p in persons or []:
        idx = int(p.get("index") or 0)
        box = _nearest_box(p, frame, max_gap)
        if box is None:
            continue
        x1, y1, x2, y2 = (int(round(c * scale)) for c in box)
        colour = _colour(idx)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        label = person_label(idx)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        ty = max(th + base, y1)
        cv2.rectangle(out, (x1, ty - th - base - 1), (x1 + tw + 4, ty), colour, -1)
        cv2.putText(out, label, (x1 + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _jpeg_data_uri(rgb: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise MediaError("JPEG encoding of a thumbnail failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def safe_thumbs(row: dict, cache: _SourceCache, n: int, thumb_width: int) -> list[Thumb]:
    """``make_thumbs`` that never raises: one odd source must not stop the whole report."""
    try:
        return make_thumbs(row, cache, n, thumb_width)
    except Exception as e:  # noqa: BLE001 - shown on the page instead of a picture
        return [Thumb(frame=None, error=f"thumbnail failed: {type(e).__name__}: {e}")]


def thumbnail_frames(start: int, end: int, n: int) -> list[int]:
    """``n`` distinct frame indices spread over [start, end) (end exclusive), first and last included."""
    if end <= start:
        return [start]
    n = max(1, min(n, end - start))
    if n == 1:
        return [start + (end - start) // 2]
    return sorted({int(round(x)) for x in np.linspace(start, end - 1, n)})


def make_thumbs(row: dict, cache: _SourceCache, n: int, thumb_width: int) -> list[Thumb]:
    """Annotated thumbnails of a row's span (or the middle of the video when it has none)."""
    reason = row.get("reason")
    if row.get("status") != "ok" and (reason in _NO_PICTURE_REASONS or not row.get("width")):
        why = (row.get("error_detail") or reason or "no video").strip().splitlines()[0]
        return [Thumb(frame=None, error=f"no picture ({reason}): {why}")]
    src_w, src_h = int(row.get("width") or 0), int(row.get("height") or 0)
    size = None
    if src_w > thumb_width and src_h > 0:
        size = (thumb_width, max(2, int(round(src_h * thumb_width / src_w / 2)) * 2))
    reader, err = cache.reader(row["source_path"], size)
    if reader is None:
        return [Thumb(frame=None, error=err)]
    total = len(reader)
    start = row.get("start_frame")
    end = row.get("end_frame")
    if start is None or end is None:
        start, end = 0, total
    start, end = max(0, int(start)), min(total, int(end))
    if end <= start:
        return [Thumb(frame=None, error=f"span [{row.get('start_frame')}, {row.get('end_frame')}) is outside "
                                       f"the video's {total} decodable frames")]
    frames = thumbnail_frames(start, end, n)
    try:
        batch = reader.get(frames)
    except MediaError as e:
        return [Thumb(frame=f, error=str(e)) for f in frames]
    fps = row.get("fps") or reader.fps
    out = []
    for f, img in zip(frames, batch):
        annotated = _annotate(img, row.get("persons") or [], f, fps, thumb_width, src_w or img.shape[1])
        out.append(Thumb(frame=f, data_uri=_jpeg_data_uri(annotated)))
    return out


# --------------------------------------------------------------------------- chart geometry
# The HTML is pipelines/templates/report.html.j2 and report_macros.html.j2 (jinja2, autoescaped);
# these functions compute the numbers the templates draw.


def bar_chart(items: list[tuple], css_id: str, item_class: str, unit: str = "", width: int = 640,
              bar_h: int = 20, label_w: int = 170) -> dict:
    """Horizontal bars from ``(label, value, colour)`` or ``(label, value, colour, ci_low, ci_high)``
    (the interval is drawn as whiskers)."""
    vmax = max([float(it[1]) for it in items] + [float(it[4]) for it in items if len(it) > 4 and it[4] is not None]
               or [1.0]) or 1.0
    plot_w = width - label_w - 80
    bars = []
    for i, it in enumerate(items):
        label, value, colour = it[0], it[1], it[2]
        lo, hi = (it[3], it[4]) if len(it) > 4 else (None, None)
        y = 4 + i * bar_h
        bw = max(1.0, plot_w * value / vmax) if value > 0 else 0.0
        shown = f"{value:.2f}{unit}" if isinstance(value, float) and unit else f"{value:g}{unit}"
        right = label_w + bw if lo is None else label_w + plot_w * max(value, hi) / vmax
        bars.append({
            "label": str(label), "value_attr": f"{value:g}", "shown": shown, "colour": colour, "y": y,
            "text_y": f"{y + bar_h * 0.68:.1f}", "mid_y": f"{y + bar_h / 2:.1f}", "w": f"{bw:.1f}",
            "value_x": f"{right + 5:.1f}",
            "lo_x": None if lo is None else f"{label_w + plot_w * lo / vmax:.1f}",
            "hi_x": None if hi is None else f"{label_w + plot_w * hi / vmax:.1f}",
        })
    return {"css_id": css_id, "item_class": item_class, "width": width, "height": bar_h * len(items) + 8,
            "label_w": label_w, "bar_h": bar_h, "bars": bars}


def timeline(persons: list[dict], duration_s: float, marks_s: Iterable[float] = (), width: int = 640) -> dict:
    """One lane per person with a bar per speaking interval (clip-relative seconds)."""
    label_w, lane_h, axis_h = 90, 18, 18
    plot_w = width - label_w - 10
    dur = max(duration_s, 1e-6)

    def x(t: float) -> float:
        return label_w + plot_w * min(max(t, 0.0), dur) / dur

    lanes = []
    for lane, p in enumerate(persons):
        idx = int(p.get("index") or 0)
        y = 2 + lane * lane_h
        spans = []
        for iv in p.get("speaking_intervals") or []:
            if not iv or len(iv) < 2 or iv[0] is None or iv[1] is None:
                continue
            a, b = float(iv[0]), float(iv[1])
            spans.append({"start_attr": f"{a:.3f}", "end_attr": f"{b:.3f}", "x": f"{x(a):.1f}",
                          "w": f"{max(1.0, x(b) - x(a)):.1f}", "text": f"{a:.2f}-{b:.2f}"})
        lanes.append({"index": idx, "label": person_label(idx), "y": y, "text_y": f"{y + lane_h * 0.7:.1f}",
                      "colour": _hex(_colour(idx)), "spans": spans})
    ay = 2 + lane_h * max(1, len(persons))
    ticks, step, t = [], _nice_step(dur), 0.0
    while t <= dur + 1e-9:
        ticks.append({"x": f"{x(t):.1f}", "label": f"{t:g}s"})
        t += step
    return {"width": width, "height": lane_h * max(1, len(persons)) + axis_h + 4, "duration_attr": f"{duration_s:.3f}",
            "label_w": label_w, "plot_w": plot_w, "lane_h": lane_h, "lanes": lanes, "axis_y": ay, "ticks": ticks,
            "marks": [f"{x(mk):.1f}" for mk in marks_s]}


def _nice_step(duration: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if duration / step <= 10:
            return float(step)
    return max(1.0, duration / 10)


# --------------------------------------------------------------------------- sections


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("pipelines", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "j2"]))


def _reason_chart(manifest: dict, rejects: list[dict]) -> dict:
    reasons = manifest.get("reasons", {}) or {}
    stages: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in rejects:
        stages[r.get("reason")][r.get("failed_stage") or "?"] += 1
    items = []
    for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        transient = reason in (Reason.TIMEOUT.value, Reason.OUT_OF_MEMORY.value)
        stage = stages[reason].most_common(1)[0][0] if stages.get(reason) else "?"
        items.append((f"{reason} ({stage})", float(n), "#b91c1c" if transient else "#d97706"))
    return bar_chart(items, "reason-chart", "reason-bar")


def _row_stage_seconds(rows: list[dict]) -> dict[str, list[float]]:
    """Per-stage seconds of each source (rows of one source summed): the spread behind the means."""
    per_source: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    for r in rows:
        timings = r.get("stage_seconds") or r.get("stage_timings") or {}
        if isinstance(timings, str):
            try:
                timings = json.loads(timings)
            except ValueError:
                continue
        if isinstance(timings, list):  # map column read back as (key, value) pairs
            timings = dict(timings)
        for k, v in (timings or {}).items():
            if v is not None:
                per_source[str(r.get("source_path"))][k] += float(v)
    out: dict[str, list[float]] = collections.defaultdict(list)
    for by_stage in per_source.values():
        for k, v in by_stage.items():
            out[k].append(v)
    return out


def _timings(manifest: dict, run_info: dict, n_sources: int, rows: list[dict]) -> tuple[dict, list[dict], str]:
    seconds = manifest.get("stage_seconds", {}) or {}
    order = [s.get("name") for s in (run_info.get("config") or {}).get("stages", [])]
    names = [n for n in order if n in seconds] + sorted(n for n in seconds if n not in order)
    total = sum(seconds.values()) or 1.0
    spread = _row_stage_seconds(rows)
    items, method = [], ""
    for n in names:
        vals = spread.get(n) or []
        lo = hi = None
        if len(vals) >= 2:
            from scipy.stats import bootstrap

            v = np.asarray(vals, dtype=float)
            if np.ptp(v) > 0:
                ci = bootstrap((v,), np.mean, n_resamples=1000, method="percentile",
                               rng=np.random.default_rng(0)).confidence_interval
                lo, hi = float(ci.low) * len(v), float(ci.high) * len(v)  # as totals, like the bar
                method = ("95 % percentile bootstrap interval of each total when the inputs are resampled "
                          "(scipy.stats.bootstrap)")
        items.append((n, float(seconds[n]), "#2563eb", lo, hi) if lo is not None else (n, float(seconds[n]), "#2563eb"))
    stages = [{"name": n, "seconds": f"{seconds[n]:.2f}", "share": f"{100 * seconds[n] / total:.1f}%",
               "per_input": f"{seconds[n] / max(1, n_sources):.3f}"} for n in names]
    return bar_chart(items, "stage-chart", "stage-bar", unit=" s"), stages, method


def _figure(t: Thumb, fps: float | None, start_frame: int | None) -> dict:
    cap = f"frame {t.frame}"
    if fps and start_frame is not None and t.frame is not None:
        cap += f" · {(t.frame - start_frame) / fps:.2f} s"
    return {"data_uri": t.data_uri, "frame": t.frame, "caption": cap, "error": t.error}


def _persons(row: dict) -> dict:
    persons = row.get("persons") or []
    rows = []
    for p in sorted(persons, key=lambda q: int(q.get("index") or 0)):
        idx = int(p.get("index") or 0)
        rows.append({"index": idx, "colour": _hex(_colour(idx)), "label": person_label(idx),
                     "sync_conf": _fmt(p.get("sync_conf")), "sync_offset": _fmt(p.get("sync_offset")),
                     "speaking_s": _fmt(p.get("speaking_s")), "face_size": _fmt(p.get("face_size"), 0),
                     "audio_ref": p.get("audio_ref") or "–"})
    matrix = None
    m = row.get("sync_matrix")
    if persons and m:
        matrix = {"head": [person_label(j) for j in range(max(len(r) for r in m))],
                  "rows": [[_fmt(v) for v in r] for r in m]}
    return {"rows": rows, "matrix": matrix}


def _clip_card(row: dict, thumbs: list[Thumb]) -> dict:
    fps = row.get("fps")
    start, end = row.get("start_frame"), row.get("end_frame")
    facts = [f"frames [{start}, {end})", f"{_fmt(row.get('start_s'))}–{_fmt(row.get('end_s'))} s", f"{_fmt(fps)} fps",
             f"{row.get('width')}x{row.get('height')}", f"shake {_fmt(row.get('shake_score'), 4)}"]
    if row.get("num_persons") is not None:
        facts.append(f"{row.get('num_persons')} person(s)")
    backends = [f"{k.replace('_backend', '')}: {row[k]}" for k in ("sync_backend", "vad_backend", "diarization_backend")
                if row.get(k)]
    persons = row.get("persons") or []
    tl = None
    if persons:
        marks = [(t.frame - int(start)) / float(fps) for t in thumbs if t.frame is not None and fps and start is not None]
        tl = timeline(sorted(persons, key=lambda q: int(q.get("index") or 0)), _clip_duration(row), marks)
    return {"clip_id": row.get("clip_id"), "source": row.get("source_path"), "n_persons": len(persons),
            "shown_path": _shown_path(row.get("source_path")),
            "facts": " · ".join(facts) + (" · " + ", ".join(backends) if backends else ""),
            "figures": [_figure(t, fps, start) for t in thumbs], "sync_backend": row.get("sync_backend"),
            "persons": _persons(row), "timeline": tl}


def _clip_duration(row: dict) -> float:
    fps = row.get("fps")
    start, end = row.get("start_frame"), row.get("end_frame")
    if row.get("start_s") is not None and row.get("end_s") is not None:
        return float(row["end_s"]) - float(row["start_s"])
    if fps and start is not None and end is not None:
        return (int(end) - int(start)) / float(fps)
    return float(row.get("duration_s") or 0.0)


def _reject_card(row: dict, thumbs: list[Thumb]) -> dict:
    persons = sorted(row.get("persons") or [], key=lambda q: int(q.get("index") or 0))
    return {
        "reason": row.get("reason"), "source": row.get("source_path"), "n_persons": len(persons),
        "figures": [_figure(t, row.get("fps"), row.get("start_frame")) for t in thumbs],
        "shown_path": _shown_path(row.get("source_path")), "status": row.get("status"),
        "failed_stage": row.get("failed_stage") or "?",
        "span": "" if row.get("start_frame") is None else f" · frames [{row['start_frame']}, {row.get('end_frame')})",
        "detail": (row.get("error_detail") or "").strip()[:ERROR_SNIPPET_CHARS],
        # rejected by a person stage: show what it measured, so the reason can be judged
        "sync_backend": row.get("sync_backend"), "persons": _persons(row),
        "timeline": timeline(persons, _clip_duration(row), width=480) if persons else None,
    }


# --------------------------------------------------------------------------- entry point


def _load_run(run_dir: str | os.PathLike) -> tuple[dict, dict]:
    store = shards.storage(run_dir)
    if not store.is_file("run.json"):
        raise UserError(f"{store.path('run.json')} does not exist: {run_dir} is not a curation run folder; pass "
                        "the --output folder of `anytalker curate run`")
    try:
        manifest = shards.read_manifest(store)
    except shards.ManifestError as e:
        raise UserError(str(e)) from e
    return store.read_json("run.json"), manifest


def _reject_blocks(rejects: list[dict], cache: _SourceCache, samples_per_reason: int, thumb_width: int,
                   thumbs_per_clip: int) -> list[dict]:
    by_reason: dict[str, list[dict]] = collections.defaultdict(list)
    for r in sorted(rejects, key=_row_key):
        by_reason[str(r.get("reason"))].append(r)
    blocks = []
    for reason, rows in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        # prefer examples from different sources
        picked, seen = [], set()
        for r in rows:
            if r.get("source_path") not in seen:
                picked.append(r)
                seen.add(r.get("source_path"))
            if len(picked) >= samples_per_reason:
                break
        # a reject with persons gets a contact sheet like an accepted clip: its boxes are evidence
        cards = [_reject_card(r, safe_thumbs(r, cache, thumbs_per_clip if r.get("persons") else 1, thumb_width))
                 for r in picked]
        more = f" (showing {len(picked)})" if len(rows) > len(picked) else ""
        blocks.append({"reason": reason, "count": len(rows), "more": more, "cards": cards})
    return blocks


def _row_key(r: dict) -> tuple:
    return (str(r.get("source_path")), r.get("start_frame") or 0, str(r.get("clip_id")))


def write_report(run_dir: str | os.PathLike, html_path: str | os.PathLike, max_clips: int = DEFAULT_MAX_CLIPS,
                 thumbs_per_clip: int = DEFAULT_THUMBS_PER_CLIP,
                 samples_per_reason: int = DEFAULT_SAMPLES_PER_REASON,
                 thumb_width: int = DEFAULT_THUMB_WIDTH) -> Path:
    """Write the run's HTML report to ``html_path`` and return its path."""
    html_path = Path(html_path)
    run_name = Path(str(run_dir).rstrip("/")).name
    t0 = time.perf_counter()
    run_info, manifest = _load_run(run_dir)
    try:
        clips = shards.read_rows(run_dir, "clips")
        rejects = shards.read_rows(run_dir, "rejects")
    except shards.ManifestError as e:
        raise UserError(str(e)) from e
    data_root = str(run_info.get("data_root") or manifest.get("data_root") or ".")
    n_sources = len(run_info.get("sources") or [])
    cache = _SourceCache(data_root)

    clips.sort(key=_row_key)
    shown = clips[: max(0, int(max_clips))]
    try:
        cards = [_clip_card(r, safe_thumbs(r, cache, thumbs_per_clip, thumb_width)) for r in shown]
        reject_blocks = _reject_blocks(rejects, cache, samples_per_reason, thumb_width, thumbs_per_clip)
    finally:
        cache.close()
    truncated = None
    if len(clips) > len(shown):
        truncated = {"shown": len(shown), "total": len(clips), "where": str(run_dir).rstrip("/") + "/clips"}
    stage_chart, stage_rows, timing_ci = _timings(manifest, run_info, n_sources, clips + rejects)
    t = manifest.get("totals", {})
    page = _environment().get_template("report.html.j2").render(
        title=f"Curation report: {run_info.get('config_name')} ({run_name})",
        run={"run_id": run_info.get("run_id"), "toolkit_version": run_info.get("toolkit_version"),
             "config_sha12": str(run_info.get("config_sha256"))[:12],
             "stage_list": ", ".join(str(s.get("name")) for s in (run_info.get("config") or {}).get("stages", [])),
             "executor": run_info.get("executor"), "data_root": data_root, "finished_at": manifest.get("finished_at")},
        totals={"sources": n_sources, **{k: int(t.get(k, 0)) for k in ("ok", "filtered", "failed")}},
        reason_chart=_reason_chart(manifest, rejects), stage_chart=stage_chart, stages=stage_rows,
        timing_ci=timing_ci, n_clips=len(clips), thumbs_per_clip=thumbs_per_clip, truncated=truncated, clips=cards,
        n_rejects=len(rejects), reject_blocks=reject_blocks, version=__version__,
        elapsed=f"{time.perf_counter() - t0:.1f}", written_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    try:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = html_path.with_name(f".{html_path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(page.encode("utf-8"))
        os.replace(tmp, html_path)
    except OSError as e:
        raise UserError(f"{html_path}: cannot write the report ({e.strerror}); choose a writable --html path") from e
    return html_path
