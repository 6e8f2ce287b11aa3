"""Interval algebra on ``pyannote.core`` (``Segment``, ``Timeline``, ``Annotation``).

One place decides how intervals end, so curation and metrics agree:

* algebra (union, gaps, intersections, overlaps between speakers) is pyannote.core's;
* ``mask(intervals, times, closed=...)``: which sample times lie inside. ``closed=True`` counts
  both ends (``Segment.overlaps(t)``: the released interactivity scorer's ``s <= t <= e``);
  ``closed=False`` is ``[start, end)`` (a grid point that starts exactly at a turn's end belongs
  to the next turn, as frame grids and RTTM turns are read).

Rows keep plain ``(start, end[, speaker])`` tuples; these helpers convert at the edges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

if TYPE_CHECKING:
    from pyannote.core import Annotation, Timeline


def _core():
    """pyannote.core, imported on first use: it imports matplotlib (its notebook module), 0.3 s
    that a process only loading a pipeline config (the curation driver) never needs."""
    import pyannote.core

    return pyannote.core


def __getattr__(name: str):
    # ``intervals.Segment`` / ``Timeline`` / ``Annotation``, as when they were imported at the top
    if name in ("Segment", "Timeline", "Annotation"):
        return getattr(_core(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# pyannote.core treats segments shorter than this as empty (Segment.__bool__)
_EPS = 1e-6


def timeline(segments: Iterable[Sequence[float]], uri: str | None = None) -> Timeline:
    """``[(start, end), ...]`` -> Timeline (empty and reversed pairs dropped)."""
    pc = _core()
    segs = [pc.Segment(float(s[0]), float(s[1])) for s in segments if float(s[1]) - float(s[0]) > _EPS]
    return pc.Timeline(segments=segs, uri=uri)


def annotation(turns: Iterable[Sequence], uri: str | None = None) -> Annotation:
    """``[(start, end, speaker), ...]`` -> Annotation (one track per turn, so same-speaker turns
    that touch stay distinct until ``support()``)."""
    pc = _core()
    ann = pc.Annotation(uri=uri)
    for i, (s, e, k) in enumerate(turns):
        if float(e) - float(s) > _EPS:
            ann[pc.Segment(float(s), float(e)), i] = str(k)
    return ann


def pairs(tl: Timeline, ndigits: int | None = 3) -> list[tuple[float, float]]:
    r = (lambda x: round(float(x), ndigits)) if ndigits is not None else float
    return [(r(s.start), r(s.end)) for s in tl]


def turns(ann: Annotation, ndigits: int | None = 3) -> list[tuple[float, float, str]]:
    r = (lambda x: round(float(x), ndigits)) if ndigits is not None else float
    return sorted((r(s.start), r(s.end), str(k)) for s, _, k in ann.itertracks(yield_label=True))


def union(segments: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
    """Merged, sorted segments (touching segments join)."""
    return pairs(timeline(segments).support(), None)


def bridge_and_pad(segments: Iterable[Sequence[float]], bridge_s: float = 0.0, pad_s: float = 0.0,
                   extent: tuple[float, float] | None = None) -> list[tuple[float, float]]:
    """Voice activity as reference annotations mark it: every segment grown by ``pad_s`` on
    both sides (clipped to ``extent``), then pauses shorter than ``bridge_s`` filled
    (``Timeline.support(collar=bridge_s)``)."""
    grown = [(float(s) - pad_s, float(e) + pad_s) for s, e in segments]
    if extent is not None:
        lo, hi = extent
        grown = [(max(lo, s), min(hi, e)) for s, e in grown]
    return pairs(timeline(grown).support(collar=float(bridge_s)), 3)


def merge_same_speaker(turn_list: Iterable[Sequence], gap_s: float = 1e-3) -> list[tuple[float, float, str]]:
    """Turns of one speaker that touch or are closer than ``gap_s`` become one turn."""
    return turns(annotation(turn_list).support(collar=gap_s))


def bridge_within_turns(turn_list: Iterable[Sequence], bridge_s: float) -> list[tuple[float, float, str]]:
    """Pauses shorter than ``bridge_s`` between two turns of the same speaker are filled when
    no other speaker talks in the pause (a pause inside a turn is part of the turn, as
    reference annotations mark it; a gap at a change of speaker is not)."""
    pc = _core()
    ann = annotation(turn_list)
    if bridge_s <= 0:
        return turns(ann.support())
    out = pc.Annotation()
    n = 0
    for k in ann.labels():
        mine = list(ann.label_timeline(k).support())
        others = pc.Timeline([s for s, _, lab in ann.itertracks(yield_label=True) if lab != k]).support()
        for seg in mine:
            out[seg, n] = k
            n += 1
        for a, b in zip(mine, mine[1:]):
            gap = pc.Segment(a.end, b.start)
            if gap.duration < bridge_s and not others.crop(gap, mode="intersection"):
                out[gap, n] = k
                n += 1
    return turns(out.support(collar=_EPS))


def overlap_regions(ann: Annotation) -> Timeline:
    """Where two or more different speakers talk at once."""
    out = []
    labels = ann.labels()
    tls = {k: ann.label_timeline(k).support() for k in labels}
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            out.extend(tls[a].crop(tls[b], mode="intersection"))
    return _core().Timeline(out).support()


def remove_overlaps(turn_list: Sequence[Sequence]) -> tuple[list[tuple[float, float, str]], list[tuple[float, float]]]:
    """Clean single-speaker pieces of the turns and the regions where different speakers overlap:
    ``(clean_turns, overlap_regions)``."""
    ann = annotation(turn_list)
    overlaps = overlap_regions(ann)
    clean = _core().Annotation()
    for k in ann.labels():
        mine = ann.label_timeline(k).support()
        kept = mine.extrude(overlaps) if overlaps else mine
        for j, seg in enumerate(kept):
            clean[seg, j] = k
    return turns(clean), pairs(overlaps)


def mask(segments: Iterable[Sequence[float]], times, closed: bool = True) -> np.ndarray:
    """(T,) bool: which ``times`` lie inside the union of ``segments``; ``closed`` counts the
    end point (see module doc)."""
    t = np.asarray(times, dtype=np.float64)
    m = np.zeros(t.shape, bool)
    segs = [(float(s[0]), float(s[1])) for s in segments or []]
    if not segs:
        return m
    # a zero-length [s, s] segment still covers t == s in the closed reading
    for s, e in segs if closed else union(segs):
        m |= (t >= s) & ((t <= e) if closed else (t < e))
    return m


def total(segments: Iterable[Sequence[float]]) -> float:
    """Duration of the union."""
    return float(timeline(segments).support().duration())
