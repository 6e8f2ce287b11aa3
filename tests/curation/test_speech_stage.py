"""The speech, av_sync and person_filter stages on built inputs and one short real clip."""

from __future__ import annotations

import numpy as np
import pytest

from curation.base import run_stage_batch
from curation.media import probe, write_wav
from curation.stages.av_sync import AvSyncStage
from curation.stages.person_filter import PersonFilter
from curation.stages.speech import SpeechStage
from tests.conftest import run_ffmpeg, shared_file


def source_row(path, rel=None) -> dict:
    info = probe(path)
    n = info.num_frames
    return {
        "source_abs_path": str(path), "source_path": rel or str(path), "status": "ok",
        "has_audio": info.has_audio, "fps": info.fps, "start_frame": 0, "end_frame": n,
        "start_s": 0.0, "end_s": n / info.fps, "clip_index": 0,
    }


@pytest.fixture(scope="module")
def speech_single():
    return SpeechStage(mode="single")


def test_speech_rejects_sources_without_audio_or_speech(tmp_path, ffmpeg, speech_single):
    silent = tmp_path / "silent.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=3",
               "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3", "-shortest",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(silent))
    mute = tmp_path / "mute.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=2", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", str(mute))
    rows = run_stage_batch(speech_single, [source_row(silent), source_row(mute)])
    by_path = {r["source_abs_path"]: r for r in rows}
    assert by_path[str(silent)]["reason"] == "no_speech"
    assert by_path[str(mute)]["reason"] == "no_audio"
    for r in rows:
        assert r["status"] == "filtered" and r["vad_backend"].startswith("silero-vad")


def test_single_mode_fans_out_into_regrouped_spans(speech_single):
    path = shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4")
    row = source_row(path, "talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4")
    rows = run_stage_batch(speech_single, [row])
    assert len(rows) >= 2 and all(r["status"] == "ok" for r in rows)
    assert [r["clip_index"] for r in rows] == list(range(len(rows)))
    for r in rows:
        dur = r["end_s"] - r["start_s"]
        assert 2.5 - 0.05 <= dur <= 5.5 + 0.05
        assert r["clip_num_frames"] == r["end_frame"] - r["start_frame"]
        assert r["start_s"] == pytest.approx(r["start_frame"] / r["fps"])
        assert r["speech_seed"] == rows[0]["speech_seed"] and r["diarization_backend"].startswith("resemblyzer")
        # intervals are relative to the span and inside it
        assert r["speech_intervals"] and all(0 <= iv["start"] < iv["end"] <= dur + 1e-3 for iv in r["speech_intervals"])
        assert r["parent_end_frame"] == row["end_frame"]
    def spans(rs):
        return [(r["start_frame"], r["end_frame"], r["speech_seed"], r["speech_intervals"]) for r in rs]

    assert spans(rows) == spans(run_stage_batch(SpeechStage(mode="single"), [row]))  # seeded: reproducible
    other = run_stage_batch(SpeechStage(mode="single", seed=7), [row])
    assert other[0]["speech_seed"] != rows[0]["speech_seed"]


def test_spans_follow_the_source_bytes_not_its_path(tmp_path):
    path = shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4")
    copy = tmp_path / "elsewhere" / "renamed.mp4"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    stage = SpeechStage(mode="single")
    here = run_stage_batch(stage, [{**source_row(path, "a.mp4"), "source_sha256": "same-bytes"}])
    there = run_stage_batch(stage, [{**source_row(copy, "b/renamed.mp4"), "source_sha256": "same-bytes"}])
    assert [(r["start_frame"], r["end_frame"], r["speech_seed"]) for r in here] == \
        [(r["start_frame"], r["end_frame"], r["speech_seed"]) for r in there]


def test_multi_mode_limits_speakers():
    # the accepted two-person path is the acceptance test in test_person_pipelines.py
    path = shared_file("anytalker_benchmark/interact_11.mp4")
    row = source_row(path, "anytalker_benchmark/interact_11.mp4")
    one = run_stage_batch(SpeechStage(mode="multi", max_speakers=1), [row])
    assert len(one) == 1 and one[0]["status"] == "filtered" and one[0]["reason"] == "too_many_speakers"
    assert one[0]["num_speakers_found"] == 2 and "max_speakers=1" in one[0]["error_detail"]
    with pytest.raises(ValueError, match="mode must be 'single' or 'multi'"):
        SpeechStage(mode="both").setup()


def test_overlapping_speech_is_rejected_or_cut_out(monkeypatch):
    from curation import audio

    path = shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4")
    row = source_row(path, "sadtalker.mp4")
    # a diarization where a second voice talks over most of the first
    monkeypatch.setattr(audio, "diarize", lambda *a, **k: [(0.2, 7.9, "A"), (1.0, 6.0, "B")])
    multi = run_stage_batch(SpeechStage(mode="multi"), [row])[0]
    assert multi["reason"] == "overlapping_speech" and multi["overlap_s"] == pytest.approx(5.0)
    # single mode with a tolerated overlap: spans avoid the overlapped 1.0-3.0 s
    monkeypatch.setattr(audio, "diarize", lambda *a, **k: [(0.2, 7.9, "A"), (1.0, 3.0, "B")])
    spans = run_stage_batch(SpeechStage(mode="single"), [row])
    assert spans and all(r["status"] == "ok" for r in spans)
    for r in spans:
        assert r["end_s"] <= 1.0 + 0.05 or r["start_s"] >= 3.0 - 0.05, (r["start_s"], r["end_s"])


def test_pyannote_backend_fails_at_setup_when_missing():
    import importlib.util

    if importlib.util.find_spec("pyannote.audio") is not None:
        pytest.skip("pyannote.audio is installed here")
    with pytest.raises(RuntimeError, match="pyannote.audio"):
        SpeechStage(mode="single", diarization_backend="pyannote").setup()


# ------------------------------------------------------------------- av_sync + person_filter


def _two_talker_clip(tmp_path):
    """A 10 s clip: voice A (bursts following lip signal a) for 0-5 s, voice B for 5-10 s;
    face 0 moves its lips with A, face 1 with B."""
    rng = np.random.default_rng(0)
    n = 250
    lips = []
    for seed in (1, 2):
        r = np.random.default_rng(seed)
        raw = np.convolve(r.random(n + 10), np.hanning(5), mode="same")[5:-5]
        lips.append(np.clip(raw - np.median(raw), 0, None))
    a_on = np.arange(n) < 125
    env = np.where(a_on, lips[0], lips[1])
    audio = (rng.standard_normal(n * 640) * (0.01 + np.repeat(env, 640))).astype(np.float32)
    wav = tmp_path / "mix.wav"
    write_wav(wav, audio / max(1e-6, np.abs(audio).max()) * 0.9)
    run_ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=320x160:rate=25:duration=10", "-i", str(wav),
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-shortest",
               str(tmp_path / "two.mov"))
    video = tmp_path / "two.mov"
    # person 1 (right) is silent while A speaks, and vice versa: lips only move in own turn
    mouth = [np.where(a_on, lips[0], 0.0), np.where(~a_on, lips[1], 0.0)]
    mouth = [m + 0.001 * rng.standard_normal(n) for m in mouth]
    persons = [{"index": i, "frames": list(range(n)), "boxes": [[10.0 + 160 * i, 10, 150.0 + 160 * i, 150]] * n,
                "ref_box": [10.0 + 160 * i, 10, 150.0 + 160 * i, 150], "face_size": 140.0} for i in range(2)]
    row = {**source_row(video, "two.mov"), "persons": persons, "mouth_open": [m.tolist() for m in mouth],
           "analysis_fps": 25.0,
           "speech_intervals": [{"start": 0.0, "end": 5.0, "speaker": "A"}, {"start": 5.0, "end": 10.0, "speaker": "B"}]}
    return row


def test_av_sync_matrix_and_binding_on_a_built_two_person_clip(tmp_path, ffmpeg):
    row = _two_talker_clip(tmp_path)
    # built lip signals (no mesh) and noise bursts (not speech): the landmark backend, rules off
    synced = run_stage_batch(AvSyncStage(backend="landmark"), [row])[0]
    assert synced["status"] == "ok", synced.get("error_detail")
    assert synced["sync_backend"].startswith("landmark ")
    m = np.array(synced["sync_matrix"])
    assert synced["sync_speakers"] == ["A", "B"] and m.shape == (2, 2)
    assert m[0, 0] > m[0, 1] and m[1, 1] > m[1, 0]
    kept = run_stage_batch(PersonFilter(expected_persons=2, min_speech_frac=0.0), [synced])[0]
    assert kept["status"] == "ok", kept.get("error_detail")
    p0, p1 = kept["persons"]
    assert [(iv["start"], iv["end"]) for iv in p0["speaking_intervals"]] == [(0.0, 5.0)]
    assert [(iv["start"], iv["end"]) for iv in p1["speaking_intervals"]] == [(5.0, 10.0)]
    assert p0["audio_ref"] == "mix:two.mov" and p0["speaking_s"] == 5.0
    assert abs(p0["sync_offset"]) <= 1 and p0["sync_conf"] > 0.2
    # swap the voices' turns: the binding follows the faces, the matrix rows are reordered
    swapped = {**row, "speech_intervals": [{"start": 0.0, "end": 5.0, "speaker": "B"},
                                            {"start": 5.0, "end": 10.0, "speaker": "A"}]}
    kept2 = run_stage_batch(PersonFilter(expected_persons=2, min_speech_frac=0.0),
                            run_stage_batch(AvSyncStage(backend="landmark"), [swapped]))[0]
    assert kept2["speaker_of_person"] == ["B", "A"] and kept2["sync_speakers"] == ["B", "A"]


def _filtered(matrix, offsets=None, n_persons=2, expected=None, **params):
    k = len(matrix)
    persons = [{"index": i, "frames": [0], "boxes": [[0, 0, 1, 1]]} for i in range(n_persons)]
    row = {"status": "ok", "source_path": "s.mp4", "persons": persons, "sync_matrix": matrix,
           "sync_offsets": offsets or [[0] * n_persons for _ in range(k)],
           "sync_dists": [[0.5] * n_persons for _ in range(k)], "sync_speakers": [f"S{i}" for i in range(k)],
           "speech_intervals": [{"start": float(i), "end": i + 1.0, "speaker": f"S{i}"} for i in range(k)]}
    return run_stage_batch(PersonFilter(expected_persons=expected or n_persons, **params), [row])[0]


def test_person_filter_rules():
    ok = _filtered([[0.5, 0.1], [0.05, 0.4]])
    assert ok["status"] == "ok" and ok["speaker_of_person"] == ["S0", "S1"]
    # binding maximises total confidence: S1 -> person 0
    bound = _filtered([[0.1, 0.5], [0.45, 0.05]])
    assert bound["status"] == "ok" and bound["speaker_of_person"] == ["S1", "S0"]
    assert bound["sync_matrix"] == [[0.45, 0.05], [0.1, 0.5]]
    # best binding still leaves an off-diagonal entry above a diagonal one
    nd = _filtered([[0.5, 0.45], [0.3, 0.4]])
    assert nd["reason"] == "sync_not_diagonal"
    low = _filtered([[0.15], [0.1]], n_persons=1, min_sync_conf={"judge": 0.2})
    assert low["reason"] == "low_sync"
    off = _filtered([[0.5]], offsets=[[6]], n_persons=1, max_abs_offset={"judge": 4})
    assert off["reason"] == "sync_offset" and "6 frames" in off["error_detail"]
    assert _filtered([[0.5]], offsets=[[6]], n_persons=1, max_abs_offset={"judge": 6})["status"] == "ok"
    many = _filtered([[0.5, 0.4, 0.3]], n_persons=3, expected=2)
    assert many["reason"] == "too_many_faces"


def test_av_sync_with_the_syncnet_backend_and_weights_made_here(tmp_path, ffmpeg):
    import torch
    from syncnet_python.SyncNetModel import S

    torch.manual_seed(0)
    weights = tmp_path / "syncnet_random.model"
    torch.save(S(num_layers_in_fc_layers=1024).state_dict(), weights)
    row = _two_talker_clip(tmp_path)
    n = 30  # SyncNet on CPU costs ~0.2 s a frame: a 30-frame, one-voice clip
    person = {**row["persons"][0], "frames": list(range(n)), "boxes": row["persons"][0]["boxes"][:n]}
    row = {**row, "end_frame": n, "end_s": n / 25, "persons": [person], "mouth_open": None,
           "speech_intervals": [{"start": 0.0, "end": n / 25, "speaker": "A"}]}
    out = run_stage_batch(AvSyncStage(backend="syncnet", weights=str(weights)), [row])[0]
    assert out["status"] == "ok", out.get("error_detail")
    assert out["sync_backend"].startswith("syncnet syncnet_python ") and "syncnet_random.model@" in out["sync_backend"]
    assert len(out["sync_matrix"]) == 1 and isinstance(out["sync_matrix"][0][0], float)
    assert len(out["sync_curves"][0][0]) == 31
    with pytest.raises(Exception, match="syncnet_v2.model"):
        AvSyncStage(backend="syncnet", weights=str(tmp_path / "missing.model")).setup()
