"""Audio -> mouth motion: per generated frame, the lip landmarks' deformation from the reference's
lips, predicted through AFCA (per-identity [face tokens; audio tokens] keys/values, a temporal
audio mask), and the reference crop warped to it (``model.warp``) as each frame's context.

Geometry. Lip landmarks (``model.trainset.LIP_POINTS``: outer + inner contour, 40 points) are in
any pixel unit (crop or source pixels: the head works in units of the reference's mouth width).
The *shape* of a frame's lips is its points minus their centroid; the motion head predicts
shape(frame) - shape(reference) (``deformation``), so head motion and the crop's placement drop
out and what is left is the mouth opening, width and asymmetry. The warp's destination keeps the
reference's lip centroid: dst = reference lips + deformation.

The head (``MotionHead``): a small audio encoder of its own, AFCA with one query per frame over
[face tokens; the audio tokens of frames t-reach..t+reach], an MLP, and a zero-initialised output
of coefficients of a PCA basis of lip deformations, so a new head predicts "the reference's
mouth". Identities are independent (flattened into the batch), as AFCA makes them. It trains on
2 s sequences at any offset of the training frames (``ShardTrainingSource.motion_sequences``)
and generation predicts a whole clip in one pass.
"""

from __future__ import annotations

import torch
from torch import nn

from model.afca import AFCA

OPEN_PAIRS = ((36, 24), (35, 25), (34, 26))  # inner-lip (upper, lower) pairs: 82/87, 13/14, 312/317
MOUTH_CORNERS = (0, 10)  # LIP_POINTS 61 and 291: the outer mouth corners


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
    frames t-reach..t+reach (the DiT's AFCA groups frames by 4 per latent frame; the mouth head
    needs each frame's own sound and its neighbourhood)."""

    def __init__(self, dim: int, heads: int, reach: int = 1):
        super().__init__(dim, heads)
        self.reach = int(reach)

    def token_mask(self, num_frames: int, audio_per_frame: int, num_face: int, tokens_per_latent: int,
                   device) -> torch.Tensor:
        key = ("frame", num_frames, audio_per_frame, num_face, self.reach, str(device))
        m = self._mask_cache.get(key)
        if m is None:
            t = torch.arange(num_frames)
            near = (t[:, None] - t[None]).abs() <= self.reach  # (T, T)
            m = torch.cat([torch.ones(num_frames, num_face, dtype=torch.bool),
                           near.repeat_interleave(audio_per_frame, 1)], 1).to(device)
            self._mask_cache = {key: m}
        return m


def mouth_width(lips: torch.Tensor) -> torch.Tensor:
    """(..., K, 2) -> (...) distance of the outer mouth corners (LIP_POINTS 61 and 291): the unit
    the head predicts in, so face size and crop scale drop out."""
    return (lips[..., MOUTH_CORNERS[0], :] - lips[..., MOUTH_CORNERS[1], :]).norm(dim=-1)


class MotionHead(nn.Module):
    """Per-frame audio features of one identity -> the lips' deformation from the reference's.

    Generalisation over capacity (issue 14, round 6): the round-5 head (2 blocks of AFCA +
    self-attention + MLP on the DiT's 8 x 128 audio tokens per frame, 9-frame windows) reached a
    held-out r of 0.18 and memorised its ~500 training windows (audio swap 6.5x worse on them); a
    linear ridge map of the same log-mel features reaches the same held-out r
    (``model.motion_ceiling``). So this head is small and sees much more data per step:

    * its own audio encoder on the front end's per-frame features (per-clip normalised log-mel):
      a linear map and one temporal convolution (+-2 frames), ``hidden`` channels;
    * AFCA (``FrameAFCA``) with one query per frame over [face tokens (projected); audio tokens of
      frames t-reach..t+reach], ``depth`` blocks with an MLP;
    * the output is ``basis_size`` coefficients of a PCA basis of lip deformations (fitted on the
      training lips, ``fit_basis``, stored in the checkpoint), in units of the reference's mouth
      width; no positional input, so a sequence of any length (a 2 s training sequence or a whole
      generated clip) is predicted the same way.
    """

    def __init__(self, feature_dim: int, face_dim: int, num_points: int, hidden: int = 64, heads: int = 4,
                 depth: int = 1, dropout: float = 0.3, basis_size: int = 8, reach: int = 4):
        super().__init__()
        self.num_points, self.basis_size = num_points, int(basis_size)
        self.in_drop = nn.Dropout(dropout)
        self.audio_in = nn.Linear(feature_dim, hidden)
        self.audio_conv = nn.Conv1d(hidden, hidden, 5, padding=2)
        self.audio_norm = nn.LayerNorm(hidden)
        self.face_in = nn.Linear(face_dim, hidden)
        self.query = nn.Parameter(torch.randn(hidden) * 0.02)
        self.lip_in = nn.Linear(2 * num_points, hidden)
        self.drop = nn.Dropout(dropout)
        self.afca = nn.ModuleList(FrameAFCA(hidden, heads, reach) for _ in range(depth))
        self.norm_afca = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(depth))
        self.mlp = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 2 * hidden), nn.GELU(),
                                               nn.Linear(2 * hidden, hidden)) for _ in range(depth))
        self.norm_out = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, self.basis_size)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # PCA basis (rows orthonormal) of training deformations, mouth-width units; zeros until
        # ``fit_basis``: an unfitted head predicts "the reference's mouth"
        self.register_buffer("basis", torch.zeros(self.basis_size, 2 * num_points))
        self.register_buffer("basis_std", torch.ones(self.basis_size))
        # running RMS of the true and predicted coefficients on training sequences (EMA): a
        # regression shrinks its output toward the mean mouth by about its correlation with the
        # truth; generation can rescale to the training set's amplitude (``amplitude_gain``)
        self.register_buffer("rms_true", torch.zeros(()))
        self.register_buffer("rms_pred", torch.zeros(()))

    @torch.no_grad()
    def fit_basis(self, deforms: torch.Tensor) -> dict:
        """deforms (N, K, 2) training deformations in mouth-width units (finite rows only) -> the
        first ``basis_size`` principal directions (uncentred: no motion is the origin)."""
        x = deforms.reshape(len(deforms), -1).double()
        x = x[torch.isfinite(x).all(1)]
        if len(x) < self.basis_size:
            raise ValueError(f"fit_basis: {len(x)} frames with lip landmarks, need at least {self.basis_size}")
        _, s, vh = torch.linalg.svd(x, full_matrices=False)
        self.basis.copy_(vh[: self.basis_size].float())
        std = (s[: self.basis_size] / (len(x) ** 0.5)).float()
        self.basis_std.copy_(std.clamp(min=1e-6))
        var = s.pow(2)
        return {"frames": len(x), "explained": round(float(var[: self.basis_size].sum() / var.sum()), 4),
                "std": [round(float(v), 4) for v in std]}

    @torch.no_grad()
    def track_amplitude(self, pred: torch.Tensor, target: torch.Tensor, ok: torch.Tensor, momentum: float = 0.98):
        """Update the running RMS from one training batch (frames with landmarks only). With
        sequences (B, I, T, C) and a mask (B, I, T), each sequence is centred on its own mean over
        its valid frames first: the gain is for the motion over time, not for the constant offset
        from the reference's mouth (amplifying that gave fixed open or closed mouths)."""
        if not bool(ok.any()):
            return
        if pred.dim() == ok.dim() + 1:
            m = ok[..., None].to(pred.dtype)
            n = m.sum(-2, keepdim=True).clamp(min=1.0)
            pred = pred - (torch.nan_to_num(pred) * m).sum(-2, keepdim=True) / n
            target = target - (torch.nan_to_num(target) * m).sum(-2, keepdim=True) / n
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

    def coefficients(self, face_tokens: torch.Tensor, audio_feats: torch.Tensor, ref_lips: torch.Tensor) -> torch.Tensor:
        """face_tokens (B, I, Nf, Df); audio_feats (B, I, T, F) per-frame features; ref_lips
        (B, I, K, 2) (any pixel unit; NaN = unknown) -> (B, I, T, basis_size), in units of
        ``basis_std`` (each component's training spread)."""
        b, n_id, t = audio_feats.shape[:3]
        a = self.audio_in(self.in_drop(audio_feats.flatten(0, 1)))  # (BI, T, h)
        a = a + self.audio_conv(nn.functional.gelu(a).transpose(1, 2)).transpose(1, 2)
        a = self.audio_norm(a)
        f = self.face_in(face_tokens.flatten(0, 1))  # (BI, Nf, h)
        width = mouth_width(ref_lips).clamp(min=1e-6)[..., None, None]
        shape = torch.nan_to_num((ref_lips - lip_centroid(ref_lips)) / width, nan=0.0).flatten(0, 1).flatten(1)
        x = (self.lip_in(shape) + self.query)[:, None].expand(-1, t, -1)
        for afca, norm, mlp in zip(self.afca, self.norm_afca, self.mlp):
            ones = x.new_ones(x.shape[0], 1, t)
            x = x + self.drop(afca(norm(x), f[:, None], a[:, None], ones, t, 1))
            x = x + self.drop(mlp(x))
        return self.out(self.norm_out(x)).view(b, n_id, t, self.basis_size)

    def to_deformation(self, coeffs: torch.Tensor, ref_lips: torch.Tensor) -> torch.Tensor:
        """(B, I, T, basis_size) coefficients -> (B, I, T, K, 2) deformation in ``ref_lips``' pixels."""
        d = (coeffs * self.basis_std) @ self.basis  # (B, I, T, 2K) mouth widths
        width = torch.nan_to_num(mouth_width(ref_lips), nan=0.0)[..., None, None, None]
        return d.view(*coeffs.shape[:3], self.num_points, 2) * width

    def forward(self, face_tokens: torch.Tensor, audio_feats: torch.Tensor, ref_lips: torch.Tensor,
                gain: float = 1.0) -> torch.Tensor:
        """-> predicted deformation (B, I, T, K, 2) in the pixels of ``ref_lips`` (0 where the
        reference's lips are unknown: the reference's mouth). ``gain`` scales the motion around
        the sequence's mean (``amplitude_gain``), not the mean itself."""
        return self.to_deformation(self.with_gain(self.coefficients(face_tokens, audio_feats, ref_lips), gain), ref_lips)

    @staticmethod
    def with_gain(coeffs: torch.Tensor, gain: float) -> torch.Tensor:
        """(B, I, T, C) coefficients with their motion around each sequence's mean scaled by ``gain``."""
        if gain == 1.0:
            return coeffs
        mean = coeffs.mean(2, keepdim=True)
        return mean + gain * (coeffs - mean)

    def target_coefficients(self, lips: torch.Tensor, ref_lips: torch.Tensor) -> torch.Tensor:
        """True lips (B, I, T, K, 2), reference (B, I, K, 2) -> (B, I, T, basis_size) coefficients
        of their deformation (NaN where landmarks are missing)."""
        width = mouth_width(ref_lips)[..., None, None, None]
        d = (deformation(lips, ref_lips) / width).flatten(-2)
        return (d @ self.basis.T) / self.basis_std


def centre_features(audio: torch.Tensor) -> torch.Tensor:
    """(..., T, window, F) audio windows of the loader -> (..., T, F) each frame's own features."""
    return audio[..., audio.shape[-2] // 2, :]


def sequence_loss(head: MotionHead, face_tokens: torch.Tensor, audio_feats: torch.Tensor, lips: torch.Tensor,
                  ref_lips: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the predicted coefficients (units of each component's training
    spread) over frames whose landmarks and reference landmarks are known; 0 (in the graph)
    when none are. Tracks the amplitude in training mode."""
    pred = head.coefficients(face_tokens, audio_feats, ref_lips)
    target = head.target_coefficients(lips, ref_lips)
    ok = torch.isfinite(target).all(-1)
    if not bool(ok.any()):
        return pred.sum() * 0.0
    if head.training:
        head.track_amplitude(pred.detach(), target, ok)
    return (pred[ok] - target[ok]).pow(2).mean()
