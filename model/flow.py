"""Flow matching: the training loss and the Euler sampler with classifier-free guidance.

Convention (rectified flow): x_t = (1 - t) * x_0 + t * noise, velocity v = noise - x_0; sampling
integrates from t = 1 (noise) to t = 0 with Euler steps. The network predicts the clean tokens
x_0 and the velocity is derived, v = (x_t - x_0_hat) / t, trained with the velocity loss (weight capped at
t = 0.3; x-prediction, as in Li & He 2025 "Back to Basics: Let Denoising Generative Models Denoise"):
with pixel patches wider than the model (768 values per token vs dim 128 in ``tiny``) a
v-predicting network cannot represent the noise and leaves it in the samples, while clean
patches lie near a low-dimensional manifold. Latent frame 0 is the reference frame itself
(x_0_hat is set to it and it carries no loss). The unconditional pass zeroes the audio
features (faces and reference stay), as in training's audio dropout.
"""

from __future__ import annotations

import torch

from model.config import TEMPORAL_COMPRESSION
from model.dit import AnyTalkerDiT, patchify, unpatchify

T_MIN = 0.05  # floor of t in v = (x_t - x_0) / t when sampling
LOSS_T_FLOOR = 0.3  # floor of t in the velocity-loss weight 1/t^2


def predict_x0(model: AnyTalkerDiT, xt, t, ref, face_tokens, audio_tokens, face_masks, num_frames):
    """Clean-token prediction with latent frame 0 replaced by the reference frame's tokens."""
    x0 = model(xt, t, ref, face_tokens, audio_tokens, face_masks, num_frames)
    ref_tokens = patchify(ref[:, :, None], model.patch)  # a 1-frame clip = latent frame 0
    return torch.cat([ref_tokens.to(x0), x0[:, ref_tokens.shape[1]:]], 1)


def velocity(xt, x0, t):
    return (xt - x0) / t.clamp(min=T_MIN).view(-1, 1, 1)


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
    x0_hat = predict_x0(model, xt, t, batch["ref"], face_tokens, audio_tokens, batch["face_masks"], t_frames)
    s = x0.shape[1] // ((t_frames - 1) // TEMPORAL_COMPRESSION + 1)  # tokens of latent frame 0
    # velocity error = clean-token error / t; the weight 1/t^2 is capped at t = LOSS_T_FLOOR
    # (min-SNR style) so that rare tiny t do not swamp a small batch's loss
    err = (x0_hat[:, s:] - x0[:, s:]).pow(2).mean(dim=(1, 2))
    return (err / t.clamp(min=LOSS_T_FLOOR).pow(2)).mean()


def shifted_timesteps(steps: int, shift: float = 1.0) -> torch.Tensor:
    t = torch.linspace(1.0, 0.0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)


@torch.no_grad()
def sample(model: AnyTalkerDiT, ref: torch.Tensor, faces: torch.Tensor, audio: torch.Tensor,
           face_masks: torch.Tensor, num_frames: int, steps: int = 20, cfg_scale: float = 3.0,
           shift: float = 1.0, generator: torch.Generator | None = None, on_step=None) -> torch.Tensor:
    """Euler flow-matching sampler. ref (B, 3, H, W) in [-1, 1] -> video (B, 3, T, H, W).
    ``on_step()`` is called after every Euler step (progress bars)."""
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
        v = velocity(x, predict_x0(model, x, tb, ref, face_tokens, audio_tokens, face_masks, num_frames), tb)
        if use_cfg:
            v_null = velocity(x, predict_x0(model, x, tb, ref, face_tokens, audio_tokens_null, face_masks,
                                            num_frames), tb)
            v = v_null + cfg_scale * (v - v_null)
        x = x + (t_next - t) * v
        if on_step is not None:
            on_step()
    return unpatchify(x, num_frames, h, w, model.patch).clamp(-1, 1)


class FlowMatchingObjective(torch.nn.Module):
    """The loss as a module, so DDP wraps one forward that touches every parameter."""

    def __init__(self, model: AnyTalkerDiT):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, generator: torch.Generator, audio_dropout: float = 0.0) -> torch.Tensor:
        return flow_matching_loss(self.model, batch, generator, audio_dropout)
