"""Sync-judge guidance of the motion head's lips at generation (classifier guidance).

The motion head regresses lip motion from audio and reaches a held-out r of ~0.2 (a linear ridge
ceiling is about the same: ~5000 training frames bound the regression). The offline sync judge
(``curation.sync_judge``) was trained on more talking frames and is differentiable, so after the
head predicts a clip's coefficients ``c0`` for an identity's audio, generation moves them to
``c`` that the judge finds in sync with *that identity's own driving audio*:

    minimise  judge_loss(c) + penalty * mean((c - c0)^2)     (a few tens of Adam steps)

``judge_loss`` is the judge's own training loss (``curation.sync_judge.train.contrastive_loss``,
InfoNCE): the lips against their audio at every shift -K..K (the own audio at shift 0 must
win) and, with several identities in one picture, against the other identities' audio. Only
the judge seeds named in ``sample.sync_guidance_seeds`` guide (default 0 and 1), so a seed that
never guided (2) can score the result: a gain that only the guiding seeds see is adversarial.
The coefficients stay in the head's PCA basis of real lip deformations, and the motion's
amplitude (RMS around the clip's mean) is kept within the training set's (``rms_true``).

Geometry: the judge reads the 40 lip points + chin in the eye-aligned frame (origin between
the outer eye corners, x along the eye line, unit = inter-ocular distance), minus the track's
mean. Generated frames keep the reference's pose, so the reference's eye corners (mesh points
33 and 263, in crop pixels) give that frame for every frame; the chin does not move in a
generated frame (the warp moves the lips only), so it is constant and cancels. The judge works
at 25 fps; the clip's frames (24 fps in ``tiny``) are linearly resampled to 25 fps inside the
graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

JUDGE_FPS = 25.0
LOGIT_SCALE = 10.0  # the judge's contrastive scale at initialisation (the learnt one is not saved)


@dataclass
class SyncGuidance:
    """``sample.sync_guidance_*`` of a config; ``steps`` 0 = off. The defaults are the shipped
    ones (``tiny.yaml``), also for a checkpoint whose config predates the keys."""

    steps: int = 0
    lr: float = 0.05
    penalty: float = 0.5
    seeds: tuple[int, ...] = field(default=(0, 1))
    # the change c - c0 is low-passed in time (Gaussian, this std in frames; 0 = off): real lips
    # move smoothly, a frame-to-frame flicker that pleases the judges is not lip sync
    smooth: float = 1.5
    # each step sees the lips as the judge's training augments them (scale 0.9-1.1, noise): an
    # optimum that holds under them is less a quirk of the guiding networks
    augment: bool = False

    @classmethod
    def from_config(cls, smp: dict, enabled: bool | None = None) -> "SyncGuidance":
        """From a config's ``sample`` section; ``enabled`` (the CLI switch) overrides the steps:
        False = off, True = the config's steps or, for a checkpoint made before the switch, the
        shipped default (``DEFAULT_STEPS``)."""
        steps = int(smp.get("sync_guidance_steps", 0))
        if enabled is False:
            steps = 0
        elif enabled is True and steps <= 0:
            steps = DEFAULT_STEPS
        return cls(steps=steps, lr=float(smp.get("sync_guidance_lr", cls.lr)),
                   penalty=float(smp.get("sync_guidance_penalty", cls.penalty)),
                   seeds=tuple(int(s) for s in smp.get("sync_guidance_seeds", (0, 1))),
                   smooth=float(smp.get("sync_guidance_smooth", cls.smooth)),
                   augment=bool(smp.get("sync_guidance_augment", cls.augment)))


DEFAULT_STEPS = 40


def guidance_nets(seeds: tuple[int, ...]):
    """The judge networks of ``seeds`` (``curation/sync_judge/weights/judge_seed{N}.pt``), frozen."""
    from curation.sync_judge import WEIGHTS_DIR, load_ensemble

    files = tuple(str(WEIGHTS_DIR / f"judge_seed{s}.pt") for s in seeds)
    nets, digest = load_ensemble(files)
    for n in nets:
        n.requires_grad_(False)
    return nets, digest


def resample_frames(x: torch.Tensor, fps_from: float, fps_to: float) -> torch.Tensor:
    """(B, T, ...) -> (B, T', ...) linearly interpolated at times k / fps_to (differentiable),
    T' = the frames of fps_to that fall within the clip."""
    t = x.shape[1]
    n = int(np.floor((t - 1) * fps_to / fps_from + 1e-9)) + 1
    pos = torch.arange(n, dtype=torch.float64) * (fps_from / fps_to)
    i0 = pos.floor().long().clamp(max=t - 1)
    i1 = (i0 + 1).clamp(max=t - 1)
    f = (pos - i0).to(x.dtype).view(1, n, *([1] * (x.dim() - 2)))
    return x[:, i0] * (1 - f) + x[:, i1] * f


def judge_lip_features(points: torch.Tensor, eyes: torch.Tensor) -> torch.Tensor:
    """points (B, T, 40, 2): ``model.trainset.LIP_POINTS`` (the judge's outer + inner lip, same
    order) in image pixels; eyes (B, 2, 2): the outer eye corners (33, 263) of the reference in
    the same pixels -> (B, T, LIP_DIM) the judge's lip features (``features.lip_features``) with
    a constant chin (0: it cancels in the judge's per-track mean)."""
    right, left = eyes[:, 0], eyes[:, 1]
    origin = (right + left) / 2
    axis = left - right
    iod = axis.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    ex = axis / iod
    ey = torch.stack([-ex[:, 1], ex[:, 0]], -1)
    rel = points - origin[:, None, None]
    x = (rel * ex[:, None, None]).sum(-1) / iod[:, None]
    y = (rel * ey[:, None, None]).sum(-1) / iod[:, None]
    chin = x.new_zeros(*x.shape[:2], 1)
    return torch.cat([x, chin, y, chin], -1)


def judge_audio_span(wave: np.ndarray, start_s: float, num_frames: int, fps: float) -> np.ndarray:
    """The judge's log-mel (``features.audio_features``) for a sequence of ``num_frames`` video
    frames at ``fps`` starting at ``start_s`` of ``wave`` (16 kHz), resampled to 25 fps as
    ``resample_frames`` does, with ``MAX_SHIFT`` frames of audio context on each side (silence
    outside the wave), as the judge's training segments have them: (n25 + 2 * MAX_SHIFT, AUDIO_DIM)."""
    from curation.sync_judge.features import SR, audio_features
    from curation.sync_judge.train import MAX_SHIFT

    n25 = int(np.floor((num_frames - 1) * JUDGE_FPS / fps + 1e-9)) + 1
    hop = int(round(SR / JUDGE_FPS))
    first = int(round(start_s * SR)) - MAX_SHIFT * hop
    need = (n25 + 2 * MAX_SHIFT) * hop
    seg = np.zeros(need, np.float32)
    lo, hi = max(0, first), min(len(wave), first + need)
    if hi > lo:
        seg[lo - first:hi - first] = wave[lo:hi]
    return audio_features(seg, n25 + 2 * MAX_SHIFT)


def judge_loss(nets, lips: torch.Tensor, audio_emb: list[torch.Tensor], shift: int) -> torch.Tensor:
    """Mean over ``nets`` of the judge's contrastive loss of lips (B, T, LIP_DIM) against the
    pre-embedded audio (per net, (B, T + 2 * shift, E))."""
    from curation.sync_judge.train import contrastive_loss

    mask = torch.ones(lips.shape[:2], dtype=torch.bool)
    losses = [contrastive_loss(net.embed_lips(lips, mask), a, mask, torch.tensor(LOGIT_SCALE), shift)
              for net, a in zip(nets, audio_emb)]
    return torch.stack(losses).mean()


def smooth_in_time(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, T, C) low-passed along T by a Gaussian of ``sigma`` frames (edges replicated)."""
    if sigma <= 0:
        return x
    r = max(1, int(np.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, -1).repeat(x.shape[2], 1, 1)
    y = torch.nn.functional.pad(x.transpose(1, 2), (r, r), mode="replicate")
    return torch.nn.functional.conv1d(y, k, groups=x.shape[2]).transpose(1, 2)


def limit_amplitude(coeffs: torch.Tensor, max_rms: float) -> torch.Tensor:
    """(B, T, C) coefficients whose motion around each sequence's mean is scaled down to an RMS
    of at most ``max_rms`` (no change below it or when ``max_rms`` <= 0)."""
    if max_rms <= 0:
        return coeffs
    mean = coeffs.mean(1, keepdim=True)
    rms = (coeffs - mean).pow(2).mean((1, 2), keepdim=True).sqrt()
    return mean + (coeffs - mean) * (max_rms / rms.clamp(min=1e-9)).clamp(max=1.0)


def guide_coefficients(head, coeffs0: torch.Tensor, ref_lips: torch.Tensor, eyes: torch.Tensor,
                       waves: list[np.ndarray | None], fps: float, guidance: SyncGuidance) -> tuple[torch.Tensor, dict]:
    """coeffs0 (B, T, C) the head's coefficients (after its gain) for B identities; ref_lips
    (B, K, 2) and eyes (B, 2, 2) in crop pixels (NaN = unknown: that identity is not guided);
    ``waves``: each identity's driving audio (16 kHz, sample 0 = frame 0; None = a face without
    audio, not guided) -> (coefficients,
    record). The judge's loss before and after is in the record."""
    from curation.sync_judge.train import MAX_SHIFT

    ok = [waves[i] is not None and bool(torch.isfinite(ref_lips[i]).all() and torch.isfinite(eyes[i]).all())
          for i in range(len(coeffs0))]
    idx = [i for i, good in enumerate(ok) if good]
    record = {"steps": guidance.steps, "seeds": list(guidance.seeds), "penalty": guidance.penalty, "lr": guidance.lr,
              "smooth": guidance.smooth, "augment": guidance.augment, "guided_identities": idx}
    if guidance.steps <= 0 or not idx:
        return coeffs0, record
    nets, digest = guidance_nets(guidance.seeds)
    record["judge"] = f"ensemble:{len(nets)}@{digest}"
    c0 = coeffs0[idx].detach()
    ref, eye = ref_lips[idx], eyes[idx]
    k = MAX_SHIFT
    audio = torch.from_numpy(np.stack([judge_audio_span(waves[i], 0.0, c0.shape[1], fps) for i in idx]))
    with torch.no_grad():
        audio_emb = [net.embed_audio(audio) for net in nets]
    max_rms = float(head.rms_true)

    def lips_of(c: torch.Tensor) -> torch.Tensor:
        deform = head.to_deformation(c[:, None], ref[:, None])[:, 0]  # (B, T, K, 2) crop px
        return judge_lip_features(resample_frames(ref[:, None] + deform, fps, JUDGE_FPS), eye)

    with torch.no_grad():
        before = float(judge_loss(nets, lips_of(c0), audio_emb, k))
    rng = torch.Generator().manual_seed(0)
    change = torch.zeros_like(c0, requires_grad=True)
    opt = torch.optim.Adam([change], lr=guidance.lr)

    def guided() -> torch.Tensor:
        return limit_amplitude(c0 + smooth_in_time(change, guidance.smooth), max_rms)

    for _ in range(guidance.steps):
        c = guided()
        lips = lips_of(c)
        if guidance.augment:  # as ``curation.sync_judge.train`` augments its lips
            scale = 0.9 + 0.2 * torch.rand(len(lips), 1, 1, generator=rng)
            lips = lips * scale + 0.004 * torch.randn(lips.shape, generator=rng)
        loss = judge_loss(nets, lips, audio_emb, k) + guidance.penalty * (c - c0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    c = guided().detach()
    with torch.no_grad():
        after = float(judge_loss(nets, lips_of(c), audio_emb, k))
    out = coeffs0.clone()
    out[idx] = c
    record.update(judge_loss_before=round(before, 4), judge_loss_after=round(after, 4),
                  change_rms=round(float((c - c0).pow(2).mean().sqrt()), 4), max_motion_rms=round(max_rms, 4))
    return out, record


# Mouth width (mesh points 61-291) / inter-ocular distance (outer eye corners 33-263): median over
# 120 frames (frames 0, 10, 20) of 40 single-person talking clips of the shared data (eval/ and
# talking/; p10-p90 0.47-0.64), ``python -m model.mouth_iod_ratio``. The training shards hold
# the lips only, so the judge's loss on the motion head scales the lips by it.
MOUTH_WIDTH_PER_IOD = 0.57


class JudgeLoss:
    """The frozen judge's contrastive loss on the motion head's *predicted* lips of its training
    sequences (``train.motion_judge_weight``): the lips of sequence b must match b's own audio
    at shift 0 better than at other shifts -K..K and better than the other sequences' audio.
    Needs no landmark truth, only the reference's lips; the eye frame is the image axes (no roll)
    at ``MOUTH_WIDTH_PER_IOD``. Kept out of the model's modules: nothing of it is saved."""

    def __init__(self, seeds: tuple[int, ...]):
        self.nets, self.digest = guidance_nets(tuple(seeds))
        self.seeds = tuple(seeds)

    def __call__(self, head, coeffs: torch.Tensor, ref_lips: torch.Tensor, audio: torch.Tensor,
                 fps: float) -> torch.Tensor:
        """coeffs (B, 1, T, C) predicted; ref_lips (B, 1, K, 2) any pixel unit (NaN rows: the
        sequence is left out); audio (B, n25 + 2K, AUDIO_DIM) (``judge_audio_span``)."""
        from curation.sync_judge.train import MAX_SHIFT

        from model.motion import lip_centroid, mouth_width

        ok = torch.isfinite(ref_lips[:, 0]).all(-1).all(-1)
        if int(ok.sum()) < 2:
            return coeffs.sum() * 0.0
        c, ref, aud = coeffs[ok][:, 0], ref_lips[ok][:, 0], audio[ok]
        points = ref[:, None] + head.to_deformation(c[:, None], ref[:, None])[:, 0]
        iod = mouth_width(ref) / MOUTH_WIDTH_PER_IOD  # (B,)
        centre = lip_centroid(ref)[:, 0]  # (B, 2)
        half = torch.stack([iod / 2, torch.zeros_like(iod)], -1)
        eyes = torch.stack([centre - half, centre + half], 1)  # (B, 2, 2): horizontal, IOD apart
        lips = judge_lip_features(resample_frames(points, fps, JUDGE_FPS), eyes)
        with torch.no_grad():
            emb = [net.embed_audio(aud) for net in self.nets]
        return judge_loss(self.nets, lips, emb, MAX_SHIFT)
