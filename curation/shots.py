"""Shot-cut detection as a pure function over decoded frames.

``detect_cuts(frames, fps, params) -> list[int]``: the indices of the first frame of every new
shot (0-based, never 0). ``frames`` is (T, H, W, 3) RGB uint8 at any size: downscaled frames
(about 160 px wide) give the same scores as full-size ones, since both detectors compare
frame-wide statistics.

Three detectors score every consecutive pair of frames:

* **content**: PySceneDetect's ContentDetector score, the mean absolute difference of the H, S
  and V channels (0-255 scale), averaged over the three channels;
* **histogram**: 1 - correlation of the 2-D hue-saturation histograms (16 x 16 bins), which
  is insensitive to motion inside a shot but not to a change of scene;
* **hash**: the fraction of differing bits of a 63-bit DCT perceptual hash (pHash).

A frame starts a new shot when either

* its content score is at least ``threshold`` (a hard cut by the absolute rule), or
* it stands out from its neighbourhood: content score at least ``adaptive_ratio`` times the
  mean score of the ``window`` frames on each side (PySceneDetect's AdaptiveDetector rule, which
  catches soft cuts and cuts between similar-looking animated shots), at least
  ``min_content`` in absolute terms, and a change of picture by a second detector: a
  histogram distance of at least ``min_hist`` (new colours) or a perceptual-hash distance of
  at least ``min_hash`` (new layout in the same colours); head motion in a talking shot
  changes neither much (largest seen on the 49 one-shot clips: 0.29 hash, < 0.1 histogram).

A candidate must also persist: for k = 2..``persist_frames``, frame i-1 must still differ from
frames i+1..i+k-1 and frame i from frames i-k, each by at least ``min_persist`` times the
candidate's score (a flash, a flicker or a one-frame glitch returns to an earlier picture; a
cut does not). Cuts closer than ``min_scene_len`` frames to a
stronger one are dropped (the stronger wins).
Calibrated on hand-marked clips (docs/calibration.md, ``benchmarks/validity/shots.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np


@dataclass(frozen=True)
class CutParams:
    threshold: float = 27.0
    adaptive_ratio: float = 3.0
    window: int = 2
    min_content: float = 8.0
    min_hist: float = 0.1
    min_hash: float = 0.34
    min_scene_len: int = 8
    persist_frames: int = 4
    min_persist: float = 0.75

    @classmethod
    def from_mapping(cls, params) -> "CutParams":
        if params is None:
            return cls()
        if isinstance(params, CutParams):
            return params
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in dict(params).items() if k in names})

    def as_dict(self) -> dict:
        return asdict(self)


DOWNSCALE_WIDTH = 160


def downscale(frames: np.ndarray, width: int = DOWNSCALE_WIDTH) -> np.ndarray:
    """Frames resized (area) to ``width`` px wide, aspect kept; smaller frames are kept."""
    import cv2

    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    if w <= width:
        return frames
    size = (width, max(1, int(round(h * width / w))))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def perceptual_hash(frame: np.ndarray) -> np.ndarray:
    """63-bit DCT hash (pHash): signs of the 8x8 lowest DCT frequencies of the 32x32 grey image
    (DC dropped) against their median."""
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32)
    d = cv2.dct(cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA))[:8, :8].flatten()[1:]
    return d > np.median(d)


def frame_scores(frames: np.ndarray, with_hash: bool = False):
    """(content, histogram[, hash]) distances between frame i-1 and i for i = 1..T-1 (index 0
    is 0); hash = fraction of differing pHash bits."""
    import cv2

    frames = np.asarray(frames, dtype=np.uint8)
    n = len(frames)
    content = np.zeros(n)
    hist = np.zeros(n)
    phash = np.zeros(n)
    prev_hsv = prev_hist = prev_bits = None
    for i, f in enumerate(frames):
        bits = perceptual_hash(f) if with_hash else None
        if with_hash and prev_bits is not None:
            phash[i] = float((bits != prev_bits).mean())
        prev_bits = bits
        hsv = cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2HSV_FULL).astype(np.int16)
        h = cv2.calcHist([hsv.astype(np.uint8)], [0, 1], None, [16, 16], [0, 256, 0, 256])
        cv2.normalize(h, h)
        if prev_hsv is not None:
            content[i] = float(np.abs(hsv - prev_hsv).mean())
            hist[i] = 1.0 - float(cv2.compareHist(prev_hist, h, cv2.HISTCMP_CORREL))
        prev_hsv, prev_hist = hsv, h
    return (content, hist, phash) if with_hash else (content, hist)


def adaptive_ratio(content: np.ndarray, window: int) -> np.ndarray:
    """Each score over the mean of the ``window`` scores on either side (itself excluded)."""
    n = len(content)
    out = np.zeros(n)
    for i in range(1, n):
        idx = [j for j in range(i - window, i + window + 1) if j != i and 1 <= j < n]
        base = float(np.mean(content[idx])) if idx else 0.0
        out[i] = content[i] / max(base, 1e-3)
    return out


def _content_distance(a: np.ndarray, b: np.ndarray) -> float:
    import cv2

    ha = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2HSV_FULL).astype(np.int16)
    hb = cv2.cvtColor(np.ascontiguousarray(b), cv2.COLOR_RGB2HSV_FULL).astype(np.int16)
    return float(np.abs(ha - hb).mean())


def cuts_from_scores(content: np.ndarray, hist: np.ndarray, params=None, frames: np.ndarray | None = None,
                     phash: np.ndarray | None = None) -> list[int]:
    """Cut indices from per-frame scores; ``frames`` (downscaled) enables the persistence rule."""
    p = CutParams.from_mapping(params)
    ratio = adaptive_ratio(content, p.window)
    hard = content >= p.threshold
    changed = hist >= p.min_hist
    if phash is not None:
        changed = changed | (phash >= p.min_hash)
    soft = (ratio >= p.adaptive_ratio) & (content >= p.min_content) & changed
    cand = np.flatnonzero(hard | soft)
    cand = cand[cand > 0]
    if frames is not None and p.persist_frames > 0:
        n = len(frames)
        ks = range(2, p.persist_frames + 1)

        def persists(i: int) -> bool:
            after = [_content_distance(frames[i - 1], frames[i + k - 1]) for k in ks if i + k - 1 < n]
            before = [_content_distance(frames[i - k], frames[i]) for k in ks if i - k >= 0]
            return min(after + before, default=content[i]) >= p.min_persist * content[i]

        cand = np.array([i for i in cand if persists(int(i))], dtype=int)
    # strongest first; a weaker candidate within min_scene_len of a kept cut is the same event
    kept: list[int] = []
    for i in sorted(cand, key=lambda k: -content[k]):
        if all(abs(int(i) - k) >= p.min_scene_len for k in kept):
            kept.append(int(i))
    return sorted(kept)


def detect_cuts(frames: np.ndarray, fps: float | None = None, params=None) -> list[int]:
    """First frame index of every new shot in ``frames`` (T, H, W, 3) RGB uint8. ``fps`` is
    accepted for callers that express ``min_scene_len`` in seconds upstream; the rules here
    work in frames."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB uint8, got shape {frames.shape}")
    if len(frames) < 2:
        return []
    small = downscale(frames)
    content, hist, phash = frame_scores(small, with_hash=True)
    return cuts_from_scores(content, hist, params, small, phash)
