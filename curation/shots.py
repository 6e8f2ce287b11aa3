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

Long sources: ``StreamingCutDetector`` takes frames in chunks of any size and keeps only the
last few downscaled frames (``window`` / ``persist_frames`` decide how many) plus three floats
per frame, so an hour-long source never has all its frames in memory; its cuts are the ones
``cuts_from_scores`` finds on all frames at once (``detect_cuts`` is one chunk).
"""

from __future__ import annotations

from collections import deque
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
    return _keep_strongest(cand, content, p.min_scene_len)


def _keep_strongest(cand, content, min_scene_len: int) -> list[int]:
    # strongest first; a weaker candidate within min_scene_len of a kept cut is the same event
    kept: list[int] = []
    for i in sorted(cand, key=lambda k: -content[k]):
        if all(abs(int(i) - k) >= min_scene_len for k in kept):
            kept.append(int(i))
    return sorted(kept)


class StreamingCutDetector:
    """``detect_cuts`` over frames fed in chunks (``feed``), for sources too long to hold.

    Frame i is decided once frames up to i + max(window, persist_frames - 1) are seen (the
    adaptive ratio and the persistence rule look that far ahead); only the downscaled frames the
    persistence rule can still reach are kept. ``finish`` decides the last frames and applies
    the ``min_scene_len`` rule to the candidates (a handful of indices)."""

    def __init__(self, params=None):
        self.p = CutParams.from_mapping(params)
        self.n = 0  # frames seen
        self.content: list[float] = []
        self.hist: list[float] = []
        self.phash: list[float] = []
        self._lookahead = max(self.p.window, self.p.persist_frames - 1)
        self._frames: deque = deque(maxlen=self._lookahead + max(self.p.persist_frames, 1) + 2)
        self._prev = None  # (hsv, hist, hash bits) of the last frame
        self._decided = 1  # frames < this are decided (frame 0 never starts a shot)
        self._candidates: list[int] = []
        self.peak_frames_held = 0

    def feed(self, frames: np.ndarray) -> None:
        import cv2

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3) RGB uint8, got shape {frames.shape}")
        if not len(frames):
            return
        for f in downscale(frames):
            f = np.ascontiguousarray(f, dtype=np.uint8)
            bits = perceptual_hash(f)
            hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV_FULL).astype(np.int16)
            h = cv2.calcHist([hsv.astype(np.uint8)], [0, 1], None, [16, 16], [0, 256, 0, 256])
            cv2.normalize(h, h)
            if self._prev is None:
                c = hd = ph = 0.0
            else:
                p_hsv, p_hist, p_bits = self._prev
                c = float(np.abs(hsv - p_hsv).mean())
                hd = 1.0 - float(cv2.compareHist(p_hist, h, cv2.HISTCMP_CORREL))
                ph = float((bits != p_bits).mean())
            self._prev = (hsv, h, bits)
            self.content.append(c)
            self.hist.append(hd)
            self.phash.append(ph)
            self._frames.append((self.n, f))
            self.n += 1
            self.peak_frames_held = max(self.peak_frames_held, len(self._frames))
            self._decide_until(self.n - 1 - self._lookahead)

    def finish(self) -> list[int]:
        """Cut indices over all frames fed (the first frame of every new shot)."""
        self._decide_until(self.n - 1)
        return _keep_strongest(self._candidates, self.content, self.p.min_scene_len)

    def _frame(self, i: int) -> np.ndarray:
        first = self._frames[0][0]
        return self._frames[i - first][1]

    def _decide_until(self, last: int) -> None:
        p, n, content = self.p, self.n, self.content
        while self._decided <= last:
            i = self._decided
            self._decided += 1
            idx = [j for j in range(i - p.window, i + p.window + 1) if j != i and 1 <= j < n]
            ratio = content[i] / max(float(np.mean([content[j] for j in idx])) if idx else 0.0, 1e-3)
            changed = self.hist[i] >= p.min_hist or self.phash[i] >= p.min_hash
            soft = ratio >= p.adaptive_ratio and content[i] >= p.min_content and changed
            if not (content[i] >= p.threshold or soft):
                continue
            if p.persist_frames > 0:
                ks = range(2, p.persist_frames + 1)
                after = [_content_distance(self._frame(i - 1), self._frame(i + k - 1)) for k in ks if i + k - 1 < n]
                before = [_content_distance(self._frame(i - k), self._frame(i)) for k in ks if i - k >= 0]
                if min(after + before, default=content[i]) < p.min_persist * content[i]:
                    continue
            self._candidates.append(i)


def detect_cuts(frames: np.ndarray, fps: float | None = None, params=None) -> list[int]:
    """First frame index of every new shot in ``frames`` (T, H, W, 3) RGB uint8. ``fps`` is
    accepted for callers that express ``min_scene_len`` in seconds upstream; the rules here
    work in frames."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB uint8, got shape {frames.shape}")
    if len(frames) < 2:
        return []
    det = StreamingCutDetector(params)
    det.feed(frames)
    return det.finish()


def detect_cuts_all_frames(frames: np.ndarray, params=None) -> list[int]:
    """The same rules on all frames at once (``frame_scores`` + ``cuts_from_scores``): the
    reference the streaming detector is checked against."""
    frames = np.asarray(frames)
    if len(frames) < 2:
        return []
    small = downscale(frames)
    content, hist, phash = frame_scores(small, with_hash=True)
    return cuts_from_scores(content, hist, params, small, phash)
