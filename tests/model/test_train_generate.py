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


def test_loss_decreases_over_the_run(trained):
    losses = _losses(trained)
    assert sorted(losses) == list(range(1, STEPS + 1))
    vals = np.array([losses[s] for s in range(1, STEPS + 1)])
    k = max(1, STEPS // 5)
    assert vals[-k:].mean() < vals[:k].mean(), vals
    assert (trained / "checkpoints" / "last.pt").is_file()
    data = json.loads((trained / "data.json").read_text())
    assert data["audio_frontend"]["backend"] == "logmel" and data["clips"] == 4


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


def test_resume_without_checkpoint_is_a_clear_error(clip_run, micro_yaml, tmp_path, capsys):
    rc = main(["train", str(micro_yaml), "--shards", str(clip_run), "--output", str(tmp_path / "new"), "--resume"])
    assert rc == 2 and "last.pt" in capsys.readouterr().err


def _generate(trained, image, audios, out, extra=()):
    args = ["generate", "--checkpoint", str(trained / "checkpoints" / "last.pt"), "--image", str(image),
            "--output", str(out), "--seconds", "0.5", "--sample-steps", "2", "--threads", "1", "-q", *extra]
    for a in audios:
        args += ["--audio", str(a)]
    return main(args)


def test_generate_two_people_from_2p0(trained, tmp_path):
    image = shared_file("images/anytalker/2p-0.png")
    left = shared_file("anytalker_benchmark/audio_left/interact_11_left.flac")
    right = shared_file("anytalker_benchmark/audio_right/interact_11_right.flac")
    out = tmp_path / "2p.mp4"
    assert _generate(trained, image, [left, right], out) == 0
    info = probe(out)
    assert info.has_video and info.has_audio and info.fps == pytest.approx(24)
    frames = read_frames(out)
    assert len(frames) == 12 and frames.shape[1] == 32
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["identities"] == 2 and rec["face_detector"]["backend"].startswith("mediapipe")
    assert rec["boxes"][0][0] < rec["boxes"][1][0]  # bound left -> right
    assert rec["model"]["backend"] == "anytalker-afca" and rec["model"]["step"] == STEPS


@pytest.mark.parametrize("n_id", [1, 3])
def test_same_checkpoint_generates_one_and_three_identities(trained, tmp_path, n_id):
    image = shared_file("images/anytalker/2p-0.png")
    audio = shared_file("talking/syncnet_example_speech.wav")
    boxes = ["120,130,310,320", "590,100,800,310", "400,20,480,100"][:n_id]
    out = tmp_path / f"{n_id}p.mp4"
    assert _generate(trained, image, [audio] * n_id, out, ["--boxes", ";".join(boxes)]) == 0
    assert len(read_frames(out)) == 12
    assert json.loads(out.with_suffix(".json").read_text())["identities"] == n_id


def test_more_audios_than_faces_names_the_image(trained, tmp_path, capsys):
    image = shared_file("images/anytalker/2p-0.png")
    audio = shared_file("talking/syncnet_example_speech.wav")
    rc = _generate(trained, image, [audio, audio], tmp_path / "x.mp4", ["--boxes", "120,130,310,320"])
    err = capsys.readouterr().err
    assert rc == 2 and "2p-0.png" in err and "1 face(s) but 2 audio" in err
    assert not (tmp_path / "x.mp4").exists()
