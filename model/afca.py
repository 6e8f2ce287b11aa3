"""Audio-Face Cross Attention (AFCA), the paper's identity-scalable conditioning block.

For each identity i (same parameters for all): queries from the video tokens; keys/values are
[face tokens_i ; audio tokens_i] with separate projections and norms for the two kinds; a
temporal mask limits latent frame l >= 1 to the audio of its own 4 video frames (latent frame 0
sees all audio); the output is multiplied by identity i's face mask on the token grid; the
identities' outputs are summed. Any number of identities therefore uses the same weights, and
the result does not depend on the order in which identities are listed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.masks import audio_attention_mask


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class SelfAttention(nn.Module):
    """Multi-head self-attention with RMS-normed queries and keys (the DiT block's and the motion
    head's)."""
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.norm_q, self.norm_k = RMSNorm(dim // heads), RMSNorm(dim // heads)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(self.norm_q(q), self.norm_k(k), v)
        return self.out(o.transpose(1, 2).reshape(b, n, d))


class AFCA(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.norm_q = RMSNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.k_face, self.v_face = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.k_audio, self.v_audio = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_k_face, self.norm_k_audio = RMSNorm(dim), RMSNorm(dim)
        self.out = nn.Linear(dim, dim)
        self._mask_cache: dict = {}

    def _heads(self, x):  # (B, N, D) -> (B, H, N, d)
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def token_mask(self, num_frames: int, audio_per_frame: int, num_face: int, tokens_per_latent: int,
                   device) -> torch.Tensor:
        key = (num_frames, audio_per_frame, num_face, tokens_per_latent, str(device))
        m = self._mask_cache.get(key)
        if m is None:
            lat_mask = audio_attention_mask(num_frames, audio_per_frame, num_face)
            m = lat_mask.repeat_interleave(tokens_per_latent, 0).to(device)  # (L*S, K)
            self._mask_cache = {key: m}
        return m

    def forward(self, x: torch.Tensor, face_tokens: torch.Tensor, audio_tokens: torch.Tensor,
                face_masks: torch.Tensor, num_frames: int, tokens_per_latent: int) -> torch.Tensor:
        """x (B, N, D) video tokens, N = latent_frames * tokens_per_latent (frame-major);
        face_tokens (B, I, Nf, D); audio_tokens (B, I, num_frames * A, D);
        face_masks (B, I, N) in [0, 1] (0 for padded identities). Returns (B, N, D)."""
        b, n, d = x.shape
        n_id, n_face = face_tokens.shape[1], face_tokens.shape[2]
        a_per_frame = audio_tokens.shape[2] // num_frames
        attn_mask = self.token_mask(num_frames, a_per_frame, n_face, tokens_per_latent, x.device)
        q = self._heads(self.q(self.norm_q(x)))
        out = x.new_zeros(b, n, d)
        for i in range(n_id):
            f, a = face_tokens[:, i], audio_tokens[:, i]
            k = torch.cat([self.norm_k_face(self.k_face(f)), self.norm_k_audio(self.k_audio(a))], 1)
            v = torch.cat([self.v_face(f), self.v_audio(a)], 1)
            o = F.scaled_dot_product_attention(q, self._heads(k), self._heads(v), attn_mask=attn_mask)
            o = self.out(o.transpose(1, 2).reshape(b, n, d))
            out = out + o * face_masks[:, i, :, None]
        return out
