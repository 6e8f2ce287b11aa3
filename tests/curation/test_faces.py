"""Face primitives on real clips: detection, mesh, tracks, mouth opening."""

from __future__ import annotations

import numpy as np
import pytest

from curation import faces
from curation.faces import (
    EYE_BROW_22, EYE_BROW_POINTS, LIP_POINTS, FaceDetector, FaceMesh, analyze_video,
    link_detections, mouth_opening, square_box, Detection, _fill_and_smooth,
)
from curation.media import read_frames, VideoReader
from tests.conftest import shared_file

SADTALKER = "talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"
INTERACT = "anytalker_benchmark/interact_11.mp4"
# speaker_duration.json, key interact_11.mp4
RIGHT_SPEAKS = (0.0, 4.16)
LEFT_SPEAKS = (4.16, 8.18)


@pytest.fixture(scope="module")
def interact_analysis():
    return analyze_video(shared_file(INTERACT), fps=25.0)


def test_index_tables_are_valid_mesh_indices():
    flat = [i for v in EYE_BROW_POINTS.values() for i in v] + [i for v in LIP_POINTS.values() for i in v]
    assert all(0 <= i < 478 for i in flat)
    assert len(EYE_BROW_22) == 22
    assert len({m for m, _, _ in EYE_BROW_22}) == 22  # no duplicated mesh point
    assert [j for _, j, _ in EYE_BROW_22] == list(range(17, 27)) + list(range(36, 48))


def test_square_box():
    sq = square_box(np.array([10.0, 20.0, 30.0, 60.0]), scale=1.5)
    np.testing.assert_allclose(sq, [-10.0, 10.0, 50.0, 70.0])


def test_fill_and_smooth_fills_short_gaps_only():
    raw = np.tile(np.array([0.0, 0.0, 10.0, 10.0]), (30, 1)) + np.arange(30)[:, None]
    raw[5:8] = np.nan  # 3-frame miss: filled
    raw[15:27] = np.nan  # 12-frame miss: kept empty
    out = _fill_and_smooth(raw, max_gap=6, window=7)
    assert np.isfinite(out[5:8]).all()
    np.testing.assert_allclose(out[6], [6, 6, 16, 16], atol=1e-6)  # linear motion kept
    assert np.isnan(out[15:27]).all()


def test_linker_follows_a_moving_box_through_a_miss():
    dets = []
    for t in range(20):
        x = 10.0 * t
        dets.append([] if t in (8, 9) else [Detection(np.array([x, 0, x + 50, 50]), 0.9)])
    tracks = link_detections(dets, max_miss=4)
    assert len(tracks) == 1 and len(tracks[0].t) == 18


def test_detector_and_mesh_on_real_frame():
    rgb = read_frames(shared_file(SADTALKER), 0, 1)[0]
    det = FaceDetector()
    found = det.detect(rgb)
    assert len(found) == 1
    box = found[0].box
    w = box[2] - box[0]
    assert 200 < w < 400  # face-centred 512x512 crop
    lm = FaceMesh().landmarks(rgb, box)
    assert lm is not None and lm.shape == (478, 3)
    # landmarks fall inside the (slightly enlarged) detection box, in full-frame px
    sq = square_box(box, 1.3)
    assert (lm[:, 0] > sq[0]).all() and (lm[:, 0] < sq[2]).all()
    # iris centres sit inside their eye contours
    for eye, iris in (("right_eye", "right_iris"), ("left_eye", "left_iris")):
        contour = lm[EYE_BROW_POINTS[eye], :2]
        c = lm[EYE_BROW_POINTS[iris][0], :2]
        assert contour[:, 0].min() < c[0] < contour[:, 0].max()
    assert 0.0 <= mouth_opening(lm) < 0.3


def test_mesh_gives_each_of_two_faces_its_own_landmarks():
    rgb = VideoReader(shared_file(INTERACT)).get([50])[0]
    dets = FaceDetector().detect(rgb)
    assert len(dets) == 2
    mesh = FaceMesh()
    centres = []
    for d in dets:
        lm = mesh.landmarks(rgb, d.box)
        assert lm is not None
        centres.append(lm[:, 0].mean())
        assert d.box[0] <= lm[1, 0] <= d.box[2]  # nose tip inside its own box
    assert abs(centres[0] - centres[1]) > 200


def test_single_person_one_track_spanning_all_frames():
    # detection on every frame: the smoothing below is measured against per-frame detector boxes
    fa = analyze_video(shared_file(SADTALKER), fps=25.0, detect_every=1)
    assert len(fa.frame_indices) == 200 and fa.fps == 25.0
    assert len(fa.tracks) == 1
    tr = fa.tracks[0]
    assert tr.detected.mean() > 0.95
    assert np.isfinite(tr.boxes).all(1).mean() > 0.98
    assert np.isfinite(tr.mouth_open).mean() > 0.95
    assert tr.landmarks.shape == (200, 478, 3)
    # smoothing: frame-to-frame box jitter clearly below the raw detector boxes'
    jitter = np.nanmedian(np.abs(np.diff(tr.boxes, axis=0)))
    raw_jitter = np.nanmedian(np.abs(np.diff(tr.raw_boxes, axis=0)))
    assert jitter < 0.8 * raw_jitter
    assert jitter / tr.face_size < 0.02


def test_two_people_two_tracks_left_is_woman_order_stable(interact_analysis):
    fa = interact_analysis
    assert fa.width == 832 and fa.height == 448
    assert len(fa.tracks) == 2
    left, right = fa.tracks
    # SOURCES.md: woman on the left, man on the right
    assert np.nanmedian(left.centre_x) < fa.width / 2 < np.nanmedian(right.centre_x)
    for tr in fa.tracks:
        assert tr.detected.mean() > 0.9
    assert faces.order_violations(fa.tracks) == 0.0
    # 24 fps source resampled to 25 fps analysis frames
    assert len(fa.frame_indices) == int(205 / 24 * 25)


def _articulation(signal: np.ndarray, t: np.ndarray, span: tuple[float, float]) -> float:
    # mean absolute frame-to-frame change of the mouth opening: lip movement, insensitive to a
    # mouth held open (a smile) that a plain std would count as "variation"
    m = (t >= span[0]) & (t < span[1])
    return float(np.nanmean(np.abs(np.diff(signal[m]))))


def test_mouth_moves_more_for_the_speaker(interact_analysis):
    fa = interact_analysis
    t = np.arange(len(fa.frame_indices)) / fa.fps
    left, right = (tr.mouth_open for tr in fa.tracks)
    # right person speaks first, left person second
    assert _articulation(right, t, RIGHT_SPEAKS) > 3 * _articulation(left, t, RIGHT_SPEAKS)
    assert _articulation(left, t, LEFT_SPEAKS) > 3 * _articulation(right, t, LEFT_SPEAKS)


def test_frames_argument_matches_decoding():
    frames = read_frames(shared_file(INTERACT), 0, 48)
    fa = analyze_video(None, frames=frames, fps=24.0, with_landmarks=False)
    assert len(fa.tracks) == 2 and fa.tracks[0].landmarks is None
    assert list(fa.frame_indices) == list(range(48))


def test_no_face_video_has_no_tracks(tmp_path, ffmpeg):
    from tests.conftest import run_ffmpeg

    out = tmp_path / "testsrc.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=1", "-pix_fmt", "yuv420p", str(out))
    fa = analyze_video(out)
    assert fa.tracks == [] and int(fa.faces_per_frame.sum()) == 0


def test_roi_mesh_matches_the_static_reference_and_batches_like_single_calls():
    from curation.faces import MeshRequest, StaticFaceMesh
    from curation.sync_judge.features import lip_features

    frames = VideoReader(shared_file(INTERACT)).get([20, 120])
    mesh, ref = FaceMesh(), StaticFaceMesh()
    reqs = [MeshRequest(f, d.box, d.eyes) for f in frames for d in FaceDetector().detect(f)]
    assert len(reqs) == 4
    batch = mesh.landmarks_batch(reqs)
    for req, lm in zip(reqs, batch):
        single = mesh.landmarks(req.rgb, req.box, req.eyes)
        np.testing.assert_allclose(lm, single, atol=1e-4)  # queued or alone: same answer
        want = ref.landmarks(req.rgb, req.box)
        # the judge's lip features (inter-ocular units) agree with the static-mode pass to the
        # size of its own crop-to-crop variation (~0.005, benchmarks/perf/faces_equivalence.py)
        assert np.abs(lip_features(lm[None]) - lip_features(want[None])).mean() < 0.02


def test_still_frames_cost_one_mesh_call_and_give_identical_landmarks():
    frame = read_frames(shared_file(SADTALKER), 0, 1)[0]
    mesh = FaceMesh()
    calls = []

    class Counting:
        name, version = mesh.name, mesh.version

        def landmarks_batch(self, reqs):
            calls.extend(reqs)
            return mesh.landmarks_batch(reqs)

    fa = analyze_video(None, frames=np.repeat(frame[None], 40, axis=0), fps=25.0, mesh=Counting())
    assert len(fa.tracks) == 1
    lm = fa.tracks[0].landmarks
    assert np.isfinite(lm).all() and len(calls) == 1
    assert (lm == lm[0]).all()


def test_judge_face_cache_is_keyed_by_the_analysis_version(tmp_path):
    from curation.faces import ANALYSIS_VERSION
    from curation.sync_judge.features import face_tracks, video_stream_sha256

    path = shared_file(SADTALKER)
    key = video_stream_sha256(path)
    # a cache entry written by an earlier face pass (no version in its name) is never read
    np.savez(tmp_path / f"{key}.npz", frame_indices=np.arange(3), fps=25.0, n_tracks=0)
    res = face_tracks(path, cache=tmp_path)
    assert len(res["tracks"]) == 1 and len(res["frame_indices"]) == 200
    assert (tmp_path / f"{key}.faces{ANALYSIS_VERSION}.npz").is_file()


def test_mesh_output_is_read_from_its_bytes_with_the_proto_values():
    from mediapipe.framework.formats import landmark_pb2

    rng = np.random.default_rng(0)
    msg = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in rng.random((faces.NUM_LANDMARKS, 3)) - 0.2:
        p = msg.landmark.add()
        p.x, p.y, p.z = x, y, z
    ref = np.array([(p.x, p.y, p.z) for p in msg.landmark], dtype=np.float64)
    got = faces._landmark_points(msg.SerializeToString())
    assert got.dtype == np.float64 and np.array_equal(got, ref)
    assert np.array_equal(faces._landmark_points(msg), ref)  # a proto message still works
    msg.landmark[7].visibility = 0.5  # another layout: parsed as the proto, same points
    assert np.array_equal(faces._landmark_points(msg.SerializeToString()), ref)
    del msg.landmark[-1]
    assert faces._landmark_points(msg.SerializeToString()) is None
    assert faces._landmark_points(b"") is None and faces._landmark_points(None) is None


def test_mesh_graph_output_takes_the_record_layout():
    # the face mesh graph emits plain x/y/z landmarks: the fast path is the one in use
    rgb = read_frames(shared_file(SADTALKER), 0, 1)[0]
    box = FaceDetector().detect(rgb)[0].box
    mesh = FaceMesh()
    seen = []
    real = faces._landmark_points
    try:
        faces._landmark_points = lambda res: seen.append(res) or real(res)
        assert mesh.landmarks(rgb, box) is not None
    finally:
        faces._landmark_points = real
    assert len(seen) == 1 and isinstance(seen[0], bytes)
    rec = np.frombuffer(seen[0], faces._LANDMARK_RECORD)
    assert len(rec) == faces.NUM_LANDMARKS and (rec["len"] == 15).all()
