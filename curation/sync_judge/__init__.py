"""Learned offline lip-sync judge (the ``judge`` sync backend).

A small SyncNet-style pair of networks (``model.SyncJudgeNet``, ~0.29 M parameters per seed, width 80)
trained by this project's own code (``anytalker train sync-judge``, ``train.py``) on public
talking clips: eye-aligned mouth landmarks of the mediapipe mesh against log-mel audio, with
time-shifted and foreign audio as negatives. The shipped weights (``weights/*.pt``) carry their
training clips with sha256 and the command that made them; the model card is
``docs/sync_judge.md``.

The distance curve keeps joonson's definitions (``curation.sync``): ``dists[j]`` = 1 - mean
cosine similarity between the lip embedding of frame i and the audio embedding of frame
i + j - vshift, averaged over the seeds of the ensemble; ``conf = median - min``,
``offset = vshift - argmin``. Its scale is its own: never call it Sync-C.

Rules on top of the curve (``judge_decision``):

* a static mouth (``lip_motion`` below ``STATIC_LIP_MOTION``) never passes: ``static_mouth``
  and the score of a non-talking face (conf 0);
* a window whose audio holds less than ``MIN_SPEECH_FRAC`` speech (silero-vad) is
  ``no_speech``, not a sync failure;
* else ``conf >= min_conf`` and ``|offset| <= max_abs_offset``.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

WEIGHTS_DIR = Path(__file__).parent / "weights"
# A mouth whose inner-lip opening (in inter-ocular units) varies by less than this between its
# 10th and 90th percentile does not talk. Measured (docs/calibration.md): the least mobile of
# the 130 4 s windows of in-sync talking clips in the shared eval set 0.046 (whole clips >= 0.068),
# a face over non-speech audio 0.002, a frozen first frame ~0.
STATIC_LIP_MOTION = 0.02
MIN_SPEECH_FRAC = 0.2


def lip_motion(opening: np.ndarray) -> float:
    """Spread (90th - 10th percentile) of the inner-lip opening over the frames that have it."""
    x = np.asarray(opening, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 5:
        return 0.0
    return float(np.percentile(x, 90) - np.percentile(x, 10))


def speech_fraction(audio: np.ndarray, sr: int = 16000) -> float:
    """Share of the audio's duration that silero-vad calls speech."""
    from curation.audio import vad_segments

    dur = len(audio) / sr
    if dur <= 0:
        return 0.0
    return float(sum(e - s for s, e in vad_segments(audio, sr)) / dur)


def _load(path: Path):
    import torch

    from curation.sync_judge.model import SyncJudgeNet

    payload = torch.load(str(path), map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != "anytalker-sync-judge-1":
        raise ValueError(f"{path}: not a sync-judge weights file (train one with `anytalker train sync-judge`)")
    net = SyncJudgeNet(width=int(payload["config"]["width"]), crops=bool(payload["config"].get("crops", False)))
    net.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    net.eval()
    return net, payload


@functools.lru_cache(maxsize=4)
def load_ensemble(weights: tuple[str, ...] | None = None):
    """(nets, version) of the given weight files, default: every ``weights/*.pt`` shipped."""
    files = [Path(w) for w in weights] if weights else sorted(WEIGHTS_DIR.glob("*.pt"))
    if not files:
        raise FileNotFoundError(f"no sync-judge weights in {WEIGHTS_DIR}; train them with `anytalker train sync-judge`")
    nets, h = [], hashlib.sha256()
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: sync-judge weights not found")
        nets.append(_load(f)[0])
        h.update(f.read_bytes())
    return nets, h.hexdigest()[:12]


def similarity_curve(nets, lips: np.ndarray, audio_feats: np.ndarray, valid: np.ndarray, vshift: int,
                     audio_lead: int = 0, crops: np.ndarray | None = None) -> np.ndarray:
    """(2*vshift+1, T) cosine similarity of lip frame t with audio frame t + j - vshift, mean over
    the ensemble; NaN where that audio frame does not exist or t is not valid.

    ``audio_feats`` may hold audio context around the lips: lip frame t's own instant is audio
    frame ``t + audio_lead`` (``audio_lead`` frames of audio before the first lip frame, and as
    many after the last as ``audio_feats`` holds). With ``vshift`` frames of context on each side
    every lip frame is compared at every offset, so a short window loses no evidence to the
    search (``common_support``). ``crops``: (T, CROP_H, CROP_W) mouth crops, needed by nets
    trained with them (``TrainConfig.crops``)."""
    import torch

    t = len(lips)
    n_audio = len(audio_feats)
    with torch.no_grad():
        lt = torch.tensor(lips[None], dtype=torch.float32)
        mt = torch.tensor(np.asarray(valid, bool)[None])
        at = torch.tensor(audio_feats[None], dtype=torch.float32)
        ct = None if crops is None else torch.tensor(np.asarray(crops)[None], dtype=torch.float32)
        sims = np.zeros((2 * vshift + 1, t))
        idx = np.arange(t)
        for net in nets:
            v = (net.embed_lips(lt, mt, ct) if getattr(net, "uses_crops", False) else net.embed_lips(lt, mt))[0].numpy()
            a = net.embed_audio(at)[0].numpy()
            full = v @ a.T  # (T, T_audio)
            for j in range(2 * vshift + 1):
                src = idx + (j - vshift) + audio_lead
                ok = (src >= 0) & (src < n_audio)
                row = np.full(t, np.nan)
                row[ok] = full[idx[ok], src[ok]]
                sims[j] += row
    sims /= len(nets)
    sims[:, ~np.asarray(valid, bool)] = np.nan
    return sims


# Fewest frames scored at every offset for the distance curve to use only those frames.
MIN_COMMON_FRAMES = 25


def common_support(sims: np.ndarray, min_frames: int = MIN_COMMON_FRAMES) -> np.ndarray:
    """``sims`` restricted to the frames scored at every offset (when there are ``min_frames``
    of them; else unchanged).

    Why: near the ends of a track a large offset points outside the audio, so the far offsets
    would be averaged over fewer (and edge-padded) frames than the near ones. Measured on the
    validity suite, such noisier far-offset means beat the true offset on periodic speech
    (a clip advanced by 8 frames read -11 instead of +10): every offset must be judged on the
    same frames."""
    ok = np.isfinite(sims).all(0)
    if ok.sum() < min_frames or ok.all():
        return sims
    out = sims.copy()
    out[:, ~ok] = np.nan
    return out


def curve_from_sims(sims: np.ndarray, frames: slice | np.ndarray | None = None) -> np.ndarray:
    """Distance curve (1 - mean similarity) over the chosen frames, on their common support."""
    s = common_support(sims if frames is None else sims[:, frames])
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(s)
        n = finite.sum(1)
        m = np.where(n > 0, np.where(finite, s, 0.0).sum(1) / np.maximum(n, 1), np.nan)
    return 1.0 - np.where(np.isfinite(m), m, 0.0)


def curve_at(curve: np.ndarray, offset: int) -> tuple[float, float]:
    """(conf, dist) of a distance curve read at a given offset (joonson's sign): the confidence
    of a window judged at its track's offset."""
    c = np.asarray(curve, dtype=np.float64)
    vshift = (len(c) - 1) // 2
    j = int(np.clip(vshift - int(offset), 0, len(c) - 1))
    return float(np.median(c) - c[j]), float(c[j])


class JudgeSync:
    """``curation.sync`` backend ``judge``: needs ``SyncInput.lips`` (``features.lip_features``)."""

    name = "judge"
    needs = "lips"
    audio_context = True  # audio around the track (SyncInput.audio_lead) is compared too
    min_frames = 25

    def __init__(self, weights: str | list[str] | None = None):
        files = tuple([weights] if isinstance(weights, str) else weights) if weights else None
        self.nets, digest = load_ensemble(files)
        if any(getattr(n, "uses_crops", False) for n in self.nets):
            raise ValueError(f"{', '.join(files or ('weights/',))}: a sync judge trained with mouth crops "
                             "(`train sync-judge --crops`) is not wired into av_sync / the metrics yet; "
                             "use landmark weights (train without --crops)")
        self.version = f"1 ensemble:{len(self.nets)}@{digest}"

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def distance_curve(self, inp, vshift: int) -> tuple[np.ndarray, int]:
        if inp.lips is None:
            raise ValueError("judge sync needs SyncInput.lips (curation.sync_judge.features.lip_features)")
        if abs(inp.fps - 25.0) > 1e-3:
            raise ValueError(f"the sync judge works at 25 fps; got fps={inp.fps}")
        sims, n_valid = track_sims(self.nets, inp.lips, inp.audio, vshift, valid=inp.valid,
                                   audio_lead=int(getattr(inp, "audio_lead", 0) or 0))
        if n_valid < self.min_frames:
            raise ValueError(f"only {n_valid} valid frames with a mouth mesh (need {self.min_frames})")
        return curve_from_sims(sims), n_valid


def track_sims(nets, lips: np.ndarray, audio: np.ndarray, vshift: int, valid: np.ndarray | None = None,
               audio_lead: int = 0, crops: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(similarity_curve of one face track, number of valid frames). ``lips``: (T, LIP_DIM) with
    NaN rows where the mesh is missing; ``audio``: 16 kHz, sample ``audio_lead * 640`` is lip
    frame 0's instant; audio beyond the lips (up to ``vshift`` frames each side) is used as
    context, audio missing at the end is not padded (those comparisons are absent, not silent)."""
    from curation.sync_judge.features import FPS, SR, audio_features, fill_gaps

    filled, seen = fill_gaps(np.asarray(lips, dtype=np.float32))
    ok = seen if valid is None else (np.asarray(valid, bool)[:len(seen)] & seen)
    if len(ok) < len(seen):
        ok = np.concatenate([ok, np.zeros(len(seen) - len(ok), bool)])
    hop = int(round(SR / FPS))
    lead = max(0, int(audio_lead))
    n_audio = max(1, min(len(audio) // hop, lead + len(filled) + vshift))
    feats = audio_features(audio, n_audio)
    return similarity_curve(nets, filled, feats, ok, vshift, audio_lead=lead, crops=crops), int(ok.sum())


def judge_decision(conf: float, offset: int, motion: float, speech: float, min_conf: float,
                   max_abs_offset: int) -> tuple[bool, str | None]:
    """The filter's rule for one judged face/voice pair: (accepted, reason code or None)."""
    if motion < STATIC_LIP_MOTION:
        return False, "static_mouth"
    if speech < MIN_SPEECH_FRAC:
        return False, "no_speech"
    if conf < min_conf:
        return False, "low_sync"
    if abs(offset) > max_abs_offset:
        return False, "sync_offset"
    return True, None
