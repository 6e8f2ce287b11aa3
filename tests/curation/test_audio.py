"""Speech primitives: silero VAD, the resemblyzer diarization backend, overlaps, regrouping."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from curation import audio
from curation.media import load_audio
from tests.conftest import shared_file


def test_vad_silence_has_no_speech_and_sample_speech_starts_at_reference():
    assert audio.vad_segments(np.zeros(16000 * 3, np.float32)) == []
    wav = load_audio(shared_file("audio/sample.wav"))
    segs = audio.vad_segments(wav)
    # sample.rttm: first turn at 6.69 s, speech to the end (30.0 s)
    assert abs(segs[0][0] - 6.69) < 0.3, segs
    assert segs[-1][1] > 29.5
    speech = sum(e - s for s, e in segs)
    assert 20.0 < speech < 24.0  # reference speech (union of turns) is 23.3 s
    assert audio.vad_backend_name().startswith("silero-vad ")


def test_mel_filterbank_has_slaney_shape():
    from curation import mel

    fb = mel.filterbank()
    assert fb.shape == (40, 201)
    assert (fb >= 0).all()
    peaks = fb.argmax(1)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] > peaks[0]
    # Slaney norm: each triangle has area 2 / bandwidth, so higher (wider) filters are lower
    assert fb.max(1)[0] > fb.max(1)[-1]


def test_voice_encoder_separates_the_two_interact_11_voices():
    left = load_audio(shared_file("anytalker_benchmark/audio_left/interact_11_left.flac"), start_s=4.2, end_s=8.1)
    right = load_audio(shared_file("anytalker_benchmark/audio_right/interact_11_right.flac"), start_s=0.1, end_s=4.1)

    def voice(w):
        _, e = audio.speaker_embeddings(w)
        v = e.mean(0)
        return v / np.linalg.norm(v)

    l1, l2 = voice(left[: len(left) // 2]), voice(left[len(left) // 2:])
    r1 = voice(right[: len(right) // 2])
    assert float(l1 @ l2) > float(l1 @ r1) + 0.1


@pytest.mark.slow  # the same check runs in the two-person acceptance test
def test_diarize_interact_11_finds_two_speakers_switching_near_4_4_s():
    wav = load_audio(shared_file("anytalker_benchmark/interact_11.mp4"))
    turns = audio.diarize(wav)
    assert audio.diarization_backend_name().startswith("resemblyzer-spectral ")
    speakers = sorted({t[2] for t in turns})
    assert len(speakers) == 2, turns
    first = turns[0][2]
    switch = min(s for s, e, k in turns if k != first)
    # ground truth: right 0-4.16 s, left 4.16-8.18 s (4.16 may be a 30 fps timecode = 4.53 s)
    assert abs(switch - 4.4) < 0.5, turns


def test_resegmentation_keeps_two_voices_and_puts_the_switch_at_the_true_boundary():
    # right voice 0.1-4.1 s then left voice 4.2-8.1 s, concatenated: the change is at 4.0 s exactly
    right = load_audio(shared_file("anytalker_benchmark/audio_right/interact_11_right.flac"), start_s=0.1, end_s=4.1)
    left = load_audio(shared_file("anytalker_benchmark/audio_left/interact_11_left.flac"), start_s=4.2, end_s=8.1)
    wav = np.concatenate([right, left])
    turns = audio.diarize(wav, num_speakers=2, resegment_passes=3, detect_overlap=False)
    assert len({k for _, _, k in turns}) == 2, turns
    first = turns[0][2]
    switch = min(s for s, e, k in turns if k != first)
    first_end = max(e for s, e, k in turns if k == first and s < 4.0)
    # the right voice ends at the splice (4.0 s); the left track starts with ~0.33 s of room tone
    # (its speech starts at 4.53 s of its own track), so the second voice starts at ~4.35 s
    assert abs(first_end - 4.0) < 0.4, turns
    assert 3.9 <= switch < 4.6, turns
    assert all(k == first for s, e, k in turns if e <= 3.5), turns


def test_single_speaker_clip_is_one_speaker():
    wav = load_audio(shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"))
    assert len({t[2] for t in audio.diarize(wav)}) == 1


def test_window_grid_without_the_encoder_matches_the_embedding_grid():
    for n in (0, 399, 400, 16000, 16000 * 3 + 17, 123457):
        wav = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
        for win in (audio.EMBED_WINDOW_S, audio.RESEGMENT_WINDOW_S):
            times, _ = audio.speaker_embeddings(wav, window_s=win)
            assert np.array_equal(times, audio.window_centres(n, win)), (n, win)


def test_one_voice_skips_the_resegmentation_encoder_with_identical_turns(monkeypatch):
    wav = load_audio(shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"))
    reseg = audio.speaker_embeddings(wav, window_s=audio.RESEGMENT_WINDOW_S)
    full = audio.diarize(wav, frame_embeddings=reseg)  # the encoder's resegmentation grid, as before
    windows = []
    real = audio.speaker_embeddings
    monkeypatch.setattr(audio, "speaker_embeddings", lambda a, **kw: windows.append(kw) or real(a, **kw))
    assert audio.diarize(wav) == full
    assert len({t[2] for t in full}) == 1
    assert windows == [{}]  # only the clustering windows were encoded


def test_der_on_pyannote_sample_below_measured_bound():
    from benchmarks.perf.diarization_der import run

    shared_file("audio/sample.rttm")
    res = run(shared_file("audio/sample.wav").parents[1])
    oracle = res["oracle_2_speakers"]
    # measured 0.232 with labelling v6 (FA 0.026, missed 0.081, confusion 0.126; v5: 0.230, v3: 0.234,
    # v2: 0.188) with resemblyzer 0.1.4 / silero 6.2.3; sample.wav is held out: every post-processing / labelling choice was
    # made on the built set (docs/calibration.md); missed speech here is its overlapped speech
    assert oracle["der"] < 0.25, res
    assert oracle["num_speakers_found"] == 2
    assert abs(oracle["der"] - (oracle["false_alarm"] + oracle["missed"] + oracle["confusion"])) < 1e-3
    # the count is estimated right on this telephone-band pair (v1 estimated 1)
    assert res["estimated_speakers"]["num_speakers_found"] == 2, res
    assert res["estimated_speakers"]["der"] < 0.25, res


def test_pyannote_backend_explains_how_to_install_when_missing():
    if importlib.util.find_spec("pyannote.audio") is not None:
        pytest.skip("pyannote.audio is installed here")
    with pytest.raises(RuntimeError, match=r"pip install pyannote\.audio==3\.4\.0"):
        audio.diarize(np.zeros(16000, np.float32), backend="pyannote", pyannote_pipeline="x")
    with pytest.raises(ValueError, match="unknown diarization backend"):
        audio.diarize(np.zeros(16000, np.float32), backend="nope")


def test_vad_post_processing_bridges_pauses_and_pads_inside_the_file():
    raw = [(0.5, 1.0), (1.3, 2.0), (5.0, 5.9)]
    assert audio.postprocess_vad(raw, 6.0, bridge_s=0.5, pad_s=0.0) == [(0.5, 2.0), (5.0, 5.9)]
    padded = audio.postprocess_vad(raw, 6.0, bridge_s=0.0, pad_s=0.2)
    assert padded == [(0.3, 2.2), (4.8, 6.0)]  # grown segments that touch merge; clipped to the file
    assert audio.postprocess_vad(raw, 6.0, bridge_s=0.0, pad_s=0.0) == raw


def test_speaker_count_from_segment_voiceprints():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 256))
    def prints(k, n=6, noise=0.05):
        out = np.concatenate([centres[i] + noise * rng.normal(size=(n, 256)) for i in range(k)])
        return out / np.linalg.norm(out, axis=1, keepdims=True)
    assert [audio.estimate_speaker_count(prints(k), 4) for k in (1, 2, 3)] == [1, 2, 3]
    assert audio.estimate_speaker_count(prints(3), 2) == 2  # capped at max_speakers
    assert audio.estimate_speaker_count(prints(1)[:1], 4) == 1


def test_remove_overlaps_splits_turns_and_reports_regions():
    clean, overlaps = audio.remove_overlaps([(0.0, 5.0, "a"), (4.0, 9.0, "b"), (8.5, 12.0, "a")])
    assert overlaps == [(4.0, 5.0), (8.5, 9.0)]
    assert clean == [(0.0, 4.0, "a"), (5.0, 8.5, "b"), (9.0, 12.0, "a")]
    # same-speaker overlap is not an overlap between speakers
    assert audio.remove_overlaps([(0, 2, "a"), (1, 3, "a")])[1] == []


def test_regroup_lengths_follow_the_seeded_normal():
    turns = [(float(i), i + 0.9, "a") for i in range(400)]  # 400 s of speech, 0.1 s pauses
    spans = audio.regroup(turns, mean_s=4.0, std_s=0.5, seed=3)
    lengths = np.array([e - s for s, e in spans[:-1]])  # the last one is a remainder
    assert len(spans) > 80
    assert abs(lengths.mean() - 4.0) < 0.15 and abs(lengths.std() - 0.5) < 0.15
    assert lengths.min() >= 2.5 - 1e-6 and lengths.max() <= 5.5 + 1e-6
    assert spans == audio.regroup(turns, seed=3)
    assert spans != audio.regroup(turns, seed=4)
    # spans do not overlap and stay inside the speech
    assert all(b[0] >= a[1] - 1e-9 for a, b in zip(spans, spans[1:]))


def test_regroup_breaks_at_speaker_changes_long_pauses_and_barriers():
    turns = [(0.0, 3.0, "a"), (3.1, 6.0, "b"), (10.0, 13.0, "b")]
    spans = audio.regroup(turns, seed=0, min_s=1.0)
    assert spans == [(0.0, 3.0), (3.1, 6.0), (10.0, 13.0)]
    spans = audio.regroup([(0.0, 3.0, "a"), (3.2, 6.0, "a")], seed=0, min_s=1.0, barriers=[(3.0, 3.2)])
    assert spans == [(0.0, 3.0), (3.2, 6.0)]
    # too short to make a span at all
    assert audio.regroup([(0.0, 1.0, "a")], seed=0) == []


def test_viterbi_labels_pay_a_switch_penalty_and_pure_windows_skip_label_changes():
    scores = np.array([[1.0, 0.0]] * 5 + [[0.45, 0.55]] + [[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 6)
    # a one-window dip of 0.1 does not pay two switches of 0.2; a lasting change pays one
    assert audio.viterbi_labels(scores, 0.2).tolist() == [0] * 9 + [1] * 6
    assert audio.viterbi_labels(scores, 0.0).tolist() == scores.argmax(1).tolist()
    assert audio.viterbi_labels(scores[:, :1], 0.2).tolist() == [0] * len(scores)
    labels = np.array([0] * 6 + [1] * 6)
    assert audio.pure_windows(labels, 2).tolist() == [True] * 5 + [False] * 2 + [True] * 5
    assert audio.pure_windows(labels, 3).tolist() == [True] * 4 + [False] * 4 + [True] * 4
    assert audio.pure_windows(labels, 0).all()


def test_confident_mean_leaves_out_windows_that_lean_to_the_other_voice():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=256), rng.normal(size=256)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    clean = a + 0.3 * rng.normal(size=(30, 256)) / 16
    mixed = 0.4 * a + 0.6 * b + 0.3 * rng.normal(size=(10, 256)) / 16  # a window under the other voice
    members = audio.unit_rows(np.concatenate([clean, mixed]))
    centroids = audio.unit_rows(np.stack([members.mean(0), b]))
    kept = audio.unit_rows(audio.confident_mean(members, centroids, 0, 0.5)[None])[0]
    plain = audio.unit_rows(members.mean(0)[None])[0]
    assert kept @ a > plain @ a + 0.02 and kept @ b < plain @ b - 0.05
    # trim 0 keeps every window
    assert np.allclose(audio.confident_mean(members, centroids, 0, 0.0), members.mean(0))


def test_refine_changes_moves_each_change_to_the_best_split_within_its_span():
    times = np.round(np.arange(40) * 0.1, 3)
    labels = np.array([0] * 10 + [1] * 20 + [0] * 10)
    scores = np.zeros((40, 2))
    scores[:14, 0] = scores[14:, 1] = 1.0  # the voices really change at 14 ...
    scores[27:, 0], scores[27:, 1] = 1.0, 0.0  # ... and back at 27
    out = audio.refine_changes(times, labels, scores, radius_steps=6)
    assert out.tolist() == [0] * 14 + [1] * 13 + [0] * 13
    # the span stops half-way to the neighbouring change: the middle run cannot vanish
    far = np.zeros((40, 2))
    far[:, 0] = 1.0
    kept = audio.refine_changes(times, labels, far, radius_steps=30)
    assert (kept == 1).sum() >= 1 and np.count_nonzero(np.diff(kept)) == 2
    # a gap in the speech is not a change: labels across it are left alone
    gap_times = np.concatenate([times[:10], times[10:] + 2.0])
    assert audio.refine_changes(gap_times, labels[:40], scores, 6)[:10].tolist() == [0] * 10
    assert audio.refine_changes(times, labels, scores, 0).tolist() == labels.tolist()


def test_diarize_places_changes_on_the_short_window_embeddings(monkeypatch):
    # right voice to 4.0 s, then the left voice from its first word (no pause at the change).
    # Short-window "embeddings" that put the change 0.5 s later must move it there with refine on
    right = load_audio(shared_file("anytalker_benchmark/audio_right/interact_11_right.flac"), start_s=0.1, end_s=4.1)
    left = load_audio(shared_file("anytalker_benchmark/audio_left/interact_11_left.flac"), start_s=4.55, end_s=8.1)
    wav = np.concatenate([right, left])
    emb = audio.speaker_embeddings(wav)
    frame = audio.speaker_embeddings(wav, window_s=audio.RESEGMENT_WINDOW_S)
    short_t, short_e = audio.speaker_embeddings(wav, window_s=audio.CHANGE_WINDOW_S)
    kw = dict(num_speakers=2, embeddings=emb, frame_embeddings=frame, overlap_threshold=1.0)
    off = audio.diarize(wav, refine=False, **kw)
    first = off[0][2]
    switch_off = min(s for s, e, k in off if k != first)
    target = switch_off + 0.5
    a = short_e[short_t < switch_off - 1.0].mean(0)
    b = short_e[short_t > switch_off + 1.5].mean(0)
    fake = np.where((short_t < target)[:, None], a, b).astype(np.float32)
    fake /= np.linalg.norm(fake, axis=1, keepdims=True)
    on = audio.diarize(wav, refine=True, change_embeddings=(short_t, fake), **kw)
    switch_on = min(s for s, e, k in on if k != on[0][2])
    assert abs(switch_on - target) <= 0.15, (switch_off, on)
    # the default computes the short windows itself
    windows = []
    real = audio.speaker_embeddings
    monkeypatch.setattr(audio, "speaker_embeddings", lambda x, **k: windows.append(k) or real(x, **k))
    audio.diarize(wav, num_speakers=2, embeddings=emb, frame_embeddings=frame, overlap_threshold=1.0)
    assert windows == [{"window_s": audio.CHANGE_WINDOW_S}]
