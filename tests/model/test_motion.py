"""Audio -> mouth motion (model.motion) and the reference warp (model.warp)."""

import numpy as np
import torch

from model.config import load_config
from model.dit import AnyTalkerDiT
from model.motion import (MotionHead, deformation, destination, lip_centroid, lip_opening, mouth_width,
                          sequence_loss)
from model.trainset import LIP_POINTS
from model.warp import warp_to_landmarks
from tests.model.conftest import MICRO


def _blob(h, w, x, y, s=1.5):
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    return torch.from_numpy(np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * s * s))).float()


def _peak(img, r=2):
    """Sub-pixel position of the brightest point: centroid of the (2r+1)^2 window around it."""
    m = img.numpy()
    y, x = np.unravel_index(np.argmax(m), m.shape)
    win = m[y - r:y + r + 1, x - r:x + r + 1]
    ys, xs = np.mgrid[y - r:y + r + 1, x - r:x + r + 1] + 0.5
    return float((xs * win).sum() / win.sum()), float((ys * win).sum() / win.sum())


def test_warp_moves_lip_landmarks_where_asked_and_leaves_far_pixels():
    h = w = 64
    # a ring of 12 control points around (32, 40) (a mouth); the lower half moves down 4 px,
    # the upper half stays: an opening mouth. A dot on a lower-lip point must follow it.
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    src = np.stack([32 + 8 * np.cos(ang), 40 + 3 * np.sin(ang)], 1).astype(np.float32)
    dst = src.copy()
    dst[np.sin(ang) > 0.1, 1] += 4.0
    k = int(np.argmax(np.sin(ang)))  # the lowest point of the ring
    img = torch.zeros(1, 3, h, w)
    img[0, 0] = _blob(h, w, *src[k])
    img[0, 1] = _blob(h, w, 8.0, 8.0)  # far from the mouth
    out = warp_to_landmarks(img, torch.from_numpy(src)[None], torch.from_numpy(dst)[None])
    cx, cy = _peak(out[0, 0])
    assert abs(cx - dst[k, 0]) < 0.6 and abs(cy - dst[k, 1]) < 0.8, (cx, cy, dst[k])
    assert torch.allclose(out[0, 1], img[0, 1], atol=1e-4)  # the far dot does not move
    # no displacement: the image is unchanged; NaN control points are ignored
    same = warp_to_landmarks(img, torch.from_numpy(src)[None], torch.from_numpy(src)[None])
    assert torch.allclose(same, img, atol=1e-5)
    nan_src = torch.from_numpy(src)[None].clone()
    nan_src[0, 0] = float("nan")
    assert torch.isfinite(warp_to_landmarks(img, nan_src, torch.from_numpy(dst)[None])).all()


def test_destination_keeps_the_reference_centroid_and_takes_the_frame_shape():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 1, len(LIP_POINTS), 2, generator=g) * 20 + 30
    lips = torch.rand(2, 1, 5, len(LIP_POINTS), 2, generator=g) * 20 + 50
    dst = destination(ref, deformation(lips, ref))
    assert torch.allclose(lip_centroid(dst), lip_centroid(ref)[:, :, None].expand_as(lip_centroid(dst)), atol=1e-4)
    assert torch.allclose(dst - lip_centroid(dst), lips - lip_centroid(lips), atol=1e-4)
    assert torch.allclose(lip_opening(dst), lip_opening(lips), atol=1e-4)  # opening is translation-free


def _fitted_head(**kw) -> MotionHead:
    torch.manual_seed(0)
    head = MotionHead(24, 32, len(LIP_POINTS), hidden=16, **kw).eval()
    g = torch.Generator().manual_seed(2)
    head.fit_basis(torch.randn(200, len(LIP_POINTS), 2, generator=g) * 0.05)
    torch.nn.init.normal_(head.out.weight, std=0.1)  # the zero-initialised output would hide everything
    return head


def test_motion_head_output_changes_with_the_audio_of_its_own_identity_only():
    head = _fitted_head()
    g = torch.Generator().manual_seed(1)
    faces = torch.randn(1, 2, 4, 32, generator=g)
    audio = torch.randn(1, 2, 30, 24, generator=g)
    ref = torch.rand(1, 2, len(LIP_POINTS), 2, generator=g) * 96
    with torch.no_grad():
        a = head(faces, audio, ref)
        same = head(faces, audio.clone(), ref)
        other = audio.clone()
        other[:, 1] = torch.randn(1, 30, 24, generator=g)  # identity 1 hears something else
        b = head(faces, other, ref)
    assert a.shape == (1, 2, 30, len(LIP_POINTS), 2)
    assert torch.equal(a, same)
    assert (b[:, 1] - a[:, 1]).abs().max() > 1e-3  # identity 1's motion follows its audio
    assert torch.allclose(b[:, 0], a[:, 0], atol=1e-6)  # identity 0's does not


def test_motion_head_hears_only_its_temporal_reach_and_scales_with_the_mouth():
    head = _fitted_head(reach=2)
    g = torch.Generator().manual_seed(3)
    faces, audio = torch.randn(1, 1, 4, 32, generator=g), torch.randn(1, 1, 40, 24, generator=g)
    ref = torch.rand(1, 1, len(LIP_POINTS), 2, generator=g) * 50
    with torch.no_grad():
        a = head(faces, audio, ref)
        changed = audio.clone()
        changed[:, :, 30] += 5.0  # frame 30's sound: conv +-2, AFCA +-2 -> frames 26..34 only
        b = head(faces, changed, ref)
        big = head(faces, audio, ref * 2)  # the same face twice as large: twice the motion
    moved = (b - a).abs().amax((0, 1, 3, 4)) > 1e-6
    assert moved[26:35].all() and not moved[:26].any() and not moved[35:].any()
    assert torch.allclose(big, 2 * a, atol=1e-4)


def test_basis_is_fitted_on_training_deformations_and_the_loss_ignores_unknown_frames():
    cfg = load_config("tiny", MICRO)
    model = AnyTalkerDiT(cfg, 160).eval()
    assert model.motion is not None and model.warp_context
    ref = torch.rand(1, 1, len(LIP_POINTS), 2) * 32
    ft = model.encode_faces(torch.zeros(1, 1, 3, 16, 16))
    audio = torch.randn(1, 1, 12, 160)
    with torch.no_grad():
        pred = model.motion(ft, audio, ref)
    assert torch.equal(pred, torch.zeros_like(pred))  # fresh: the reference's mouth
    # a basis fitted on deformations that only open the mouth (inner lower lip down) reproduces them
    g = torch.Generator().manual_seed(0)
    lower = torch.zeros(len(LIP_POINTS), 2)
    lower[21:29, 1] = 1.0  # inner lower lip points (LIP_POINTS 95..402)
    lower = lower - lower.mean(0)
    deforms = torch.randn(300, 1, 1, generator=g) * lower * 0.1
    info = model.motion.fit_basis(deforms)
    assert info["explained"] > 0.999
    lips = ref[:, :, None].repeat(1, 1, 12, 1, 1)
    lips = lips + torch.linspace(0, 0.2, 12)[None, None, :, None, None] * lower * mouth_width(ref)[..., None, None, None]
    coeffs = model.motion.target_coefficients(lips, ref)
    back = model.motion.to_deformation(coeffs, ref)
    assert torch.allclose(back, deformation(lips, ref), atol=1e-3)
    lips[:, :, 3] = float("nan")
    loss = sequence_loss(model.motion.train(), ft, audio, lips, ref)
    assert torch.isfinite(loss) and loss > 0


def test_amplitude_gain_undoes_the_regressions_shrinkage_within_bounds():
    head = MotionHead(24, 32, len(LIP_POINTS), hidden=16).train()
    assert head.amplitude_gain() == 1.0  # untrained: no rescaling
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 1, 9, 8, generator=g)
    ok = torch.ones(2, 1, 9, dtype=torch.bool)
    head.track_amplitude(0.5 * target, target, ok)
    assert head.amplitude_gain() == np.float32(2.0) or abs(head.amplitude_gain() - 2.0) < 1e-5
    head.track_amplitude(0.01 * target, target, ok, momentum=0.0)
    assert head.amplitude_gain() == 4.0  # capped


def test_mouth_mask_covers_the_lips_and_nothing_far_away():
    from model.warp import mouth_mask

    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts = torch.from_numpy(np.stack([32 + 8 * np.cos(ang), 40 + 3 * np.sin(ang)], 1)).float()[None]
    m = mouth_mask(pts, 64, 64)[0, 0]
    assert m.shape == (64, 64)
    assert m[40, 32] > 0.5 and m[40, 24] > 0.9  # inside the mouth, on a corner
    assert m[8, 8] < 1e-3 and m[20, 32] < 0.05  # the eyes' height, a corner of the crop
    assert torch.equal(mouth_mask(torch.full((1, 12, 2), float("nan")), 8, 8), torch.zeros(1, 1, 8, 8))


def test_gain_scales_the_motion_around_its_mean_and_the_amplitude_ignores_constant_offsets():
    head = _fitted_head()
    g = torch.Generator().manual_seed(4)
    faces, audio = torch.randn(1, 1, 4, 32, generator=g), torch.randn(1, 1, 30, 24, generator=g)
    ref = torch.rand(1, 1, len(LIP_POINTS), 2, generator=g) * 50
    with torch.no_grad():
        d1, d3 = head(faces, audio, ref), head(faces, audio, ref, gain=3.0)
    assert torch.allclose(d3.mean(2), d1.mean(2), atol=1e-4)  # the mean mouth is not amplified
    assert torch.allclose(d3 - d3.mean(2, keepdim=True), 3 * (d1 - d1.mean(2, keepdim=True)), atol=1e-4)
    # a prediction that is the truth's motion at half size plus a large constant offset: gain 2
    head.train()
    target = torch.randn(2, 1, 9, 8, generator=g)
    ok = torch.ones(2, 1, 9, dtype=torch.bool)
    head.track_amplitude(0.5 * target + 10.0, target, ok, momentum=0.0)
    assert abs(head.amplitude_gain() - 2.0) < 1e-4
