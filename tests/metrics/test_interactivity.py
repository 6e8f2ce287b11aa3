"""Interactivity: the released scorer's math on synthetic landmarks, and the benchmark video."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metrics import Sample, get_metric
from metrics.interactivity import eye_brow_indices, listening_motion
from metrics.intervals import load_speaker_durations, lookup_intervals
from tests.conftest import shared_file

FPS = 25.0


def _still_face(T: int, k: int = 478) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.uniform(150, 250, size=(k, 3))
    lms = np.repeat(base[None], T, axis=0)
    boxes = np.repeat(np.array([[140.0, 140.0, 260.0, 260.0]]), T, axis=0)
    return lms, boxes


def test_still_face_scores_zero_and_moving_eyes_score_their_step():
    T = 20
    lms, boxes = _still_face(T)
    pts = eye_brow_indices()
    listening = np.ones(T, bool)
    m = listening_motion(lms, boxes, listening, FPS, 224.0, (640, 480), pts)
    assert m.mean == pytest.approx(0.0, abs=1e-9)
    assert m.n_steps == T - 1

    # eyes + brows move 1.5 px per frame alternately up and down; the rest of the face is still
    moving = lms.copy()
    for t in range(T):
        moving[t, pts, 1] += 1.5 * (t % 2)
    m = listening_motion(moving, boxes, listening, FPS, 224.0, (640, 480), pts)
    assert m.mean == pytest.approx(1.5, rel=1e-6)
    # the crop is scaled to target_size: a 448 px crop halves the motion
    m2 = listening_motion(moving, boxes, listening, FPS, 448.0, (640, 480), pts)
    assert m2.mean == pytest.approx(0.75, rel=1e-6)


def test_only_listening_frames_count_and_weights_are_frame_durations():
    T = 30
    lms, boxes = _still_face(T)
    pts = eye_brow_indices()
    moving = lms.copy()
    for t in range(T):
        moving[t, pts, 0] += 2.0 * (t % 2)
    listening = np.zeros(T, bool)
    listening[10:20] = True
    m = listening_motion(moving, boxes, listening, FPS, 224.0, (640, 480), pts)
    assert m.n_steps == 10
    assert m.weight_s == pytest.approx(10 / FPS)
    assert m.mean == pytest.approx(2.0)


def test_landmark_outlier_reuses_stable_landmarks_and_gaps_are_skipped():
    T = 12
    lms, boxes = _still_face(T)
    pts = eye_brow_indices()
    jumped = lms.copy()
    jumped[5, :, :2] += 40.0  # a 40 px glitch of the whole mesh in one frame (> 10 px rule)
    jumped[8] = np.nan  # a missed frame
    m = listening_motion(jumped, boxes, np.ones(T, bool), FPS, 224.0, (640, 480), pts)
    assert m.n_landmark_outliers == 1
    assert m.mean == pytest.approx(0.0, abs=1e-9)
    assert m.n_steps == T - 2  # no step into or out of the missing frame's own position


def test_timecode_reading_of_speaker_durations(tmp_path):
    p = tmp_path / "speaker_duration.json"
    p.write_text(json.dumps({"a.mp4": {"right": [[0.0, 4.16]], "left": [[4.16, 8.18]]},
                             "b.mp4": {"left": [[0.0, 0.0]], "right": [[0.0, 5.12]]}}))
    sec = load_speaker_durations(p, "seconds")
    tc = load_speaker_durations(p, "timecode30")
    assert sec["a.mp4"] == [[(4.16, 8.18)], [(0.0, 4.16)]]  # left first
    assert tc["a.mp4"][0][0] == pytest.approx((4 + 16 / 30, 8 + 18 / 30))
    assert sec["b.mp4"][0] == []  # [[0, 0]] = never speaks
    assert lookup_intervals(sec, "/x/y/b.mp4") == sec["b.mp4"]


def _benchmark_sample(fmt: str, video=None) -> Sample:
    table = load_speaker_durations(shared_file("anytalker_benchmark/speaker_duration.json"), fmt)
    path = video or shared_file("anytalker_benchmark/interact_11.mp4")
    iv = lookup_intervals(table, "interact_11.mp4")
    return Sample("interact_11", str(path), speaking_intervals=iv, interval_format=fmt)


def test_benchmark_video_scores_and_frozen_listener_scores_lower(tmp_path):
    from curation.faces import square_box
    from curation.media import read_frames, write_video
    from metrics import _analysis

    src = shared_file("anytalker_benchmark/interact_11.mp4")
    metric = get_metric("interactivity")
    results = {fmt: metric.evaluate([_benchmark_sample(fmt)]) for fmt in ("seconds", "timecode30")}
    for fmt, r in results.items():
        assert r.n_scored == 1, r.failures
        assert r.backend == "mediapipe-facemesh-478" and r.backend_version
        item = r.items[0]
        assert item.components["interval_format"] == fmt
        assert 0.05 < r.value < 20, r.value  # reference-crop px per frame of a real listener
        assert len(item.components["persons"]) == 2
    orig = results["seconds"].items[0].components["persons"]

    # freeze the left person's face while she listens (0 - 4.16 s and 8.18 s - end): copy the
    # first frame of each listening period over the rest of it
    frames = read_frames(src)
    fps = 24.0
    analysis = _analysis.analyze(src, fps=None)
    left = analysis.tracks[0]
    x1, y1, x2, y2 = square_box(np.nanmedian(left.boxes, axis=0), scale=2.0).round().astype(int)
    x1, y1 = max(0, x1), max(0, y1)
    last = int(4.16 * fps)  # frames 0..99 (t < 4.16 s)
    frames[1:last + 1, y1:y2, x1:x2] = frames[0, y1:y2, x1:x2]
    after = int(np.ceil(8.18 * fps))
    frames[after + 1:, y1:y2, x1:x2] = frames[after, y1:y2, x1:x2]
    frozen = tmp_path / "interact_11.mp4"
    write_video(frozen, frames, fps)

    r = metric.evaluate([_benchmark_sample("seconds", frozen)])
    assert r.n_scored == 1, r.failures
    persons = r.items[0].components["persons"]
    assert r.value < results["seconds"].value
    # every listening frame of the left person is frozen: what is left is the face mesh's own
    # noise on a still (re-encoded) face, ~0.2 px / frame against ~0.6 for the real listener;
    # running the mesh on smoothed track boxes instead of detections lowered it only to ~0.21
    assert persons[0]["motion"] < 0.5 * orig[0]["motion"], (persons[0], orig[0])
    assert persons[0]["motion"] < 0.3, persons[0]
    # the right person is untouched
    assert persons[1]["motion"] == pytest.approx(orig[1]["motion"], rel=0.35)


def test_missing_intervals_and_missing_faces_fail_with_a_reason(tmp_path, ffmpeg):
    from tests.conftest import run_ffmpeg

    blank = tmp_path / "blank.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=160x120:d=1:r=25", "-pix_fmt", "yuv420p", str(blank))
    metric = get_metric("interactivity")
    r = metric.evaluate([
        Sample("no_intervals", str(blank)),
        Sample("no_faces", str(blank), speaking_intervals=[[(0.0, 0.5)], []]),
        Sample("missing_file", str(tmp_path / "nope.mp4"), speaking_intervals=[[], []]),
    ])
    assert r.n_scored == 0 and r.n_failed == 3
    reasons = {it.item_id: it.reason for it in r.items}
    assert reasons["no_intervals"] == "missing_input"
    assert reasons["no_faces"] == "too_few_faces"
    assert reasons["missing_file"] == "not_found"
    assert np.isnan(r.value)


def test_bad_speaker_durations_are_user_errors_naming_the_file(tmp_path):
    from anytalker.errors import UserError

    p = tmp_path / "speaker_duration.json"
    p.write_text(json.dumps({"a.mp4": {"left": [[4.45, 5.0]]}}))
    assert load_speaker_durations(p, "seconds")["a.mp4"] == [[(4.45, 5.0)]]
    with pytest.raises(UserError, match=r"speaker_duration.json: entry 'a.mp4': 4.45 is not a 30 fps"):
        load_speaker_durations(p, "timecode30")
    p.write_text("{not json")
    with pytest.raises(UserError, match="speaker_duration.json: not valid JSON"):
        load_speaker_durations(p)
    with pytest.raises(UserError, match="file not found"):
        load_speaker_durations(tmp_path / "missing.json")
