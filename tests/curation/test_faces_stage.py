"""The `faces` curation stage on real and synthetic clips, through the stage adapter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation.base import run_stage_batch
from curation.media import probe, read_frames, write_video
from curation.stages.faces import FacesStage
from tests.conftest import run_ffmpeg, shared_file

SADTALKER = "talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"
INTERACT = "anytalker_benchmark/interact_11.mp4"


def _row(path, start=0, end=None) -> dict:
    info = probe(path)
    return {"clip_id": "t", "source_path": str(path), "source_abs_path": str(path),
            "status": "ok", "start_frame": start,
            "end_frame": info.num_frames if end is None else end, "fps": info.fps}


def _run(stage: FacesStage, row: dict) -> dict:
    out = run_stage_batch(stage, [row])
    assert len(out) == 1
    return out[0]


def test_accepts_single_person_clip():
    out = _run(FacesStage(expected_persons=1), _row(shared_file(SADTALKER)))
    assert out["status"] == "ok", out.get("error_detail")
    assert out["num_persons"] == 1
    assert out["frac_exact_n_faces"] > 0.95
    assert out["min_face_size"] > 200
    assert out["identity_swap"] is False and out["identity_max_drift"] < 0.1
    assert out["identity_backend"].startswith("dlib_resnet_v1@dlib-")
    assert "mediapipe-" in out["face_backend"]["detector"]
    (person,) = out["persons"]
    assert person["index"] == 0 and len(person["frames"]) == 200
    assert len(person["boxes"]) == 200 and person["ref_box"] == person["boxes"][0]
    assert len(out["mouth_open"][0]) == 200
    assert out["analysis_fps"] == 25.0
    # rows stay JSON-serialisable (no numpy types)
    json.dumps(out)


def test_rejects_two_people_when_one_expected():
    out = _run(FacesStage(expected_persons=1), _row(shared_file(INTERACT), 0, 96))
    assert out["status"] == "filtered"
    assert out["reason"] == "too_many_faces"
    assert out["num_persons"] == 2


def test_accepts_two_people_when_two_expected():
    out = _run(FacesStage(expected_persons=2), _row(shared_file(INTERACT)))
    assert out["status"] == "ok", out.get("error_detail")
    assert out["num_persons"] == 2 and out["order_stable"] is True
    left, right = out["persons"]
    assert left["index"] == 0 and right["index"] == 1
    # woman on the left half of the 832 px frame
    assert (left["ref_box"][0] + left["ref_box"][2]) / 2 < 416 < (right["ref_box"][0] + right["ref_box"][2]) / 2
    assert out["identity_cross_margin"] > 0.05
    # mouth signal per person, aligned with that person's frames
    assert [len(m) for m in out["mouth_open"]] == [len(left["frames"]), len(right["frames"])]
    # the row fits the one Parquet schema and comes back unchanged
    from pipelines.schema import rows_to_table, table_to_rows

    back = table_to_rows(rows_to_table([out]))[0]
    assert back["num_persons"] == 2 and back["persons"][0]["boxes"][0] == pytest.approx(left["boxes"][0], abs=0.01)
    assert back["mouth_open"] == out["mouth_open"]


def test_rejects_left_right_swap(tmp_path):
    frames = read_frames(shared_file(INTERACT), 0, 96)
    half = frames.shape[2] // 2
    swapped = frames.copy()
    # from frame 48 on, the woman appears on the right and the man on the left
    swapped[48:] = np.concatenate([frames[48:, :, half:], frames[48:, :, :half]], axis=2)
    path = tmp_path / "swapped.mp4"
    write_video(path, swapped, 24.0)
    out = _run(FacesStage(expected_persons=2), _row(path))
    assert out["status"] == "filtered"
    assert out["reason"] in ("identity_swap", "order_unstable")
    assert out["identity_swap"] is True


def test_rejects_video_without_face(tmp_path, ffmpeg):
    path = tmp_path / "testsrc.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2", "-pix_fmt", "yuv420p", str(path))
    out = _run(FacesStage(expected_persons=1), _row(path))
    assert out["status"] == "filtered" and out["reason"] == "no_face"
    assert out["num_persons"] == 0 and out["persons"] == []


def test_rejects_small_face_by_threshold():
    # same clip, threshold above its measured face size: the size check is what rejects it
    out = _run(FacesStage(expected_persons=1, min_face_size=400), _row(shared_file(SADTALKER), 0, 50))
    assert out["status"] == "filtered" and out["reason"] == "face_too_small"


def test_unreadable_source_becomes_a_reject_row(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    row = {"clip_id": "t", "source_path": "bad.mp4", "source_abs_path": str(bad), "status": "ok",
           "start_frame": 0, "end_frame": 10, "fps": 25.0}
    out = _run(FacesStage(), row)
    # the adapter turns the media error into a decode_error row; the job goes on
    assert out["status"] != "ok" and out["reason"] == "decode_error"
    assert "bad.mp4" in out["error_detail"]


def test_unknown_parameter_is_a_config_error():
    from curation.base import StageConfigError

    with pytest.raises(StageConfigError):
        FacesStage(min_face=3)


def test_arcface_identity_backend_is_wired_and_recorded(tmp_path):
    import torch

    from curation.identity import build_iresnet

    torch.manual_seed(0)
    weights = tmp_path / "backbone.pth"
    torch.save(build_iresnet(layers=(2, 2, 2, 2)).eval().state_dict(), weights)
    stage = FacesStage(expected_persons=1, identity_backend="arcface", identity_model_path=str(weights),
                       identity_samples=2)
    out = _run(stage, _row(shared_file(SADTALKER), 0, 25))
    # random weights: only the wiring is checked, not the identity decision
    assert out["identity_backend"].startswith("arcface@torch:backbone.pth:iresnet18")
    assert out["identity_max_drift"] is not None and out["num_persons"] == 1


def test_arcface_backend_without_model_fails_at_setup():
    from curation.identity import IdentityModelError

    with pytest.raises(IdentityModelError, match="needs model_path"):
        FacesStage(identity_backend="arcface").ensure_setup()
