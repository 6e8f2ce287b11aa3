"""The judge's network: two small temporal-convolution towers (lips, audio) that map each
25 fps frame to a unit vector; in sync, a lip frame's vector is close to the audio vector of the
same instant and far from the audio vectors of other instants and of other recordings.

Each tower: 1-D convolutions with dilations 1, 2, 4, 8 (kernel 5) over the frame sequence, so
every output frame sees +-30 frames (1.2 s) of its own modality. Inputs are normalised per
sequence (lips: minus the track's mean shape, so identity drops out; audio: minus each band's
mean), so the same network serves a 4 s window and a whole track.
"""

from __future__ import annotations

import torch
from torch import nn

from curation.sync_judge.features import AUDIO_DIM, LIP_DIM

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


class SyncJudgeNet(nn.Module):
    def __init__(self, width: int = 96):
        super().__init__()
        self.lip = _Tower(LIP_DIM, width)
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

    def embed_lips(self, lips: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.lip(self.norm_lips(lips, mask))

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return self.audio(self.norm_audio(audio))


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
