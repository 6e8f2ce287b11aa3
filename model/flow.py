"""Flow matching: the training loss and the Euler sampler with classifier-free guidance.

Convention (rectified flow): x_t = (1 - t) * x_0 + t * noise, the model predicts the velocity
noise - x_0; sampling integrates from t = 1 (noise) to t = 0 with Euler steps. The unconditional
pass zeroes the audio features (faces and reference stay), as in training's audio dropout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.dit import AnyTalkerDiT, patchify, unpatchify


def flow_matching_loss(model: AnyTalkerDiT, batch: dict, generator: torch.Generator,
                       audio_dropout: float = 0.0) -> torch.Tensor:
    video = batch["video"]  # (B, 3, T, H, W) in [-1, 1]
    b, _, t_frames = video.shape[:3]
    audio = batch["audio"]
    if audio_dropout > 0:
        keep = (torch.rand(b, generator=generator) >= audio_dropout).to(audio.dtype)
        audio = audio * keep.view(b, 1, 1, 1, 1)
    x0 = patchify(video, model.patch)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    t = torch.sigmoid(torch.randn(b, generator=generator))  # logit-normal timesteps
    xt = (1 - t.view(b, 1, 1)) * x0 + t.view(b, 1, 1) * noise
    face_tokens, audio_tokens = model.encode_conditions(batch["ref"], batch["faces"], audio)
    pred = model(xt, t, batch["ref"], face_tokens, audio_tokens, batch["face_masks"], t_frames)
    return F.mse_loss(pred, noise - x0)


def shifted_timesteps(steps: int, shift: float = 1.0) -> torch.Tensor:
    t = torch.linspace(1.0, 0.0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)


@torch.no_grad()
def sample(model: AnyTalkerDiT, ref: torch.Tensor, faces: torch.Tensor, audio: torch.Tensor,
           face_masks: torch.Tensor, num_frames: int, steps: int = 20, cfg_scale: float = 3.0,
           shift: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Euler flow-matching sampler. ref (B, 3, H, W) in [-1, 1] -> video (B, 3, T, H, W)."""
    b, _, h, w = ref.shape
    face_tokens, audio_tokens = model.encode_conditions(ref, faces, audio)
    use_cfg = cfg_scale != 1.0
    if use_cfg:
        _, audio_tokens_null = model.encode_conditions(ref, faces, torch.zeros_like(audio))
    shape_probe = patchify(torch.zeros(1, 3, num_frames, h, w), model.patch).shape
    x = torch.randn((b, *shape_probe[1:]), generator=generator)
    ts = shifted_timesteps(steps, shift)
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        tb = torch.full((b,), float(t))
        v = model(x, tb, ref, face_tokens, audio_tokens, face_masks, num_frames)
        if use_cfg:
            v_null = model(x, tb, ref, face_tokens, audio_tokens_null, face_masks, num_frames)
            v = v_null + cfg_scale * (v - v_null)
        x = x + (t_next - t) * v
    return unpatchify(x, num_frames, h, w, model.patch).clamp(-1, 1)


class FlowMatchingObjective(torch.nn.Module):
    """The loss as a module, so DDP wraps one forward that touches every parameter."""

    def __init__(self, model: AnyTalkerDiT):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, generator: torch.Generator, audio_dropout: float = 0.0) -> torch.Tensor:
        return flow_matching_loss(self.model, batch, generator, audio_dropout)
