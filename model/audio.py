"""Audio front ends: one feature vector per video frame.

* ``logmel`` (offline default): log-mel filterbank (python_speech_features) at 100 Hz,
  per-utterance mean/variance normalised, linearly resampled to ``mels_per_frame`` mel frames
  per video frame and flattened -> ``n_mels * mels_per_frame`` features per video frame.
* ``wav2vec2``: the paper's front end (frozen wav2vec2-base, all hidden states). A local
  Hugging Face directory is loaded with ``transformers`` (not installed here: the error says to
  ``pip install transformers``); a ``.pt`` file holds the state dict of ``SmallWav2Vec2``, a
  wav2vec2-style module defined below (conv feature encoder + transformer), for own checkpoints.

``frame_windows`` stacks offsets -w//2..+w//2 (edge-clamped) per frame for the audio projector.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

AUDIO_SR = 16000


class AudioBackendError(RuntimeError):
    """The audio front end cannot be built; the message names the file and what to do."""


def frame_windows(feats: np.ndarray | torch.Tensor, window: int = 5):
    """(T, F) -> (T, window, F): frames t-w//2..t+w//2, indices clamped to [0, T-1]."""
    t = feats.shape[0]
    r = window // 2
    idx = np.clip(np.arange(t)[:, None] + np.arange(-r, r + 1)[None, :], 0, max(t - 1, 0))
    if isinstance(feats, torch.Tensor):
        return feats[torch.from_numpy(idx)]
    return feats[idx]


def _resample_time(x: np.ndarray, n_out: int) -> np.ndarray:
    """Linear interpolation of (N, F) along time to (n_out, F) covering the same span."""
    n = x.shape[0]
    if n == 0:
        return np.zeros((n_out, x.shape[1]), np.float32)
    src = (np.arange(n_out) + 0.5) * n / n_out - 0.5
    src = np.clip(src, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (src - lo)[:, None]
    return ((1 - w) * x[lo] + w * x[hi]).astype(np.float32)


class LogMelFrontend:
    name = "logmel"

    def __init__(self, n_mels: int = 40, mels_per_frame: int = 4):
        import python_speech_features

        self.n_mels = int(n_mels)
        self.mels_per_frame = int(mels_per_frame)
        self.version = f"python_speech_features-{getattr(python_speech_features, '__version__', '0.6')}"

    @property
    def feature_dim(self) -> int:
        return self.n_mels * self.mels_per_frame

    def __call__(self, audio: np.ndarray, num_frames: int, fps: float, sr: int = AUDIO_SR) -> np.ndarray:
        """Mono float32 audio starting at video frame 0 -> (num_frames, feature_dim)."""
        from python_speech_features import logfbank

        need = int(math.ceil(num_frames / fps * sr))
        a = np.zeros(need, np.float32)
        a[: min(need, len(audio))] = audio[:need]
        # nfft 512 covers the 25 ms window at 16 kHz; low floor keeps silence finite
        mel = logfbank(a, samplerate=sr, winlen=0.025, winstep=0.01, nfilt=self.n_mels, nfft=512)
        mel = mel.astype(np.float32)
        mel = (mel - mel.mean(0, keepdims=True)) / (mel.std(0, keepdims=True) + 1e-3)
        out = _resample_time(mel, num_frames * self.mels_per_frame)
        return out.reshape(num_frames, self.feature_dim)

    def describe(self) -> dict:
        return {"backend": self.name, "version": self.version, "n_mels": self.n_mels,
                "mels_per_frame": self.mels_per_frame}


class SmallWav2Vec2(nn.Module):
    """wav2vec2-style encoder: 7-layer conv feature extractor (hop 320 = 50 Hz at 16 kHz) and a
    pre-norm transformer; ``forward`` returns all hidden states (layers+1, N, hidden)."""

    CONV = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))

    def __init__(self, hidden: int = 64, layers: int = 2, heads: int = 4, conv_dim: int = 64):
        super().__init__()
        self.config = {"hidden": hidden, "layers": layers, "heads": heads, "conv_dim": conv_dim}
        convs, cin = [], 1
        for k, s in self.CONV:
            convs += [nn.Conv1d(cin, conv_dim, k, s, bias=False), nn.GELU()]
            cin = conv_dim
        self.feature_extractor = nn.Sequential(*convs)
        self.feature_projection = nn.Sequential(nn.LayerNorm(conv_dim), nn.Linear(conv_dim, hidden))
        self.pos_conv = nn.Conv1d(hidden, hidden, 31, padding=15, groups=4)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(hidden)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = (wav - wav.mean()) / (wav.std() + 1e-5)
        x = self.feature_extractor(x[None, None]).transpose(1, 2)  # (1, N, conv_dim)
        x = self.feature_projection(x)
        x = x + torch.nn.functional.gelu(self.pos_conv(x.transpose(1, 2))).transpose(1, 2)
        states = [x]
        for layer in self.layers:
            x = layer(x)
            states.append(x)
        states[-1] = self.norm(states[-1])
        return torch.cat(states, 0)  # (layers+1, N, hidden)


class Wav2Vec2Frontend:
    """All hidden states of a frozen wav2vec2, resampled from 50 Hz to the video frame rate and
    flattened per frame (the paper stacks the 12 layers of wav2vec2-base)."""

    name = "wav2vec2"

    def __init__(self, model_path: str | None):
        if not model_path:
            raise AudioBackendError("audio.backend wav2vec2 needs audio.model_path: a local Hugging Face "
                                    "wav2vec2 directory or a SmallWav2Vec2 .pt state dict")
        path = Path(model_path)
        if not path.exists():
            raise AudioBackendError(f"{path}: wav2vec2 checkpoint not found; pass an existing directory or .pt file")
        self.path = str(path)
        if path.is_dir():
            try:
                import transformers
            except ImportError as e:
                raise AudioBackendError(
                    f"{path}: loading a Hugging Face wav2vec2 directory needs the transformers package; "
                    "run `pip install transformers` and pass the directory again") from e
            self.hf = transformers.Wav2Vec2Model.from_pretrained(str(path)).eval()
            self.model = None
            self.version = f"transformers-{transformers.__version__}:{path.name}"
            cfg = self.hf.config
            self._dim = (cfg.num_hidden_layers + 1) * cfg.hidden_size
        else:
            try:
                blob = torch.load(str(path), map_location="cpu", weights_only=True)
            except Exception as e:
                raise AudioBackendError(f"{path}: not a torch state dict ({e}); save one with "
                                        "torch.save({'config': ..., 'state_dict': model.state_dict()}, path)") from e
            conf = blob.get("config", {}) if isinstance(blob, dict) and "state_dict" in blob else {}
            state = blob["state_dict"] if "state_dict" in blob else blob
            self.model = SmallWav2Vec2(**conf).eval()
            try:
                self.model.load_state_dict(state)
            except RuntimeError as e:
                raise AudioBackendError(f"{path}: state dict does not fit SmallWav2Vec2{conf}: {e}") from e
            self.hf = None
            self.version = f"SmallWav2Vec2:{path.name}"
            c = self.model.config
            self._dim = (c["layers"] + 1) * c["hidden"]
        for p in (self.model or self.hf).parameters():
            p.requires_grad_(False)

    @property
    def feature_dim(self) -> int:
        return self._dim

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, num_frames: int, fps: float, sr: int = AUDIO_SR) -> np.ndarray:
        need = int(math.ceil(num_frames / fps * sr))
        a = np.zeros(max(need, 400), np.float32)
        a[: min(need, len(audio))] = audio[:need]
        wav = torch.from_numpy(a)
        if self.hf is not None:
            out = self.hf((wav - wav.mean())[None] / (wav.std() + 1e-5), output_hidden_states=True)
            states = torch.stack(out.hidden_states, 0)[:, 0]
        else:
            states = self.model(wav)
        feats = states.permute(1, 0, 2).reshape(states.shape[1], -1).numpy()  # (N, layers*hidden)
        return _resample_time(feats, num_frames)

    def describe(self) -> dict:
        return {"backend": self.name, "version": self.version, "path": self.path}


def build_frontend(audio_cfg: dict):
    backend = audio_cfg.get("backend", "logmel")
    if backend == "logmel":
        return LogMelFrontend(audio_cfg.get("n_mels", 40), audio_cfg.get("mels_per_frame", 4))
    if backend == "wav2vec2":
        return Wav2Vec2Frontend(audio_cfg.get("model_path"))
    raise AudioBackendError(f"unknown audio backend {backend!r}: use logmel or wav2vec2")
