"""Face analysis shared by the metrics of one run (several metrics score the same video: the
tracks are computed once). A tiny LRU keyed by file identity and analysis settings."""

from __future__ import annotations

from collections import OrderedDict

from curation.media import file_key

_CACHE: "OrderedDict[tuple, object]" = OrderedDict()
_MAX_ENTRIES = 4


def analyze(path, fps: float | None, with_landmarks: bool = True, max_faces: int = 6, reference: bool = False):
    """``curation.faces.analyze_video`` with caching. An analysis with landmarks also serves a
    request without them.

    ``reference`` asks for the reference pass instead of the default one: detection on every
    frame and mediapipe's face-mesh solution in static-image mode (``StaticFaceMesh``), the
    pass a metric's published figures were measured with (interactivity: the released scorer
    landmarks every frame afresh; the default pass's steadier regions of interest read 6-12 %
    less listener motion on interact_11)."""
    from curation.faces import _cached, analyze_video

    fk = file_key(path)
    for lm in ((True, False) if not with_landmarks else (True,)):
        key = (fk, fps, lm, max_faces) + (("reference",) if reference else ())
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    kw = {"detect_every": 1, "mesh": _cached("static_mesh") if with_landmarks else None} if reference else {}
    res = analyze_video(path, fps=fps, with_landmarks=with_landmarks, max_faces=max_faces, **kw)
    _CACHE[(fk, fps, with_landmarks, max_faces) + (("reference",) if reference else ())] = res
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
