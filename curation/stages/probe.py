"""`probe`: is this input a usable talking video? Container, codecs, duration, fps, size, audio."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass

import pyarrow as pa

from curation.base import Filter, Reason, Resources, Row
from curation.decode import decodable_frames, probe_cached
from curation.fields import Field
from curation.media import MediaError


@dataclass
class ProbeParams:
    """Parameters of ``probe`` (see the stage docstring for the measurements behind them)."""

    min_duration_s: float = 1.0
    min_side_px: int = 128
    max_aspect: float = 4.0
    require_audio: bool = True
    # frames above this many pixels are rejected (too_large) before a decode could exhaust memory
    max_frame_pixels: int = 4096 * 2304


class ProbeStage(Filter):
    """Reads container metadata with ffprobe and decodes the whole video once in an ffmpeg
    child process (``curation.decode``): at the shared analysis size when it fits the
    per-process frame cache (later stages reuse it), else only to count frames.

    Decoding catches truncated files whose header still parses (a cut mp4 keeps a plausible
    duration in some muxers), and a decoder crash ends the child, not the job
    (``decode_error``). ``width``/``height`` are the upright (display) size: a phone clip
    stored 1920x1080 with a 90 degree rotation is 1080x1920 here and in every later stage;
    ``rotation`` keeps the stored angle. ``fps`` is the rate of the constant-rate timeline
    all frame numbers refer to (the average rate for variable-frame-rate sources, which are
    resampled by timestamp: ``variable_frame_rate``). Defaults: ``min_duration_s`` 1.0 (the shortest useful
    clip is one N(4 s, 0.5 s) speech group minus 6 sigma), ``min_side_px`` 128 (a face in a
    smaller frame is below the 64 px face-size floor of the faces stage), ``max_aspect`` 4.0,
    ``max_frame_pixels`` 4096x2304 (9.4 MP: every 4K format, UHD 3840x2160 and DCI 4096x2160,
    passes; a larger frame is ``too_large`` before any decode, because one decoded frame costs
    3 bytes per pixel per buffered frame and a 4096x4096 x 30-frame file took 4.3 GB).

    Anything that is not a regular file (directory, FIFO, device, socket, or a link to one) is
    ``not_a_file`` from ``stat`` alone: it is never opened, so a FIFO cannot block the stage.
    """

    name = "probe"
    version = "2"
    requires = ("source_path", "source_abs_path")
    produces = (
        "source_sha256", "container", "video_codec", "audio_codec", "has_audio", "audio_sample_rate",
        "audio_channels", "duration_s", "fps", "width", "height", "num_frames", "rotation",
    )
    fields = {
        "source_sha256": Field(pa.string(), None, "sha256 of the source bytes"),
        "source_bytes": Field(pa.int64(), "bytes", "source file size"),
        "container": Field(pa.string(), None, "ffprobe format name"),
        "video_codec": Field(pa.string()), "audio_codec": Field(pa.string()),
        "has_audio": Field(pa.bool_()),
        "audio_sample_rate": Field(pa.int32(), "Hz"), "audio_channels": Field(pa.int32()),
        "duration_s": Field(pa.float64(), "s", "decodable duration"),
        "fps": Field(pa.float64(), "1/s", "source frame rate"),
        "width": Field(pa.int32(), "px"), "height": Field(pa.int32(), "px"),
        "num_frames": Field(pa.int64(), "frame", "decodable frames"),
        "rotation": Field(pa.int32(), "degree", "stored rotation; width/height are the upright size"),
        "variable_frame_rate": Field(pa.bool_(), None, "resampled by timestamp to fps"),
    }
    resources = Resources(cpus=1)
    params = ProbeParams

    def measure(self, row: Row) -> Row:
        path = row["source_abs_path"]
        # Explicit checks first so each kind of bad input gets its own reason code.
        try:
            st = os.stat(path)
        except OSError:
            return {"_probe_error": (Reason.NOT_FOUND, f"{path} does not exist or is a broken/looping link")}
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO, device or socket"
            return {"_probe_error": (Reason.NOT_A_FILE, f"{path} is {kind}, not a regular file")}
        if not os.access(path, os.R_OK):
            return {"_probe_error": (Reason.UNREADABLE, f"{path} is not readable (permissions)")}
        try:
            if row.get("source_sha256"):  # the runner hashed it (for dedupe) with _size_and_sha256
                size, sha = os.stat(path).st_size, row["source_sha256"]
            else:
                size, sha = _size_and_sha256(path)
        except NotRegularFile as e:  # swapped for a FIFO/device after the stat above
            return {"_probe_error": (Reason.NOT_A_FILE, str(e))}
        except OSError as e:
            return {"_probe_error": (Reason.UNREADABLE, f"{path}: {e}")}
        if size == 0:
            return {"source_sha256": sha, "_probe_error": (Reason.EMPTY_FILE, f"{path} is 0 bytes")}
        out: Row = {"source_sha256": sha, "source_bytes": size}
        try:
            # the decode below and later stages read the same ffprobe answer (one run per file)
            info = probe_cached(path)
        except MediaError as e:
            return {**out, "_probe_error": (Reason.DECODE_ERROR, str(e))}
        out.update(
            container=info.container, video_codec=info.video_codec, audio_codec=info.audio_codec,
            has_audio=info.has_audio, audio_sample_rate=info.audio_sample_rate,
            audio_channels=info.audio_channels, duration_s=info.duration_s, fps=info.fps,
            width=info.display_width, height=info.display_height, num_frames=info.num_frames,
            rotation=info.rotation, variable_frame_rate=info.variable_frame_rate,
        )
        if not info.has_video and not info.has_audio:
            return {**out, "_probe_error": (Reason.DECODE_ERROR, f"{path}: no decodable stream (corrupt container?)")}
        if not info.has_video:
            return {**out, "_probe_error": (Reason.NO_VIDEO, f"{path} has no video stream")}
        if min(info.width or 0, info.height or 0) < self.min_side_px:
            return out  # too small: rejected in keep() without paying for a decode
        if (info.width or 0) * (info.height or 0) > self.max_frame_pixels:
            return {**out, "_probe_error": (Reason.TOO_LARGE, f"{info.width}x{info.height} frames "
                                            f"({info.width * info.height / 1e6:.1f} MP) exceed probe.max_frame_pixels "
                                            f"{self.max_frame_pixels / 1e6:.1f} MP; downscale it or raise the limit")}
        try:
            out["fps"] = info.fps or 25.0
            n = decodable_frames(path, out["fps"])
            out["num_frames"] = n
            # decoded length is the truth for truncated files
            out["duration_s"] = min(info.duration_s or n / out["fps"], n / out["fps"])
        except MediaError as e:
            return {**out, "_probe_error": (Reason.DECODE_ERROR, str(e))}
        return out

    def keep(self, row: Row):
        err = row.pop("_probe_error", None)
        if err:
            return False, err[0], err[1]
        if self.require_audio and not row.get("has_audio"):
            return False, Reason.NO_AUDIO, f"{row['source_path']} has no audio stream"
        dur = row.get("duration_s") or 0.0
        if dur < self.min_duration_s:
            return False, Reason.TOO_SHORT, f"duration {dur:.2f}s < {self.min_duration_s}s"
        w, h = row.get("width") or 0, row.get("height") or 0
        if min(w, h) < self.min_side_px:
            return False, Reason.TOO_SMALL, f"{w}x{h} smaller than {self.min_side_px}px"
        if max(w, h) / max(1, min(w, h)) > self.max_aspect:
            return False, Reason.BAD_ASPECT, f"aspect {w}x{h} beyond {self.max_aspect}:1"
        return True, None, ""


class NotRegularFile(OSError):
    pass


def _size_and_sha256(path: str, chunk: int = 1 << 20) -> tuple[int, str]:
    """Size and sha256 read through one descriptor opened without blocking and checked to be a
    regular file, so a path swapped for a FIFO after ``stat`` cannot hang the read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"{path} is not a regular file")
        h = hashlib.sha256()
        while b := f.read(chunk):
            h.update(b)
        return st.st_size, h.hexdigest()
