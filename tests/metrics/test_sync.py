"""LSE-J / LSE-J* (the offline sync judge) on real clips; Sync-C / Sync-D / Sync-C* are
SyncNet-only and refuse any other backend.

Sign convention (joonson's, see curation.sync): positive offset = audio leads video. Audio
advanced by k frames (its sound comes k frames early) gives offset +k; audio delayed by k
frames gives offset -k.
"""

from __future__ import annotations

import numpy as np
import pytest

from metrics import Sample, get_metric
from metrics.intervals import load_speaker_durations, lookup_intervals
from tests.conftest import shared_file

SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps


def _shift(audio: np.ndarray, k: int) -> np.ndarray:
    """Audio advanced by k frames (k > 0: leads the picture) or delayed by -k frames (k < 0)."""
    n = abs(k) * SAMPLES_PER_FRAME
    pad = np.zeros(n, np.float32)
    return np.concatenate([audio[n:], pad]) if k > 0 else np.concatenate([pad, audio[:-n]])


@pytest.fixture(scope="module")
def syncnet_clip():
    return (shared_file("talking/syncnet_example_video.avi"), shared_file("talking/syncnet_example_speech.wav"))


def test_own_audio_beats_mismatched_audio():
    video = shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4")
    mismatched = shared_file("talking/latentsync_demo1_audio.wav")
    samples = [Sample("own", str(video)),  # the video's own audio track
               Sample("mismatched", str(video), mixed_audio_path=str(mismatched))]
    c = get_metric("lipsync_judge").evaluate(samples)
    assert c.name == "lipsync_judge" and c.backend == "judge" and c.backend_version
    assert c.n_scored == 2, c.failures
    own_c, mis_c = (it.value for it in c.items)
    assert own_c > mis_c + 0.05, (own_c, mis_c)
    assert c.higher_is_better


def test_a_frozen_face_scores_as_not_talking(tmp_path, ffmpeg):
    from tests.conftest import run_ffmpeg

    video = shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4")
    frozen = tmp_path / "frozen.mp4"
    run_ffmpeg("-i", str(video), "-t", "3", "-vf", "select=eq(n\\,0),loop=loop=-1:size=1,setpts=N/25/TB",
               "-map", "0:v", "-map", "0:a", "-r", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(frozen))
    r = get_metric("lipsync_judge").evaluate([Sample("frozen", str(frozen))])
    assert r.n_scored == 1, r.failures
    assert r.items[0].value == 0.0


def test_sync_c_is_syncnet_only():
    from kernel.errors import UserError

    with pytest.raises(UserError, match="lipsync_judge"):
        get_metric("sync_c")
    with pytest.raises(UserError, match="lipsync_judge"):
        get_metric("sync_c_star", backend="landmark")


@pytest.mark.parametrize("k", [-6, -3, 3, 6])
def test_shifted_audio_gives_offset_k(tmp_path, syncnet_clip, k):
    from curation.media import load_audio, write_wav

    video, speech = syncnet_clip
    shifted = tmp_path / f"shift_{k}.wav"
    write_wav(shifted, _shift(load_audio(speech), k))
    r = get_metric("lipsync_judge").evaluate([Sample(f"shift{k}", str(video), mixed_audio_path=str(shifted))])
    assert r.n_scored == 1, r.failures
    offset = r.items[0].components["tracks"][0]["offset"]
    assert abs(offset - k) <= 1, (k, offset)


def test_sync_c_star_prefers_each_persons_own_track():
    video = shared_file("anytalker_benchmark/interact_11.mp4")
    left = shared_file("anytalker_benchmark/audio_left/interact_11_left.flac")
    right = shared_file("anytalker_benchmark/audio_right/interact_11_right.flac")
    table = load_speaker_durations(shared_file("anytalker_benchmark/speaker_duration.json"))
    iv = lookup_intervals(table, video)
    metric = get_metric("lipsync_judge_star")
    r = metric.evaluate([
        Sample("own", str(video), audio_paths=[str(left), str(right)], speaking_intervals=iv),
        Sample("mixed", str(video), speaking_intervals=iv),
        Sample("no_intervals", str(video)),
    ])
    own, mixed, bad = r.items
    assert own.ok and mixed.ok, r.failures
    assert bad.reason == "missing_input" and r.n_failed == 1
    persons = own.components["persons"]
    assert [p["speaking_s"] for p in persons] == pytest.approx([8.18 - 4.16, 4.16], abs=0.05)
    # Eq. 7's recipe: duration-weighted mean of the per-person LSE-J
    w = np.array([p["speaking_s"] for p in persons])
    c = np.array([p["conf"] for p in persons])
    assert own.value == pytest.approx(float((w * c).sum() / w.sum()))
    assert own.components["per_speaker_audio"] and not mixed.components["per_speaker_audio"]
    assert r.ci_low <= r.value <= r.ci_high


def test_missing_audio_is_a_failed_item_not_a_crash(tmp_path, ffmpeg):
    from tests.conftest import run_ffmpeg

    silent = tmp_path / "silent.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x120:d=1:r=25", "-pix_fmt", "yuv420p", str(silent))
    r = get_metric("lipsync_judge").evaluate([Sample("silent", str(silent))])
    assert r.n_failed == 1 and r.items[0].reason == "no_audio"
    assert np.isnan(r.value)


def test_syncnet_backend_without_weights_is_a_user_error():
    from kernel.errors import UserError

    with pytest.raises(UserError, match="syncnet_v2.model"):
        get_metric("sync_c", backend="syncnet")


def test_syncnet_backend_loads_weights_in_the_real_format(tmp_path):
    """Random-init SyncNet saved as joonson's state dict (the real file cannot be downloaded)."""
    import cv2
    import torch
    from syncnet_python.SyncNetModel import S

    from kernel.errors import UserError
    from curation.media import load_audio, read_frames, write_video, write_wav

    src = shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4")
    frames = np.stack([cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA) for f in read_frames(src, 0, 30)])
    wav = tmp_path / "a.wav"
    write_wav(wav, load_audio(src)[: 30 * SAMPLES_PER_FRAME])
    clip = tmp_path / "clip.mp4"
    write_video(clip, frames, 25.0, audio=wav)

    torch.manual_seed(0)
    weights = tmp_path / "syncnet_v2.model"
    torch.save(S(num_layers_in_fc_layers=1024).state_dict(), weights)
    r = get_metric("sync_c", backend="syncnet", weights=str(weights)).evaluate([Sample("clip", str(clip))])
    assert r.n_scored == 1, (r.failures, r.items[0].components)
    assert r.backend == "syncnet" and "syncnet_v2.model@" in r.backend_version
    track = r.items[0].components["tracks"][0]
    assert -15 <= track["offset"] <= 15 and track["conf"] >= 0

    bad = tmp_path / "bad.model"
    torch.save({"not": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match="bad.model"):
        get_metric("sync_c", backend="syncnet", weights=str(bad))
