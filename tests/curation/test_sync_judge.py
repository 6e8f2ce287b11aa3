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


def test_foreign_audio_at_any_shift_is_a_negative_when_asked():
    """A foreign audio that matches the lips at one far shift (a spurious peak) costs nothing when
    foreign audio is compared at shift 0 only, and is penalised by ``foreign_shifts`` all / hardest /
    separate / meanexp, and by ``segment`` on the whole segment only (less than ``all``)."""
    torch = pytest.importorskip("torch")
    from curation.sync_judge.train import contrastive_loss

    gen = torch.Generator().manual_seed(0)
    b, length, k, e = 4, 50, 6, 16
    unit = lambda x: torch.nn.functional.normalize(x, dim=-1)  # noqa: E731
    v = unit(torch.randn(b, length, e, generator=gen))
    a = unit(torch.randn(b, length + 2 * k, e, generator=gen))
    a[[0, 2, 3], k:k + length] = v[[0, 2, 3]]  # own audio matches at shift 0 (segment 1: unrelated audio)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[1] = False  # segment 1 serves only as foreign audio: its own (masked) logits are constant
    modes = ("", "all", "hardest", "separate", "meanexp", "segment")
    losses = {mode: contrastive_loss(v, a, mask, torch.tensor(10.0), k, 0.0, mode).item() for mode in modes}
    spurious = a.clone()
    spurious[1, k + 4:k + 4 + length] = v[0]  # segment 1's audio matches segment 0's lips 4 frames later
    with_peak = {mode: contrastive_loss(v, spurious, mask, torch.tensor(10.0), k, 0.0, mode).item()
                 for mode in modes}
    assert abs(with_peak[""] - losses[""]) < 0.01
    assert with_peak["all"] > losses["all"] + 0.05
    assert with_peak["hardest"] > losses["hardest"] + 0.05
    assert with_peak["separate"] > losses["separate"] + 0.05
    assert with_peak["meanexp"] > losses["meanexp"] + 0.01  # one shift of 25: a weaker negative
    # the whole segment's term only (1 of its 3 terms here): penalised, by less than 'all'
    assert losses["segment"] + 0.02 < with_peak["segment"] < with_peak["all"] - (losses["all"] - losses["segment"]) - 0.02
    with pytest.raises(ValueError, match="foreign_shifts"):
        contrastive_loss(v, a, mask, torch.tensor(10.0), k, 0.0, "every")


def _synthetic_talker(t: int, rng):
    """Lips and log-mel audio driven by one random mouth signal on the same timeline; the audio's
    signal is sampled at every 10 ms mel frame (4 per video frame), as speech is."""
    from curation.sync_judge.features import MELS_PER_FRAME, N_MELS

    fine = np.convolve(rng.normal(0, 1, t * MELS_PER_FRAME + 40), np.ones(8) / 8, mode="same")[20:-20]
    lip_dir, mel_dir = rng.normal(0, 1, LIP_DIM), rng.normal(0, 1, N_MELS)
    lips = np.outer(fine[::MELS_PER_FRAME], lip_dir).astype(np.float32)
    audio = np.outer(fine, mel_dir).reshape(t, MELS_PER_FRAME * N_MELS).astype(np.float32)
    return lips, audio, lip_dir, mel_dir


def _shift_curve(lip, audio, k, lip_dir, mel_dir) -> np.ndarray:
    """Correlation of the lip and audio signals with audio frame t + j against lip frame t, for
    j = -k..k (index j + k)."""
    from curation.sync_judge.features import MELS_PER_FRAME

    x = lip @ lip_dir
    y = (audio.reshape(len(audio), MELS_PER_FRAME, -1) @ mel_dir)[:, 0]
    length = len(x)
    return np.array([np.corrcoef(x, y[k + j:k + j + length])[0, 1] for j in range(-k, k + 1)])


def test_speed_perturbation_keeps_lips_and_audio_in_sync():
    """Both streams replayed at one tempo still agree best at shift 0; had the audio been
    resampled at another rate than the lips, the best shift would move (so the check can fail)."""
    from curation.sync_judge.train import SEGMENT, _silence_row, speed_segment

    rng = np.random.default_rng(5)
    t, k = 200, 12
    lips, audio, lip_dir, mel_dir = _synthetic_talker(t, rng)
    valid = np.ones(t, bool)
    silence = _silence_row()
    # rate 1 at an integer start is the plain segment, audio context included
    lip, ok, a = speed_segment(lips, valid, audio, 40.0, 1.0, SEGMENT, k, silence)
    np.testing.assert_array_equal(lip, lips[40:40 + SEGMENT])
    np.testing.assert_array_equal(a, audio[40 - k:40 + SEGMENT + k])
    assert ok.all() and a.shape == (SEGMENT + 2 * k, audio.shape[1])
    assert _shift_curve(lip, a, k, lip_dir, mel_dir)[k] > 0.99
    for rate in (0.8, 0.9, 1.1, 1.2):
        lip, ok, a = speed_segment(lips, valid, audio, 30.3, rate, SEGMENT, k, silence)
        curve = _shift_curve(lip, a, k, lip_dir, mel_dir)
        assert np.argmax(curve) == k and curve[k] > 0.9, (rate, curve.round(2))
        # the lip frames really are read at the new tempo
        assert abs(np.corrcoef(lip @ lip_dir, lips[30:30 + SEGMENT] @ lip_dir)[0, 1]) < 0.9
        # lips at this rate, audio at the inverse one (a duration-vs-speed mix-up): no sync left
        _, _, wrong = speed_segment(lips, valid, audio, 30.3, 1 / rate, SEGMENT, k, silence)
        assert _shift_curve(lip, wrong, k, lip_dir, mel_dir)[k] < 0.6, rate
    # audio beyond the clip is silence; a lip frame next to a missing one is not valid
    holes = valid.copy()
    holes[160] = False
    lip, ok, a = speed_segment(lips, holes, audio, 150.0, 0.65, SEGMENT, k, silence)
    np.testing.assert_array_equal(a[-1], silence)
    pos = 150.0 + 0.65 * np.arange(SEGMENT)
    np.testing.assert_array_equal(ok, (np.floor(pos) != 160) & (np.ceil(pos) != 160))


def test_speed_perturbation_is_off_by_default_and_trains_seeded():
    torch = pytest.importorskip("torch")
    from curation.sync_judge.train import TrainConfig, train_judge

    # speed 0 keys its configuration as before the option existed (cached fold models stay valid)
    assert "speed" not in TrainConfig().to_dict() and TrainConfig(speed=0.1).to_dict()["speed"] == 0.1
    torch.set_num_threads(1)
    rng = np.random.default_rng(6)
    from curation.sync_judge.train import ClipData

    clips = []
    for i in range(3):
        lips, audio, _, _ = _synthetic_talker(150, rng)
        clips.append(ClipData(f"c{i}", f"{i}", lips, np.ones(150, bool), audio, np.abs(lips[:, 0])))
    cfg = TrainConfig(steps=30, batch=4, speed=0.2)
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


class _IdentityNet:
    """Stands in for a judge: both towers are the identity (unit-normalised), so the similarity
    of lip frame t and audio frame u is the cosine of the raw vectors."""

    @staticmethod
    def _unit(x):
        return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-8)

    def embed_lips(self, lips, mask=None):
        return self._unit(lips)

    def embed_audio(self, audio):
        return self._unit(audio)


def test_audio_context_compares_every_frame_at_every_offset():
    from curation.sync_judge import curve_from_sims, similarity_curve

    rng = np.random.default_rng(3)
    vshift, t, lead = 15, 60, 15
    audio = rng.normal(size=(lead + t + vshift, 8)).astype(np.float32)
    delay = 4  # the sound of lip frame i is audio frame i + delay (joonson: offset -delay)
    lips = audio[lead + delay:lead + delay + t].copy()
    valid = np.ones(t, bool)
    sims = similarity_curve([_IdentityNet()], lips, audio, valid, vshift, audio_lead=lead)
    assert np.isfinite(sims).all()  # with vshift frames of context no comparison is missing
    curve = curve_from_sims(sims)
    assert vshift - int(np.argmin(curve)) == -delay
    # without context the far offsets lose frames at the ends, and are NaN there
    bare = similarity_curve([_IdentityNet()], lips, audio[lead:lead + t], valid, vshift)
    assert np.isnan(bare[0, :vshift]).all() and np.isfinite(bare[vshift]).all()


def test_far_offsets_are_judged_on_the_same_frames_as_near_ones():
    from curation.sync_judge import common_support, curve_from_sims

    vshift, t = 3, 60
    sims = np.full((2 * vshift + 1, t), 0.1)
    sims[vshift] = 0.5  # the true offset: best on every frame where all offsets are seen...
    sims[vshift, :20] = 0.2  # ...but weak on the first frames (a pause, say)
    sims[0, :20] = np.nan  # the far offset points outside the audio there
    sims[0, 20:30], sims[0, 30:] = 1.0, 0.3
    naive = 1.0 - np.nanmean(sims, axis=1)
    assert int(np.argmin(naive)) == 0  # a mean over each offset's own frames picks the far offset
    curve = curve_from_sims(sims)
    assert int(np.argmin(curve)) == vshift
    assert np.isnan(common_support(sims)[:, :20]).all()
    # too few common frames: left unchanged rather than emptied
    short = sims[:, 10:30]
    np.testing.assert_array_equal(common_support(short), short)


def test_a_window_is_read_at_its_track_offset():
    from curation.sync_judge import curve_at

    curve = np.array([0.9, 0.8, 0.5, 0.85, 0.7])  # vshift 2; argmin index 2 = offset 0
    conf, dist = curve_at(curve, 0)
    assert dist == 0.5 and conf == pytest.approx(0.8 - 0.5)
    conf1, dist1 = curve_at(curve, -2)  # index vshift + 2 = 4
    assert dist1 == 0.7 and conf1 == pytest.approx(0.1)
