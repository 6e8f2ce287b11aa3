"""Flow matching: the training loss, its diagnostics and the Euler sampler with classifier-free guidance.

Convention (rectified flow): x_t = (1 - t) * x_0 + t * noise, velocity v = noise - x_0; sampling
integrates from t = 1 (noise) to t = 0 with Euler steps. The network predicts the clean tokens
x_0 as a residual on the context frame (``AnyTalkerDiT.forward``) and the velocity is derived,
v = (x_t - x_0_hat) / t, trained with the velocity loss (weight capped at t = 0.3; x-prediction,
as in Li & He 2025 "Back to Basics: Let Denoising Generative Models Denoise"): with pixel patches
wider than the model a v-predicting network cannot represent the noise and leaves it in the
samples. Latent frame 0 is the context frame itself (given clean as input, x_0_hat set to it, no
loss). Tokens in the mouth region weigh ``train.mouth_weight`` times more than the rest: the
mouth is a few percent of the crop but all of the audio's effect. The unconditional pass zeroes
the audio features (faces, reference and context stay), as in training's audio dropout.
"""

from __future__ import annotations

import torch

from model.config import TEMPORAL_COMPRESSION
from model.dit import AnyTalkerDiT, patchify, unpatchify

T_MIN = 0.05  # floor of t in v = (x_t - x_0) / t when sampling
LOSS_T_FLOOR = 0.3  # default floor of t in the velocity-loss weight 1/t^2 (train.loss_t_floor)


def frame_tokens(frame: torch.Tensor, num_frames: int, patch: int) -> torch.Tensor:
    """(B, 3, H, W) -> tokens of a clip that shows this frame at every time step."""
    return patchify(frame[:, :, None].expand(-1, -1, num_frames, -1, -1), patch)


def predict_x0(model: AnyTalkerDiT, xt, t, ref, context, face_tokens, audio_tokens, face_masks, num_frames,
               cond_embedding=None):
    """Clean-token prediction; latent frame 0 is the context frame (input and output)."""
    ctx0 = patchify(first_frame(context)[:, :, None], model.patch)  # a 1-frame clip = latent frame 0
    s = ctx0.shape[1]
    xt = torch.cat([ctx0.to(xt), xt[:, s:]], 1)
    x0 = model(xt, t, ref, context, face_tokens, audio_tokens, face_masks, num_frames, cond_embedding)
    return torch.cat([ctx0.to(x0), x0[:, s:]], 1)


def first_frame(context: torch.Tensor) -> torch.Tensor:
    """The clip's first frame of a context: (B, 3, H, W) as is, (B, 3, T, H, W) its frame 0."""
    return context if context.dim() == 4 else context[:, :, 0]


def warped_context(model: AnyTalkerDiT, first: torch.Tensor, ref: torch.Tensor, ref_lips: torch.Tensor | None,
                   dst: torch.Tensor | None, num_frames: int) -> torch.Tensor:
    """(B, 3, T, H, W) per-frame context: ``first`` (the clip's frame 0), then the reference crop
    warped from ``ref_lips`` (B, I, K, 2) to ``dst`` (B, I, T, K, 2) for frames 1..T-1 (crop px;
    an identity or frame without landmarks is not moved: the reference as it is)."""
    from model.warp import warp_to_landmarks

    b = ref.shape[0]
    if ref_lips is None or dst is None:
        rest = ref[:, :, None].expand(-1, -1, num_frames - 1, -1, -1)
    else:
        n_id, k = ref_lips.shape[1], ref_lips.shape[2]
        src = ref_lips[:, None].expand(-1, num_frames - 1, -1, -1, -1).reshape(b * (num_frames - 1), n_id * k, 2)
        tgt = dst[:, :, 1:].transpose(1, 2).reshape(b * (num_frames - 1), n_id * k, 2)
        tgt = torch.where(torch.isfinite(src), tgt, src)
        img = ref[:, None].expand(-1, num_frames - 1, -1, -1, -1).flatten(0, 1)
        rest = warp_to_landmarks(img, src, tgt).unflatten(0, (b, num_frames - 1)).transpose(1, 2)
    return torch.cat([first[:, :, None], rest], 2)


def training_context(model: AnyTalkerDiT, batch: dict) -> torch.Tensor:
    """The context the DiT trains with: the clip's first frame, or with ``warp_context`` the
    reference warped to the *true* lips of every frame (generation warps to predicted ones)."""
    video = batch["video"]
    if not model.warp_context:
        return video[:, :, 0]
    from model.motion import deformation, destination

    ref_lips, lips = batch.get("ref_lips"), batch.get("lips")
    dst = destination(ref_lips, deformation(lips, ref_lips)) if lips is not None and ref_lips is not None else None
    return warped_context(model, video[:, :, 0], batch["ref"], ref_lips, dst, video.shape[2])


def velocity(xt, x0, t):
    return (xt - x0) / t.clamp(min=T_MIN).view(-1, 1, 1)


def token_weights(batch: dict, model: AnyTalkerDiT, mouth_weight: float, latents: int) -> torch.Tensor:
    """(B, (latents-1) * S) loss weight per token of latent frames 1.. (mouth cells weigh more)."""
    mouth = batch.get("mouth_masks")
    video = batch["video"]
    b, h, w = video.shape[0], video.shape[3], video.shape[4]
    s = (h // model.patch) * (w // model.patch)
    if mouth is None or mouth_weight == 1.0:
        return torch.ones(b, (latents - 1) * s)
    m = mouth.reshape(b, s).float()
    return (1.0 + (mouth_weight - 1.0) * m).repeat(1, latents - 1)


def _draw(b: int, shape, generator: torch.Generator):
    noise = torch.randn(shape, generator=generator)
    t = torch.sigmoid(torch.randn(b, generator=generator))  # logit-normal timesteps
    return noise, t


def _weighted_loss(x0_hat, x0, t, weights, s, t_floor: float = LOSS_T_FLOOR):
    # velocity error = clean-token error / t; the weight 1/t^2 is capped at t = t_floor
    # (min-SNR style) so that rare tiny t do not swamp a small batch's loss. t_floor = 1 is the
    # plain clean-token loss: it weighs noisy inputs (large t), where the mouth can only come
    # from the audio, as much as nearly clean ones, where it can be copied from the input.
    err = (x0_hat[:, s:] - x0[:, s:]).pow(2).mean(-1)  # (B, tokens)
    err = (err * weights).sum(1) / weights.sum(1)
    return (err / t.clamp(min=t_floor).pow(2)).mean()


def mouth_change_target(video: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B, T, gh*gw): mean brightness of every token cell minus frame 0's."""
    g = video.mean(1)  # (B, T, H, W)
    cells = torch.nn.functional.avg_pool2d(g, patch)  # (B, T, gh, gw)
    return (cells - cells[:, :1]).flatten(2)


def audio_aux_loss(model: AnyTalkerDiT, batch: dict, audio_tokens: torch.Tensor) -> torch.Tensor:
    """Mean squared error of ``model.mouth_from_audio`` on the mouth cells, frames 1.., relative to
    predicting no change (1.0 = no better than a still mouth). Single-face crops only: in a
    two-crop batch the grid does not match the readout and the term is 0."""
    video, mouth = batch["video"], batch.get("mouth_masks")
    gh, gw = video.shape[3] // model.patch, video.shape[4] // model.patch
    if mouth is None or gh * gw != model.mouth_readout.out_features:
        return 0.0 * model.mouth_readout.weight.sum()  # keeps the readout in the graph (DDP)
    target = mouth_change_target(video, model.patch)[:, 1:]
    pred = model.mouth_from_audio(audio_tokens)[:, 1:]
    m = mouth.reshape(mouth.shape[0], 1, -1).to(pred)
    err = ((pred - target).pow(2) * m).sum()
    base = (target.pow(2) * m).sum().clamp(min=1e-8)
    return err / base


def flow_matching_loss(model: AnyTalkerDiT, batch: dict, generator: torch.Generator,
                       audio_dropout: float = 0.0, mouth_weight: float = 1.0,
                       t_floor: float = LOSS_T_FLOOR, audio_aux_weight: float = 0.0,
                       motion_weight: float = 0.0) -> torch.Tensor:
    video = batch["video"]  # (B, 3, T, H, W) in [-1, 1]
    b, _, t_frames = video.shape[:3]
    audio = batch["audio"]
    if audio_dropout > 0:
        keep = (torch.rand(b, generator=generator) >= audio_dropout).to(audio.dtype)
        audio = audio * keep.view(b, 1, 1, 1, 1)
    x0 = patchify(video, model.patch)
    noise, t = _draw(b, x0.shape, generator)
    xt = (1 - t.view(b, 1, 1)) * x0 + t.view(b, 1, 1) * noise
    context = training_context(model, batch)
    face_tokens, audio_tokens = model.encode_conditions(batch["ref"], batch["faces"], audio)
    x0_hat = predict_x0(model, xt, t, batch["ref"], context, face_tokens, audio_tokens, batch["face_masks"], t_frames)
    lat = (t_frames - 1) // TEMPORAL_COMPRESSION + 1
    s = x0.shape[1] // lat  # tokens of latent frame 0
    loss = _weighted_loss(x0_hat, x0, t, token_weights(batch, model, mouth_weight, lat), s, t_floor)
    # always in the graph (weight 0 included), so DDP sees a gradient for every parameter
    loss = loss + audio_aux_weight * audio_aux_loss(model, batch, audio_tokens)
    if model.motion is not None:  # the undropped audio: the head has no audio-free mode
        # face tokens detached: the head's loss is ~30x the DiT's and would otherwise drive the
        # shared face encoder (and let the head key on identities it memorised)
        loss = loss + motion_weight * motion_term(model, batch, face_tokens.detach())
    return loss


def motion_term(model: AnyTalkerDiT, batch: dict, face_tokens: torch.Tensor, audio: torch.Tensor | None = None,
                audio_noise: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """The motion head's landmark loss (``model.motion.sequence_loss``) on a batch: the DiT's
    windows (audio (B, I, T, window, F)) or the head's own sequences (audio (B, I, T, F)); 0, in
    the graph, without landmarks. ``audio_noise``: Gaussian noise of that std added to the
    (per-clip normalised) features, an augmentation against memorising the training audio."""
    from model.motion import centre_features, sequence_loss

    audio = batch["audio"] if audio is None else audio
    feats = centre_features(audio) if audio.dim() == 5 else audio
    if audio_noise > 0:
        feats = feats + audio_noise * torch.randn(feats.shape, generator=generator)
    ref_lips = batch.get("ref_lips")
    if ref_lips is None or batch.get("lips") is None:
        return model.motion.coefficients(face_tokens, feats, torch.zeros(*face_tokens.shape[:2],
                                                                          model.motion.num_points, 2)).sum() * 0.0
    return sequence_loss(model.motion, face_tokens, feats, batch["lips"], ref_lips)


@torch.no_grad()
def loss_diagnostics(model: AnyTalkerDiT, batch: dict, generator: torch.Generator,
                     mouth_weight: float = 1.0, t_floor: float = LOSS_T_FLOOR) -> dict:
    """On one batch, with the same noise and timesteps for every variant:

    * ``loss``: the model's loss (no audio dropout);
    * ``copy_reference``: the loss of predicting the identity reference frame for every frame;
    * ``copy_context``: the loss of repeating the clip's first frame (what the zero-initialised
      model predicts; a model that learned nothing stays here);
    * ``audio_swap``: the model's loss when each sample gets another sample's audio (rolled by
      one in the batch); ``audio_swap_gap`` = (audio_swap - loss) / loss. A model that ignores
      audio has a gap of 0; one that uses it pays for the wrong audio.
    * ``audio_swap_gap_t1``: the same gap at pure noise (t = 1) on the mouth-region tokens only,
      where nothing of the target is in the input: the model's mean prediction of the mouth,
      which only the audio can tell apart.
    """
    was_training = model.training
    model.eval()
    video = batch["video"]
    b, _, t_frames = video.shape[:3]
    x0 = patchify(video, model.patch)
    noise, t = _draw(b, x0.shape, generator)
    xt = (1 - t.view(b, 1, 1)) * x0 + t.view(b, 1, 1) * noise
    lat = (t_frames - 1) // TEMPORAL_COMPRESSION + 1
    s = x0.shape[1] // lat
    w = token_weights(batch, model, mouth_weight, lat)
    context = training_context(model, batch)

    def run(audio, xt=xt, t=t, w=w):
        ft, at = model.encode_conditions(batch["ref"], batch["faces"], audio)
        x0_hat = predict_x0(model, xt, t, batch["ref"], context, ft, at, batch["face_masks"], t_frames)
        return float(_weighted_loss(x0_hat, x0, t, w, s, t_floor))

    out = {"loss": run(batch["audio"])}
    if b > 1:
        out["audio_swap"] = run(torch.roll(batch["audio"], 1, 0))
        out["audio_swap_gap"] = (out["audio_swap"] - out["loss"]) / max(out["loss"], 1e-12)
        mouth = batch.get("mouth_masks")
        if mouth is not None:
            w1 = mouth.reshape(b, -1).float().repeat(1, lat - 1)
            t1 = torch.ones(b)
            own = run(batch["audio"], noise, t1, w1)
            out["audio_swap_gap_t1"] = (run(torch.roll(batch["audio"], 1, 0), noise, t1, w1) - own) / max(own, 1e-12)
    _, at_own = model.encode_conditions(batch["ref"], batch["faces"], batch["audio"])
    out["audio_aux"] = float(audio_aux_loss(model, batch, at_own))
    out["copy_reference"] = float(_weighted_loss(frame_tokens(batch["ref"], t_frames, model.patch), x0, t, w, s,
                                                 t_floor))
    out["copy_context"] = float(_weighted_loss(frame_tokens(video[:, :, 0], t_frames, model.patch), x0, t, w, s,
                                               t_floor))
    if context.dim() == 5:  # the warped reference itself (what the zero-initialised DiT predicts now)
        out["copy_warped"] = float(_weighted_loss(patchify(context, model.patch), x0, t, w, s, t_floor))
    if model.motion is not None and batch.get("lips") is not None:
        ft = model.encode_faces(batch["faces"])
        out["motion_loss"] = float(motion_term(model, batch, ft))
        if b > 1:
            swapped = float(motion_term(model, batch, ft, torch.roll(batch["audio"], 1, 0)))
            out["motion_swap_gap"] = swapped / max(out["motion_loss"], 1e-12) - 1
    model.train(was_training)
    return out


def shifted_timesteps(steps: int, shift: float = 1.0) -> torch.Tensor:
    t = torch.linspace(1.0, 0.0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)


@torch.no_grad()
def sample(model: AnyTalkerDiT, ref: torch.Tensor, faces: torch.Tensor, audio: torch.Tensor,
           face_masks: torch.Tensor, num_frames: int, steps: int = 20, cfg_scale: float = 3.0,
           shift: float = 1.0, generator: torch.Generator | None = None,
           context: torch.Tensor | None = None) -> torch.Tensor:
    """Euler flow-matching sampler. ref, context (B, 3, H, W) in [-1, 1] -> video (B, 3, T, H, W)
    whose frame 0 is ``context`` (default: the reference); context may also be one frame per
    video frame (B, 3, T, H, W), frame 0 first (``warped_context``). With CFG, the conditional and the
    audio-free pass run as one batch of 2B (one call per step instead of two)."""
    b, _, h, w = ref.shape
    context = ref if context is None else context
    use_cfg = cfg_scale != 1.0
    if use_cfg:
        ref2, ctx2 = torch.cat([ref, ref]), torch.cat([context, context])
        face_tokens, audio_tokens = model.encode_conditions(ref2, torch.cat([faces, faces]),
                                                            torch.cat([audio, torch.zeros_like(audio)]))
        masks2 = torch.cat([face_masks, face_masks])
    else:
        face_tokens, audio_tokens = model.encode_conditions(ref, faces, audio)
    shape_probe = patchify(torch.zeros(1, 3, num_frames, h, w), model.patch).shape
    x = torch.randn((b, *shape_probe[1:]), generator=generator)
    ts = shifted_timesteps(steps, shift)
    # reference/context embedding: the same for every Euler step
    cond = model.condition_embedding(ref2, ctx2, num_frames) if use_cfg else \
        model.condition_embedding(ref, context, num_frames)
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        if use_cfg:
            tb = torch.full((2 * b,), float(t))
            x0 = predict_x0(model, torch.cat([x, x]), tb, ref2, ctx2, face_tokens, audio_tokens, masks2, num_frames,
                            cond)
            v_cond, v_null = velocity(torch.cat([x, x]), x0, tb).chunk(2)
            v = v_null + cfg_scale * (v_cond - v_null)
        else:
            tb = torch.full((b,), float(t))
            v = velocity(x, predict_x0(model, x, tb, ref, context, face_tokens, audio_tokens, face_masks,
                                       num_frames, cond), tb)
        x = x + (t_next - t) * v
    ctx0 = patchify(first_frame(context)[:, :, None], model.patch)
    x = torch.cat([ctx0, x[:, ctx0.shape[1]:]], 1)  # frame 0 is the context exactly
    return unpatchify(x, num_frames, h, w, model.patch).clamp(-1, 1)


class FlowMatchingObjective(torch.nn.Module):
    """The loss as a module, so DDP wraps one forward that touches every parameter."""

    def __init__(self, model: AnyTalkerDiT, mouth_weight: float = 1.0, t_floor: float = LOSS_T_FLOOR,
                 audio_aux_weight: float = 0.0, motion_weight: float = 0.0, motion_audio_noise: float = 0.0,
                 judge_weight: float = 0.0, judge_seeds: tuple[int, ...] = (0, 1), fps: float = 24.0):
        super().__init__()
        # the frozen sync judge's loss on the head's predicted lips (``train.motion_judge_weight``);
        # a plain attribute, not a submodule: the judge is neither trained nor saved
        self.judge_weight, self.fps = float(judge_weight), float(fps)
        self._judge = None
        if self.judge_weight > 0:
            from model.sync_guidance import JudgeLoss

            self._judge = JudgeLoss(tuple(judge_seeds))
        self.motion_audio_noise = float(motion_audio_noise)
        self.model = model
        self.motion_weight = float(motion_weight)
        self.mouth_weight = float(mouth_weight)
        self.t_floor = float(t_floor)
        self.audio_aux_weight = float(audio_aux_weight)

    def forward(self, batch: dict, generator: torch.Generator, audio_dropout: float = 0.0,
                motion_batch: dict | None = None) -> torch.Tensor:
        loss = flow_matching_loss(self.model, batch, generator, audio_dropout, self.mouth_weight, self.t_floor,
                                  self.audio_aux_weight, self.motion_weight)
        if motion_batch is not None and self.model.motion is not None:
            # the head's own sequences (``train.motion_batch``; cheap: no DiT pass)
            with torch.no_grad():  # detached, as on the DiT's batch
                ft = self.model.encode_faces(motion_batch["faces"])
            loss = loss + self.motion_weight * motion_term(self.model, motion_batch, ft, None, self.motion_audio_noise,
                                                           generator)
            if self._judge is not None and "judge_audio" in motion_batch:
                head = self.model.motion
                coeffs = head.coefficients(ft, motion_batch["audio"], motion_batch["ref_lips"])
                self.last_judge_loss = self._judge(head, coeffs, motion_batch["ref_lips"], motion_batch["judge_audio"],
                                                   self.fps)
                loss = loss + self.judge_weight * self.last_judge_loss
        return loss
