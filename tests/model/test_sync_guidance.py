"""Sync-judge guidance of the predicted lips (model/sync_guidance.py)."""

import numpy as np
import pytest
import torch

from curation.sync_judge.features import EYE_OUTER, LIP_POINTS as JUDGE_POINTS, lip_features
from model.motion import MotionHead
from model.sync_guidance import (SyncGuidance, guide_coefficients, judge_lip_features, limit_amplitude,
                                 resample_frames)
from model.trainset import LIP_POINTS


def test_model_lip_points_are_the_judges_lips_in_its_order():
    assert JUDGE_POINTS[:-1] == LIP_POINTS  # the judge's last point is the chin


def test_judge_features_equal_the_judges_own_on_a_rolled_face():
    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 200, (6, 478, 2))
    lm[:, EYE_OUTER[0]] = [60, 80]
    lm[:, EYE_OUTER[1]] = [140, 95]  # a rolled head: the eye line is not horizontal
    want = lip_features(lm)
    got = judge_lip_features(torch.tensor(lm[None][:, :, LIP_POINTS], dtype=torch.float32),
                             torch.tensor(lm[0, list(EYE_OUTER)][None], dtype=torch.float32))[0].numpy()
    n = len(JUDGE_POINTS)
    keep = [i for i in range(2 * n) if i not in (n - 1, 2 * n - 1)]  # all but the chin's x and y
    np.testing.assert_allclose(got[:, keep], want[:, keep], atol=1e-4)


def test_resampling_a_line_to_25_fps_reads_the_line_at_25_fps():
    t24 = torch.arange(48, dtype=torch.float32) / 24
    out = resample_frames((3 * t24 + 1)[None, :, None], 24, 25)[0, :, 0]
    t25 = torch.arange(len(out), dtype=torch.float32) / 25
    assert len(out) == 49 and float(t25[-1]) <= float(t24[-1])
    torch.testing.assert_close(out, 3 * t25 + 1)


def test_amplitude_is_limited_around_the_mean_only():
    c = torch.randn(2, 50, 8) * 3 + 5
    out = limit_amplitude(c, 0.5)
    torch.testing.assert_close(out.mean(1), c.mean(1))
    rms = (out - out.mean(1, keepdim=True)).pow(2).mean((1, 2)).sqrt()
    torch.testing.assert_close(rms, torch.full((2,), 0.5))
    small = c * 0.01
    torch.testing.assert_close(limit_amplitude(small, 100.0), small)


def _head_with_basis(seed=0):
    g = torch.Generator().manual_seed(seed)
    head = MotionHead(feature_dim=8, face_dim=8, num_points=len(LIP_POINTS), basis_size=4)
    deforms = torch.randn(400, len(LIP_POINTS), 2, generator=g) * 0.02
    head.fit_basis(deforms)
    head.rms_true.fill_(1.0)
    return head


def _face():
    ang = torch.linspace(0, 2 * np.pi, len(LIP_POINTS) + 1)[:-1]
    lips = torch.stack([48 + 12 * ang.cos(), 70 + 5 * ang.sin()], -1)
    eyes = torch.tensor([[30.0, 40.0], [66.0, 40.0]])
    return lips, eyes


@pytest.mark.slow
def test_guidance_lowers_the_judges_loss_for_the_own_audio_and_skips_a_silent_face():
    """Two identities, one with speech and one without audio: the first one's lips move toward
    the judge's sync with its own audio (the guiding seeds' loss falls), the second one's stay."""
    from curation.media import load_audio
    from tests.conftest import shared_file

    wave = load_audio(shared_file("talking/syncnet_example_speech.wav"), sr=16000)[: 16000 * 3]
    head = _head_with_basis()
    lips, eyes = _face()
    c0 = torch.randn(2, 72, 4, generator=torch.Generator().manual_seed(1)) * 0.3
    guidance = SyncGuidance(steps=25, lr=0.05, penalty=0.1, seeds=(0,))
    c, rec = guide_coefficients(head, c0, lips.expand(2, -1, -1), eyes.expand(2, -1, -1), [wave, None], 24.0, guidance)
    assert rec["guided_identities"] == [0] and rec["seeds"] == [0]
    assert rec["judge_loss_after"] < rec["judge_loss_before"] - 0.05
    torch.testing.assert_close(c[1], c0[1])
    assert float((c[0] - c0[0]).abs().max()) > 0
    rms = (c[0] - c[0].mean(0)).pow(2).mean().sqrt()
    assert float(rms) <= float(head.rms_true) + 1e-5


def test_guidance_off_returns_the_heads_coefficients():
    head = _head_with_basis()
    lips, eyes = _face()
    c0 = torch.randn(1, 30, 4)
    c, rec = guide_coefficients(head, c0, lips[None], eyes[None], [np.zeros(16000, np.float32)], 24.0,
                                SyncGuidance(steps=0))
    assert c is c0 and "judge_loss_before" not in rec


def test_switch_overrides_the_config_steps():
    assert SyncGuidance.from_config({"sync_guidance_steps": 30}, False).steps == 0
    assert SyncGuidance.from_config({}, True).steps > 0
    assert SyncGuidance.from_config({"sync_guidance_steps": 30, "sync_guidance_seeds": [1]}).seeds == (1,)


def test_judge_audio_span_is_the_clips_audio_at_the_sequences_time_with_silence_outside():
    from curation.sync_judge.features import AUDIO_DIM, audio_features
    from curation.sync_judge.train import MAX_SHIFT
    from model.sync_guidance import judge_audio_span

    rng = np.random.default_rng(0)
    wave = (rng.standard_normal(16000 * 4) * 0.1).astype(np.float32)
    a = judge_audio_span(wave, 1.0, 48, 24.0)  # 2 s at 24 fps -> 49 frames at 25 fps
    assert a.shape == (49 + 2 * MAX_SHIFT, AUDIO_DIM)
    want = audio_features(wave[16000 - MAX_SHIFT * 640:16000 + (49 + MAX_SHIFT) * 640], 49 + 2 * MAX_SHIFT)
    np.testing.assert_allclose(a, want, atol=1e-5)
    start = judge_audio_span(wave, 0.0, 48, 24.0)  # before the clip: silence, as in the judge's training
    silence = audio_features(np.zeros(640, np.float32), 1)[0]
    # (the last silent frame's last mel window reaches into the audio)
    np.testing.assert_allclose(start[:MAX_SHIFT - 1], np.repeat(silence[None], MAX_SHIFT - 1, 0), atol=1e-5)
    assert not np.allclose(start[MAX_SHIFT], silence)


def test_judge_loss_trains_the_head_and_leaves_out_sequences_without_a_reference():
    from curation.sync_judge.features import AUDIO_DIM
    from curation.sync_judge.train import MAX_SHIFT
    from model.sync_guidance import JudgeLoss

    head = _head_with_basis()
    lips, _ = _face()
    b, t = 4, 48
    ref = lips.expand(b, 1, -1, -1).clone()
    audio = torch.randn(b, 49 + 2 * MAX_SHIFT, AUDIO_DIM) - 8
    head.out.bias.data.normal_()  # a head that moves: gradients reach its weights
    coeffs = head.coefficients(torch.zeros(b, 1, 1, 8), torch.randn(b, 1, t, 8), ref)
    loss_fn = JudgeLoss((0,))
    loss = loss_fn(head, coeffs, ref, audio, 24.0)
    loss.backward()
    assert torch.isfinite(loss) and float(head.out.weight.grad.abs().sum()) > 0
    ref[1:] = float("nan")  # one sequence left: nothing to contrast with, no loss
    assert float(loss_fn(head, coeffs.detach(), ref, audio, 24.0)) == 0.0


def test_a_rolled_reference_face_still_gets_its_lips_and_eye_corners():
    """The syncnet example's first frame: the head is rolled ~40 degrees. The mesh's upright
    region of interest finds no face there, so that identity was never warped or guided and all
    its frames were the reference (identical consecutive frames, LSE-J 0); the detector's eye
    keypoints orient the mesh."""
    from curation.media import VideoReader
    from model.generate import reference_lips
    from tests.conftest import shared_file

    rgb = VideoReader(shared_file("talking/syncnet_example_video.avi")).get([0])[0]
    pts, _ = reference_lips(rgb, [np.array([511.9, 227.3, 709.5, 425.1], np.float32)])
    assert pts[0] is not None and pts[0].shape == (len(LIP_POINTS) + 2, 2)
    right, left = pts[0][-2], pts[0][-1]
    roll = np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0]))
    assert 15 < abs(roll) < 60  # the eye corners read the roll the guidance needs
