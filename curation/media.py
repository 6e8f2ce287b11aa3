"""Media primitives shared by curation, metrics and the model: probe, frames, audio, hashing.

Frames come from decord (RGB uint8, (T, H, W, 3)); audio is decoded by the system ffmpeg to
mono float32 at the requested rate. Errors raise ``MediaError`` with the file named.
"""

from __future__ import annotations

import functools
import json
import os
import re
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


def cpu_share() -> int | None:
    """Compute threads this process may use (``OMP_NUM_THREADS``, which the executors set to
    the worker's CPU share), or None when no executor capped it."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return n if n > 0 else None


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
    # clockwise degrees the stored frames are turned when displayed (0/90/180/270), from the
    # display matrix or the legacy ``rotate`` tag; ``width``/``height`` above are the stored
    # (coded) size, ``display_width``/``display_height`` the upright one every stage uses
    rotation: int = 0
    avg_fps: float | None = None
    variable_frame_rate: bool = False

    @property
    def display_width(self) -> int | None:
        return self.height if self.rotation % 180 == 90 else self.width

    @property
    def display_height(self) -> int | None:
        return self.width if self.rotation % 180 == 90 else self.height

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


def _rotation(stream: dict | None) -> int:
    """Display rotation, normalised to 0/90/180/270, in the convention of the legacy ``rotate``
    tag (ffprobe 5.1 prints the display matrix's ``rotation`` in that convention; other builds
    flip the sign, so only the orientation, ``rotation % 180``, is relied on: ffmpeg itself
    turns the frames the right way when decoding)."""
    if not stream:
        return 0
    deg = None
    for sd in stream.get("side_data_list") or []:
        if "rotation" in sd:
            try:
                deg = float(sd["rotation"])
            except (TypeError, ValueError):
                pass
    if deg is None:
        try:
            deg = float((stream.get("tags") or {}).get("rotate", 0))
        except (TypeError, ValueError):
            deg = 0.0
    return int(round(deg / 90.0)) % 4 * 90


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
        # drop ffmpeg's per-process context addresses ("[mov,mp4 @ 0x55c0...]"): rows must not
        # differ between two runs over the same file
        err = re.sub(r" @ 0x[0-9a-f]+\]", "]", res.stderr.decode(errors="replace")).strip()
        raise MediaError(f"{path}: ffprobe failed: {err[:500]}")
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
    avg_fps = _ratio((v or {}).get("avg_frame_rate"))
    r_fps = _ratio((v or {}).get("r_frame_rate"))
    fps = avg_fps or r_fps
    # ffprobe's r_frame_rate is the smallest frame duration's rate: it differs from the average
    # when frame durations vary (phone recordings); the analysis timeline is then constant-rate
    # at the average (curation.decode)
    vfr = bool(avg_fps and r_fps and abs(avg_fps - r_fps) > 0.01 * r_fps)
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
        rotation=_rotation(v),
        avg_fps=avg_fps,
        variable_frame_rate=vfr,
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


def file_key(path: str | os.PathLike) -> tuple:
    """Identity of a file's current bytes for per-process caches: (real path, size, mtime)."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


def stream_start_times(path: str | os.PathLike, timeout_s: float = 60.0) -> tuple[float, float | None]:
    """(video start, audio start) in seconds on the container's timeline, edit lists applied
    (ffprobe's ``start_time`` of the first video / audio stream; 0.0 for a missing video
    stream, None for a missing audio stream). Kept per process for the file's ``file_key``:
    every ``load_audio`` of a clip asks (speech once, av_sync once per face and span), and an
    ffprobe costs about as much as the audio decode it precedes."""
    try:
        key = file_key(path)
    except OSError:
        return _stream_start_times(path, timeout_s)
    return _start_times_of(key, timeout_s)


@functools.lru_cache(maxsize=256)
def _start_times_of(key: tuple, timeout_s: float) -> tuple[float, float | None]:
    return _stream_start_times(key[0], timeout_s)


def _stream_start_times(path: str | os.PathLike, timeout_s: float) -> tuple[float, float | None]:
    exe = shutil.which("ffprobe")
    if exe is None:
        raise MediaError("ffprobe is not on PATH: install ffmpeg (Debian: apt-get install -y ffmpeg)")
    cmd = [exe, "-v", "error", "-print_format", "json", "-show_streams", str(path)]
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise MediaError(f"{path}: ffprobe timed out after {timeout_s}s") from e
    if res.returncode != 0:
        raise MediaError(f"{path}: ffprobe failed: {res.stderr.decode(errors='replace').strip()[:500]}")
    streams = json.loads(res.stdout or b"{}").get("streams", [])

    def start(kind: str) -> float | None:
        for st in streams:
            if st.get("codec_type") == kind and not st.get("disposition", {}).get("attached_pic"):
                try:
                    return float(st.get("start_time"))
                except (TypeError, ValueError):
                    return 0.0
        return None

    return start("video") or 0.0, start("audio")


def load_audio(
    path: str | os.PathLike,
    sr: int = AUDIO_SR,
    start_s: float | None = None,
    end_s: float | None = None,
    timeout_s: float = 300.0,
) -> np.ndarray:
    """Decode the first audio stream to mono float32 in [-1, 1] at ``sr`` Hz, on the video's
    timeline: sample 0 is the instant of the first video frame, ``start_s`` / ``end_s`` are
    seconds after it. Audio that starts later than the video (``ffmpeg -itsoffset``, an edit
    list, a stream ``start_time``) is preceded by silence; audio that starts earlier is cut, so
    a k-frame delay reads the same whether it is stored in the samples or in the container.
    For a file without video the timeline is the audio's own."""
    exe = require_ffmpeg()
    v0, a0 = stream_start_times(path, timeout_s=min(timeout_s, 60.0))
    a0 = v0 if a0 is None else a0
    start = max(0.0, float(start_s or 0.0))
    want_from = v0 + start  # container time of the first wanted sample
    # The timeline is done by ffmpeg's own filters on the container timestamps (-copyts):
    # aresample pads silence before a late audio stream and drops audio before ``first_pts``,
    # atrim cuts exactly at the first video frame (+ start_s). Seeking and trimming in numpy
    # instead misread a negative container offset by ~20 % (an -itsoffset of -8 frames read
    # as -9.6) because input seeking in a file whose streams start at different times lands
    # on packet boundaries, not on samples.
    # Seek (cheaply) to ~1 s before the wanted instant; decoding from there is exact.
    seek = max(0.0, want_from - min(v0, a0) - 1.0)
    first = max(0.0, want_from - 0.5) if seek > 0 else 0.0
    trim = f"atrim=start={want_from:.6f}"
    if end_s is not None:
        trim += f":end={v0 + max(start, float(end_s)):.6f}"
    cmd = [exe, "-nostdin", "-v", "error", "-copyts"]
    if seek > 0:
        cmd += ["-ss", f"{seek:.6f}"]
    cmd += ["-i", str(path), "-vn", "-ac", "1", "-ar", str(sr),
            "-af", f"aresample=async=1:first_pts={int(round(first * sr))},{trim}", "-f", "f32le", "-"]
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise MediaError(f"{path}: audio decode timed out") from e
    if res.returncode != 0:
        raise MediaError(f"{path}: cannot decode audio: {res.stderr.decode(errors='replace').strip()[:500]}")
    audio = np.frombuffer(res.stdout, dtype=np.float32)
    if end_s is not None:
        audio = audio[:int(round(max(0.0, end_s - start) * sr))]
    return audio.copy()


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
