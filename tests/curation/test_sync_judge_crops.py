"""Mouth crops, the sync judge's optional second lip input (``TrainConfig.crops``)."""

from __future__ import annotations

import numpy as np
import pytest

from curation.sync_judge.features import CROP_H, CROP_W, LIP_DIM, STORED_POINTS, mouth_crops

cv2 = pytest.importorskip("cv2")


def _scene(rng, size: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image with a smooth random texture and (1, P, 2) landmarks of a face on it: outer
    eye corners 100 px apart, the mouth points ~100 px below them."""
    noise = rng.normal(0, 1, (size // 8, size // 8, 3))
    img = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    img = np.clip(128 + 40 * img, 0, 255).astype(np.uint8)
    lm = np.zeros((1, len(STORED_POINTS), 2))
    idx = {p: i for i, p in enumerate(STORED_POINTS)}
    lm[0, :] = (200, 250)  # every mouth point near the mouth centre
    lm[0, :, 0] += rng.uniform(-30, 30, len(STORED_POINTS))
    lm[0, idx[33]] = (150, 150)
    lm[0, idx[263]] = (250, 150)
    return img, lm


def _similar(img, lm, angle_deg: float, scale: float, shift) -> tuple[np.ndarray, np.ndarray]:
    centre = (200.0, 200.0)
    m = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    m[:, 2] += shift
    moved = cv2.warpAffine(img, m, img.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    pts = lm[0] @ m[:, :2].T + m[:, 2]
    return moved, pts[None]


def test_mouth_crop_is_pose_and_scale_invariant():
    rng = np.random.default_rng(0)
    img, lm = _scene(rng)
    det = np.ones(1, bool)
    crop = mouth_crops([img], lm, det)[0].astype(float)
    assert crop.shape == (CROP_H, CROP_W)
    assert crop.std() > 10  # the texture is there, not a blank
    for angle, scale, shift in [(15, 1.0, (0, 0)), (-10, 1.6, (20, -15)), (5, 0.8, (-30, 10))]:
        moved, mlm = _similar(img, lm, angle, scale, shift)
        again = mouth_crops([moved], mlm, det)[0].astype(float)
        assert np.abs(again - crop).mean() < 4.0, (angle, scale)
    # the crop follows the landmarks: the same face with its landmarks put 30 px lower reads other pixels
    lower = lm + np.array([0.0, 30.0])
    other = mouth_crops([img], lower, det)[0].astype(float)
    assert np.abs(other - crop).mean() > 10
    # frames without a mesh are blank
    assert not mouth_crops([img], lm, np.zeros(1, bool)).any()


def test_crop_judge_sees_the_crops_and_refuses_to_run_without_them():
    torch = pytest.importorskip("torch")
    from curation.sync_judge.model import SyncJudgeNet, count_parameters

    torch.manual_seed(0)
    net = SyncJudgeNet(width=80, crops=True).eval()
    assert count_parameters(net) < 0.34e6  # 3 seeds within the ~1 M parameter budget
    lips = torch.randn(1, 30, LIP_DIM) * 0.01
    crops = torch.rand(1, 30, CROP_H, CROP_W) * 255
    a = net.embed_lips(lips, None, crops)
    b = net.embed_lips(lips, None, crops.flip(1))
    assert (a - b).abs().max() > 1e-5  # (an untrained tower: small, but never exactly equal)
    per_frame = net.crop(net.norm_crops(crops)[0])
    assert (per_frame - per_frame.flip(0)).abs().max() > 1e-2
    # lighting drops out: a brighter, higher-contrast copy of the crops embeds the same
    c = net.embed_lips(lips, None, crops * 1.5 + 20)
    assert (a - c).abs().max() < 1e-6
    with pytest.raises(ValueError, match="mouth crops"):
        net.embed_lips(lips)


def test_training_with_crops_learns_a_sync_only_the_pixels_carry():
    torch = pytest.importorskip("torch")
    from curation.sync_judge.train import ClipData, TrainConfig, train_judge

    torch.set_num_threads(1)
    rng = np.random.default_rng(3)
    # a smooth pattern (a mouth is smooth: the crops' 2-pixel shift augmentation keeps it)
    pattern = cv2.resize(rng.normal(0, 1, (CROP_H // 8, CROP_W // 8)), (CROP_W, CROP_H),
                         interpolation=cv2.INTER_CUBIC)
    clips = []
    for i in range(3):
        t = 150
        drive = np.convolve(rng.normal(0, 1, t), np.ones(3) / 3, mode="same").astype(np.float32)
        lips = rng.normal(0, 0.01, (t, LIP_DIM)).astype(np.float32)  # the landmarks say nothing
        crops = np.clip(128 + 30 * drive[:, None, None] * pattern, 0, 255).astype(np.uint8)
        audio = (np.outer(drive, rng.normal(0, 1, 160)) + rng.normal(0, 0.2, (t, 160))).astype(np.float32)
        clips.append(ClipData(f"c{i}", f"{i}", lips, np.ones(t, bool), audio, np.abs(drive), crops=crops))
    short = TrainConfig(steps=3, batch=4, width=32, crops=True)
    a, _ = train_judge(clips, short)
    b, _ = train_judge(clips, short)
    for (n, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), n
    cfg = TrainConfig(steps=100, batch=4, width=32, crops=True)
    _, hist = train_judge(clips, cfg)
    # the same training with pixels that do not follow the audio (each clip's crops in another
    # order) ends far higher: the gain comes from the crops
    shuffled = [ClipData(c.name, c.sha256, c.lips, c.valid, c.audio, c.opening, crops=c.crops[rng.permutation(c.n)])
                for c in clips]
    _, control = train_judge(shuffled, cfg)
    assert hist[-1]["loss"] < control[-1]["loss"] - 0.5, (hist, control)
    no_crops = [ClipData(c.name, c.sha256, c.lips, c.valid, c.audio, c.opening) for c in clips]
    with pytest.raises(ValueError, match="crops"):
        train_judge(no_crops, cfg)


def test_av_sync_backend_refuses_crop_weights_with_one_line(tmp_path):
    pytest.importorskip("torch")
    from curation.sync_judge import JudgeSync, _load
    from curation.sync_judge.model import SyncJudgeNet
    from curation.sync_judge.train import TrainConfig, save, state_for_file

    cfg = TrainConfig(width=16, crops=True)
    path = tmp_path / "crop_judge.pt"
    save(path, state_for_file(SyncJudgeNet(16, crops=True), cfg, [], [], "test"))
    net, payload = _load(path)
    assert net.uses_crops and payload["config"]["crops"] is True
    with pytest.raises(ValueError, match="mouth crops.*not wired"):
        JudgeSync(weights=str(path))
