"""curation.media.load_audio reads audio on the video's timeline (container offsets included)."""

from __future__ import annotations

import numpy as np
import pytest

from curation.media import load_audio, stream_start_times, write_wav
from tests.conftest import run_ffmpeg

SR = 16000


def _clicks(seconds: float = 4.0) -> np.ndarray:
    """Short noise bursts at irregular times: one unambiguous cross-correlation peak."""
    rng = np.random.default_rng(0)
    audio = np.zeros(int(seconds * SR), np.float32)
    for t in (0.3, 0.9, 1.25, 2.05, 2.6, 3.4):
        s = int(t * SR)
        audio[s:s + 400] = rng.normal(0, 0.3, 400)
    return audio


def _lag_s(a: np.ndarray, ref: np.ndarray) -> float:
    n = min(len(a), len(ref))
    corr = np.correlate(np.abs(a[:n]), np.abs(ref[:n]), mode="full")
    return (int(np.argmax(corr)) - (n - 1)) / SR


@pytest.fixture(scope="module")
def delayed_pair(tmp_path_factory, ffmpeg):
    """The same 4-frame (0.16 s) audio delay made by shifting samples and by -itsoffset."""
    d = tmp_path_factory.mktemp("timeline")
    clicks = _clicks()
    write_wav(d / "clicks.wav", clicks)
    write_wav(d / "clicks_delayed.wav", np.concatenate([np.zeros(int(0.16 * SR), np.float32), clicks]))
    video = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=25:duration=4.5"]
    enc = ["-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    run_ffmpeg(*video, "-i", str(d / "clicks_delayed.wav"), *enc, str(d / "by_samples.mp4"))
    run_ffmpeg(*video, "-itsoffset", "0.16", "-i", str(d / "clicks.wav"), *enc, str(d / "by_container.mp4"))
    run_ffmpeg(*video, "-i", str(d / "clicks.wav"), *enc, str(d / "in_sync.mp4"))
    # audio 4 frames early: samples cut at the head vs a negative container offset (the muxer
    # then starts the audio at 0 and the video at 0.16 s), PCM in Matroska as real remuxes do
    write_wav(d / "clicks_advanced.wav", np.concatenate([clicks[int(0.16 * SR):], np.zeros(int(0.16 * SR), np.float32)]))
    pcm = ["-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le"]
    run_ffmpeg(*video, "-i", str(d / "clicks_advanced.wav"), *pcm, str(d / "advanced_by_samples.mkv"))
    run_ffmpeg(*video, "-itsoffset", "-0.16", "-i", str(d / "clicks.wav"), *pcm, str(d / "advanced_by_container.mkv"))
    return d, clicks


def test_container_offset_and_sample_shift_read_the_same(delayed_pair):
    d, clicks = delayed_pair
    v0, a0 = stream_start_times(d / "by_container.mp4")
    assert a0 - v0 > 0.05  # the delay really is in the container, not in the samples
    lag_samples = _lag_s(load_audio(d / "by_samples.mp4"), clicks)
    lag_container = _lag_s(load_audio(d / "by_container.mp4"), clicks)
    lag_sync = _lag_s(load_audio(d / "in_sync.mp4"), clicks)
    assert abs(lag_sync) <= 0.005
    assert abs(lag_samples - 0.16) <= 0.005
    assert abs(lag_container - lag_samples) <= 0.005


def test_a_negative_container_offset_reads_as_the_same_advance(delayed_pair):
    d, clicks = delayed_pair
    v0, a0 = stream_start_times(d / "advanced_by_container.mkv")
    assert v0 - a0 > 0.05  # the advance is in the container: the video starts late
    lag_samples = _lag_s(load_audio(d / "advanced_by_samples.mkv"), clicks)
    lag_container = _lag_s(load_audio(d / "advanced_by_container.mkv"), clicks)
    assert abs(lag_samples + 0.16) <= 0.005
    # seeking to the video start used to land on a packet boundary here (-0.19 s read)
    assert abs(lag_container - lag_samples) <= 0.005
    part = load_audio(d / "advanced_by_container.mkv", start_s=1.0, end_s=3.0)
    assert abs(_lag_s(part, load_audio(d / "advanced_by_samples.mkv")[SR:3 * SR])) <= 0.002


def test_a_window_is_cut_on_the_video_timeline(delayed_pair):
    d, clicks = delayed_pair
    whole = load_audio(d / "by_container.mp4")
    part = load_audio(d / "by_container.mp4", start_s=1.0, end_s=3.0)
    assert abs(len(part) - 2 * SR) <= 2
    # the window equals the same samples of the whole read (up to AAC frame boundaries)
    assert abs(_lag_s(part, whole[SR:3 * SR])) <= 0.002
    # a window that begins before the audio stream starts is padded with silence
    head = load_audio(d / "by_container.mp4", start_s=0.0, end_s=0.5)
    assert abs(len(head) - SR // 2) <= 2 and np.abs(head[:int(0.1 * SR)]).max() == 0.0
