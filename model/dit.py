"""The video diffusion transformer: pixel-space 3D patching, adaLN timestep conditioning,
self-attention over video tokens, AFCA, MLP.

Patching (small configurations; the paper uses Wan2.1's causal VAE): the first frame is
repeated 4 times in front (as a causal VAE pads), so a 4n+1 frame clip becomes n+1 groups of 4
frames = n+1 latent frames (the first frame alone, then groups of 4), each cut into p x p
patches. Tokens are frame-major: token index = latent_frame * (H/p * W/p) + row * W/p + col.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from model.afca import AFCA, SelfAttention
from model.config import TEMPORAL_COMPRESSION, latent_frames
from model.face_encoder import build_face_encoder, prepare_faces


def patchify(video: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, T=4n+1, H, W) -> (B, (n+1)*(H/p)*(W/p), C*4*p*p)."""
    b, c, t, h, w = video.shape
    k = TEMPORAL_COMPRESSION
    lat = latent_frames(t)
    v = torch.cat([video[:, :, :1].expand(-1, -1, k - 1, -1, -1), video], 2)
    v = v.reshape(b, c, lat, k, h // patch, patch, w // patch, patch)
    v = v.permute(0, 2, 4, 6, 1, 3, 5, 7)  # b, L, gh, gw, c, k, p, p
    return v.reshape(b, lat * (h // patch) * (w // patch), c * k * patch * patch)


def unpatchify(tokens: torch.Tensor, num_frames: int, height: int, width: int, patch: int,
               channels: int = 3) -> torch.Tensor:
    """Inverse of ``patchify``; frame 0 is taken from its own (last) slot of latent frame 0."""
    b = tokens.shape[0]
    k = TEMPORAL_COMPRESSION
    lat, gh, gw = latent_frames(num_frames), height // patch, width // patch
    v = tokens.reshape(b, lat, gh, gw, channels, k, patch, patch)
    v = v.permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(b, channels, lat * k, height, width)
    return v[:, :, k - 1:]


def tokens_to_frames(tokens: torch.Tensor, height: int, width: int, patch: int, channels: int = 3) -> torch.Tensor:
    """(B, L*gh*gw, C*4*p*p) -> (B*L*4, C, H, W): every frame slot of every latent frame, as images."""
    b, n = tokens.shape[:2]
    k, gh, gw = TEMPORAL_COMPRESSION, height // patch, width // patch
    lat = n // (gh * gw)
    v = tokens.reshape(b, lat, gh, gw, channels, k, patch, patch)
    return v.permute(0, 1, 5, 4, 2, 6, 3, 7).reshape(b * lat * k, channels, height, width)


def frames_to_tokens(frames: torch.Tensor, batch: int, patch: int) -> torch.Tensor:
    """Inverse of ``tokens_to_frames``."""
    n, c, h, w = frames.shape
    k, gh, gw = TEMPORAL_COMPRESSION, h // patch, w // patch
    lat = n // (batch * k)
    v = frames.reshape(batch, lat, k, c, gh, patch, gw, patch).permute(0, 1, 4, 6, 3, 2, 5, 7)
    return v.reshape(batch, lat * gh * gw, c * k * patch * patch)


class ConvRefine(nn.Module):
    """A small per-frame conv on the predicted residual, added to it (zero-initialised last
    layer, so a new model still predicts the context frame). The linear head writes each
    p x p patch on its own, so its errors form a grid of block edges; a 3 x 3 conv sees
    across patch borders and can smooth them."""

    def __init__(self, hidden: int = 16, channels: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(hidden, channels, 3, padding=1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, residual_tokens: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
        frames = tokens_to_frames(residual_tokens, height, width, patch)
        return residual_tokens + frames_to_tokens(self.net(frames), residual_tokens.shape[0], patch)


def context_tokens(context: torch.Tensor, num_frames: int, patch: int) -> torch.Tensor:
    """Context as tokens: one frame (B, 3, H, W), repeated for every frame, or a context per frame
    (B, 3, T, H, W): the clip's first frame, then the reference warped to each frame's lips."""
    if context.dim() == 4:
        context = context[:, :, None].expand(-1, -1, num_frames, -1, -1)
    return patchify(context, patch)


def sincos(pos: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half, 1))
    ang = pos.float()[:, None] * freqs[None]
    return torch.cat([ang.sin(), ang.cos()], -1)


@functools.lru_cache(maxsize=16)
def pos_embed_3d(lat: int, gh: int, gw: int, dim: int) -> torch.Tensor:
    """Fixed sinusoidal (t, y, x) embedding, (lat*gh*gw, dim): works for any clip length/size."""
    d_axis = (dim // 6) * 2
    t, y, x = torch.meshgrid(torch.arange(lat), torch.arange(gh), torch.arange(gw), indexing="ij")
    pe = torch.cat([sincos(t.flatten(), d_axis), sincos(y.flatten(), d_axis), sincos(x.flatten(), d_axis)], -1)
    return F.pad(pe, (0, dim - pe.shape[1]))


class AudioProjector(nn.Module):
    """(B, I, T, window, F) per-frame audio windows -> (B, I, T * tokens, dim).

    Each token also carries the position of its video frame inside its latent frame (frame 0
    alone, then phases 1..4 of every group of 4) and its own index among the frame's tokens: a
    latent frame's AFCA sees the audio of its 4 frames at once, and without these embeddings
    the 4 frames' tokens are an unordered set, so the model could not tell which of the 4
    frames a sound belongs to (the mouth moves within 160 ms)."""

    def __init__(self, feature_dim: int, window: int, tokens: int, dim: int, hidden: int = 512):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.mlp = nn.Sequential(nn.Linear(window * feature_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, tokens * dim))
        self.norm = nn.LayerNorm(dim)
        self.phase_embed = nn.Parameter(torch.randn(TEMPORAL_COMPRESSION + 1, dim) * 0.02)
        self.token_embed = nn.Parameter(torch.randn(tokens, dim) * 0.02)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        b, i, t = audio.shape[:3]
        x = self.norm(self.mlp(audio.reshape(b, i, t, -1)).reshape(b, i, t, self.tokens, self.dim))
        frames = torch.arange(t, device=audio.device)
        phase = torch.where(frames == 0, 0, (frames - 1) % TEMPORAL_COMPRESSION + 1)
        x = x + self.phase_embed[phase][:, None] + self.token_embed[None]
        return x.reshape(b, i, t * self.tokens, self.dim)


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.norm_afca = nn.LayerNorm(dim, eps=1e-6)
        self.afca = AFCA(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x, c, face_tokens, audio_tokens, face_masks, num_frames, tokens_per_latent):
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, -1)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), sh1, sc1))
        x = x + self.afca(self.norm_afca(x), face_tokens, audio_tokens, face_masks, num_frames, tokens_per_latent)
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2))


class AnyTalkerDiT(nn.Module):
    def __init__(self, cfg: dict, audio_feature_dim: int):
        super().__init__()
        m, v = cfg["model"], cfg["video"]
        self.patch = int(v["patch"])
        self.dim = int(m["dim"])
        self.face_size = int(m["face_size"])
        self.audio_tokens = int(m["audio_tokens"])
        self.patch_dim = 3 * TEMPORAL_COMPRESSION * self.patch ** 2
        # noisy tokens ++ identity-reference tokens ++ context (previous frame) tokens
        self.x_embed = nn.Linear(3 * self.patch_dim, self.dim)
        self.ref_flag = nn.Parameter(torch.zeros(self.dim))  # marks latent frame 0 (the context frame)
        self.t_embed = nn.Sequential(nn.Linear(256, self.dim), nn.SiLU(), nn.Linear(self.dim, self.dim))
        self.face_encoder = build_face_encoder(cfg)
        self.face_norm = nn.LayerNorm(self.dim)
        self.audio_proj = AudioProjector(audio_feature_dim, int(m["audio_window"]), self.audio_tokens, self.dim)
        # auxiliary readout (training only, ``train.audio_aux_weight``): a frame's audio tokens ->
        # the change of the mouth cells' brightness since the context frame, on the token grid
        # of a single-face crop. It makes the audio tokens carry lip information from the first
        # steps, so that AFCA has something worth routing into the mouth tokens.
        gh, gw = int(v["height"]) // self.patch, int(v["width"]) // self.patch
        self.mouth_readout = nn.Linear(self.audio_tokens * self.dim, gh * gw)
        nn.init.zeros_(self.mouth_readout.weight)  # starts at "no change" (aux loss 1.0)
        nn.init.zeros_(self.mouth_readout.bias)
        self.blocks = nn.ModuleList(DiTBlock(self.dim, int(m["heads"]), float(m["mlp_ratio"]))
                                    for _ in range(int(m["depth"])))
        self.norm_out = nn.LayerNorm(self.dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(self.dim, 2 * self.dim))
        self.head = nn.Linear(self.dim, self.patch_dim)
        self.refine = ConvRefine(int(m.get("refine_channels", 16))) if int(m.get("refine_channels", 16)) else None
        # audio -> lip landmark motion (``model.motion``) and the reference warped to it as each
        # frame's context (``model.warp_context``); absent in configs that do not ask for them
        self.warp_context = bool(m.get("warp_context", False))
        self.motion = None
        if bool(m.get("motion_head", False)):
            from model.motion import MotionHead
            from model.trainset import LIP_POINTS

            self.motion = MotionHead(audio_feature_dim, self.dim, len(LIP_POINTS), int(m.get("motion_hidden", 64)),
                                     int(m.get("motion_heads", 4)), int(m.get("motion_depth", 1)),
                                     float(m.get("motion_dropout", 0.3)), int(m.get("motion_basis", 8)),
                                     int(m.get("motion_reach", 4)))
        for lin in (self.ada_out[1], self.head):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def encode_faces(self, faces: torch.Tensor) -> torch.Tensor:
        """faces (B, I, 3, s, s) -> face tokens (B, I, Nf, D)."""
        b, n_id = faces.shape[:2]
        f = prepare_faces(faces.flatten(0, 1), self.face_size)
        return self.face_norm(self.face_encoder(f)).unflatten(0, (b, n_id))

    def encode_conditions(self, ref: torch.Tensor, faces: torch.Tensor, audio: torch.Tensor):
        """ref (B, 3, H, W); faces (B, I, 3, s, s); audio (B, I, T, window, F).
        Returns (face tokens (B, I, Nf, D), audio tokens (B, I, T*A, D))."""
        return self.encode_faces(faces), self.audio_proj(audio)

    def mouth_from_audio(self, audio_tokens: torch.Tensor) -> torch.Tensor:
        """Audio tokens of identity 0 (B, I, T*A, D) -> predicted per-frame brightness change of
        each token cell since frame 0, (B, T, gh*gw) (``mouth_readout``)."""
        b, _, n, d = audio_tokens.shape
        per_frame = audio_tokens[:, 0].reshape(b, n // self.audio_tokens, self.audio_tokens * d)
        pred = self.mouth_readout(per_frame)
        return pred - pred[:, :1]

    def condition_embedding(self, ref: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The part of the input embedding that does not depend on the noisy tokens: reference and
        context channels + positions (B, N, dim). The sampler computes it once per chunk."""
        b, _, h, w = ref.shape
        lat, gh, gw = latent_frames(num_frames), h // self.patch, w // self.patch
        pd = self.patch_dim
        ref_tokens = patchify(ref[:, :, None].expand(-1, -1, num_frames, -1, -1), self.patch)
        ctx_tokens = context_tokens(context, num_frames, self.patch)
        weight = self.x_embed.weight
        e = ref_tokens @ weight[:, pd:2 * pd].T + ctx_tokens @ weight[:, 2 * pd:].T + self.x_embed.bias
        e = e + pos_embed_3d(lat, gh, gw, self.dim).to(e)
        e[:, :gh * gw] = e[:, :gh * gw] + self.ref_flag
        return e

    def forward(self, x_tokens: torch.Tensor, t: torch.Tensor, ref: torch.Tensor, context: torch.Tensor,
                face_tokens: torch.Tensor, audio_tokens: torch.Tensor, face_grid_masks: torch.Tensor,
                num_frames: int, cond_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """x_tokens (B, N, patch_dim) noisy tokens; t (B,) in [0, 1]; ref (B, 3, H, W) the identity
        reference; context (B, 3, H, W) the clip's first frame (the reference itself for the first
        chunk, the previous chunk's last frame later), or (B, 3, T, H, W) one context per frame
        (``warp_context``: that first frame, then the reference warped to each frame's lips); face_grid_masks (B, I, H/p, W/p);
        ``cond_embedding`` = ``condition_embedding(ref, context, num_frames)`` if precomputed.
        Returns the predicted clean tokens (B, N, patch_dim).

        Reference and context frames are given to every latent frame (not only the first), and the
        output is a residual on the context frame: at initialisation (zero head) the model predicts
        "copy the previous frame", so its capacity goes to the motion (mouth, head)."""
        b, _, h, w = ref.shape
        lat, gh, gw = latent_frames(num_frames), h // self.patch, w // self.patch
        s = gh * gw
        if cond_embedding is None:
            cond_embedding = self.condition_embedding(ref, context, num_frames)
        x = x_tokens @ self.x_embed.weight[:, :self.patch_dim].T + cond_embedding
        c = self.t_embed(sincos(t * 1000.0, 256).to(x))
        face_masks = face_grid_masks.flatten(2).repeat(1, 1, lat)  # (B, I, L*S), frame-major
        for blk in self.blocks:
            x = blk(x, c, face_tokens, audio_tokens, face_masks, num_frames, s)
        sh, sc = self.ada_out(c).chunk(2, -1)
        ctx_tokens = context_tokens(context, num_frames, self.patch)
        residual = self.head(modulate(self.norm_out(x), sh, sc))
        if self.refine is not None:  # latent frame 0 is the context itself (replaced by predict_x0)
            residual = torch.cat([residual[:, :s], self.refine(residual[:, s:], h, w, self.patch)], 1)
        return ctx_tokens + residual
