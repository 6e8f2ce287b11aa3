"""Face analysis shared by the metrics of one run (several metrics score the same video: the
tracks are computed once). A tiny LRU keyed by file identity and analysis settings."""

from __future__ import annotations

import os
from collections import OrderedDict

_CACHE: "OrderedDict[tuple, object]" = OrderedDict()
_MAX_ENTRIES = 4


def _file_key(path) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


def analyze(path, fps: float | None, with_landmarks: bool = True, max_faces: int = 6):
    """``curation.faces.analyze_video`` with caching. An analysis with landmarks also serves a
    request without them."""
    from curation.faces import analyze_video

    fk = _file_key(path)
    for lm in ((True, False) if not with_landmarks else (True,)):
        key = (fk, fps, lm, max_faces)
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    res = analyze_video(path, fps=fps, with_landmarks=with_landmarks, max_faces=max_faces)
    _CACHE[(fk, fps, with_landmarks, max_faces)] = res
    while len(_CACHE) > _MAX_ENTRIES:
        _CACHE.popitem(last=False)
    return res


def clear() -> None:
    """Drop every cached analysis and the sync metrics' cached curves / audio."""
    _CACHE.clear()
    import sys

    sync = sys.modules.get("metrics.sync")
    if sync is not None:
        sync._AUDIO_CACHE.clear()
        sync._TrackSync._RESULTS.clear()


def pick_persons(analysis, n: int | None):
    """The ``n`` tracks detected most often, kept in left -> right order (all if n is None)."""
    tracks = list(analysis.tracks)
    if n is None or len(tracks) <= n:
        return tracks
    keep = sorted(range(len(tracks)), key=lambda i: -int(tracks[i].detected.sum()))[:n]
    return [tracks[i] for i in sorted(keep)]


def backend_label(analysis) -> str:
    b = getattr(analysis, "backend", None) or {}
    return ", ".join(f"{k}={v}" for k, v in sorted(b.items()))
