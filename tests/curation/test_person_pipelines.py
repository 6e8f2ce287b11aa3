"""Acceptance: the speech -> faces -> av_sync -> person_filter chain on the real shared clips.

The chain runs in-process through ``curation.base.run_stage_batch`` from a probe-like row that
spans the whole source (the shots / clips stages are tested elsewhere); one slow test runs the
full single/multi-person YAML pipelines through ``pipelines.runner.run_curation``.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from curation.base import run_stage_batch
from curation.media import load_audio, probe
from curation.stages.av_sync import AvSyncStage
from curation.stages.faces import FacesStage
from curation.stages.person_filter import PersonFilter
from curation.stages.speech import SpeechStage
from curation.sync import SyncInput, get_sync_backend, sync_score
from tests.conftest import run_ffmpeg, shared_file

SYNC_REASONS = {"low_sync", "sync_offset", "sync_not_diagonal"}
OWN_AUDIO_CLIPS = [
    "talking/latentsync_demo1_video.mp4",
    "talking/infinitetalk_ref_video.mp4",
    "talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4",
]


@functools.lru_cache(maxsize=None)
def _stages(mode: str):
    n = 1 if mode == "single" else 2
    speech = SpeechStage(mode=mode, **({"max_speakers": 2} if n == 2 else {}))
    return (speech, FacesStage(expected_persons=n), AvSyncStage(), PersonFilter(expected_persons=n))


def run_chain(path, rel: str, mode: str) -> list[dict]:
    info = probe(path)
    rows = [{
        "source_abs_path": str(path), "source_path": rel, "status": "ok", "has_audio": info.has_audio,
        "fps": info.fps, "start_frame": 0, "end_frame": info.num_frames, "start_s": 0.0,
        "end_s": info.num_frames / info.fps, "clip_index": 0,
    }]
    for stage in _stages(mode):
        rows = run_stage_batch(stage, rows)
    return rows


def _describe(rows):
    return [(r["status"], r.get("reason"), r.get("start_s"), r.get("end_s"), r.get("sync_matrix"),
             r.get("sync_offsets"), (r.get("error_detail") or "")[:120]) for r in rows]


# ------------------------------------------------------------------------ two-person clip


@pytest.fixture(scope="module")
def interact_multi():
    rel = "anytalker_benchmark/interact_11.mp4"
    return run_chain(shared_file(rel), rel, "multi")


def test_interact_11_is_one_two_person_clip_with_voices_bound_to_faces(interact_multi):
    rows = interact_multi
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(rows) == 1 and len(ok) == 1, _describe(rows)
    row = ok[0]
    left, right = row["persons"]
    assert left["index"] == 0 and right["index"] == 1
    # ground truth: right person speaks 0-4.16 s, left 4.16-8.18 s
    assert right["speaking_intervals"] and left["speaking_intervals"]
    right_end = max(iv["end"] for iv in right["speaking_intervals"])
    left_start = min(iv["start"] for iv in left["speaking_intervals"])
    assert right["speaking_intervals"][0]["start"] < 1.0 and right_end < left_start + 1e-6
    assert abs(left_start - 4.4) < 0.5 and abs(right_end - 4.4) < 0.5, (left_start, right_end)
    assert left["speaking_s"] > 2.5 and right["speaking_s"] > 2.5
    # the diagonal rule holds and every person record is complete
    m = np.array(row["sync_matrix"], dtype=float)
    assert m.shape == (2, 2) and min(m[0, 0], m[1, 1]) > max(m[0, 1], m[1, 0])
    for p in (left, right):
        assert p["audio_ref"] == "mix:anytalker_benchmark/interact_11.mp4"
        assert p["sync_conf"] >= 0.2 and abs(p["sync_offset"]) <= 4 and p["sync_dist"] is not None
        assert len(p["boxes"]) == len(p["frames"]) > 150
    assert row["sync_backend"].startswith("judge ")
    assert row["vad_backend"].startswith("silero-vad ") and row["diarization_backend"].startswith("resemblyzer")
    assert {iv["speaker"] for iv in row["speech_intervals"]} == set(row["speaker_of_person"])
    json.dumps(row)  # rows hold plain JSON values only


def test_interact_11_through_the_single_person_chain_has_too_many_faces():
    rel = "anytalker_benchmark/interact_11.mp4"
    rows = run_chain(shared_file(rel), rel, "single")
    assert rows and all(r["status"] == "filtered" for r in rows), _describe(rows)
    assert {r["reason"] for r in rows} == {"too_many_faces"}, _describe(rows)


# --------------------------------------------------------------------- single-person clips


@pytest.mark.parametrize("rel", OWN_AUDIO_CLIPS)
def test_single_person_clip_with_its_own_audio_is_accepted(rel):
    rows = run_chain(shared_file(rel), rel, "single")
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok, _describe(rows)
    for r in ok:
        (p,) = r["persons"]
        assert p["sync_conf"] >= 0.2 and abs(p["sync_offset"]) <= 4
        assert p["audio_ref"] == f"mix:{rel}" and p["speaking_s"] > 2.0
        assert 2.4 <= r["end_s"] - r["start_s"] <= 5.6
        assert isinstance(r["speech_seed"], int)
    # the rejected spans were rejected for sync, not for anything else
    assert {r["reason"] for r in rows if r["status"] != "ok"} <= SYNC_REASONS, _describe(rows)


# formerly a known false accept (strict xfail; conf 0.289 at +3 with the width-96 judge): the round-4b
# judge (width 80, min_sync_conf 0.235) rejects every span of this mismatched pair
def test_latentsync_video_with_other_speech_is_rejected_for_sync(tmp_path, ffmpeg):
    video = shared_file("talking/latentsync_demo1_video.mp4")
    other = shared_file("talking/latentsync_demo1_audio.wav")
    muxed = tmp_path / "latentsync_other_audio.mp4"
    run_ffmpeg("-i", str(video), "-i", str(other), "-map", "0:v", "-map", "1:a", "-c:v", "copy",
               "-c:a", "aac", "-shortest", str(muxed))
    rows = run_chain(muxed, "latentsync_other_audio.mp4", "single")
    assert rows and not [r for r in rows if r["status"] == "ok"], _describe(rows)
    assert {r["reason"] for r in rows} <= SYNC_REASONS, _describe(rows)


# ------------------------------------------------------------------- offsets (sign convention)


@functools.lru_cache(maxsize=None)
def _whole_clip_mouth(rel: str):
    from curation.faces import analyze_video

    fa = analyze_video(shared_file(rel), fps=25.0)
    assert len(fa.tracks) == 1
    return fa.tracks[0].mouth_open


def _shift(audio: np.ndarray, frames: int) -> np.ndarray:
    n = abs(frames) * 640
    if frames > 0:  # audio delayed: the sound comes later than the lips
        return np.concatenate([np.zeros(n, np.float32), audio[:-n]])
    return np.concatenate([audio[n:], np.zeros(n, np.float32)])


@pytest.mark.parametrize("rel", OWN_AUDIO_CLIPS)
def test_landmark_backend_measures_a_five_frame_shift(rel):
    """Audio delayed by k frames is measured at offset -k (joonson's sign) relative to the
    clip's own audio, which itself measures within 2 frames of 0."""
    mouth = _whole_clip_mouth(rel)
    audio = load_audio(shared_file(rel))
    be = get_sync_backend("landmark")
    base = sync_score(be, SyncInput(audio=audio, mouth_open=mouth))
    assert abs(base.offset) <= 2, base
    for k in (5, -5):
        res = sync_score(be, SyncInput(audio=_shift(audio, k), mouth_open=mouth))
        assert abs(res.offset - (base.offset - k)) <= 1, (k, base.offset, res.offset)


# ---------------------------------------------------------------- through the pipeline runner


@pytest.mark.slow
def test_multi_person_yaml_pipeline_through_the_runner(tmp_path):
    pytest.importorskip("pipelines.runner")
    from pipelines import shards
    from pipelines.runner import run_curation

    data = shared_file("anytalker_benchmark/interact_11.mp4").parents[1]
    inputs = tmp_path / "in"
    (inputs / "anytalker_benchmark").mkdir(parents=True)
    (inputs / "anytalker_benchmark" / "interact_11.mp4").symlink_to(data / "anytalker_benchmark" / "interact_11.mp4")
    summary = run_curation("multi_person", inputs, tmp_path / "out", executor="local", progress=False)
    clips = shards.read_rows(summary.run_dir, "clips")
    assert len(clips) >= 1, summary.describe()
    for row in clips:
        left, right = row["persons"]
        assert row["sync_backend"].startswith("judge ") and row["diarization_backend"]
        assert left["speaking_intervals"] and right["speaking_intervals"]
        # within this clip the right person speaks first (source 0-4.16 s)
        assert right["speaking_intervals"][0]["start"] < left["speaking_intervals"][0]["start"]
