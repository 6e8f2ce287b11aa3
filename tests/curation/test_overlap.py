"""The learned overlapped-speech detector (curation.overlap) and its use in diarization."""

from __future__ import annotations

import numpy as np

from curation import audio
from curation.media import load_audio
from curation.overlap import N_ACOUSTIC, OverlapModel, frame_features, load_model, overlap_probability
from curation.overlap.train import activity, grid_targets
from tests.conftest import shared_file

SR = 16000


def _two_voices():
    """A built mixture: voice A alone 0-2.8 s, A and B together 2.8-5 s, B alone 5-7.6 s
    (two speakers of two benchmark pairs, each cut from inside its speaking interval)."""
    a = load_audio(shared_file("anytalker_benchmark/audio_right/interact_3_right.flac"), start_s=1.2, end_s=6.2)
    b = load_audio(shared_file("anytalker_benchmark/audio_left/interact_10_left.flac"), start_s=3.3, end_s=8.1)
    a = a / (np.sqrt(np.mean(a ** 2)) + 1e-9) * 0.05
    b = b / (np.sqrt(np.mean(b ** 2)) + 1e-9) * 0.05
    mix = np.zeros(int(8.0 * SR), np.float32)
    mix[: len(a)] += a
    mix[int(2.8 * SR): int(2.8 * SR) + len(b)] += b
    return np.clip(mix, -1, 1)


def test_detector_fires_where_two_voices_talk_and_not_where_one_does():
    mix = _two_voices()
    times, emb = audio.speaker_embeddings(mix)
    prob = overlap_probability(mix, times, emb)
    assert prob.shape == times.shape and np.all((prob >= 0) & (prob <= 1))
    both = (times > 3.2) & (times < 4.6)
    one = ((times > 0.6) & (times < 2.4)) | ((times > 5.4) & (times < 7.2))
    # a stub (constant, random or energy-only output) cannot separate the two by this much
    assert prob[both].mean() > prob[one].mean() + 0.25, (prob[both].mean(), prob[one].mean())
    assert np.median(prob[both]) > np.median(prob[one])


def test_diarization_gives_the_overlap_region_a_second_speaker():
    mix = _two_voices()
    from curation.intervals import remove_overlaps

    def overlap_inside(turns) -> tuple[float, float]:
        _, ov = remove_overlaps(turns)
        inside = sum(max(0.0, min(e, 5.0) - max(s, 2.8)) for s, e in ov)  # 2.2 s of reference overlap
        return inside, sum(e - s for s, e in ov) - inside

    base = audio.diarize(mix, num_speakers=2, overlap_threshold=1.0)
    ungated = audio.diarize(mix, num_speakers=2, overlap_threshold=0.5, overlap_min_second_sim=0.0)
    shipped = audio.diarize(mix, num_speakers=2)  # OVERLAP_THRESHOLD / OVERLAP_MIN_SECOND_SIM
    assert overlap_inside(base)[0] < 0.3
    assert overlap_inside(ungated)[0] > 0.8, ungated
    inside, outside = overlap_inside(shipped)
    assert inside > 0.5 and outside < 0.3, shipped
    assert {t[2] for t in ungated} == {t[2] for t in shipped} == {t[2] for t in base}  # no new voice


def test_model_round_trip_and_targets(tmp_path):
    rng = np.random.default_rng(0)
    m = OverlapModel(np.zeros(3), np.ones(3), [rng.normal(size=(3, 4)), rng.normal(size=(4, 1))],
                     [np.zeros(4), np.zeros(1)])
    m.save(tmp_path / "w.npz")
    x = rng.normal(size=(5, 3))
    assert np.allclose(OverlapModel.load(tmp_path / "w.npz").predict(x), m.predict(x), atol=1e-6)
    count = np.array([0] * 50 + [1] * 50 + [2] * 50)
    assert grid_targets(count, np.array([0.25, 0.75, 1.25])).tolist() == [-1, 0, 1]
    wav = np.concatenate([np.zeros(SR), 0.1 * np.sin(np.arange(SR) * 0.3), np.zeros(SR)]).astype(np.float32)
    act = activity(wav)
    assert not act[:90].any() and act[110:190].all() and not act[210:].any()
    feats = frame_features(wav, np.array([0.5, 1.5]), np.zeros((2, 256)))
    assert feats.shape == (2, N_ACOUSTIC + 256) and np.isfinite(feats).all()
    assert load_model().coefs[0].shape[0] == N_ACOUSTIC + 256


def test_shipped_weights_name_their_training_command_and_clips():
    import json

    from curation.overlap import WEIGHTS_DIR

    listing = json.loads((WEIGHTS_DIR / "training_clips.json").read_text())
    assert listing["command"].startswith("anytalker train overlap-detector")
    assert listing["clips"] and all(len(c["sha256"]) == 64 for c in listing["clips"])
    from curation.overlap import FEATURE_VERSION

    assert listing["feature_version"] == FEATURE_VERSION  # the weights were trained on today's features


def test_train_command_refuses_shards_in_one_line(capsys):
    from anytalker.cli import main

    assert main(["train", "overlap-detector", "--shards", "runs/r1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data" in err[0]
