"""Media primitives shared by curation, metrics and the model: probe, frames, audio, hashing.

Frames come from decord (RGB uint8, (T, H, W, 3)); audio is decoded by the system ffmpeg to
mono float32 at the requested rate. Errors raise ``MediaError`` with the file named.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, asdict
from fractions import Fraction
from pathlib import Path

import cv2  # noqa: F401 - must load before decord, or cv2 cannot read PNGs afterwards (libpng/zlib clash)
import numpy as np

# the generic helpers live in the kernel; re-exported here because every stage imports them from here
from kernel.media import MediaError, require_ffmpeg, sha256_file  # noqa: F401

AUDIO_SR = 16000


@dataclass
class ProbeInfo:
    container: str | None
    video_codec: str | None
    audio_codec: str | None
    has_video: bool
    has_audio: bool
    duration_s: float | None
    fps: float | None
    width: int | None
    height: int | None
    num_frames: int | None
    audio_sample_rate: int | None
    audio_channels: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(s: str | None) -> float | None:
    if not s or s in ("0/0", "N/A"):
        return None
    try:
        v = float(Fraction(s))
    except (ValueError, ZeroDivisionError):
        return None
    return v if v > 0 else None


def probe(path: str | os.PathLike, timeout_s: float = 60.0) -> ProbeInfo:
    """ffprobe a file. Raises ``MediaError`` when ffprobe cannot parse it at all."""
    exe = shutil.which("ffprobe")
    if exe is None:
        raise MediaError("ffprobe is not on PATH: install ffmpeg (Debian: apt-get install -y ffmpeg)")
    cmd = [exe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise MediaError(f"{path}: ffprobe timed out after {timeout_s}s") from e
    if res.returncode != 0:
        raise MediaError(f"{path}: ffprobe failed: {res.stderr.decode(errors='replace').strip()[:500]}")
    data = json.loads(res.stdout or b"{}")
    streams = data.get("streams", [])
    fmt = data.get("format", {})
    v = next((s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")), None)
    a = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = None
    for cand in (fmt.get("duration"), (v or {}).get("duration"), (a or {}).get("duration")):
        try:
            if cand is not None and float(cand) > 0:
                duration = float(cand)
                break
        except ValueError:
            pass
    fps = _ratio((v or {}).get("avg_frame_rate")) or _ratio((v or {}).get("r_frame_rate"))
    nframes = None
    if v is not None and v.get("nb_frames") not in (None, "N/A"):
        try:
            nframes = int(v["nb_frames"])
        except ValueError:
            nframes = None
    if nframes is None and fps and duration:
        nframes = int(round(fps * duration))
    return ProbeInfo(
        container=fmt.get("format_name"),
        video_codec=(v or {}).get("codec_name"),
        audio_codec=(a or {}).get("codec_name"),
        has_video=v is not None,
        has_audio=a is not None,
        duration_s=duration,
        fps=fps,
        width=int(v["width"]) if v and v.get("width") else None,
        height=int(v["height"]) if v and v.get("height") else None,
        num_frames=nframes,
        audio_sample_rate=int(a["sample_rate"]) if a and a.get("sample_rate") else None,
        audio_channels=int(a["channels"]) if a and a.get("channels") else None,
    )


class VideoReader:
    """Thin decord wrapper: random access to RGB frames of one file, optionally resized.

    ``width``/``height`` of -1 keep the aspect ratio (decord semantics).
    """

    def __init__(self, path: str | os.PathLike, width: int = -1, height: int = -1, num_threads: int = 1):
        import decord

        self.path = str(path)
        try:
            self._vr = decord.VideoReader(self.path, width=width, height=height, num_threads=num_threads)
        except Exception as e:  # decord raises DECORDError / RuntimeError
            raise MediaError(f"{path}: cannot decode video: {e}") from e
        self.fps = float(self._vr.get_avg_fps() or 0.0) or None

    def __len__(self) -> int:
        return len(self._vr)

    def get(self, indices) -> np.ndarray:
        idx = [int(i) for i in indices]
        if not idx:
            return np.zeros((0, 0, 0, 3), np.uint8)
        try:
            return self._vr.get_batch(idx).asnumpy()
        except Exception as e:
            raise MediaError(f"{self.path}: cannot decode frames {idx[0]}..{idx[-1]}: {e}") from e


def read_frames(
    path: str | os.PathLike,
    start_frame: int = 0,
    end_frame: int | None = None,
    step: int = 1,
    width: int = -1,
    height: int = -1,
) -> np.ndarray:
    """RGB uint8 frames [start, end) every ``step`` frames, shape (T, H, W, 3)."""
    vr = VideoReader(path, width=width, height=height)
    end = len(vr) if end_frame is None else min(int(end_frame), len(vr))
    return vr.get(range(int(start_frame), end, max(1, int(step))))


def sample_indices(start_frame: int, end_frame: int, src_fps: float, target_fps: float) -> np.ndarray:
    """Source frame indices that resample [start, end) from ``src_fps`` to ``target_fps``
    (nearest frame, the way ffmpeg's fps filter does)."""
    n_out = int(np.floor((end_frame - start_frame) / src_fps * target_fps + 1e-6))
    t = np.arange(n_out) / target_fps
    idx = start_frame + np.round(t * src_fps).astype(int)
    return np.clip(idx, start_frame, max(start_frame, end_frame - 1))


def load_audio(
    path: str | os.PathLike,
    sr: int = AUDIO_SR,
    start_s: float | None = None,
    end_s: float | None = None,
    timeout_s: float = 300.0,
) -> np.ndarray:
    """Decode the first audio stream to mono float32 in [-1, 1] at ``sr`` Hz."""
    exe = require_ffmpeg()
    cmd = [exe, "-nostdin", "-v", "error"]
    if start_s:
        cmd += ["-ss", f"{start_s:.6f}"]
    cmd += ["-i", str(path)]
    if end_s is not None:
        cmd += ["-t", f"{max(0.0, end_s - (start_s or 0.0)):.6f}"]
    cmd += ["-vn", "-ac", "1", "-ar", str(sr), "-f", "f32le", "-"]
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise MediaError(f"{path}: audio decode timed out") from e
    if res.returncode != 0:
        raise MediaError(f"{path}: cannot decode audio: {res.stderr.decode(errors='replace').strip()[:500]}")
    return np.frombuffer(res.stdout, dtype=np.float32).copy()


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int = AUDIO_SR) -> None:
    import soundfile as sf

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio, dtype=np.float32), sr, subtype="PCM_16")


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, audio: str | os.PathLike | None = None,
                crf: int = 18) -> None:
    """Encode RGB uint8 frames (T, H, W, 3) to H.264 mp4, optionally muxing an audio file."""
    exe = require_ffmpeg()
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    t, h, w, _ = frames.shape
    cmd = [exe, "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "-"]
    if audio is not None:
        cmd += ["-i", str(audio), "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-shortest"]
    # even sizes for yuv420p
    cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
            "-crf", str(crf), "-preset", "veryfast", str(path)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
    if res.returncode != 0:
        raise MediaError(f"{path}: ffmpeg encode failed: {res.stderr.decode(errors='replace')[:500]}")
