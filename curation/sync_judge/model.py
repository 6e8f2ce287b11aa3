"""The judge's network: two small temporal-convolution towers (lips, audio) that map each
25 fps frame to a unit vector; in sync, a lip frame's vector is close to the audio vector of the
same instant and far from the audio vectors of other instants and of other recordings.

Each tower: 1-D convolutions with dilations 1, 2, 4, 8 (kernel 5) over the frame sequence, so
every output frame sees +-30 frames (1.2 s) of its own modality. Inputs are normalised per
sequence (lips: minus the track's mean shape, so identity drops out; audio: minus each band's
mean), so the same network serves a 4 s window and a whole track.

With ``crops`` (``TrainConfig.crops``, off in the shipped weights) the lip tower also sees each
frame's grayscale mouth crop (``features.mouth_crops``): a small 2-D conv embedding of the crop
(minus the sequence's mean crop, over the sequence's pixel spread) is concatenated with the
landmark vector before the temporal convolutions. Why: the landmarks do not see teeth or tongue.
"""

from __future__ import annotations

import torch
from torch import nn

from curation.sync_judge.features import AUDIO_DIM, CROP_H, CROP_W, LIP_DIM

EMBED_DIM = 64
LIP_SCALE = 10.0  # lip coordinates are in inter-ocular units: speech moves them ~0.05-0.1


class _Tower(nn.Module):
    def __init__(self, in_dim: int, width: int = 96, out_dim: int = EMBED_DIM, dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_dim, width, 1)]
        for d in (1, 2, 4, 8):
            layers += [nn.GELU(), nn.Dropout(dropout), nn.Conv1d(width, width, 5, padding=2 * d, dilation=d)]
        layers += [nn.GELU(), nn.Conv1d(width, out_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, E), unit norm
        y = self.net(x.transpose(1, 2)).transpose(1, 2)
        return nn.functional.normalize(y, dim=-1)


CROP_EMBED = 32
# the crop embedding's frame-to-frame spread at initialisation is ~0.015, the scaled landmarks'
# ~0.3: without a gain the temporal tower starts (and, in 40-step trials, stays) blind to the pixels
CROP_GAIN = 20.0


class _CropNet(nn.Module):
    """(N, CROP_H, CROP_W) normalised crops -> (N, CROP_EMBED): a 2-D conv net of
    non-overlapping kernels (4 x 4 stride 4, 8 channels; 2 x 2 stride 2, 16 channels), written as
    matrix products on the patches, then a linear map of the 4 x 6 grid (where on the mouth a
    change happens matters). Why this form: it runs on every frame of every training segment
    (1800 crops a step); three 3 x 3 stride-2 convs of 16 channels cost 1.05 CPU s a step against
    0.14 for the landmark judge (mostly in the conv backward pass), too slow to train 15 fold
    models on the 2 shared cores."""

    def __init__(self, channels: int = 16, out_dim: int = CROP_EMBED):
        super().__init__()
        c = channels
        self.patch = nn.Linear(16, c // 2)  # 4 x 4 pixels -> c/2
        self.merge = nn.Linear(4 * (c // 2), c)  # 2 x 2 patches -> c
        self.out = nn.Linear(c * (CROP_H // 8) * (CROP_W // 8), out_dim)
        self.act = nn.GELU()

    @staticmethod
    def _blocks(x: torch.Tensor, k: int) -> torch.Tensor:
        """(N, H, W, C) -> (N, H/k, W/k, k*k*C): each k x k block's values side by side."""
        n, h, w, c = x.shape
        return x.reshape(n, h // k, k, w // k, k, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h // k, w // k, k * k * c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.patch(self._blocks(x.unsqueeze(-1), 4)))  # (N, H/4, W/4, c/2)
        y = self.act(self.merge(self._blocks(y, 2)))  # (N, H/8, W/8, c)
        return self.out(y.flatten(1))


class SyncJudgeNet(nn.Module):
    def __init__(self, width: int = 96, crops: bool = False):
        super().__init__()
        self.uses_crops = bool(crops)
        self.crop = _CropNet() if crops else None
        self.lip = _Tower(LIP_DIM + (CROP_EMBED if crops else 0), width)
        self.audio = _Tower(AUDIO_DIM, width)

    @staticmethod
    def norm_lips(lips: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, LIP_DIM) minus each sequence's mean over its valid frames, scaled."""
        if mask is None:
            mean = lips.mean(1, keepdim=True)
        else:
            m = mask.float().unsqueeze(-1)
            mean = (lips * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)
        return (lips - mean) * LIP_SCALE

    @staticmethod
    def norm_audio(audio: torch.Tensor) -> torch.Tensor:
        """(B, T, AUDIO_DIM) log-mel minus each band's mean, scaled to unit-ish range."""
        return (audio - audio.mean(1, keepdim=True)) / 4.0

    @staticmethod
    def norm_crops(crops: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H, W) uint8-range crops minus each sequence's mean crop over its valid frames,
        over the sequence's pixel spread (lighting and skin tone drop out); frames outside
        ``mask`` become 0 (the mean)."""
        x = crops.float()
        m = torch.ones(x.shape[:2], device=x.device) if mask is None else mask.float()
        w = m[:, :, None, None]
        n = w.sum(1, keepdim=True).clamp(min=1.0)
        mean = (x * w).sum(1, keepdim=True) / n
        d = (x - mean) * w
        spread = (d.pow(2).sum((1, 2, 3), keepdim=True) / (n * x.shape[2] * x.shape[3])).sqrt()
        return d / spread.clamp(min=2.0)

    def embed_lips(self, lips: torch.Tensor, mask: torch.Tensor | None = None,
                   crops: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm_lips(lips, mask)
        if self.uses_crops:
            if crops is None:
                raise ValueError("this sync judge was trained with mouth crops: pass crops "
                                 "(curation.sync_judge.features.mouth_crops)")
            b, t = crops.shape[:2]
            e = self.crop(self.norm_crops(crops, mask).reshape(b * t, *crops.shape[2:])).reshape(b, t, -1)
            # minus the sequence's mean embedding (what does not move), like the landmarks
            m = torch.ones(b, t, 1, device=e.device) if mask is None else mask.float().unsqueeze(-1)
            e = (e - (e * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)) * CROP_GAIN
            x = torch.cat([x, e], -1)
        return self.lip(x)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return self.audio(self.norm_audio(audio))


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
