"""Audio -> mouth motion (model.motion) and the reference warp (model.warp)."""

import numpy as np
import torch

from model.config import load_config
from model.dit import AnyTalkerDiT
from model.motion import MotionHead, deformation, destination, lip_centroid, lip_opening, motion_loss
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


def test_motion_head_output_changes_with_the_audio_of_its_own_identity_only():
    torch.manual_seed(0)
    head = MotionHead(32, 4, len(LIP_POINTS)).eval()
    torch.nn.init.normal_(head.out.weight, std=0.1)  # the zero-initialised output would hide everything
    g = torch.Generator().manual_seed(1)
    faces = torch.randn(1, 2, 4, 32, generator=g)
    audio = torch.randn(1, 2, 9 * 3, 32, generator=g)
    ref = torch.rand(1, 2, len(LIP_POINTS), 2, generator=g) * 96
    with torch.no_grad():
        a = head(faces, audio, ref, 9, 96.0)
        same = head(faces, audio.clone(), ref, 9, 96.0)
        other = audio.clone()
        other[:, 1] = torch.randn(1, 27, 32, generator=g)  # identity 1 hears something else
        b = head(faces, other, ref, 9, 96.0)
    assert a.shape == (1, 2, 9, len(LIP_POINTS), 2)
    assert torch.equal(a, same)
    assert (b[:, 1] - a[:, 1]).abs().max() > 1e-3  # identity 1's motion follows its audio
    assert torch.allclose(b[:, 0], a[:, 0], atol=1e-6)  # identity 0's does not


def test_a_fresh_head_predicts_the_reference_mouth_and_the_loss_ignores_unknown_frames():
    cfg = load_config("tiny", MICRO)
    model = AnyTalkerDiT(cfg, 160).eval()
    assert model.motion is not None and model.warp_context
    ref = torch.rand(1, 1, len(LIP_POINTS), 2) * 32
    with torch.no_grad():
        ft, at = model.encode_conditions(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 3, 16, 16),
                                         torch.randn(1, 1, 9, 5, 160))
        pred = model.motion(ft, at, ref, 9, 32.0)
    assert torch.equal(pred, torch.zeros_like(pred))
    lips = ref[:, :, None].repeat(1, 1, 9, 1, 1) + torch.randn(1, 1, 9, len(LIP_POINTS), 2)
    lips[:, :, 3] = float("nan")
    loss = motion_loss(pred, lips, ref, 32.0)
    assert torch.isfinite(loss) and loss > 0


def test_amplitude_gain_undoes_the_regressions_shrinkage_within_bounds():
    head = MotionHead(32, 4, len(LIP_POINTS)).train()
    assert head.amplitude_gain() == 1.0  # untrained: no rescaling
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 1, 9, len(LIP_POINTS), 2, generator=g)
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
