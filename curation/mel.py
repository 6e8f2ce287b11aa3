"""Log-mel front end shared by the voice encoder (diarization), the overlap detector and the
sync judge: resemblyzer's mel spectrogram (librosa's, rebuilt in numpy), on 16 kHz audio.

Its own module because the speech primitives (``curation.audio``) and the overlap detector
(``curation.overlap``, which ``curation.audio`` uses) both need it: kept in either, the two would
import each other."""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_RATE = 16000
# Resemblyzer hyper-parameters (resemblyzer/hparams.py) the voice-encoder weights were trained with.
WINDOW = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
CHANNELS = 40
FRAMES_PER_SECOND = SAMPLE_RATE // HOP  # 100 mel frames per second


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney's auditory toolbox scale, as librosa (htk=False)
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=1)
def filterbank() -> np.ndarray:
    """``librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)`` (Slaney scale, Slaney norm)."""
    n_fft, n_mels = WINDOW, CHANNELS
    fftfreqs = np.linspace(0, SAMPLE_RATE / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, len(fftfreqs)))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """(N, 40) power mel frames, 10 ms hop: resemblyzer's ``wav_to_mel_spectrogram``
    (librosa.feature.melspectrogram, centred frames, periodic Hann window, power 2)."""
    wav = np.asarray(wav, dtype=np.float32)
    pad = WINDOW // 2
    padded = np.pad(wav, (pad, pad), mode="constant")
    n = 1 + (len(padded) - WINDOW) // HOP
    if n <= 0:
        return np.zeros((0, CHANNELS), np.float32)
    idx = np.arange(WINDOW)[None, :] + HOP * np.arange(n)[:, None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)).astype(np.float32)
    spec = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2
    return (spec @ filterbank().T).astype(np.float32)
