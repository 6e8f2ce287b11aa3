"""End to end: shards -> train (loss falls, exact resume) -> generate 1/2/3 identities -> decode."""

import json
import shutil

import numpy as np
import pytest
import yaml

from anytalker.cli import main
from curation.media import probe, read_frames
from tests.conftest import shared_file
from tests.model.conftest import MICRO

STEPS, MID = 40, 20


def _losses(out):
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def micro_yaml(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "micro.yaml"
    cfg = json.loads(json.dumps(MICRO))
    cfg["train"]["checkpoint_every"] = MID
    p.write_text(yaml.safe_dump({"extends": "tiny", "name": "micro", **cfg}))
    return p


@pytest.fixture(scope="module")
def trained(clip_run, micro_yaml, tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    assert main(["train", str(micro_yaml), "--shards", str(clip_run), "--output", str(out), "--steps", str(STEPS),
                 "--threads", "1", "-q"]) == 0
    return out


def cfg_shards(out):
    return json.loads((out / "data.json").read_text())["shards"]


def _records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_training_runs_every_step_and_never_does_worse_than_copying(trained):
    """The model starts as "copy the context" (zero head on a residual: the reference warped to
    each frame's lips); training must keep it at or under that baseline on its own batches, and
    far under copying the reference."""
    losses = _losses(trained)
    assert sorted(losses) == list(range(1, STEPS + 1))
    recs = [r for r in _records(trained) if "diag_loss" in r][-STEPS // 5:]
    model_loss = np.mean([r["diag_loss"] for r in recs])
    assert model_loss <= 1.05 * np.mean([r["copy_warped"] for r in recs])
    # the reference warped to each frame's true lips is closer to the frames than the reference
    all_recs = [r for r in _records(trained) if "copy_warped" in r]
    assert np.mean([r["copy_warped"] for r in all_recs]) < np.mean([r["copy_reference"] for r in all_recs])
    assert (trained / "checkpoints" / "last.pt").is_file()
    data = json.loads((trained / "data.json").read_text())
    assert data["audio_frontend"]["backend"] == "logmel" and data["clips"] == 4


def test_every_log_step_has_copy_baselines_and_the_audio_swap_gap(trained):
    recs = [r for r in _records(trained) if "audio_swap_gap" in r]
    assert len(recs) == STEPS  # MICRO logs every step
    for r in recs:
        assert r["copy_reference"] > 0 and r["copy_context"] > 0
        assert r["audio_swap_gap"] == pytest.approx((r["audio_swap"] - r["diag_loss"]) / r["diag_loss"], abs=1e-3)
        assert "motion_loss" in r and "motion_swap_gap" in r and "copy_warped" in r
    # the motion head's held-out figure at every checkpoint (windows the run did not train on)
    held = [json.loads(line) for line in (trained / "motion_heldout.jsonl").read_text().splitlines()]
    assert [h["step"] for h in held] == [MID, STEPS]
    assert all(h["windows"] > 0 and -1 <= h["r_matched"] <= 1 and h["amplitude_gain"] >= 1 for h in held)
    # early stopping: the final checkpoint keeps the motion head of the best held-out checkpoint
    from model.data import ShardTrainingSource
    from model.generate import load_model
    from model.motion_eval import heldout_motion

    model, cfg, frontend, _ = load_model(trained / "checkpoints" / "last.pt")
    assert cfg["train"]["motion_early_stop"]
    final = heldout_motion(model, ShardTrainingSource(cfg_shards(trained), cfg, frontend))
    best = max(held, key=lambda h: h["r_matched"] + h["span_r_matched"])
    # the head's weights are the best checkpoint's exactly; the face encoder it reads is the last
    # step's (the DiT's), so its figure is the best one's up to that change
    import torch

    best_blob = torch.load(trained / "checkpoints" / f"step_{best['step']:07d}.pt", weights_only=False)
    for name, value in model.state_dict().items():
        if name.startswith("motion."):
            assert torch.equal(value, best_blob["model"][name].to(value.dtype)), name
    assert final["r_matched"] == pytest.approx(best["r_matched"], abs=0.01)
    assert final["span_r_matched"] == pytest.approx(best["span_r_matched"], abs=0.01)


def test_a_fresh_model_predicts_the_context_frame():
    """Zero-initialised head + residual on the context: training starts from "copy the previous
    frame", the copy-context baseline of the diagnostics."""
    import torch

    from model.config import load_config
    from model.dit import AnyTalkerDiT
    from model.flow import frame_tokens, predict_x0

    cfg = load_config("tiny", MICRO)
    model = AnyTalkerDiT(cfg, 160).eval()
    g = torch.Generator().manual_seed(0)
    ref, ctx = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    xt = torch.randn(2, 3 * 16, model.patch_dim, generator=g)
    with torch.no_grad():
        ft, at = model.encode_conditions(ref, torch.zeros(2, 1, 3, 16, 16), torch.randn(2, 1, 9, 5, 160, generator=g))
        x0 = predict_x0(model, xt, torch.full((2,), 0.5), ref, ctx, ft, at, torch.ones(2, 1, 4, 4), 9)
    assert torch.allclose(x0, frame_tokens(ctx, 9, model.patch), atol=1e-6)


def test_resume_continues_from_the_same_step_with_the_same_losses(trained, clip_run, micro_yaml, tmp_path):
    run = tmp_path / "resumed"
    shutil.copytree(trained, run)
    shutil.copyfile(run / "checkpoints" / f"step_{MID:07d}.pt", run / "checkpoints" / "last.pt")
    assert main(["train", str(micro_yaml), "--shards", str(clip_run), "--output", str(run), "--steps", str(MID + 4),
                 "--resume", "--threads", "1", "-q"]) == 0
    resumed, original = _losses(run), _losses(trained)
    assert sorted(resumed) == list(range(1, MID + 5))  # the tail past the resumed step was replaced, not duplicated
    for s in range(MID + 1, MID + 5):
        assert resumed[s] == pytest.approx(original[s], rel=1e-4, abs=1e-6), s


def test_resume_refuses_set_values_and_points_to_init(trained, clip_run, micro_yaml, tmp_path, capsys):
    run = tmp_path / "resumed"
    shutil.copytree(trained, run)
    rc = main(["train", str(micro_yaml), "--shards", str(clip_run), "--output", str(run), "--resume",
               "--set", "train.lr=1e-5", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--init" in err and "last.pt" in err


def test_stage2_from_stage1_weights_starts_at_stage1_loss(trained, clip_run, micro_yaml, tmp_path):
    """--init: the first stage-2 loss is the stage-1 model's loss on that batch (same weights),
    far below a fresh model's first loss on the same batch."""
    import torch

    from model.audio import build_frontend
    from model.checkpoint import load_checkpoint
    from model.config import load_config
    from model.data import ShardTrainingSource
    from model.flow import FlowMatchingObjective
    from model.train import build_model, step_generator

    ckpt = trained / "checkpoints" / "last.pt"
    stage2 = ["--set", "train.stage=2", "--set", "train.lr=5e-6", "--steps", "2", "--threads", "1", "-q"]
    assert main(["train", str(micro_yaml), "--shards", str(clip_run), "--output", str(tmp_path / "s2"),
                 "--init", str(ckpt), *stage2]) == 0
    assert main(["train", str(micro_yaml), "--shards", str(clip_run), "--output", str(tmp_path / "fresh"), *stage2]) == 0
    first_init, first_fresh = _losses(tmp_path / "s2")[1], _losses(tmp_path / "fresh")[1]
    cfg = json.loads((tmp_path / "s2" / "config.json").read_text())
    assert cfg["train"]["stage"] == 2 and cfg["train"]["lr"] == 5e-6
    blob = load_checkpoint(ckpt)
    frontend = build_frontend(cfg["audio"])
    model = build_model(load_config(cfg), frontend)
    model.load_state_dict(blob["model"])
    batch = ShardTrainingSource(clip_run, cfg, frontend).batch(1)
    assert batch["mode"] == "as_is"  # a real two-person clip: stage 2 data
    with torch.no_grad():
        tr = cfg["train"]
        objective = FlowMatchingObjective(model, tr["mouth_weight"], tr["loss_t_floor"], tr["audio_aux_weight"])
        expected = float(objective(batch, step_generator(cfg["seed"], 1, 0), tr["audio_dropout"]))
    assert first_init == pytest.approx(expected, rel=1e-4)
    assert first_init != pytest.approx(first_fresh, rel=1e-3)  # not a fresh start


def test_resume_without_checkpoint_is_a_clear_error(clip_run, micro_yaml, tmp_path, capsys):
    rc = main(["train", str(micro_yaml), "--shards", str(clip_run), "--output", str(tmp_path / "new"), "--resume"])
    assert rc == 2 and "last.pt" in capsys.readouterr().err


def _generate(trained, image, audios, out, extra=()):
    args = ["generate", "--checkpoint", str(trained / "checkpoints" / "last.pt"), "--image", str(image),
            "--output", str(out), "--seconds", "0.5", "--steps", "2", "--threads", "1", "-q",
            "--height", "96", *extra]
    for a in audios:
        args += ["--audio", str(a)]
    return main(args)


def test_generate_two_people_from_2p0(trained, tmp_path):
    image = shared_file("images/anytalker/2p-0.png")
    left = shared_file("anytalker_benchmark/audio_left/interact_11_left.flac")
    right = shared_file("anytalker_benchmark/audio_right/interact_11_right.flac")
    out = tmp_path / "2p.mp4"
    assert _generate(trained, image, [left, right], out, ["--sync-guidance"]) == 0
    info = probe(out)
    assert info.has_video and info.has_audio and info.fps == pytest.approx(24)
    frames = read_frames(out)
    assert len(frames) == 12 and frames.shape[1] == 96
    assert np.abs(frames[-1].astype(int) - frames[0]).max() > 0  # frames after the reference are generated
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["identities"] == 2 and rec["face_detector"]["backend"].startswith("mediapipe")
    assert rec["boxes"][0][0] < rec["boxes"][1][0]  # bound left -> right
    assert rec["model"]["backend"] == "anytalker-afca" and rec["model"]["step"] == STEPS
    assert rec["face_crops"]["size"] == [32, 32] and len(rec["face_crops"]["regions_xywh"]) == 2
    motion = rec["mouth_motion"]  # the reference's lips found by the mesh, warped to the predicted motion
    assert motion["warp_context"] and motion["reference_lips_found"] == [True, True]
    assert motion["residual_region"] == "mouth" and motion["motion_gain"] >= 1
    assert len(motion["predicted_opening_change_px"]["mean"]) == 2
    # sync guidance (--sync-guidance): both identities guided toward their own audio by the
    # guiding judge seeds, never by the seed the benchmark keeps for scoring
    guided = motion["sync_guidance"]
    assert guided["guided_identities"] == [0, 1] and 2 not in guided["seeds"]
    assert guided["judge_loss_after"] < guided["judge_loss_before"]
    assert [len(o) for o in motion["intended_opening_px"]] == [12, 12]
    assert rec["identical_consecutive_frames_before_encoding"] == 0


@pytest.mark.parametrize("n_id", [1, 3])
def test_same_checkpoint_generates_one_and_three_identities(trained, tmp_path, n_id):
    image = shared_file("images/anytalker/2p-0.png")
    audio = shared_file("talking/syncnet_example_speech.wav")
    boxes = ["120,130,310,320", "590,100,800,310", "400,20,480,100"][:n_id]
    out = tmp_path / f"{n_id}p.mp4"
    assert _generate(trained, image, [audio] * n_id, out, ["--boxes", ";".join(boxes)]) == 0
    assert len(read_frames(out)) == 12
    assert json.loads(out.with_suffix(".json").read_text())["identities"] == n_id


def test_sync_guidance_is_off_by_default(trained, tmp_path):
    image = shared_file("images/anytalker/2p-0.png")
    audio = shared_file("talking/syncnet_example_speech.wav")
    out = tmp_path / "off.mp4"
    assert _generate(trained, image, [audio], out, ["--boxes", "120,130,310,320"]) == 0
    guided = json.loads(out.with_suffix(".json").read_text())["mouth_motion"]["sync_guidance"]
    assert guided["steps"] == 0 and "judge_loss_after" not in guided


def test_more_audios_than_faces_names_the_image(trained, tmp_path, capsys):
    image = shared_file("images/anytalker/2p-0.png")
    audio = shared_file("talking/syncnet_example_speech.wav")
    rc = _generate(trained, image, [audio, audio], tmp_path / "x.mp4", ["--boxes", "120,130,310,320"])
    err = capsys.readouterr().err
    assert rc == 2 and "2p-0.png" in err and "1 face(s) but 2 audio" in err
    assert not (tmp_path / "x.mp4").exists()


def test_audio_gap_on_fixed_batches(trained, clip_run):
    from model.audio_gap import mouth_swap_gap

    res = mouth_swap_gap(trained / "checkpoints" / "last.pt", clip_run, batches=2)
    assert sorted(res) == ["t=0.5", "t=0.8", "t=1.0"]
    for r in res.values():
        assert r["mouth_mse_own"] > 0 and 0 <= r["batches_swap_worse"] <= 2
        assert r["gap_pct"] == pytest.approx(100 * (r["mouth_mse_swapped"] / r["mouth_mse_own"] - 1), abs=0.01)
    # the same checkpoint and batches give the same figures (fixed batches and noise)
    assert mouth_swap_gap(trained / "checkpoints" / "last.pt", clip_run, batches=2) == res


def test_early_stopping_keeps_the_motion_head_of_the_best_checkpoint(clip_run, micro_yaml, tmp_path, monkeypatch):
    """train.motion_early_stop: the final checkpoint holds the DiT of the last step and the
    motion head of the checkpoint whose held-out criterion was best (here step 2 of 4)."""
    import torch

    import model.motion_eval as motion_eval
    from model.checkpoint import load_checkpoint
    from model.train import train

    real = motion_eval.heldout_motion
    scores = iter([0.5, 0.1])

    def scripted(model, source):  # step 2 scores best, every later call 0.1
        r = real(model, source)
        r["r_matched"] = r["span_r_matched"] = next(scores, 0.1)
        return r

    monkeypatch.setattr(motion_eval, "heldout_motion", scripted)
    out = tmp_path / "run"
    res = train(str(micro_yaml), clip_run, out, steps=4, overrides={"train": {"checkpoint_every": 2}}, progress=False)
    assert res["motion_selected"]["step"] == 2
    best = load_checkpoint(out / "checkpoints" / "step_0000002.pt")["model"]
    final = load_checkpoint(out / "checkpoints" / "last.pt")["model"]
    head = [k for k in final if k.startswith("motion.")]
    assert head and all(torch.equal(final[k], best[k]) for k in head)
    assert not all(torch.equal(final[k], best[k]) for k in final if k.startswith("blocks."))  # the DiT moved on
