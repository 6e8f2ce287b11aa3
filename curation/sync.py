"""Audio-visual lip-sync scoring with joonson's SyncNet definitions for every backend.

For offsets ``-vshift..+vshift`` (frames at 25 fps) a backend gives one distance per offset:
``dists[j]`` = mean over scored frames ``i`` of the distance between the video feature of frame
``i`` and the audio feature of frame ``i + j - vshift`` (``calc_pdist`` in joonson's
``SyncNetInstance.py``). Then, exactly as joonson: ``min_dist = min(dists)``,
``conf = median(dists) - min_dist``, ``offset = vshift - argmin(dists)``.

Sign convention (joonson's): positive offset = audio leads video. If the audio track is delayed
by k frames relative to the picture (the sound of a syllable arrives k frames after the lips
move) the best match of video frame i is audio frame i + k, so ``offset = -k``.

Backends:

* ``judge`` (offline default): the learned sync judge of ``curation.sync_judge`` (eye-aligned
  mouth landmarks vs. log-mel audio, weights trained by this project and shipped in the
  package); its conf is on its own scale and is reported as ``lipsync_judge`` / LSE-J, never as
  Sync-C.
* ``landmark`` (no weights, kept for comparison): the video feature is the normalised inner-lip
  opening from ``curation.faces`` and its derivative; the audio features are 6 log band
  energies of each 640-sample (40 ms) frame of 16 kHz audio and their derivatives. For each
  offset the lip signals are predicted from the shifted audio features by cross-validated ridge
  regression and ``dist = 1 - correlation(prediction, lip signal)`` (see ``LandmarkSync``). ``conf`` is on its
  own scale (0..2, not SyncNet's): thresholds are calibrated separately (docs/calibration.md).
* ``syncnet``: the real SyncNet network ``syncnet_python.SyncNetModel.S`` with joonson's
  ``syncnet_v2.model`` weights (a torch-saved state dict, loaded by name like joonson's
  ``loadParameters``), MFCC from python_speech_features, 224x224 face crops made from our own
  face tracks at 25 fps (``face_crops_for_syncnet``), BGR channel order like joonson's cv2 input.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AUDIO_SR = 16000
SYNC_FPS = 25.0
MIN_SCORED_FRAMES = 20  # SyncNet: fewer valid 5-frame windows than this give no meaningful curve


@dataclass
class SyncInput:
    audio: np.ndarray  # mono float32 16 kHz, sample 0 aligned with frame 0
    fps: float = SYNC_FPS
    mouth_open: np.ndarray | None = None  # (T,) landmark backend
    face_crops: np.ndarray | None = None  # (T, 224, 224, 3) uint8 RGB, syncnet backend
    lips: np.ndarray | None = None  # (T, LIP_DIM) eye-aligned lip landmarks, judge backend
    valid: np.ndarray | None = None  # (T,) bool frames to score; None = all
    # audio frames (40 ms) held in ``audio`` before frame 0's instant: context for the offset
    # search, used by backends with ``audio_context``; the others get the audio cut at frame 0
    audio_lead: int = 0


@dataclass
class SyncResult:
    offset: int
    conf: float
    min_dist: float
    dists: list[float]
    backend: str
    version: str
    n_frames: int

    def to_dict(self) -> dict:
        return {
            "offset": self.offset,
            "conf": self.conf,
            "min_dist": self.min_dist,
            "dists": list(self.dists),
            "backend": self.backend,
            "version": self.version,
            "n_frames": self.n_frames,
        }


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _curve_stats(dists: np.ndarray, vshift: int) -> tuple[int, float, float]:
    """joonson: offset = vshift - argmin, conf = median - min, min_dist = min."""
    j = int(np.argmin(dists))
    min_dist = float(dists[j])
    return vshift - j, float(np.median(dists)) - min_dist, min_dist


class SyncBackend:
    name: str = ""
    version: str = ""
    needs: str = ""  # "mouth_open" or "face_crops"
    audio_context: bool = False  # uses SyncInput.audio beyond the video's frames (audio_lead)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def distance_curve(self, inp: SyncInput, vshift: int) -> tuple[np.ndarray, int]:
        """(dists over 2*vshift+1 offsets, number of frames scored)."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# landmark backend


def _zscore(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = x[mask]
    sd = float(m.std()) if m.size else 0.0
    return (x - (float(m.mean()) if m.size else 0.0)) / (sd if sd > 1e-8 else 1.0)


def _fill_nan(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).copy()
    ok = np.isfinite(x)
    if ok.sum() == 0:
        return np.zeros_like(x)
    if not ok.all():
        x[~ok] = np.interp(np.flatnonzero(~ok), np.flatnonzero(ok), x[ok])
    return x


LANDMARK_BANDS_HZ = (80.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)


def audio_band_energies(audio: np.ndarray, n_frames: int, fps: float = SYNC_FPS, sr: int = AUDIO_SR,
                        edges_hz=LANDMARK_BANDS_HZ) -> np.ndarray:
    """(n_frames, len(edges)-1) log energies of each band in each video frame's audio: frame t
    owns samples [t*sr/fps, (t+1)*sr/fps) (640 samples at 16 kHz / 25 fps), Hann-windowed."""
    hop = sr / fps
    win = int(round(hop))
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    need = int(np.ceil(n_frames * hop)) + win
    if audio.size < need:
        audio = np.pad(audio, (0, need - audio.size))
    starts = np.round(np.arange(n_frames) * hop).astype(int)
    frames = audio[starts[:, None] + np.arange(win)[None, :]] * np.hanning(win)[None, :]
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(win, 1.0 / sr)
    bands = [spec[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in zip(edges_hz[:-1], edges_hz[1:])]
    energy = np.stack(bands, 1)
    # floor 20 dB under each band's mean: digital silence (padding, gated audio) must not turn
    # into extreme log values that dominate the regression
    return np.log(energy + 0.01 * energy.mean(0, keepdims=True) + 1e-10)


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(0)
    return (x - x.mean(0)) / np.where(sd > 1e-8, sd, 1.0)


def _cv_prediction_corr(y: np.ndarray, x: np.ndarray, folds: int, ridge: float) -> float:
    """Correlation between ``y`` and its blocked ``folds``-fold cross-validated ridge prediction
    from ``x``: out-of-fold, so a feature set that merely fits noise scores about 0."""
    y = _standardise(y[:, None])[:, 0]
    x = _standardise(x)
    n = len(y)
    pred = np.zeros(n)
    eye = np.eye(x.shape[1])
    for test in np.array_split(np.arange(n), folds):
        train = np.setdiff1d(np.arange(n), test)
        xt = x[train]
        w = np.linalg.solve(xt.T @ xt + ridge * len(train) * eye, xt.T @ y[train])
        pred[test] = x[test] @ w
    if pred.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(pred, y)[0, 1])


class LandmarkSync(SyncBackend):
    """Mouth opening vs. audio spectrum, in the spirit of FaceSync (Slaney & Covell, NIPS 2000).

    For each offset, the lip opening of the scored frames and its temporal derivative are each
    predicted from the audio frames at that offset (6 log band energies 80-8000 Hz and their
    temporal derivatives) by ridge regression, cross-validated over 2 contiguous blocks;
    ``dist = 1 - mean(corr(prediction, target))`` over the two targets. Learning the mapping per clip copes with talkers whose lips do not simply open
    with loudness (one shared clip's opening is anti-correlated with plain loudness at lag 0);
    cross-validation keeps a mapping fitted to noise near dist 1. Parameters were chosen on the
    shared talking clips in 4 s windows (docs/calibration.md).
    """

    name = "landmark"
    version = "3"
    needs = "mouth_open"
    folds = 2
    ridge = 0.2
    min_frames = 50  # 2 s at 25 fps: the regression has 12 inputs

    def distance_curve(self, inp: SyncInput, vshift: int) -> tuple[np.ndarray, int]:
        if inp.mouth_open is None:
            raise ValueError("landmark sync needs SyncInput.mouth_open (per-frame lip opening)")
        mouth_raw = np.asarray(inp.mouth_open, dtype=np.float64)
        t = len(mouth_raw)
        seen = np.isfinite(mouth_raw)
        valid = seen if inp.valid is None else (np.asarray(inp.valid, bool)[:t] & seen)
        if len(valid) < t:
            valid = np.concatenate([valid, np.zeros(t - len(valid), bool)])
        if valid.sum() < self.min_frames:
            raise ValueError(f"only {int(valid.sum())} valid frames with a visible mouth "
                             f"(need {self.min_frames})")
        mouth = _fill_nan(mouth_raw)
        velocity = np.gradient(mouth)
        bands = audio_band_energies(inp.audio, t, inp.fps)
        feats = np.concatenate([bands, np.gradient(bands, axis=0)], 1)
        idx = np.flatnonzero(valid)
        dists = np.empty(2 * vshift + 1)
        for j in range(2 * vshift + 1):
            k = j - vshift  # video frame i is compared with audio frame i + k
            i = idx[(idx + k >= 0) & (idx + k < t)]
            if i.size < self.min_frames // 2:
                dists[j] = 1.0
                continue
            dists[j] = 1.0 - 0.5 * (_cv_prediction_corr(mouth[i], feats[i + k], self.folds, self.ridge)
                                    + _cv_prediction_corr(velocity[i], feats[i + k], self.folds, self.ridge))
        return dists, int(valid.sum())


# --------------------------------------------------------------------------------------------
# syncnet backend


class SyncNetWeightsError(ValueError):
    """The file given as SyncNet weights is not joonson's syncnet_v2.model format."""


def load_syncnet(weights: str | Path):
    """``syncnet_python.SyncNetModel.S`` with parameters copied by name from a torch-saved state
    dict (joonson's ``SyncNetInstance.loadParameters``). Raises SyncNetWeightsError on a
    missing or wrong file."""
    import torch
    from syncnet_python.SyncNetModel import S

    path = Path(weights)
    hint = ("expected joonson's syncnet_v2.model (a torch-saved state dict of SyncNetModel.S; "
            "get it with syncnet_python's download_model.sh)")
    if not path.is_file():
        raise SyncNetWeightsError(f"{path}: SyncNet weights not found; {hint}")
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # pickle / zip errors differ per torch version
        raise SyncNetWeightsError(f"{path}: cannot be read by torch.load ({type(e).__name__}: {e}); {hint}") from e
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.state_dict()
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise SyncNetWeightsError(f"{path}: holds {type(loaded).__name__}, not a state dict of tensors; {hint}")
    net = S(num_layers_in_fc_layers=1024)
    state = net.state_dict()
    missing = sorted(set(state) - set(loaded))
    unknown = sorted(set(loaded) - set(state))
    if missing or unknown:
        raise SyncNetWeightsError(
            f"{path}: parameter names do not match SyncNetModel.S (missing {missing[:3]}..., "
            f"unexpected {unknown[:3]}...); {hint}")
    with torch.no_grad():
        for name, param in loaded.items():
            if state[name].shape != param.shape:
                raise SyncNetWeightsError(
                    f"{path}: {name} has shape {tuple(param.shape)}, S expects {tuple(state[name].shape)}; {hint}")
            state[name].copy_(param)
    net.eval()
    return net


class SyncNetSync(SyncBackend):
    name = "syncnet"
    needs = "face_crops"

    def __init__(self, weights: str | Path, batch_size: int = 20):
        import hashlib

        self.net = load_syncnet(weights)
        self.batch_size = batch_size
        self._cache = None
        digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:12]
        # the weights are part of what made a result: name them in the version
        self.version = f"syncnet_python {_version('syncnet-python')} weights:{Path(weights).name}@{digest}"

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def features(self, crops_rgb: np.ndarray, audio: np.ndarray):
        """joonson's evaluate(): 5-frame lip windows and 20-step MFCC windows -> embeddings."""
        import python_speech_features
        import torch

        # joonson reads frames with cv2 (BGR) and the wav as int16
        im = np.ascontiguousarray(crops_rgb[..., ::-1]).astype(np.float32)
        imtv = torch.from_numpy(np.transpose(im, (3, 0, 1, 2))[None])  # (1, 3, T, H, W)
        pcm = np.clip(np.asarray(audio, np.float64) * 32768.0, -32768, 32767)
        mfcc = np.stack([np.array(i) for i in zip(*python_speech_features.mfcc(pcm, AUDIO_SR))])
        cct = torch.from_numpy(mfcc[None, None].astype(np.float32))  # (1, 1, 13, N)
        min_length = min(len(crops_rgb), int(np.floor(len(audio) / 640)))
        lastframe = min_length - 5
        if lastframe <= 0:
            return None, None
        im_feat, cc_feat = [], []
        with torch.no_grad():
            for i in range(0, lastframe, self.batch_size):
                rng = range(i, min(lastframe, i + self.batch_size))
                im_feat.append(self.net.forward_lip(torch.cat([imtv[:, :, f:f + 5] for f in rng], 0)))
                cc_feat.append(self.net.forward_aud(torch.cat([cct[:, :, :, f * 4:f * 4 + 20] for f in rng], 0)))
        return torch.cat(im_feat, 0), torch.cat(cc_feat, 0)

    def distance_curve(self, inp: SyncInput, vshift: int) -> tuple[np.ndarray, int]:
        import torch
        from syncnet_python.SyncNetInstance import calc_pdist

        if inp.face_crops is None:
            raise ValueError("syncnet sync needs SyncInput.face_crops ((T, 224, 224, 3) uint8)")
        if abs(inp.fps - SYNC_FPS) > 1e-3:
            raise ValueError(f"syncnet works at 25 fps; got fps={inp.fps}")
        # av_sync scores one face against several voices = the same crops and mix with different
        # valid masks: compute the towers once (the cache holds the arrays, so ids stay unique)
        cached = self._cache
        if cached is not None and cached[0] is inp.face_crops and cached[1] is inp.audio:
            im_feat, cc_feat = cached[2]
        else:
            im_feat, cc_feat = self.features(inp.face_crops, inp.audio)
            self._cache = (inp.face_crops, inp.audio, (im_feat, cc_feat))
        if im_feat is None:
            raise ValueError(f"clip too short for SyncNet: {len(inp.face_crops)} frames")
        dists = torch.stack(calc_pdist(im_feat, cc_feat, vshift=vshift), 1)  # (2v+1, N)
        n = dists.shape[1]
        # window i covers frames i..i+4: score it when its centre frame is valid
        keep = np.ones(n, bool)
        if inp.valid is not None:
            centre = np.asarray(inp.valid, bool)[2:2 + n]
            keep[:] = False
            keep[:len(centre)] = centre
        if keep.sum() < MIN_SCORED_FRAMES:
            raise ValueError(f"only {int(keep.sum())} valid SyncNet windows (need {MIN_SCORED_FRAMES})")
        mdist = dists[:, torch.from_numpy(keep)].mean(1)
        return mdist.numpy().astype(np.float64), int(keep.sum())


DEFAULT_BACKEND = "judge"
BACKENDS = ("judge", "landmark", "syncnet")


def get_sync_backend(name: str = DEFAULT_BACKEND, weights: str | None = None) -> SyncBackend:
    if name == "judge":
        from curation.sync_judge import JudgeSync

        return JudgeSync(weights)  # shipped weights unless a sync-judge .pt is given
    if name == "landmark":
        return LandmarkSync()
    if name == "syncnet":
        if not weights:
            raise ValueError(
                "sync backend 'syncnet' needs weights=<path to joonson's syncnet_v2.model> "
                "(not downloadable here: no network); use backend 'judge' (offline default) otherwise")
        return SyncNetSync(weights)
    raise ValueError(f"unknown sync backend {name!r}; use one of {', '.join(BACKENDS)}")


def sync_score(backend: SyncBackend, inp: SyncInput, vshift: int = 15) -> SyncResult:
    """Distance curve over offsets -vshift..+vshift and joonson's offset / conf / min_dist."""
    if inp.audio_lead and not getattr(backend, "audio_context", False):
        import dataclasses

        cut = int(round(inp.audio_lead * AUDIO_SR / inp.fps))
        inp = dataclasses.replace(inp, audio=np.asarray(inp.audio)[cut:], audio_lead=0)
    dists, n = backend.distance_curve(inp, vshift)
    offset, conf, min_dist = _curve_stats(dists, vshift)
    return SyncResult(offset=offset, conf=round(conf, 4), min_dist=round(min_dist, 4),
                      dists=[round(float(d), 4) for d in dists], backend=backend.name,
                      version=backend.version, n_frames=n)


# --------------------------------------------------------------------------------------------
# crops


def _smooth_boxes(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """joonson's crop geometry: half-size s and centre (x, y), NaN-filled, median filtered (13)."""
    from scipy.signal import medfilt

    b = np.asarray(boxes, dtype=np.float64)
    s = _fill_nan(np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2)
    x = _fill_nan((b[:, 0] + b[:, 2]) / 2)
    y = _fill_nan((b[:, 1] + b[:, 3]) / 2)
    k = min(13, len(s) if len(s) % 2 else len(s) - 1)
    if k >= 3:
        s, x, y = (medfilt(v, k) for v in (s, x, y))
    return s, x, y


def face_crops_for_syncnet(video_path, frame_indices, boxes, crop_scale: float = 0.4) -> np.ndarray:
    """(T, 224, 224, 3) uint8 RGB crops of one face track, joonson's ``crop_video`` geometry
    (box half-size bs, border 110 grey, crop [y-bs, y+bs(1+2cs)] x [x-bs(1+cs), x+bs(1+cs)])."""
    import cv2

    from curation.media import VideoReader

    idx = np.asarray(frame_indices, dtype=int)
    b = np.array([[np.nan] * 4 if bb is None else bb for bb in boxes], dtype=np.float64)
    if len(idx) != len(b):
        raise ValueError(f"{len(idx)} frame indices but {len(b)} boxes")
    if not np.isfinite(b).any():
        raise ValueError("no box in the track")
    s, x, y = _smooth_boxes(b)
    frames = VideoReader(video_path).get(idx)
    out = np.empty((len(idx), 224, 224, 3), np.uint8)
    for i, img in enumerate(frames):
        bs = float(s[i])
        pad = int(bs * (1 + 2 * crop_scale))
        img_p = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(110, 110, 110))
        my, mx = y[i] + pad, x[i] + pad
        y1, y2 = int(my - bs), int(my + bs * (1 + 2 * crop_scale))
        x1, x2 = int(mx - bs * (1 + crop_scale)), int(mx + bs * (1 + crop_scale))
        out[i] = cv2.resize(img_p[max(0, y1):y2, max(0, x1):x2], (224, 224))
    return out
