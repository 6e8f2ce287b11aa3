"""Speech primitives: voice activity (silero-vad), speaker diarization, overlap removal and
regrouping of clean speech into clip-sized spans (AnyTalker data recipe).

Backends, all offline by default:

* VAD: ``silero-vad`` (its JIT model ships inside the PyPI wheel), post-processed the way
  reference RTTMs mark speech (short pauses bridged, edges padded; ``curation.intervals``).
* Diarization ``"default"`` (alias ``"resemblyzer"``): d-vectors from Resemblyzer's pretrained
  GE2E voice encoder (``pretrained.pt`` ships inside the ``resemblyzer`` wheel, Apache-2.0) over
  sliding windows of VAD speech, spectral clustering (pruned cosine affinity), the speaker count
  estimated by average-linkage clustering of ~2 s segment voice prints with a calibrated stopping
  distance, then resegmentation on shorter windows against voice centroids learnt from
  confidently labelled windows only, a short median filter, and an optional overlap heuristic
  (a window whose two nearest speaker centroids are almost equally close and both close enough
  counts as both speakers; off by default). The wheel's own
  preprocessing imports librosa + webrtcvad, which we do not want as dependencies, so the
  network (3-layer LSTM 40->256, linear 256->256, ReLU, L2 norm) is rebuilt here and loads the
  wheel's weight file; the mel filterbank reproduces ``librosa.filters.mel`` (Slaney scale and
  norm) with numpy.
* Diarization ``"pyannote"``: ``pyannote.audio.Pipeline.from_pretrained(path_or_name)``, used
  only when pyannote.audio is importable (it is not installed in this project's environment).

Every function returns plain Python floats / tuples so callers can put them into rows.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from curation import intervals
from curation import mel as mel_frontend  # "mel" is a local name (frames) in this module
from curation.mel import mel_spectrogram

SR = 16000


# Diarization defaults. Window sizes date from v1; every post-processing and labelling choice
# below was made on the built calibration set (benchmarks/validity/build_diarization_set.py:
# 140 files with re-timed conversations, plus a narrowband copy of each since v4 = 280;
# calibrate_diarization.py), never on the held-out audio/sample.wav (docs/calibration.md).
# v3: turn bridge, pure-window centroids, resegmentation; v4: confident-window centroids;
# v5: second speaker where the learnt overlap detector fires (curation.overlap); v6: every speaker
# change re-placed on short-window d-vectors (refine_changes)
LABELLING_VERSION = 6
EMBED_WINDOW_S = 1.2  # d-vector window: long enough for a stable voice print
EMBED_STEP_S = 0.1  # label resolution
AFFINITY_KEEP = 0.1  # spectral clustering: each window keeps its 10 % most similar windows
MIN_NEIGHBOURS = 5  # ... but at least this many (short clips)
# speaker count: average-linkage clustering of ~2 s speech-segment voice prints, stopped at this
# cosine distance (threshold chosen on the built 1/2/3-speaker set with its narrowband copies, v4;
# shorter 1 s pieces count better there but give 1 voice on sample.wav: docs/calibration.md)
COUNT_SEGMENT_S = 2.0
COUNT_LINKAGE_THRESHOLD = 0.24
# VAD post-processing (calibrated against RTTMs, docs/calibration.md): pauses shorter than
# VAD_BRIDGE_S between silero segments are filled, every segment is padded by VAD_PAD_S. Both
# 0 since the turn bridge below: bridging before labelling also filled gaps at speaker changes
VAD_BRIDGE_S = 0.0
VAD_PAD_S = 0.0
# after labelling, a pause shorter than TURN_BRIDGE_S between two turns of the same speaker
# (no other voice in it) is filled: a pause inside a turn is speech in reference annotations,
# a gap at a change of speaker is not (curation.intervals.bridge_within_turns)
TURN_BRIDGE_S = 1.5
OVERLAP_MARGIN = 0.03  # sim(best) - sim(second) below this ...
OVERLAP_MIN_SIM = 0.78  # ... with sim(second) above this -> both speakers active
# near-tie overlap heuristic: off; the built set (with overlapped turns) scores it worse
# (its labels of a second voice are mostly wrong); diarize(detect_overlap=True) turns it on
DETECT_OVERLAP = False
# learnt overlap detector (curation.overlap, trained on mixtures of single-speaker tracks): grid
# points whose overlap probability is at or above this get a second speaker; >= 1 turns it off.
# Chosen on the built set with fold models that never saw the scored file's recordings
# (benchmarks/validity/calibrate_overlap.py, docs/calibration.md "Overlapped speech")
# v5: 0.7 with the gate below (in sample 0.139 -> 0.1373; leave-one-fold-out 0.1388, each fold's
# setting chosen on the others; without the gate every threshold was worse out of fold)
OVERLAP_THRESHOLD = 0.7
OVERLAP_MIN_SECOND_SIM = 0.7  # ... and, when > 0, only where the second voice's cosine reaches this
MEDIAN_FILTER_S = 0.5  # label smoothing
# optional resegmentation after clustering: labels re-assigned on a grid of shorter d-vector
# windows by nearest speaker centroid + median filter, the centroids re-estimated from the new
# labels each pass (pure windows only, CENTROID_MARGIN_S, and confident ones, CENTROID_TRIM).
# On (5 passes): chosen on the built set (v4 there: 0.159 without -> 0.139); on the held-out
# sample.wav it is worse (docs/calibration.md).
RESEGMENT_WINDOW_S = 0.8
RESEGMENT_PASSES = 5
# v6 change-point refinement (refine_changes): a 0.8 s window straddling a speaker change mixes
# both voices, and the median filter shifts the change further, so changes land up to ~0.4 s off
# (issue 13 diagnosis of the held-out sample.wav, docs/validity.md). Each change is re-placed at
# the single point that best splits d-vectors of CHANGE_WINDOW_S windows (the short end of the
# 0.5-0.75 s range where a GE2E d-vector still identifies a voice) between the two voices,
# searched within CHANGE_RADIUS_S of the old change: half the resegmentation window plus half the
# median filter, the furthest a change can be displaced by them. Both derived, not tuned.
CHANGE_WINDOW_S = 0.5
CHANGE_RADIUS_S = RESEGMENT_WINDOW_S / 2 + MEDIAN_FILTER_S / 2  # 0.65 s
REFINE_CHANGES = True
# voice centroids from "pure" windows only: a 1.2 s window within CENTROID_MARGIN_S of a label
# change mixes two voices and drags the centroid towards the other voice (0 = every window);
# re-estimated CENTROID_PASSES times from the new labels before the resegmentation (v3: 4)
CENTROID_MARGIN_S = 0.3
CENTROID_PASSES = 0
# label smoothing: "median" (MEDIAN_FILTER_S) or "viterbi" (best label path where every speaker
# change costs VITERBI_SWITCH_PENALTY in cosine similarity)
SMOOTHING = "median"
VITERBI_SWITCH_PENALTY = 0.1
# centroids from confident windows (v4): each centroid is re-estimated from its windows whose
# margin (cosine to their own centroid minus the best other one) is at or above this quantile
# of the voice's margins: windows under a second voice or mislabelled ones sit low and drag the
# centroid towards the other voice. With it, no centroid passes before the resegmentation.
# Chosen on the built set with narrowband copies (docs/calibration.md)
CENTROID_TRIM = 0.5


def _package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"


def vad_backend_name() -> str:
    return f"silero-vad {_package_version('silero-vad')}"


def diarization_backend_name(backend: str = "default") -> str:
    if backend in ("default", "resemblyzer"):
        return f"resemblyzer-spectral {_package_version('resemblyzer')} labelling v{LABELLING_VERSION}"
    if backend == "pyannote":
        return f"pyannote.audio {_package_version('pyannote.audio')}"
    raise ValueError(f"unknown diarization backend {backend!r}; use 'default' or 'pyannote'")


def _to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sr == SR:
        return audio
    from scipy.signal import resample_poly

    g = np.gcd(int(sr), SR)
    return resample_poly(audio, SR // g, int(sr) // g).astype(np.float32)


# --------------------------------------------------------------------------------------------
# VAD


@functools.lru_cache(maxsize=1)
def _silero_model():
    from silero_vad import load_silero_vad

    return load_silero_vad()


def vad_segments(
    audio: np.ndarray,
    sr: int = SR,
    threshold: float = 0.5,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.1,
    bridge_s: float | None = None,
    pad_s: float | None = None,
) -> list[tuple[float, float]]:
    """Speech segments ``[(start_s, end_s), ...]``: silero-vad, then post-processed the way
    reference annotations mark speech (``bridge_and_pad``: segments padded by ``pad_s``, pauses
    shorter than ``bridge_s`` filled; defaults VAD_PAD_S / VAD_BRIDGE_S; 0 and 0 give silero's
    raw output)."""
    wav = _to_16k(audio, sr)
    raw = raw_vad_segments(wav, SR, threshold, min_speech_s, min_silence_s)
    return postprocess_vad(raw, len(wav) / SR, bridge_s, pad_s)


def postprocess_vad(raw: list[tuple[float, float]], duration_s: float, bridge_s: float | None = None,
                    pad_s: float | None = None) -> list[tuple[float, float]]:
    """silero segments -> reference-like speech regions (see ``vad_segments``)."""
    bridge = VAD_BRIDGE_S if bridge_s is None else float(bridge_s)
    pad = VAD_PAD_S if pad_s is None else float(pad_s)
    if not raw or (bridge <= 0 and pad <= 0):
        return list(raw)
    return intervals.bridge_and_pad(raw, bridge_s=bridge, pad_s=pad, extent=(0.0, float(duration_s)))


def raw_vad_segments(
    audio: np.ndarray,
    sr: int = SR,
    threshold: float = 0.5,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.1,
) -> list[tuple[float, float]]:
    """silero-vad's own speech segments."""
    import torch
    from silero_vad import get_speech_timestamps

    wav = _to_16k(audio, sr)
    if wav.size < 512:
        return []
    stamps = get_speech_timestamps(
        torch.from_numpy(wav),
        _silero_model(),
        threshold=threshold,
        sampling_rate=SR,
        min_speech_duration_ms=int(min_speech_s * 1000),
        min_silence_duration_ms=int(min_silence_s * 1000),
    )
    return [(round(s["start"] / SR, 3), round(s["end"] / SR, 3)) for s in stamps]


# --------------------------------------------------------------------------------------------
# Resemblyzer voice encoder (rebuilt; weights from the resemblyzer wheel)


def _resemblyzer_weights() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the default diarization backend needs the resemblyzer wheel for its voice-encoder "
            "weights: pip install --no-deps resemblyzer==0.1.4 (it ships pretrained.pt; its "
            "librosa/webrtcvad dependencies are not needed here)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"
    if not path.is_file():
        raise RuntimeError(f"{path}: resemblyzer's pretrained.pt is missing; reinstall resemblyzer==0.1.4")
    return path


@functools.lru_cache(maxsize=1)
def _voice_encoder():
    import torch
    from torch import nn

    class VoiceEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(mel_frontend.CHANNELS, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)
            self.relu = nn.ReLU()

        def forward(self, mels):
            _, (hidden, _) = self.lstm(mels)
            raw = self.relu(self.linear(hidden[-1]))
            return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-8)

    model = VoiceEncoder()
    ckpt = torch.load(_resemblyzer_weights(), map_location="cpu", weights_only=False)
    # resemblyzer loads with strict=False because the checkpoint also has similarity_weight/bias
    missing, _ = model.load_state_dict(ckpt["model_state"], strict=False)
    if missing:
        raise RuntimeError(f"resemblyzer pretrained.pt lacks parameters {missing}")
    model.eval()
    return model


def _window_starts(n_mel: int, window_s: float, step_s: float) -> np.ndarray:
    """Mel-frame starts of the sliding d-vector windows over ``n_mel`` frames (padded to one window)."""
    win = int(round(window_s * mel_frontend.FRAMES_PER_SECOND))
    step = max(1, int(round(step_s * mel_frontend.FRAMES_PER_SECOND)))
    return np.arange(0, max(n_mel, win) - win + 1, step)


def window_centres(n_samples: int, window_s: float = EMBED_WINDOW_S, step_s: float = EMBED_STEP_S) -> np.ndarray:
    """The centre times of ``speaker_embeddings(audio, window_s=..., step_s=...)`` for ``n_samples``
    samples at 16 kHz, without running the encoder (the grid depends on the length only)."""
    padded = int(n_samples) + 2 * (mel_frontend.WINDOW // 2)
    n_mel = max(0, 1 + (padded - mel_frontend.WINDOW) // mel_frontend.HOP) if padded >= mel_frontend.WINDOW else 0
    win = int(round(window_s * mel_frontend.FRAMES_PER_SECOND))
    return (_window_starts(n_mel, window_s, step_s) + win / 2) / mel_frontend.FRAMES_PER_SECOND


def speaker_embeddings(
    audio: np.ndarray,
    sr: int = SR,
    window_s: float = EMBED_WINDOW_S,
    step_s: float = EMBED_STEP_S,
    batch: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Sliding-window d-vectors: (centre times (N,), embeddings (N, 256), L2-normalised)."""
    import torch

    wav = _to_16k(audio, sr)
    # resemblyzer normalises volume to -30 dBFS (increase only) before the mel
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) if wav.size else 0.0
    if rms > 0:
        gain = 10 ** ((-30 - 20 * np.log10(rms)) / 20)
        if gain > 1:
            wav = wav * gain
    mel = mel_spectrogram(wav)
    win = int(round(window_s * mel_frontend.FRAMES_PER_SECOND))
    step = max(1, int(round(step_s * mel_frontend.FRAMES_PER_SECOND)))
    if len(mel) < win:
        mel = np.pad(mel, ((0, win - len(mel)), (0, 0)))
    starts = _window_starts(len(mel), window_s, step_s)
    centres = (starts + win / 2) / mel_frontend.FRAMES_PER_SECOND
    model = _voice_encoder()
    out = []
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            chunk = np.stack([mel[s : s + win] for s in starts[i : i + batch]])
            out.append(model(torch.from_numpy(chunk)).numpy())
    return centres, np.concatenate(out) if out else np.zeros((0, 256), np.float32)


# --------------------------------------------------------------------------------------------
# Diarization


def _mask_from_segments(segments: Iterable[tuple[float, float]], times: np.ndarray) -> np.ndarray:
    return intervals.mask(segments, times, closed=False)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where ``mask`` is True."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def _pruned_affinity(emb: np.ndarray, keep_frac: float = AFFINITY_KEEP) -> np.ndarray:
    """Cosine affinity keeping each row's top ``keep_frac`` entries, symmetrised (the pruning of
    spectral-clustering diarization, Wang et al. 2018 / Park et al. 2019)."""
    aff = np.clip(emb @ emb.T, 0.0, 1.0)
    keep = max(MIN_NEIGHBOURS, int(round(keep_frac * len(emb))))
    thr = -np.sort(-aff, axis=1)[:, min(keep, len(emb)) - 1 : min(keep, len(emb))]
    aff = np.where(aff >= thr, aff, 0.0)
    return (aff + aff.T) / 2


def segment_voiceprints(times: np.ndarray, emb: np.ndarray, speech: Sequence[tuple[float, float]],
                        segment_s: float = COUNT_SEGMENT_S) -> np.ndarray:
    """One L2-normalised voice print per ~``segment_s`` piece of each speech segment (the mean of
    the sliding-window d-vectors inside it); pieces with fewer than 3 windows are skipped."""
    prints = []
    for s, e in speech:
        idx = np.flatnonzero(intervals.mask([(s, e)], times, closed=False))
        if len(idx) < 3:
            continue
        for chunk in np.array_split(idx, max(1, int(round((e - s) / segment_s)))):
            if len(chunk) >= 3:
                v = emb[chunk].mean(0)
                prints.append(v / max(np.linalg.norm(v), 1e-8))
    return np.array(prints, np.float32).reshape(-1, emb.shape[1] if emb.ndim == 2 else 256)


def estimate_speaker_count(prints: np.ndarray, max_speakers: int, threshold: float = COUNT_LINKAGE_THRESHOLD) -> int:
    """Number of voices: average-linkage (cosine) clustering of segment voice prints, stopped when
    the closest clusters are further apart than ``threshold`` (the agglomerative stopping rule
    of pyannote-style pipelines); at most ``max_speakers``."""
    from scipy.cluster.hierarchy import linkage

    if len(prints) < 2:
        return 1
    heights = linkage(prints.astype(np.float64), method="average", metric="cosine")[:, 2]
    return int(max(1, min(int(max_speakers), 1 + int((heights > threshold).sum()))))


def _cluster(emb: np.ndarray, num_speakers: int) -> np.ndarray:
    """Spectral clustering of d-vectors into exactly ``num_speakers`` clusters."""
    n = len(emb)
    k = max(1, min(int(num_speakers), n // 4))
    if n < 4 or k == 1:
        return np.zeros(n, int)
    import warnings

    # imported here, after the one-voice return: scikit-learn's import costs ~2 s of CPU per
    # worker, and a run of single-speaker clips never clusters
    from sklearn.cluster import SpectralClustering

    with warnings.catch_warnings():
        # a pruned graph of two well-separated voices is not connected: that is the easy case
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        return SpectralClustering(k, affinity="precomputed", random_state=0).fit_predict(_pruned_affinity(emb))


def viterbi_labels(scores: np.ndarray, switch_penalty: float) -> np.ndarray:
    """Label path maximising the summed ``scores`` (N, K) minus ``switch_penalty`` per change."""
    n, k = scores.shape
    if n == 0 or k == 1:
        return np.zeros(n, int)
    acc = scores[0].astype(np.float64).copy()
    back = np.zeros((n, k), np.int32)
    for i in range(1, n):
        stay = acc
        best_prev = int(np.argmax(acc))
        switch = acc[best_prev] - switch_penalty
        back[i] = np.where(stay >= switch, np.arange(k), best_prev)
        acc = np.maximum(stay, switch) + scores[i]
    path = np.empty(n, int)
    path[-1] = int(np.argmax(acc))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-8)


def confident_mean(member_emb: np.ndarray, centroids: np.ndarray, own: int, trim: float) -> np.ndarray:
    """Mean of the member windows of voice ``own`` whose margin (cosine to its centroid minus
    the best other centroid) is at or above the ``trim`` quantile of their margins."""
    sims = member_emb @ centroids.T
    margin = sims[:, own] - np.delete(sims, own, axis=1).max(1)
    return member_emb[margin >= np.quantile(margin, trim)].mean(0)


def pure_windows(labels: np.ndarray, margin_steps: int) -> np.ndarray:
    """Windows whose nearest differently-labelled window is at least ``margin_steps`` grid steps
    away (every window when ``margin_steps`` <= 0)."""
    if margin_steps <= 0 or len(labels) == 0:
        return np.ones(len(labels), bool)
    change = np.flatnonzero(np.diff(labels) != 0)  # label changes between i and i + 1
    dist = np.full(len(labels), np.iinfo(np.int32).max)
    if change.size:
        idx = np.arange(len(labels))
        pos = np.searchsorted(change, idx)
        left = np.where(pos > 0, idx - change[np.maximum(pos - 1, 0)], dist)
        right = np.where(pos < len(change), change[np.minimum(pos, len(change) - 1)] + 1 - idx, dist)
        dist = np.minimum(left, right)
    return dist >= margin_steps


def refine_changes(times: np.ndarray, labels: np.ndarray, scores: np.ndarray, radius_steps: int,
                   step_s: float = EMBED_STEP_S) -> np.ndarray:
    """Labels with every speaker change moved to the best single split point nearby.

    ``times`` (N,) grid times of the labelled points, ``labels`` (N,) their voices, ``scores``
    (N, K) each point's similarity to each voice (short-window d-vector . centroid). For a change
    from voice a to voice b between points i and i + 1 (consecutive on the grid: a gap in the
    speech is not a change), the new change is the point k in [lo, hi + 1] maximising
    ``sum(scores[lo:k, a]) + sum(scores[k:hi + 1, b])``, where the search span reaches
    ``radius_steps`` points each side but never past half-way to the neighbouring change, so no
    run of labels disappears. Only the position of changes moves; no change is added or removed."""
    lab = np.asarray(labels).copy()
    n = len(lab)
    if n < 2 or radius_steps <= 0:
        return lab
    contiguous = np.diff(times) <= 1.5 * step_s
    changes = np.flatnonzero((np.diff(lab) != 0) & contiguous)  # change between i and i + 1
    if changes.size == 0:
        return lab
    # stretch limits: points of one contiguous speech stretch
    stretch = np.concatenate([[0], np.cumsum(~contiguous)])
    orig = lab.copy()
    for j, i in enumerate(changes):
        a, b = orig[i], orig[i + 1]
        lo = i - radius_steps + 1
        hi = i + radius_steps
        if j > 0:
            lo = max(lo, (changes[j - 1] + i) // 2 + 1)
        if j + 1 < len(changes):
            hi = min(hi, (i + changes[j + 1]) // 2)
        lo, hi = max(lo, 0), min(hi, n - 1)
        same = stretch[lo: hi + 1] == stretch[i]
        idx = np.arange(lo, hi + 1)[same]
        lo, hi = int(idx[0]), int(idx[-1])
        if hi <= lo:
            continue
        sa, sb = scores[lo: hi + 1, a], scores[lo: hi + 1, b]
        # split at k (first point of b): left part a, right part b; k from lo + 1 to hi keeps
        # at least one point of each voice in the span
        left = np.cumsum(sa)[:-1]
        right = np.cumsum(sb[::-1])[::-1][1:]
        k = lo + 1 + int(np.argmax(left + right))
        lab[lo:k], lab[k: hi + 1] = a, b
    return lab


def _centroids(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    c = np.stack([emb[labels == k].mean(0) for k in range(labels.max() + 1)])
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _diarize_resemblyzer(
    audio: np.ndarray,
    num_speakers: int | None,
    max_speakers: int,
    speech: list[tuple[float, float]] | None,
    embeddings: tuple[np.ndarray, np.ndarray] | None = None,
    voiced: list[tuple[float, float]] | None = None,
    frame_embeddings: tuple[np.ndarray, np.ndarray] | None = None,
    detect_overlap: bool | None = None,
    resegment_passes: int | None = None,
    centroid_margin_s: float | None = None,
    centroid_passes: int | None = None,
    smoothing: str | None = None,
    switch_penalty: float | None = None,
    overlap_margin: float | None = None,
    overlap_min_sim: float | None = None,
    turn_bridge_s: float | None = None,
    centroid_trim: float | None = None,
    overlap_threshold: float | None = None,
    overlap_prob: tuple[np.ndarray, np.ndarray] | None = None,
    overlap_min_second_sim: float | None = None,
    refine: bool | None = None,
    change_embeddings: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[tuple[float, float, str]]:
    from scipy.ndimage import median_filter

    margin_s = CENTROID_MARGIN_S if centroid_margin_s is None else float(centroid_margin_s)
    c_passes = CENTROID_PASSES if centroid_passes is None else int(centroid_passes)
    smoothing = SMOOTHING if smoothing is None else smoothing
    penalty = VITERBI_SWITCH_PENALTY if switch_penalty is None else float(switch_penalty)
    trim = CENTROID_TRIM if centroid_trim is None else float(centroid_trim)
    if smoothing not in ("median", "viterbi"):
        raise ValueError(f"smoothing={smoothing!r}: use 'median' or 'viterbi'")

    if speech is None:
        voiced = raw_vad_segments(audio) if voiced is None else voiced
        speech = postprocess_vad(voiced, len(audio) / SR)
    if not speech:
        return []
    # voices are learnt from voiced windows only (silero's own segments inside the speech
    # regions): bridged pauses and padding carry no voice; they get the nearest voice's label
    voiced = speech if voiced is None else intervals.pairs(
        intervals.timeline(voiced).crop(intervals.timeline(speech).support()), None)
    times, emb = embeddings if embeddings is not None else speaker_embeddings(audio)
    times_1s2, emb_1s2 = times, emb  # the 1.2 s grid: the overlap detector's input
    # label grid at EMBED_STEP_S; each grid point uses the window centred on it
    in_speech = _mask_from_segments(voiced, times)
    if in_speech.sum() == 0:
        in_speech = _mask_from_segments(speech, times)
        voiced = speech
    if in_speech.sum() == 0:
        return []
    sp_emb = emb[in_speech]
    if num_speakers is None:
        num_speakers = estimate_speaker_count(segment_voiceprints(times, emb, voiced), max_speakers)
    labels = _cluster(sp_emb, num_speakers)
    # drop tiny clusters (< 0.5 s of windows) into their nearest big cluster: noise, not a voice
    counts = np.bincount(labels)
    big = np.flatnonzero(counts * EMBED_STEP_S >= 0.5)
    if len(big) == 0:
        big = np.array([int(np.argmax(counts))])
    k_win = max(1, int(round(MEDIAN_FILTER_S / EMBED_STEP_S)) | 1)

    def smooth(s: np.ndarray) -> np.ndarray:
        if smoothing == "viterbi":
            return viterbi_labels(s, penalty)
        lab = np.argmax(s, axis=1)
        return median_filter(lab, size=k_win, mode="nearest") if len(lab) >= k_win else lab

    def centroids_of(lab: np.ndarray, ids, old=None, emb: np.ndarray | None = None) -> np.ndarray:
        # pure windows when the label runs allow it, else every window of the label; ``emb``:
        # the windows' d-vectors (default the 1.2 s ones, sp_emb)
        emb = sp_emb if emb is None else emb
        pure = pure_windows(lab, int(round(margin_s / EMBED_STEP_S)))
        members = []
        for k in ids:
            sel = (lab == k) & pure
            members.append(sel if sel.sum() >= 3 else lab == k)
        cs = unit_rows(np.stack([emb[sel].mean(0) if sel.any() else old[j] for j, sel in enumerate(members)]))
        if trim <= 0 or len(cs) < 2:
            return cs
        # confident windows only (CENTROID_TRIM): windows under a second voice or mislabelled
        # ones sit near the other centroid and drag this one towards it
        return unit_rows(np.stack([confident_mean(emb[sel], cs, j, trim) if sel.sum() >= 6 else cs[j]
                                   for j, sel in enumerate(members)]))

    centroids = centroids_of(labels, big)
    sims = sp_emb @ centroids.T  # (N, K)
    best = smooth(sims)
    for _ in range(c_passes):
        centroids = centroids_of(best, range(len(big)), centroids)
        sims = sp_emb @ centroids.T
        best = smooth(sims)
    passes = RESEGMENT_PASSES if resegment_passes is None else int(resegment_passes)
    if passes > 0:
        # resegmentation on the shorter-window grid: start from the clustering labels (nearest
        # grid time), then alternate centroid estimation and nearest-centroid + median filter
        times_c = times[in_speech]
        if frame_embeddings is not None:
            times, emb = frame_embeddings
        elif len(big) == 1:
            # one voice: every grid point gets label 0 whatever the embeddings say, so only the
            # grid is needed (the encoder pass on the resegmentation windows is ~40 % of the
            # stage's cost on single-speaker clips; the turns are identical)
            times, emb = window_centres(len(audio), RESEGMENT_WINDOW_S), None
        else:
            times, emb = speaker_embeddings(audio, window_s=RESEGMENT_WINDOW_S)
        in_speech = _mask_from_segments(voiced, times)
        if in_speech.sum() == 0:
            in_speech = _mask_from_segments(speech, times)
        if in_speech.sum() == 0:
            return []
        t = times[in_speech]
        after = np.clip(np.searchsorted(times_c, t), 0, len(times_c) - 1)
        before = np.maximum(after - 1, 0)
        best = best[np.where(np.abs(times_c[before] - t) <= np.abs(times_c[after] - t), before, after)]
        if emb is None:
            passes = 0
        else:
            sp_emb = emb[in_speech]
    for _ in range(passes):
        centroids = centroids_of(best, range(len(big)), centroids)
        sims = sp_emb @ centroids.T  # (N, K)
        best = smooth(sims)
    if (REFINE_CHANGES if refine is None else refine) and len(big) >= 2 and len(best) >= 3:
        # v6: re-place each speaker change on short-window d-vectors (refine_changes)
        t_lab = times[in_speech]
        if change_embeddings is None:
            change_embeddings = speaker_embeddings(audio, window_s=CHANGE_WINDOW_S)
        s_times, s_emb = change_embeddings
        nearest = np.clip(np.searchsorted(s_times, t_lab), 0, len(s_times) - 1)
        left = np.maximum(nearest - 1, 0)
        nearest = np.where(np.abs(s_times[left] - t_lab) <= np.abs(s_times[nearest] - t_lab), left, nearest)
        short = s_emb[nearest]
        if all((best == k).any() for k in range(len(big))):
            # short-window voice centroids from the confident, pure points of the current labels
            s_cent = centroids_of(best, range(len(big)), emb=short)
            best = refine_changes(t_lab, best, short @ s_cent.T, int(round(CHANGE_RADIUS_S / EMBED_STEP_S)),
                                  EMBED_STEP_S)
    full = np.full(len(times), -1)
    full[in_speech] = best
    # grid points in the speech regions but not voiced take the label of the nearest voiced one
    out_mask = _mask_from_segments(speech, times)
    labelled = np.flatnonzero(in_speech)
    fill = np.flatnonzero(out_mask & ~in_speech)
    if fill.size:
        pos = np.clip(np.searchsorted(labelled, fill), 1, len(labelled) - 1) if len(labelled) > 1 else np.zeros_like(fill)
        left, right = labelled[np.maximum(pos - 1, 0)], labelled[pos]
        nearest = np.where(np.abs(times[fill] - times[left]) <= np.abs(times[right] - times[fill]), left, right)
        full[fill] = full[nearest]
    # overlap: the second-closest voice is nearly as close as the closest and close in absolute terms
    second = np.full(len(times), -1)
    if (DETECT_OVERLAP if detect_overlap is None else detect_overlap) and sims.shape[1] >= 2:
        order = np.sort(sims, axis=1)
        o_margin = OVERLAP_MARGIN if overlap_margin is None else float(overlap_margin)
        o_min = OVERLAP_MIN_SIM if overlap_min_sim is None else float(overlap_min_sim)
        near_tie = (order[:, -1] - order[:, -2] < o_margin) & (order[:, -2] >= o_min)
        sec_idx = np.argsort(sims, axis=1)[:, -2]
        tmp = np.where(near_tie, sec_idx, -1)
        second[in_speech] = tmp
    o_thr = OVERLAP_THRESHOLD if overlap_threshold is None else float(overlap_threshold)
    if 0 < o_thr < 1 and len(big) >= 2 and sims.shape[0] == int(in_speech.sum()):
        # learnt overlap detector (curation.overlap): where it fires, the second voice is the
        # centroid closest after the point's own label
        if overlap_prob is None:
            from curation.overlap import overlap_probability

            overlap_prob = (times_1s2, overlap_probability(audio, times_1s2, emb_1s2))
        on = np.interp(times, overlap_prob[0], overlap_prob[1]) >= o_thr
        if len(on) >= 3:  # a lone grid point (0.1 s) is noise
            on = median_filter(on.astype(np.int8), size=3, mode="nearest").astype(bool)
        other = sims.copy()
        other[np.arange(len(best)), best] = -np.inf
        sec_idx = np.argmax(other, axis=1)
        gate = on[in_speech]
        min_sim = OVERLAP_MIN_SECOND_SIM if overlap_min_second_sim is None else float(overlap_min_second_sim)
        if min_sim > 0:  # the second voice must also be close to the window's d-vector
            gate = gate & (other[np.arange(len(best)), sec_idx] >= min_sim)
        second[in_speech] = np.where(gate, sec_idx, -1)
    half = EMBED_STEP_S / 2
    turns: list[tuple[float, float, str]] = []
    # each grid point covers [t - step/2, t + step/2); clip to the VAD segments
    for k in range(len(big)):
        for lab_mask in (full == k, second == k):  # second: voiced windows only
            for a, b in _runs(lab_mask):
                s, e = times[a] - half, times[b - 1] + half
                for vs, ve in speech:
                    lo, hi = max(s, vs), min(e, ve)
                    if hi - lo > 1e-3:
                        turns.append((lo, hi, f"SPEAKER_{k:02d}"))
    # speech before the first / after the last window centre belongs to the nearest label
    turns = _merge_same_speaker(turns)
    first_t, last_t = times[0] - half, times[-1] + half
    for vs, ve in speech:
        for lo, hi, idx in ((vs, min(ve, first_t), 0), (max(vs, last_t), ve, -1)):
            if hi - lo > 1e-3:
                cand = full[in_speech]
                turns.append((lo, hi, f"SPEAKER_{int(cand[idx]):02d}"))
    turn_bridge = TURN_BRIDGE_S if turn_bridge_s is None else float(turn_bridge_s)
    if turn_bridge > 0:
        return intervals.bridge_within_turns(turns, turn_bridge)
    return _merge_same_speaker(turns)


def _merge_same_speaker(turns: list[tuple[float, float, str]], gap: float = 1e-3) -> list[tuple[float, float, str]]:
    return intervals.merge_same_speaker(turns, gap)


def require_pyannote() -> None:
    """Raise with install instructions when pyannote.audio is not importable."""
    if importlib.util.find_spec("pyannote.audio") is None:
        raise RuntimeError(
            "diarization backend 'pyannote' needs pyannote.audio, which is not installed here and "
            "conflicts with this project's torch/numpy pins: create a separate environment with "
            "`pip install pyannote.audio==3.4.0`, and pass pyannote_pipeline=<local pipeline dir "
            "or hub name, e.g. pyannote/speaker-diarization-3.1> (hub names need network access "
            "and a Hugging Face token); or use backend='default'"
        )


def _diarize_pyannote(audio: np.ndarray, num_speakers: int | None, pipeline) -> list[tuple[float, float, str]]:
    require_pyannote()
    import torch
    from pyannote.audio import Pipeline

    if pipeline is None:
        raise ValueError("diarization backend 'pyannote' needs pyannote_pipeline=<path or hub name>")
    if isinstance(pipeline, (str, Path)):
        pipeline = Pipeline.from_pretrained(str(pipeline))
    kwargs = {"num_speakers": num_speakers} if num_speakers else {}
    ann = pipeline({"waveform": torch.from_numpy(audio[None, :]), "sample_rate": SR}, **kwargs)
    return [(round(seg.start, 3), round(seg.end, 3), str(spk)) for seg, _, spk in ann.itertracks(yield_label=True)]


def diarize(
    audio: np.ndarray,
    sr: int = SR,
    backend: str = "default",
    num_speakers: int | None = None,
    pyannote_pipeline=None,
    max_speakers: int = 4,
    speech: list[tuple[float, float]] | None = None,
    embeddings: tuple[np.ndarray, np.ndarray] | None = None,
    voiced: list[tuple[float, float]] | None = None,
    frame_embeddings: tuple[np.ndarray, np.ndarray] | None = None,
    detect_overlap: bool | None = None,
    resegment_passes: int | None = None,
    **tuning,
) -> list[tuple[float, float, str]]:
    """Speaker turns ``[(start_s, end_s, speaker), ...]`` sorted by start; overlapped speech
    appears as turns of different speakers that overlap in time. ``speech``: the regions to
    label (``vad_segments``: bridged and padded), computed when not given; ``voiced``: silero's
    raw segments (``raw_vad_segments``), from which voices are learnt (default: ``speech``);
    ``embeddings`` (``speaker_embeddings(audio)``) and ``frame_embeddings``
    (``speaker_embeddings(audio, window_s=RESEGMENT_WINDOW_S)``, the resegmentation grid) may be
    passed when the same audio is diarized several times. ``detect_overlap`` (default
    ``DETECT_OVERLAP``) switches the near-tie overlap heuristic; ``resegment_passes`` (default
    ``RESEGMENT_PASSES``) the resegmentation on ``RESEGMENT_WINDOW_S`` windows. ``tuning``
    overrides the other module defaults for calibration: ``centroid_margin_s``
    (CENTROID_MARGIN_S), ``centroid_passes``, ``smoothing`` ("median" / "viterbi"),
    ``switch_penalty``, ``overlap_margin``, ``overlap_min_sim``, ``turn_bridge_s``
    (TURN_BRIDGE_S), ``overlap_threshold`` (OVERLAP_THRESHOLD: the learnt overlap detector,
    ``curation.overlap``; >= 1 = off) and ``overlap_prob`` (its ``(times, probabilities)`` on the
    1.2 s d-vector grid, when already computed), ``refine`` (REFINE_CHANGES: speaker changes
    re-placed on short-window d-vectors, v6) and ``change_embeddings``
    (``speaker_embeddings(audio, window_s=CHANGE_WINDOW_S)``, when already computed)."""
    wav = _to_16k(audio, sr)
    if backend in ("default", "resemblyzer"):
        return _diarize_resemblyzer(wav, num_speakers, max_speakers, speech, embeddings, voiced,
                                    frame_embeddings, detect_overlap, resegment_passes, **tuning)
    if backend == "pyannote":
        return _diarize_pyannote(wav, num_speakers, pyannote_pipeline)
    raise ValueError(f"unknown diarization backend {backend!r}; use 'default' or 'pyannote'")


# --------------------------------------------------------------------------------------------
# Overlaps and regrouping


def remove_overlaps(
    turns: Sequence[tuple[float, float, str]],
) -> tuple[list[tuple[float, float, str]], list[tuple[float, float]]]:
    """Split turns into clean single-speaker pieces and the regions where two or more speakers
    talk at once. Returns ``(clean_turns, overlap_regions)`` (pyannote.core algebra)."""
    return intervals.remove_overlaps(turns)


def regroup(
    turns: Sequence[tuple],
    mean_s: float = 4.0,
    std_s: float = 0.5,
    seed: int = 0,
    max_gap_s: float = 1.0,
    min_s: float | None = None,
    barriers: Sequence[tuple[float, float]] = (),
) -> list[tuple[float, float]]:
    """Regroup consecutive clean speech into spans whose lengths are drawn from
    N(mean_s, std_s) (clipped to mean +- 3 std), the AnyTalker recipe.

    ``turns`` are ``(start, end)`` or ``(start, end, speaker)``. Consecutive turns join one
    group while they belong to the same speaker and the pause between them is at most
    ``max_gap_s``; a group longer than the drawn length is cut there and the remainder starts
    the next span. A ``barriers`` region (e.g. removed overlapped speech) lying between two
    turns also ends a group, so no span contains it. Spans shorter than ``min_s`` (default
    mean - 3 std) are dropped. Lengths are
    drawn in order from ``numpy.random.default_rng(seed)``, so the same seed gives the same spans.
    """
    rng = np.random.default_rng(seed)
    lo_len, hi_len = max(0.1, mean_s - 3 * std_s), mean_s + 3 * std_s
    min_len = lo_len if min_s is None else min_s

    def draw() -> float:
        return float(np.clip(rng.normal(mean_s, std_s), lo_len, hi_len))

    # chains of consecutive same-speaker turns separated by short pauses
    norm = sorted((float(t[0]), float(t[1]), t[2] if len(t) > 2 else None) for t in turns)
    chains: list[list[tuple[float, float]]] = []
    last_spk = object()
    for s, e, k in norm:
        if e <= s:
            continue
        prev_end = chains[-1][-1][1] if chains else None
        blocked = prev_end is not None and any(bs < s + 1e-6 and be > prev_end - 1e-6 for bs, be in barriers)
        if chains and k == last_spk and s - prev_end <= max_gap_s and not blocked:
            chains[-1].append((s, e))
        else:
            chains.append([(s, e)])
        last_spk = k
    out: list[tuple[float, float]] = []
    target = draw()
    for chain in chains:
        start = chain[0][0]
        end_of_chain = chain[-1][1]
        while end_of_chain - start >= target:
            cut = start + target
            # never end a span in a pause: move the cut back to the end of the speech before it
            inside = [e for s, e in chain if e <= cut and e > start]
            in_seg = any(s < cut <= e for s, e in chain)
            end = cut if in_seg else (max(inside) if inside else cut)
            if end - start >= min_len:
                out.append((round(start, 3), round(end, 3)))
            # next span starts at the next speech at or after the cut
            nxt = [max(s, end) for s, e in chain if e > end + 1e-6]
            if not nxt:
                start = end_of_chain
                break
            start = min(nxt)
            target = draw()
        if end_of_chain - start >= min_len:
            out.append((round(start, 3), round(end_of_chain, 3)))
            target = draw()
    return out
