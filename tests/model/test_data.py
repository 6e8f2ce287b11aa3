"""Shard streaming: batches from real curated-format shards, the 50 % concatenation rule,
determinism per step, and refusal of incomplete or modified shards."""

import json

import pytest
import torch

from model.audio import build_frontend
from model.config import load_config
from model.data import ShardTrainingSource
from model.shard_reader import ShardError, write_test_run
from tests.conftest import SHARED
from tests.model.conftest import MICRO


@pytest.fixture(scope="module")
def micro_cfg():
    return load_config("tiny", MICRO)


def _source(run, cfg, **train):
    c = json.loads(json.dumps(cfg))
    c["train"].update(train)
    return ShardTrainingSource(run, c, build_frontend(c["audio"]))


def test_stage1_batches_mix_single_and_concatenated_two_person(clip_run, micro_cfg):
    src = _source(clip_run, micro_cfg, concat_prob=0.5)
    info = src.describe()
    assert info["clips"] == 4 and info["two_person_clips"] == 1 and info["concat"]
    modes = {}
    for step in range(1, 13):
        b = src.batch(step)
        modes.setdefault(b["mode"], b)
    assert set(modes) == {"single", "two_person_concat"}  # p = 0.5 over 12 steps
    single, pair = modes["single"], modes["two_person_concat"]
    assert single["video"].shape == (2, 3, 9, 32, 32) and single["faces"].shape == (2, 1, 3, 16, 16)
    assert single["audio"].shape[:3] == (2, 1, 9) and single["face_masks"].shape == (2, 1, 4, 4)
    assert single["mouth_masks"].shape == (2, 4, 4) and single["mouth_masks"].sum(dim=(1, 2)).min() > 0
    # two-person mode: two full face crops side by side (width 2W)
    assert pair["video"].shape == (2, 3, 9, 32, 64) and pair["ref"].shape == (2, 3, 32, 64)
    assert pair["faces"].shape[1] == 2 and pair["audio"].shape[1] == 2
    m = pair["face_masks"]
    assert m[:, 0, :, 4:].sum() == 0 and m[:, 0, :, :4].sum(dim=(1, 2)).min() > 0  # identity 0 = left crop
    assert m[:, 1, :, :4].sum() == 0 and m[:, 1, :, 4:].sum(dim=(1, 2)).min() > 0  # identity 1 = right crop
    assert pair["video"].min() >= -1 and pair["video"].max() <= 1


def test_reference_comes_from_another_window_of_the_same_clip(clip_run, micro_cfg):
    """With ref_is_context 0 the identity reference is never the window's own first frame, so
    the mouth to draw cannot be copied from it."""
    src = _source(clip_run, micro_cfg, ref_is_context=0.0, batch_size=4)
    b = src.batch(5)
    assert b["ref"].shape == b["video"][:, :, 0].shape
    assert all(not torch.equal(b["ref"][k], b["video"][k, :, 0]) for k in range(4))
    same = _source(clip_run, micro_cfg, ref_is_context=1.0, batch_size=4).batch(5)
    assert torch.equal(same["ref"], same["video"][:, :, 0])


def test_batches_are_a_function_of_step(clip_run, micro_cfg):
    a, b = _source(clip_run, micro_cfg), _source(clip_run, micro_cfg)
    for step in (3, 7):
        x, y = a.batch(step), b.batch(step)
        assert x["mode"] == y["mode"]
        for k in ("video", "faces", "audio", "face_masks"):
            assert torch.equal(x[k], y[k])
    assert not torch.equal(a.batch(3, rank=0)["video"], a.batch(3, rank=1)["video"])


def test_stage2_uses_real_two_person_clips_left_to_right(clip_run, micro_cfg):
    src = _source(clip_run, micro_cfg, stage=2)
    b = src.batch(1)
    assert b["mode"] == "as_is" and b["faces"].shape[1] == 2
    cols = torch.arange(4).float()
    for m in b["face_masks"]:
        c0 = (m[0].sum(0) * cols).sum() / m[0].sum()
        c1 = (m[1].sum(0) * cols).sum() / m[1].sum()
        assert c0 < c1  # woman (left) is identity 0, man (right) identity 1
    # per-person audio files: the left speaker talks in the second half of interact_11, so the
    # first 3 s of the two tracks differ
    assert not torch.allclose(b["audio"][:, 0], b["audio"][:, 1])


def test_bad_rows_are_skipped_with_a_count(clip_run, micro_cfg, tmp_path):
    from model.shard_reader import read_clip_rows

    _, rows = read_clip_rows(clip_run)
    rows = rows[:1] + [dict(rows[0], clip_id="x", source_path="talking/does_not_exist.mp4"),
                       dict(rows[0], clip_id="y", persons=[]),
                       dict(rows[0], clip_id="z", end_frame=rows[0]["start_frame"] + 3)]
    from model.trainset import TRAIN_LIPS

    run = write_test_run(tmp_path / "run", rows, SHARED, fields={"lips": TRAIN_LIPS})
    src = _source(run, micro_cfg)
    assert src.describe()["skipped"] == {"source_missing": 1, "no_persons": 1, "too_short": 1}
    assert src.batch(1)["video"].shape[0] == 2


def test_incomplete_or_modified_shards_are_refused(clip_run, micro_cfg, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(clip_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(ShardError, match="complete"):
        _source(run, micro_cfg)
    (run / "manifest.json").write_text(json.dumps(manifest))
    part = run / manifest["files"][0]["path"]
    part.write_bytes(part.read_bytes() + b"\0")
    with pytest.raises(ShardError, match="sha256"):
        _source(run, micro_cfg)
    with pytest.raises(ShardError, match="manifest"):
        _source(tmp_path / "nothing_here", micro_cfg)


def test_single_person_windows_carry_lip_landmarks_in_crop_pixels(clip_run, micro_cfg):
    """The train set's lip landmarks (source px) arrive as (B, I, T, K, 2) crop px: on the crop,
    in its lower half (the mouth), and the reference's lips with them; rows without labels
    (the two-person clip here) give NaN, never a wrong position."""
    import numpy as np

    from model.trainset import LIP_POINTS

    src = _source(clip_run, micro_cfg)
    assert src.describe()["clips_with_lips"] == 3
    b = src.batch(3)
    lips, ref = b["lips"].numpy(), b["ref_lips"].numpy()
    assert lips.shape[2:] == (9, len(LIP_POINTS), 2) and ref.shape[2:] == (len(LIP_POINTS), 2)
    h = b["video"].shape[3]
    ok = np.isfinite(lips).all(-1)
    assert ok.mean() > 0.5
    ys = lips[..., 1][ok]
    assert ys.min() > 0.4 * h and ys.max() < h  # below the eyes, inside the crop
    item = next(i for i, it in enumerate(src.items) if len(it.persons) == 2)
    assert np.isnan(src.window_sample(item, 0, src.W)["lips"]).all()


def test_motion_sequences_start_anywhere_in_the_training_frames_and_never_in_the_held_out(clip_run, micro_cfg):
    """The motion head's batches: 2 s sequences at any frame offset (not the 9-frame window
    grid) of the single-person clips' training frames, a pure function of the step, whose lips
    are the clip's own at those frames; the held-out frames are only in ``heldout_sequences``."""
    import numpy as np

    src = _source(clip_run, micro_cfg, motion_holdout=0.1)
    assert len(src.motion_spans) == 3  # the single-person clips with lips
    length = 24
    a, b = src.motion_sequences(7, 0, 16, length), src.motion_sequences(7, 0, 16, length)
    assert all(torch.equal(a[k].nan_to_num(-1.0), b[k].nan_to_num(-1.0)) for k in a)
    assert a["audio"].shape == (16, 1, length, src.frontend.feature_dim)
    assert a["lips"].shape[:3] == (16, 1, length) and a["ref_lips"].shape[:2] == (16, 1)
    starts = []
    for step in range(1, 6):
        seq = src.motion_sequences(step, 0, 16, length)
        for lips, audio in zip(seq["lips"][:, 0].numpy(), seq["audio"][:, 0].numpy()):
            # find where it was cut: audio frames are unique per clip (log-mel of speech)
            for i, (n_train, _) in src.motion_spans.items():
                feats = src._audio_feats(src.items[i])[0][:, src.window // 2]
                hit = np.nonzero((np.abs(feats[: len(feats) - length + 1] - audio[0]).sum(1) < 1e-4))[0]
                if len(hit):
                    s = int(hit[0])
                    assert s + length <= n_train  # inside the training frames
                    np.testing.assert_allclose(audio, feats[s:s + length], atol=1e-5)
                    np.testing.assert_array_equal(np.isnan(lips), np.isnan(src.lip_track(i)[s:s + length]))
                    starts.append(s)
                    break
            else:
                raise AssertionError("a sequence's audio is not any clip's")
    assert len({s % src.T for s in starts}) > 3  # not only on the window grid
    held = src.heldout_sequences()
    assert len(held) == 3
    for h, (i, (n_train, n_all)) in zip(held, sorted(src.motion_spans.items())):
        assert h["audio"].shape[2] == n_all - n_train
    deforms = src.lip_deformations()
    assert deforms.shape[1:] == (len(src.lip_track(next(iter(src.motion_spans)))[0]), 2) and len(deforms) > 50
