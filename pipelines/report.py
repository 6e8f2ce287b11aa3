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
import html
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


def _esc(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


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


# --------------------------------------------------------------------------- SVG charts


def svg_bar_chart(items: list[tuple[str, float, str]], css_id: str, item_class: str, unit: str = "",
                  width: int = 640, bar_h: int = 20, label_w: int = 170) -> str:
    """Horizontal bars ``(label, value, colour)``; each bar group carries ``data-label``/``data-value``."""
    if not items:
        return f'<p class="empty" id="{css_id}">nothing to show</p>'
    vmax = max(v for _, v, _ in items) or 1.0
    plot_w = width - label_w - 80
    h = bar_h * len(items) + 8
    parts = [f'<svg id="{css_id}" class="bar-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{h}" viewBox="0 0 {width} {h}" role="img">']
    for i, (label, value, colour) in enumerate(items):
        y = 4 + i * bar_h
        bw = max(1.0, plot_w * value / vmax) if value > 0 else 0.0
        shown = f"{value:.2f}{unit}" if isinstance(value, float) and unit else f"{value:g}{unit}"
        parts.append(
            f'<g class="{item_class}" data-label="{_esc(label)}" data-value="{value:g}">'
            f'<title>{_esc(label)}: {_esc(shown)}</title>'
            f'<text x="{label_w - 6}" y="{y + bar_h * 0.68:.1f}" text-anchor="end">{_esc(label)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{bw:.1f}" height="{bar_h - 5}" fill="{colour}"/>'
            f'<text x="{label_w + bw + 5:.1f}" y="{y + bar_h * 0.68:.1f}">{_esc(shown)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_timeline(persons: list[dict], duration_s: float, marks_s: Iterable[float] = (), width: int = 640) -> str:
    """One lane per person with a bar per speaking interval (clip-relative seconds)."""
    label_w, lane_h, axis_h = 90, 18, 18
    plot_w = width - label_w - 10
    dur = max(duration_s, 1e-6)
    h = lane_h * max(1, len(persons)) + axis_h + 4

    def x(t: float) -> float:
        return label_w + plot_w * min(max(t, 0.0), dur) / dur

    parts = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
             f'viewBox="0 0 {width} {h}" data-duration="{duration_s:.3f}" role="img">']
    for lane, p in enumerate(persons):
        idx = int(p.get("index") or 0)
        y = 2 + lane * lane_h
        parts.append(f'<g class="lane" data-person="{idx}">'
                     f'<text x="{label_w - 6}" y="{y + lane_h * 0.7:.1f}" text-anchor="end">{_esc(person_label(idx))}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{plot_w}" height="{lane_h - 6}" fill="#eee"/>')
        for iv in p.get("speaking_intervals") or []:
            if not iv or len(iv) < 2 or iv[0] is None or iv[1] is None:
                continue
            a, b = float(iv[0]), float(iv[1])
            parts.append(f'<rect class="speaking" data-start="{a:.3f}" data-end="{b:.3f}" x="{x(a):.1f}" '
                         f'y="{y + 3}" width="{max(1.0, x(b) - x(a)):.1f}" height="{lane_h - 6}" '
                         f'fill="{_hex(_colour(idx))}"><title>{_esc(person_label(idx))} speaks '
                         f'{a:.2f}-{b:.2f} s</title></rect>')
        parts.append("</g>")
    ay = 2 + lane_h * max(1, len(persons))
    parts.append(f'<line x1="{label_w}" y1="{ay}" x2="{label_w + plot_w}" y2="{ay}" stroke="#888"/>')
    step = _nice_step(dur)
    t = 0.0
    while t <= dur + 1e-9:
        parts.append(f'<line x1="{x(t):.1f}" y1="{ay}" x2="{x(t):.1f}" y2="{ay + 4}" stroke="#888"/>'
                     f'<text class="tick" x="{x(t):.1f}" y="{ay + 15}" text-anchor="middle">{t:g}s</text>')
        t += step
    for m in marks_s:  # where the thumbnails were taken
        parts.append(f'<line class="thumb-mark" x1="{x(m):.1f}" y1="0" x2="{x(m):.1f}" y2="{ay}" '
                     f'stroke="#444" stroke-dasharray="2,2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(duration: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if duration / step <= 10:
            return float(step)
    return max(1.0, duration / 10)


# --------------------------------------------------------------------------- sections

CSS = """
figure{margin:0}body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#1f2937;color:#fff;padding:14px 24px}header h1{margin:0 0 4px;font-size:22px}
header .meta{color:#cbd5e1;font-size:12px}main{padding:12px 24px}
section{background:#fff;border:1px solid #e2e5ea;border-radius:6px;padding:12px 16px;margin:0 0 14px}
h2{font-size:17px;margin:0 0 10px}.totals{display:flex;gap:12px;flex-wrap:wrap}
.total{border-radius:6px;padding:8px 16px;min-width:110px;color:#fff}
.total b{display:block;font-size:26px}.total.ok{background:#15803d}.total.filtered{background:#b45309}
.total.failed{background:#b91c1c}.total.sources{background:#334155}
svg text{font-size:12px;fill:#222}table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}
.clip{border-top:1px solid #e2e5ea;padding:10px 0}.clip h3{font-size:14px;margin:0 0 4px;word-break:break-all}
.clip .facts{font-size:12px;color:#555;margin-bottom:6px}.sheet{display:flex;gap:4px;flex-wrap:wrap}
.sheet figure{margin:0}.sheet figcaption{font-size:11px;color:#666;text-align:center}
.placeholder{width:236px;min-height:100px;border:2px dashed #b91c1c;color:#7f1d1d;background:#fef2f2;
font-size:11px;padding:4px;overflow:hidden;word-break:break-all}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
.rejects{display:flex;gap:12px;flex-wrap:wrap}.reject{width:250px;font-size:12px}.reject.wide{width:100%}.reject pre{white-space:pre-wrap;
word-break:break-all;font-size:10px;background:#f3f4f6;padding:4px;max-height:90px;overflow:auto}
.row{display:flex;gap:14px;flex-wrap:wrap;align-items:flex-start}.row section{flex:1 1 500px;min-width:0}svg.bar-chart{max-width:100%;height:auto}
.note{background:#fffbeb;border-left:4px solid #f59e0b;padding:6px 10px}#filter{padding:4px;width:300px}
"""

JS = """
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('.clip').forEach(function (c) {
    c.style.display = c.dataset.source.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
  });
});
"""


def _totals_section(manifest: dict, n_sources: int) -> str:
    t = manifest.get("totals", {})
    cards = [f'<div class="total sources" data-status="sources"><b>{n_sources}</b>inputs</div>']
    for k in ("ok", "filtered", "failed"):
        cards.append(f'<div class="total {k}" data-status="{k}"><b>{int(t.get(k, 0))}</b>{k}</div>')
    return f'<section id="totals"><h2>Totals</h2><div class="totals">{"".join(cards)}</div></section>'


def _reasons_section(manifest: dict, rejects: list[dict]) -> str:
    reasons = manifest.get("reasons", {}) or {}
    stages: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in rejects:
        stages[r.get("reason")][r.get("failed_stage") or "?"] += 1
    items = []
    for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        transient = reason in (Reason.TIMEOUT.value, Reason.OUT_OF_MEMORY.value)
        stage = stages[reason].most_common(1)[0][0] if stages.get(reason) else "?"
        items.append((f"{reason} ({stage})", float(n), "#b91c1c" if transient else "#d97706"))
    chart = svg_bar_chart(items, "reason-chart", "reason-bar")
    # the unit-less value of a count reads better as an integer
    return (f'<section id="reasons"><h2>Reject reasons</h2><p>Each rejected row carries one reason code '
            f'(stage that rejected it in brackets); orange = filtered, red = failed (transient, re-run with '
            f'<code>--retry-failed</code>).</p>{chart}</section>')


def _timings_section(manifest: dict, run_info: dict, n_sources: int) -> str:
    seconds = manifest.get("stage_seconds", {}) or {}
    order = [s.get("name") for s in (run_info.get("config") or {}).get("stages", [])]
    names = [n for n in order if n in seconds] + sorted(n for n in seconds if n not in order)
    total = sum(seconds.values()) or 1.0
    chart = svg_bar_chart([(n, float(seconds[n]), "#2563eb") for n in names], "stage-chart", "stage-bar", unit=" s")
    rows = "".join(
        f'<tr class="stage-row" data-stage="{_esc(n)}"><td>{_esc(n)}</td><td>{seconds[n]:.2f}</td>'
        f'<td>{100 * seconds[n] / total:.1f}%</td><td>{seconds[n] / max(1, n_sources):.3f}</td></tr>'
        for n in names)
    return (f'<section id="timings"><h2>Stage timings</h2><p>Wall seconds per stage summed over all rows '
            f'(from manifest.json); worker time, so with parallel executors the sum exceeds the run\'s '
            f'elapsed time.</p>{chart}<table><tr><th>stage</th><th>seconds</th><th>share</th>'
            f'<th>s / input</th></tr>{rows}</table></section>')


def _figure(t: Thumb, fps: float | None, start_frame: int | None) -> str:
    if t.data_uri:
        cap = f"frame {t.frame}"
        if fps and start_frame is not None and t.frame is not None:
            cap += f" · {(t.frame - start_frame) / fps:.2f} s"
        return (f'<figure><img class="thumb" data-frame="{t.frame}" src="{t.data_uri}" alt="frame {t.frame}">'
                f'<figcaption>{_esc(cap)}</figcaption></figure>')
    return f'<figure><div class="placeholder" data-error="{_esc(t.error)}">{_esc(t.error)}</div></figure>'


def _persons_table(row: dict) -> str:
    persons = row.get("persons") or []
    if not persons:
        return ""
    body = []
    for p in sorted(persons, key=lambda q: int(q.get("index") or 0)):
        idx = int(p.get("index") or 0)
        body.append(
            f'<tr class="person" data-person="{idx}"><td><span class="swatch" style="background:'
            f'{_hex(_colour(idx))}"></span>{_esc(person_label(idx))}</td>'
            f'<td class="sync-conf">{_fmt(p.get("sync_conf"))}</td><td>{_fmt(p.get("sync_offset"))}</td>'
            f'<td>{_fmt(p.get("speaking_s"))}</td><td>{_fmt(p.get("face_size"), 0)}</td>'
            f'<td>{_esc(p.get("audio_ref") or "–")}</td></tr>')
    matrix = ""
    m = row.get("sync_matrix")
    if m:
        cells = "".join("<tr><th>audio " + str(i) + "</th>" + "".join(f"<td>{_fmt(v)}</td>" for v in r) + "</tr>"
                        for i, r in enumerate(m))
        head = "".join(f"<th>{_esc(person_label(j))}</th>" for j in range(max(len(r) for r in m)))
        matrix = f'<table class="sync-matrix"><tr><th>sync conf</th>{head}</tr>{cells}</table>'
    return (f'<table class="persons"><tr><th>person</th><th>sync conf</th><th>offset (frames)</th>'
            f'<th>speaking s</th><th>face px</th><th>audio</th></tr>{"".join(body)}</table>{matrix}')


def _clip_card(row: dict, thumbs: list[Thumb]) -> str:
    fps = row.get("fps")
    start, end = row.get("start_frame"), row.get("end_frame")
    start_s, end_s = row.get("start_s"), row.get("end_s")
    duration = _clip_duration(row)
    facts = [f"frames [{start}, {end})", f"{_fmt(start_s)}–{_fmt(end_s)} s", f"{_fmt(fps)} fps",
             f"{row.get('width')}x{row.get('height')}", f"shake {_fmt(row.get('shake_score'), 4)}"]
    if row.get("num_persons") is not None:
        facts.append(f"{row.get('num_persons')} person(s)")
    backends = [f"{k.replace('_backend', '')}: {row[k]}" for k in ("sync_backend", "vad_backend", "diarization_backend")
                if row.get(k)]
    sync = (f'<div class="sync-backend" data-backend="{_esc(row.get("sync_backend"))}">sync backend: '
            f'{_esc(row.get("sync_backend"))}</div>') if row.get("sync_backend") else ""
    persons = row.get("persons") or []
    timeline = ""
    if persons:
        marks = [(t.frame - int(start)) / float(fps) for t in thumbs if t.frame is not None and fps and start is not None]
        timeline = svg_timeline(sorted(persons, key=lambda q: int(q.get("index") or 0)), duration, marks)
    figs = "".join(_figure(t, fps, start) for t in thumbs)
    return (f'<div class="clip" data-clip-id="{_esc(row.get("clip_id"))}" data-source="{_esc(row.get("source_path"))}" '
            f'data-persons="{len(persons)}"><h3>{_esc(_shown_path(row.get("source_path")))}</h3>'
            f'<div class="facts">{_esc(" · ".join(facts))}{" · " + _esc(", ".join(backends)) if backends else ""}'
            f' · clip {_esc(row.get("clip_id"))}</div>'
            f'<div class="sheet">{figs}</div>{sync}{_persons_table(row)}{timeline}</div>')


def _clip_duration(row: dict) -> float:
    fps = row.get("fps")
    start, end = row.get("start_frame"), row.get("end_frame")
    if row.get("start_s") is not None and row.get("end_s") is not None:
        return float(row["end_s"]) - float(row["start_s"])
    if fps and start is not None and end is not None:
        return (int(end) - int(start)) / float(fps)
    return float(row.get("duration_s") or 0.0)


def _reject_card(row: dict, thumbs: list[Thumb]) -> str:
    detail = (row.get("error_detail") or "").strip()[:ERROR_SNIPPET_CHARS]
    span = "" if row.get("start_frame") is None else f" · frames [{row['start_frame']}, {row.get('end_frame')})"
    persons = sorted(row.get("persons") or [], key=lambda q: int(q.get("index") or 0))
    people = ""
    if persons:  # rejected by a person stage: show what it measured, so the reason can be judged
        sync = f'<div class="sync-backend" data-backend="{_esc(row.get("sync_backend"))}">sync backend: ' \
               f'{_esc(row.get("sync_backend"))}</div>' if row.get("sync_backend") else ""
        people = f'<div class="reject-persons">{sync}{_persons_table(row)}' \
                 f'{svg_timeline(persons, _clip_duration(row), width=480)}</div>'
    return (f'<div class="reject{" wide" if persons else ""}" data-reason="{_esc(row.get("reason"))}" '
            f'data-source="{_esc(row.get("source_path"))}" data-persons="{len(persons)}">'
            f'<div class="sheet">{"".join(_figure(t, row.get("fps"), row.get("start_frame")) for t in thumbs)}</div>'
            f'<div><b>{_esc(_shown_path(row.get("source_path")))}</b></div>'
            f'<div>{_esc(row.get("status"))} by <code>{_esc(row.get("failed_stage") or "?")}</code>'
            f'{span}</div>'
            f'{f"<pre>{_esc(detail)}</pre>" if detail else ""}{people}</div>')


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
                   thumbs_per_clip: int) -> list[str]:
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
        cards = "".join(_reject_card(r, safe_thumbs(r, cache, thumbs_per_clip if r.get("persons") else 1, thumb_width))
                        for r in picked)
        more = f" (showing {len(picked)})" if len(rows) > len(picked) else ""
        blocks.append(f'<div class="reason-samples" data-reason="{_esc(reason)}"><h3>{_esc(reason)}: '
                      f'{len(rows)} row(s){more}</h3><div class="rejects">{cards}</div></div>')
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
    truncated = ""
    if len(clips) > len(shown):
        truncated = (f'<p class="note truncated">Showing the first {len(shown)} of {len(clips)} accepted clips '
                     f'(sorted by source); read the rest from {_esc(str(run_dir).rstrip("/") + "/clips")} or raise max_clips.</p>')


    stages = (run_info.get("config") or {}).get("stages", [])
    stage_list = ", ".join(_esc(s.get("name")) for s in stages)
    title = f"Curation report: {run_info.get('config_name')} ({run_name})"
    page = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>",
        f'<header><h1>{_esc(title)}</h1><div class="meta">run {_esc(run_info.get("run_id"))} · toolkit '
        f'{_esc(run_info.get("toolkit_version"))} · config sha256 {_esc(str(run_info.get("config_sha256"))[:12])} · '
        f'stages: {stage_list} · executor {_esc(run_info.get("executor"))} · data root {_esc(data_root)} · '
        f'finished {_esc(manifest.get("finished_at"))}</div></header><main>',
        _totals_section(manifest, n_sources),
        '<div class="row">', _reasons_section(manifest, rejects),
        _timings_section(manifest, run_info, n_sources), "</div>",
        f'<section id="clips"><h2>Accepted clips ({len(clips)})</h2><p>{thumbs_per_clip} frames per clip spread over '
        f'[start_frame, end_frame); face boxes labelled P0 (left), P1, ... as in the <code>persons</code> column; '
        f'the timeline shows each person\'s speaking intervals over the clip (dashed lines: thumbnail times).</p>'
        f'<input id="filter" placeholder="filter by source path">{truncated}{"".join(cards) or "<p>none</p>"}</section>',
        f'<section id="rejects"><h2>Rejects by reason ({len(rejects)})</h2>{"".join(reject_blocks) or "<p>none</p>"}'
        f'</section>',
        f'<footer class="meta" style="padding:0 24px 16px;color:#666;font-size:11px">written by anytalker '
        f'{_esc(__version__)} pipelines.report in {time.perf_counter() - t0:.1f} s at '
        f'{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}</footer>',
        f"</main><script>{JS}</script></body></html>",
    ]
    try:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = html_path.with_name(f".{html_path.name}.tmp-{os.getpid()}")
        tmp.write_bytes("\n".join(page).encode("utf-8"))
        os.replace(tmp, html_path)
    except OSError as e:
        raise UserError(f"{html_path}: cannot write the report ({e.strerror}); choose a writable --html path") from e
    return html_path
