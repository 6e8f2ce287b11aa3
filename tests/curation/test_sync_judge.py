"""The learned sync judge: features, rules, training, shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation.sync_judge import (STATIC_LIP_MOTION, WEIGHTS_DIR, judge_decision, lip_motion)
from curation.sync_judge.features import (LIP_DIM, STORED_POINTS, audio_features, lip_features, lip_opening,
                                          opening_from_lips)


def _face(t: int, rng) -> np.ndarray:
    """(t, len(STORED_POINTS), 2) fake landmarks: a face whose mouth opens and closes."""
    base = rng.normal(0, 30, (len(STORED_POINTS), 2)) + 200
    lm = np.repeat(base[None], t, 0)
    idx = {p: i for i, p in enumerate(STORED_POINTS)}
    lm[:, idx[33]] = (150, 150)
    lm[:, idx[263]] = (250, 150)
    for lower in (87, 14, 317):
        lm[:, idx[lower], 1] += 10 * np.abs(np.sin(np.arange(t) / 3))[:]
    return lm


def test_lip_features_ignore_position_rotation_and_scale():
    rng = np.random.default_rng(0)
    lm = _face(20, rng)
    ang = 0.4
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    moved = (lm @ rot.T) * 1.7 + np.array([40.0, -25.0])
    a, b = lip_features(lm), lip_features(moved)
    assert a.shape == (20, LIP_DIM)
    np.testing.assert_allclose(a, b, atol=1e-4)
    # the opening read from the features is the landmarks' opening / inter-ocular distance
    np.testing.assert_allclose(opening_from_lips(a), lip_opening(lm), atol=1e-5)


def test_static_mouth_never_passes_and_silence_is_no_speech():
    rng = np.random.default_rng(1)
    talking = opening_from_lips(lip_features(_face(100, rng)))
    frozen = np.repeat(talking[:1], 100)
    assert lip_motion(frozen) < STATIC_LIP_MOTION <= lip_motion(talking)
    assert judge_decision(conf=5.0, offset=0, motion=lip_motion(frozen), speech=1.0, min_conf=0.1,
                          max_abs_offset=3) == (False, "static_mouth")
    assert judge_decision(5.0, 0, 0.1, speech=0.0, min_conf=0.1, max_abs_offset=3) == (False, "no_speech")
    assert judge_decision(0.05, 0, 0.1, 1.0, 0.1, 3) == (False, "low_sync")
    assert judge_decision(0.5, 5, 0.1, 1.0, 0.1, 3) == (False, "sync_offset")
    assert judge_decision(0.5, -2, 0.1, 1.0, 0.1, 3) == (True, None)


def test_audio_features_are_one_row_per_frame_and_level_free():
    rng = np.random.default_rng(2)
    wav = rng.normal(0, 0.05, 16000).astype(np.float32)
    f = audio_features(wav, 25)
    assert f.shape == (25, 160)
    np.testing.assert_allclose(audio_features(wav * 8, 25), f, atol=1e-3)
    assert audio_features(wav[:8000], 25)[-1].max() < f[-1].min()  # missing audio reads as silence


def test_training_is_seeded_and_learns_a_synthetic_sync():
    torch = pytest.importorskip("torch")
    from curation.sync_judge.train import ClipData, TrainConfig, train_judge

    torch.set_num_threads(1)
    rng = np.random.default_rng(3)
    clips = []
    for i in range(3):
        t = 150
        drive = np.convolve(rng.normal(0, 1, t), np.ones(3) / 3, mode="same").astype(np.float32)
        lips = np.outer(drive, rng.normal(0, 0.05, LIP_DIM)).astype(np.float32)
        audio = (np.outer(drive, rng.normal(0, 1, 160)) + rng.normal(0, 0.2, (t, 160))).astype(np.float32)
        clips.append(ClipData(f"c{i}", f"{i}", lips, np.ones(t, bool), audio, np.abs(drive)))
    cfg = TrainConfig(steps=40, batch=4)
    a, hist = train_judge(clips, cfg)
    b, _ = train_judge(clips, cfg)
    for (n, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), n
    assert hist[-1]["loss"] < hist[0]["loss"]


def test_shipped_weights_are_small_and_documented():
    from curation.sync_judge import load_ensemble
    from curation.sync_judge.model import count_parameters

    files = sorted(WEIGHTS_DIR.glob("*.pt"))
    assert files, "the package ships the judge's weights"
    nets, digest = load_ensemble()
    assert len(nets) == len(files) and all(count_parameters(n) <= 1_000_000 for n in nets)
    listing = json.loads((WEIGHTS_DIR / "training_clips.json").read_text())
    assert listing["command"].startswith("anytalker train sync-judge")
    assert listing["clips"] and all(len(c["sha256"]) == 64 for c in listing["clips"])
