"""Audio -> mouth motion: per generated frame, the lip landmarks' deformation from the reference's
lips, predicted through AFCA (per-identity [face tokens; audio tokens] keys/values, a temporal
audio mask), and the reference crop warped to it (``model.warp``) as each frame's context.

Geometry. Lip landmarks (``model.trainset.LIP_POINTS``: outer + inner contour, 40 points) are in
crop pixels. The *shape* of a frame's lips is its points minus their centroid; the motion head
predicts shape(frame) - shape(reference) (``deformation``), so head motion and the crop's
placement drop out and what is left is the mouth opening, width and asymmetry. The warp's
destination keeps the reference's lip centroid: dst = reference lips + deformation.

The head. One query per video frame (the reference's lip shape, embedded, plus a learned
vector); each block: AFCA (``FrameAFCA``: frame t sees the identity's face tokens and the audio
tokens of frames t-1..t+1), self-attention over the clip's frames (smooth motion), MLP. A
zero-initialised linear output, so a new head predicts "the reference's mouth". Identities are
independent (flattened into the batch), as AFCA makes them.
"""

from __future__ import annotations

import torch
from torch import nn

from model.afca import AFCA, SelfAttention

MOTION_SCALE = 20.0  # network units per crop side: a 0.05-crop lip opening is 1.0 in the head's units
OPEN_PAIRS = ((36, 24), (35, 25), (34, 26))  # inner-lip (upper, lower) pairs: 82/87, 13/14, 312/317


def lip_centroid(lips: torch.Tensor) -> torch.Tensor:
    """(..., K, 2) -> (..., 1, 2) mean of the points (NaN when any point is NaN)."""
    return lips.mean(-2, keepdim=True)


def deformation(lips: torch.Tensor, ref_lips: torch.Tensor) -> torch.Tensor:
    """lips (..., T, K, 2), ref_lips (..., K, 2) -> (..., T, K, 2): shape(lips) - shape(ref)."""
    ref = ref_lips[..., None, :, :]
    return (lips - lip_centroid(lips)) - (ref - lip_centroid(ref))


def destination(ref_lips: torch.Tensor, deform: torch.Tensor) -> torch.Tensor:
    """ref_lips (..., K, 2), deformation (..., T, K, 2) -> warp destinations (..., T, K, 2)."""
    return ref_lips[..., None, :, :] + deform


def lip_opening(lips: torch.Tensor) -> torch.Tensor:
    """(..., K, 2) -> (...) mean inner-lip gap (same units as the points)."""
    return torch.stack([(lips[..., a, :] - lips[..., b, :]).norm(dim=-1) for a, b in OPEN_PAIRS]).mean(0)


class FrameAFCA(AFCA):
    """AFCA with one query per video frame: frame t sees all face tokens and the audio tokens of
    frames t-1..t+1 (the DiT's AFCA groups frames by 4 per latent frame; the mouth head needs
    each frame's own sound)."""

    def token_mask(self, num_frames: int, audio_per_frame: int, num_face: int, tokens_per_latent: int,
                   device) -> torch.Tensor:
        key = ("frame", num_frames, audio_per_frame, num_face, str(device))
        m = self._mask_cache.get(key)
        if m is None:
            t = torch.arange(num_frames)
            near = (t[:, None] - t[None]).abs() <= 1  # (T, T)
            m = torch.cat([torch.ones(num_frames, num_face, dtype=torch.bool),
                           near.repeat_interleave(audio_per_frame, 1)], 1).to(device)
            self._mask_cache = {key: m}
        return m


class MotionBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)  # a few hundred windows train the head for many epochs
        self.norm_afca = nn.LayerNorm(dim)
        self.afca = FrameAFCA(dim, heads)
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x, face_tokens, audio_tokens, num_frames):
        ones = x.new_ones(x.shape[0], 1, x.shape[1])
        x = x + self.drop(self.afca(self.norm_afca(x), face_tokens, audio_tokens, ones, num_frames, 1))
        x = x + self.drop(self.attn(self.norm_attn(x)))
        return x + self.drop(self.mlp(self.norm_mlp(x)))


class MotionHead(nn.Module):
    def __init__(self, dim: int, heads: int, num_points: int, depth: int = 2, dropout: float = 0.0):
        super().__init__()
        self.num_points = num_points
        self.lip_in = nn.Linear(2 * num_points, dim)
        self.query = nn.Parameter(torch.randn(dim) * 0.02)
        self.blocks = nn.ModuleList(MotionBlock(dim, heads, dropout) for _ in range(depth))
        self.norm_out = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, 2 * num_points)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # running RMS of the true and of the predicted deformation on training windows (crop px,
        # EMA): a regression to the landmarks shrinks its output towards the mean mouth by about
        # its correlation with the truth, so a still-looking mouth comes out; generation can
        # rescale the motion to the training set's amplitude (``amplitude_gain``)
        self.register_buffer("rms_true", torch.zeros(()))
        self.register_buffer("rms_pred", torch.zeros(()))

    @torch.no_grad()
    def track_amplitude(self, pred: torch.Tensor, target: torch.Tensor, ok: torch.Tensor, momentum: float = 0.98):
        """Update the running RMS from one training batch (frames with landmarks only)."""
        if not bool(ok.any()):
            return
        rt, rp = target[ok].pow(2).mean().sqrt(), pred[ok].pow(2).mean().sqrt()
        first = bool(self.rms_true == 0)
        self.rms_true.copy_(rt if first else momentum * self.rms_true + (1 - momentum) * rt)
        self.rms_pred.copy_(rp if first else momentum * self.rms_pred + (1 - momentum) * rp)

    def amplitude_gain(self, max_gain: float = 4.0) -> float:
        """Training-set RMS of the true deformation / of the predicted one, in [1, max_gain]
        (1 before any training)."""
        if float(self.rms_pred) <= 1e-8:
            return 1.0
        return float(min(max_gain, max(1.0, float(self.rms_true) / float(self.rms_pred))))

    def forward(self, face_tokens: torch.Tensor, audio_tokens: torch.Tensor, ref_lips: torch.Tensor,
                num_frames: int, crop_size: float) -> torch.Tensor:
        """face_tokens (B, I, Nf, D); audio_tokens (B, I, T*A, D); ref_lips (B, I, K, 2) crop
        pixels (NaN = unknown: the head then sees a zero shape) -> predicted deformation
        (B, I, T, K, 2) in crop pixels."""
        b, n_id = face_tokens.shape[:2]
        shape = (ref_lips - lip_centroid(ref_lips)) * (MOTION_SCALE / crop_size)
        shape = torch.nan_to_num(shape, nan=0.0).flatten(0, 1).flatten(1)  # (B*I, 2K)
        x = (self.lip_in(shape) + self.query)[:, None].expand(-1, num_frames, -1)
        ft = face_tokens.flatten(0, 1)[:, None]
        at = audio_tokens.flatten(0, 1)[:, None]
        for blk in self.blocks:
            x = blk(x, ft, at, num_frames)
        out = self.out(self.norm_out(x)).view(b, n_id, num_frames, self.num_points, 2)
        return out * (crop_size / MOTION_SCALE)


def motion_loss(pred: torch.Tensor, lips: torch.Tensor, ref_lips: torch.Tensor, crop_size: float,
                head: MotionHead | None = None) -> torch.Tensor:
    """Smooth-L1 (in head units) of the predicted deformation vs the landmarks' own, over frames
    whose landmarks and reference landmarks are known; 0 (in the graph) when none are."""
    target = deformation(lips, ref_lips)
    ok = torch.isfinite(target).all(-1).all(-1)  # (B, I, T)
    if not bool(ok.any()):
        return pred.sum() * 0.0
    if head is not None and head.training:
        head.track_amplitude(pred.detach(), target, ok)
    scale = MOTION_SCALE / crop_size
    return nn.functional.smooth_l1_loss(pred[ok] * scale, target[ok] * scale, beta=0.1)
