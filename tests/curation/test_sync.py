"""Sync backends: joonson curve semantics, the landmark backend on built signals, the SyncNet
loading path with weights made here, and equivalence with joonson's own evaluate()."""

from __future__ import annotations

import types

import numpy as np
import pytest

from curation import sync
from curation.sync import SyncInput, get_sync_backend, sync_score


def _talking_signals(n_frames=250, seed=0):
    """A syllable-like lip-opening signal and audio whose loudness follows it (25 fps, 16 kHz)."""
    rng = np.random.default_rng(seed)
    raw = np.convolve(rng.random(n_frames + 10), np.hanning(5), mode="same")[5:-5]
    mouth = np.clip(raw - np.median(raw), 0, None)
    env = np.repeat(mouth, 640)  # frame-aligned loudness
    carrier = rng.standard_normal(env.size).astype(np.float32)
    audio = (carrier * (0.01 + env)).astype(np.float32)
    return mouth + 0.002 * rng.standard_normal(n_frames), audio


def _delay(audio, frames):
    """Audio delayed (frames > 0) or advanced (frames < 0) by whole 25 fps frames."""
    n = abs(frames) * 640
    if frames > 0:
        return np.concatenate([np.zeros(n, np.float32), audio[:-n]])
    if frames < 0:
        return np.concatenate([audio[n:], np.zeros(n, np.float32)])
    return audio


def test_curve_statistics_follow_joonson():
    dists = np.array([5.0, 4.0, 1.0, 4.5, 6.0])  # vshift 2 -> offsets +2..-2
    offset, conf, min_dist = sync._curve_stats(dists, vshift=2)
    assert offset == 2 - 2 and min_dist == 1.0 and conf == pytest.approx(4.5 - 1.0)
    offset, _, _ = sync._curve_stats(np.array([3.0, 3.0, 3.0, 3.0, 0.5]), vshift=2)
    assert offset == -2


@pytest.mark.parametrize("delay", [0, 3, -4, 7])
def test_landmark_backend_recovers_a_known_delay_with_joonson_sign(delay):
    mouth, audio = _talking_signals()
    res = sync_score(get_sync_backend("landmark"), SyncInput(audio=_delay(audio, delay), mouth_open=mouth))
    # audio delayed by k frames -> offset -k
    assert res.offset == -delay
    assert res.conf > 0.5
    assert len(res.dists) == 31 and res.backend == "landmark" and res.version
    assert res.n_frames == 250


def test_landmark_backend_gives_low_confidence_to_unrelated_audio():
    mouth, _ = _talking_signals(seed=1)
    _, other = _talking_signals(seed=2)
    matched = sync_score(get_sync_backend("landmark"), SyncInput(audio=_talking_signals(seed=1)[1], mouth_open=mouth))
    res = sync_score(get_sync_backend("landmark"), SyncInput(audio=other, mouth_open=mouth))
    assert res.conf < 0.3 < matched.conf


def test_landmark_valid_mask_and_too_few_frames():
    mouth, audio = _talking_signals()
    valid = np.zeros(250, bool)
    valid[100:200] = True
    res = sync_score(get_sync_backend("landmark"), SyncInput(audio=_delay(audio, 2), mouth_open=mouth, valid=valid))
    assert res.n_frames == 100 and res.offset == -2
    valid[:] = False
    valid[:10] = True
    with pytest.raises(ValueError, match="valid frames"):
        sync_score(get_sync_backend("landmark"), SyncInput(audio=audio, mouth_open=mouth, valid=valid))
    with pytest.raises(ValueError, match="mouth_open"):
        sync_score(get_sync_backend("landmark"), SyncInput(audio=audio))
    with pytest.raises(ValueError, match="unknown sync backend"):
        get_sync_backend("lipnet")
    with pytest.raises(ValueError, match="syncnet_v2.model"):
        get_sync_backend("syncnet")


# ---------------------------------------------------------------------------- syncnet


@pytest.fixture(scope="module")
def random_syncnet_weights(tmp_path_factory):
    import torch
    from syncnet_python.SyncNetModel import S

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_random.model"
    torch.save(S(num_layers_in_fc_layers=1024).state_dict(), path)
    return path


def test_syncnet_loads_a_state_dict_by_name(random_syncnet_weights):
    import torch

    be = get_sync_backend("syncnet", weights=str(random_syncnet_weights))
    saved = torch.load(random_syncnet_weights)
    state = be.net.state_dict()
    assert set(state) == set(saved)
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    assert be.name == "syncnet" and "syncnet_random.model@" in be.version


def test_syncnet_rejects_wrong_files_with_a_clear_error(tmp_path):
    import torch

    bad = tmp_path / "notes.txt"
    bad.write_text("not a model")
    with pytest.raises(sync.SyncNetWeightsError, match=r"notes\.txt.*syncnet_v2\.model"):
        sync.load_syncnet(bad)
    wrong = tmp_path / "wrong.model"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(sync.SyncNetWeightsError, match="parameter names do not match"):
        sync.load_syncnet(wrong)
    with pytest.raises(sync.SyncNetWeightsError, match="not found"):
        sync.load_syncnet(tmp_path / "missing.model")


@pytest.mark.slow
def test_syncnet_matches_joonson_evaluate(random_syncnet_weights, tmp_path):
    """Our feature extraction + curve equals joonson's SyncNetInstance.evaluate on the same
    frames and audio (random weights: the arithmetic is what is compared)."""
    import cv2
    from scipy.io import wavfile
    from syncnet_python.SyncNetInstance import SyncNetInstance

    rng = np.random.default_rng(0)
    t = 30
    crops = rng.integers(0, 255, size=(t, 224, 224, 3), dtype=np.uint8)
    for i, c in enumerate(crops):
        cv2.imwrite(str(tmp_path / f"{i:06d}.jpg"), c[..., ::-1])  # joonson reads BGR jpgs
    back = np.stack([cv2.imread(str(tmp_path / f"{i:06d}.jpg"))[..., ::-1] for i in range(t)])
    pcm = (rng.standard_normal(t * 640) * 3000).astype(np.int16)
    wavfile.write(str(tmp_path / "audio.wav"), 16000, pcm)

    be = get_sync_backend("syncnet", weights=str(random_syncnet_weights))
    inst = SyncNetInstance(be.net, device="cpu")
    opt = types.SimpleNamespace(tmp_dir=str(tmp_path), batch_size=20, vshift=15)
    ref_offset, ref_conf, ref_min = inst.evaluate(opt)
    ours = sync_score(be, SyncInput(audio=pcm.astype(np.float32) / 32768.0, face_crops=back), vshift=15)
    assert ours.offset == ref_offset
    assert ours.min_dist == pytest.approx(ref_min, abs=1e-3)
    assert ours.conf == pytest.approx(ref_conf, abs=1e-3)
    assert ours.n_frames == t - 5


def test_face_crops_for_syncnet_follow_the_track(tmp_path):
    from curation.media import write_video

    frames = np.full((30, 240, 320, 3), 40, np.uint8)
    frames[:, 100:160, 200:260] = (250, 10, 10)  # a red "face" 60 px wide
    path = tmp_path / "v.mp4"
    write_video(path, frames, fps=25)
    boxes = [[200.0, 100.0, 260.0, 160.0]] * 29 + [None]  # a missed last frame is filled
    crops = sync.face_crops_for_syncnet(path, list(range(30)), boxes)
    assert crops.shape == (30, 224, 224, 3) and crops.dtype == np.uint8
    # joonson's crop is centred horizontally on the box and starts at its top
    centre = crops[:, 20:90, 80:144].reshape(-1, 3).mean(0)
    assert centre[0] > 180 and centre[1] < 80
    with pytest.raises(ValueError, match="no box"):
        sync.face_crops_for_syncnet(path, [0, 1], [None, None])


def test_backends_without_audio_context_get_the_audio_cut_at_frame_zero():
    from curation.sync import LandmarkSync, SyncInput, sync_score

    rng = np.random.default_rng(7)
    t, lead = 120, 15
    wav = rng.normal(0, 0.1, (t + 2 * lead) * 640).astype(np.float32)
    mouth = rng.uniform(0, 1, t)
    be = LandmarkSync()
    plain = sync_score(be, SyncInput(audio=wav[lead * 640:], mouth_open=mouth))
    ctx = sync_score(be, SyncInput(audio=wav, mouth_open=mouth, audio_lead=lead))
    assert plain.dists == ctx.dists
