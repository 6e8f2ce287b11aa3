"""Learned overlapped-speech detector: where two voices talk at once.

A small linear model (logistic regression on standardised features, ``weights/overlap_detector.npz``;
``train.TrainConfig.hidden`` > 0 gives a one-hidden-layer MLP instead) trained by this project's own code
(``anytalker train overlap-detector``, ``train.py``) on mixtures of public single-speaker
tracks whose overlap frames are known (``train.build_mixtures``). Its frame features
(``frame_features``), on the diarization's d-vector grid (0.1 s step):

* the log-mel (40 bands, 10 ms) of the surrounding 0.5 s and 1.2 s, normalised per file (each
  band's mean over the file's louder half removed, so the channel and the level do not count):
  mean and standard deviation per band, and the spread of the frame energy and the spectral flux;
* periodicity (v2): the normalised autocorrelation peak at a 50-400 Hz pitch lag per 10 ms,
  its mean / std / min / max over 0.5 s (two voices at once are less periodic than one);
* the 1.2 s Resemblyzer d-vector centred on the point, which the diarization computes anyway.

``overlap_probability`` returns one probability per grid point; ``curation.audio.diarize``
uses it (``OVERLAP_THRESHOLD``) to give the points above the threshold a second speaker (the
second-closest voice centroid). Model card, training clips and cross-validated figures:
``docs/calibration.md`` ("Overlapped speech") and ``weights/training_clips.json``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = "overlap_detector.npz"
FEATURE_VERSION = 2
CONTEXT_S = 0.25  # log-mel context on each side of a grid point
LONG_CONTEXT_S = 0.6  # ... and a longer one (v2)
MEL_FPS = 100
N_ACOUSTIC = 82 + 80 + 4


def periodicity(wav16k: np.ndarray) -> np.ndarray:
    """Per 10 ms frame: the highest normalised autocorrelation of a 30 ms window at a lag of
    2.5-20 ms (50-400 Hz pitch). One voice is periodic; two voices at once are less so."""
    wav = np.asarray(wav16k, np.float32)
    win, hop = 480, 160
    n = 1 + (len(wav) - win) // hop if len(wav) >= win else 0
    if n <= 0:
        return np.zeros(0, np.float32)
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    fr = wav[idx] - wav[idx].mean(1, keepdims=True)
    spec = np.fft.rfft(fr, 1024, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :321]
    peak = ac[:, 40:321].max(1) / np.maximum(ac[:, 0], 1e-9)
    # frames centred like the mel frames (centre at hop * i)
    return np.concatenate([np.full(win // (2 * hop), peak[0]), peak]).astype(np.float32)


def _log_mel(wav16k: np.ndarray) -> np.ndarray:
    from curation.mel import mel_spectrogram

    lm = np.log(mel_spectrogram(wav16k) + 1e-6).astype(np.float32)
    if len(lm) == 0:
        return lm
    # per-file normalisation on the louder half of the frames (speech, not the silence)
    energy = lm.mean(1)
    loud = energy >= np.median(energy)
    return lm - lm[loud].mean(0, keepdims=True)


def frame_features(wav16k: np.ndarray, times: np.ndarray, dvectors: np.ndarray) -> np.ndarray:
    """(N, N_ACOUSTIC + D) features at grid times ``times`` (s); ``dvectors`` (N, D) are the
    d-vectors centred on those times (``curation.audio.speaker_embeddings``)."""
    return np.concatenate([acoustic_features(wav16k, times), np.asarray(dvectors, np.float32).reshape(len(times), -1)],
                          axis=1)


def acoustic_features(wav16k: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(N, N_ACOUSTIC): log-mel statistics over +-CONTEXT_S and +-LONG_CONTEXT_S, periodicity."""
    wav16k = np.asarray(wav16k, np.float32)
    lm = _log_mel(wav16k)
    per = periodicity(wav16k)
    n = len(times)
    ctx, long_ctx = int(round(CONTEXT_S * MEL_FPS)), int(round(LONG_CONTEXT_S * MEL_FPS))
    out = np.zeros((n, N_ACOUSTIC), np.float32)
    if len(lm):
        energy = lm.mean(1)
        flux = np.concatenate([[0.0], np.sqrt((np.diff(lm, axis=0) ** 2).mean(1))]).astype(np.float32)
        for i, t in enumerate(times):
            c = int(round(t * MEL_FPS))
            a, b = max(0, c - ctx), min(len(lm), c + ctx + 1)
            if b - a < 2:
                continue
            seg = lm[a:b]
            out[i, :40] = seg.mean(0)
            out[i, 40:80] = seg.std(0)
            out[i, 80] = energy[a:b].std()
            out[i, 81] = flux[a:b].mean()
            la, lb = max(0, c - long_ctx), min(len(lm), c + long_ctx + 1)
            out[i, 82:122] = lm[la:lb].mean(0)
            out[i, 122:162] = lm[la:lb].std(0)
            pw = per[a: min(len(per), b)]
            if len(pw):
                out[i, 162:166] = (pw.mean(), pw.std(), pw.min(), pw.max())
    return out


class OverlapModel:
    """Standardisation + ReLU hidden layers (none: logistic regression) + logistic output, as
    numpy arrays."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coefs: list[np.ndarray],
                 intercepts: list[np.ndarray], meta: dict | None = None):
        self.mean, self.scale = np.asarray(mean, np.float32), np.asarray(scale, np.float32)
        self.coefs = [np.asarray(c, np.float32) for c in coefs]
        self.intercepts = [np.asarray(b, np.float32) for b in intercepts]
        self.meta = dict(meta or {})

    def predict(self, features: np.ndarray) -> np.ndarray:
        x = (np.asarray(features, np.float32) - self.mean) / self.scale
        for w, b in zip(self.coefs[:-1], self.intercepts[:-1]):
            x = np.maximum(x @ w + b, 0.0)
        z = (x @ self.coefs[-1] + self.intercepts[-1]).reshape(-1)
        return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)

    def save(self, path: str | Path) -> None:
        arrays = {"mean": self.mean, "scale": self.scale, "n_layers": np.array(len(self.coefs)),
                  "feature_version": np.array(FEATURE_VERSION)}
        for i, (w, b) in enumerate(zip(self.coefs, self.intercepts)):
            arrays[f"W{i}"], arrays[f"b{i}"] = w, b
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "OverlapModel":
        path = Path(path)
        if not path.is_file():
            raise RuntimeError(f"{path}: overlap-detector weights missing; run `anytalker train overlap-detector` "
                               "or reinstall the package (the weights ship in curation/overlap/weights/)")
        z = np.load(path, allow_pickle=False)
        if int(z["feature_version"]) != FEATURE_VERSION:
            raise RuntimeError(f"{path}: weights for feature version {int(z['feature_version'])}, code has "
                               f"{FEATURE_VERSION}; retrain with `anytalker train overlap-detector`")
        n = int(z["n_layers"])
        return cls(z["mean"], z["scale"], [z[f"W{i}"] for i in range(n)], [z[f"b{i}"] for i in range(n)])


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None) -> OverlapModel:
    return OverlapModel.load(Path(path) if path else WEIGHTS_DIR / WEIGHTS_FILE)


def overlap_probability(wav16k: np.ndarray, times: np.ndarray, dvectors: np.ndarray,
                        model: OverlapModel | None = None) -> np.ndarray:
    """Probability that two or more voices talk at each grid time."""
    if len(times) == 0:
        return np.zeros(0, np.float32)
    model = load_model() if model is None else model
    return model.predict(frame_features(wav16k, times, dvectors))


def backend_name() -> str:
    return f"overlap-detector features v{FEATURE_VERSION}"
