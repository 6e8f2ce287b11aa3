"""Decode once per clip: frames at a constant analysis rate and a bounded size, in a child process.

Every stage that looks at pixels (probe, shots, camera motion, faces, identity) takes its frames
from ``load_frames``. Frames come from ``ffmpeg -nostdin -i SRC -vf fps=R,scale=WxH -f rawvideo
-pix_fmt rgb24 pipe:``:

* **decoder crashes stay in the child**: a corrupt stream, ``std::bad_alloc`` or a segfault ends
  the ffmpeg process, not the worker; the caller gets ``MediaError`` (-> ``decode_error`` row);
* **memory does not follow source resolution**: frames are scaled inside ffmpeg, so a
  4096x4096 source costs the worker what its analysis size costs;
* **one timeline**: the ``fps`` filter resamples by real presentation timestamps, so a
  variable-frame-rate source is normalised to a constant rate before any analysis; frame
  ``i`` of the timeline is at ``i / rate`` seconds. For a constant-rate source at its own rate
  this is exactly the source's frame numbering;
* **one orientation**: ffmpeg applies the rotation of the display matrix, and the sizes used
  everywhere (``probe`` width/height, boxes) are the rotated ("display") ones.

A per-process cache (``load_frames``) keeps recent decodes so that consecutive stages on the same
clip in one process (local executor, fused Ray stages) decode it once; a request for a sub-span
or a smaller size of a cached decode is served from the cache. Frames never go into rows.
"""

from __future__ import annotations

import functools
import math
import mmap
import os
import subprocess
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from curation.media import MediaError, ProbeInfo, cpu_share, file_key, probe, require_ffmpeg

# The analysis size: at most ANALYSIS_MAX_SIDE px on the long side and ANALYSIS_MAX_PIXELS in
# all. Face detection runs at <= 640 px and the face mesh on a 192x192 crop, so a face keeps
# the detail those models use down to this size (latentsync's 1080x1920 frames -> 540x960:
# its 210 px face becomes 105 px, a 189 px mesh crop).
ANALYSIS_MAX_SIDE = 960
ANALYSIS_MAX_PIXELS = 960 * 540
# Shots and camera motion: PySceneDetect itself downscales to ~256 px wide; camera motion
# works at 320 px.
OVERVIEW_MAX_SIDE = 320

_DEFAULT_CACHE_MB = 512
# Address-space cap of one decoder child: a decoder bomb or a runaway allocation ends that
# child (-> decode_error), never the worker or the machine. ffmpeg needs ~100-300 MB for a
# 4K stream with its threads; 3 GB leaves room for 8K.
_DEFAULT_DECODER_MAX_MB = 3072


def cache_budget_bytes() -> int:
    """Bytes of decoded frames one process may hold (``ANYTALKER_FRAME_CACHE_MB``, default 512)."""
    try:
        mb = float(os.environ.get("ANYTALKER_FRAME_CACHE_MB", _DEFAULT_CACHE_MB))
    except ValueError:
        mb = _DEFAULT_CACHE_MB
    return int(max(0.0, mb) * 2**20)


def _ffmpeg() -> str:
    # ANYTALKER_FFMPEG: another ffmpeg build (or a wrapper, e.g. to inject decoder crashes in tests)
    return os.environ.get("ANYTALKER_FFMPEG") or require_ffmpeg()


def decoder_max_bytes() -> int | None:
    """Address-space limit of a decoder child (``ANYTALKER_DECODER_MAX_MB``; 0 = none)."""
    try:
        mb = float(os.environ.get("ANYTALKER_DECODER_MAX_MB", _DEFAULT_DECODER_MAX_MB))
    except ValueError:
        mb = _DEFAULT_DECODER_MAX_MB
    return int(mb * 2**20) if mb > 0 else None


# Below this size a frame buffer comes from numpy as usual: glibc serves allocations under its
# mmap threshold (which grows up to 32 MB on 64-bit) from memory it already holds, so after the
# first few they cost no page faults at all; above it, every allocation is a fresh mapping.
_OWN_MAPPING_MIN_BYTES = 32 << 20


def frame_buffer(shape: tuple[int, ...], populate: bool = True) -> np.ndarray:
    """A uint8 array of ``shape`` for decoded frames, on its own anonymous memory mapping.

    Why not ``np.empty``: numpy advises the kernel to back every array of 4 MB or more with
    transparent huge pages (``madvise(MADV_HUGEPAGE)``). A decode writes hundreds of MB once,
    front to back; on this host, faulting such a buffer in as huge pages cost 0.7-15 ms (mean
    ~6.6) of system time per 540x960 frame over 9 decodes, against 1.1-1.4 ms on ordinary
    pages (benchmarks/perf/STAGE_COSTS.md, round 6). The kernel counted no compaction stall,
    so the cost is the huge-page faults themselves (a virtual machine's memory backing is the
    likely cause); it varies from host to host, ordinary pages did not. The mapping gets no
    advice, so the kernel's default for unadvised memory applies. The pages are populated at once (``MAP_POPULATE``
    where the platform has it, unless ``populate`` is False: for a buffer sized by an estimate
    that may be far too large): one kernel call instead of a fault per 4 KB page, about half
    the CPU of faulting them in one by one (0.16 vs 0.33 s per 400 MB here). Same bytes;
    released when the last view of it goes."""
    nbytes = int(np.prod(shape, dtype=np.int64))
    if nbytes < _OWN_MAPPING_MIN_BYTES:
        return np.empty(shape, np.uint8)
    populate = getattr(mmap, "MAP_POPULATE", 0) if populate else 0
    if populate:
        m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    else:
        m = mmap.mmap(-1, nbytes)
    return np.frombuffer(m, np.uint8).reshape(shape)


def _limit_child(pid: int, max_bytes: int | None) -> None:
    # prlimit on the running child rather than a preexec_fn: a preexec_fn forces fork()
    # instead of vfork(), copying the page tables of a worker holding hundreds of MB of frames
    if max_bytes is None:
        return
    try:
        import resource

        resource.prlimit(pid, resource.RLIMIT_AS, (max_bytes, max_bytes))
    except (AttributeError, OSError, ValueError):  # not Linux, or the child already exited
        pass


def decode_threads() -> int:
    """ffmpeg decoder threads: ``ANYTALKER_DECODE_THREADS``, else this process's CPU share
    (``OMP_NUM_THREADS``, set by an executor that caps its workers), else the CPUs this
    process may run on (at most 4)."""
    try:
        v = int(os.environ.get("ANYTALKER_DECODE_THREADS", ""))
        if v > 0:
            return v
    except ValueError:
        pass
    share = cpu_share()
    if share:
        return share
    try:
        return max(1, min(4, len(os.sched_getaffinity(0))))
    except AttributeError:
        return max(1, min(4, os.cpu_count() or 1))


def bounded_size(width: int, height: int, max_side: int | None = ANALYSIS_MAX_SIDE,
                 max_pixels: int | None = ANALYSIS_MAX_PIXELS) -> tuple[int, int]:
    """(w, h) no larger than the source, the long side <= max_side and w*h <= max_pixels,
    aspect kept, both even (yuv decoders and most models prefer even sizes)."""
    s = 1.0
    if max_side:
        s = min(s, max_side / max(width, height))
    if max_pixels:
        s = min(s, math.sqrt(max_pixels / max(1, width * height)))
    w = max(2, int(round(width * s / 2)) * 2)
    h = max(2, int(round(height * s / 2)) * 2)
    if s >= 1.0:
        w, h = width - width % 2 or 2, height - height % 2 or 2
    return w, h


@dataclass
class Frames:
    """Decoded frames of [start_frame, start_frame + len(frames)) on the constant-rate timeline."""

    frames: np.ndarray  # (T, h, w, 3) uint8 RGB, upright
    rate: float  # timeline frames per second
    start_frame: int  # timeline index of frames[0]
    display_width: int  # upright size at source resolution
    display_height: int
    complete: bool = False  # decoded to the end of the stream: no frame exists past end_frame

    @property
    def scale(self) -> float:
        """Display (source) pixels per analysis pixel: multiply analysis coordinates by it."""
        return self.display_width / self.frames.shape[2] if len(self.frames) else 1.0

    @property
    def end_frame(self) -> int:
        return self.start_frame + len(self.frames)

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)

    def times(self) -> np.ndarray:
        return (self.start_frame + np.arange(len(self.frames))) / self.rate

    def at(self, indices) -> np.ndarray:
        """Frames at timeline indices (clipped to the decoded range). Evenly spaced increasing
        indices (a run, every n-th frame) give a read-only view of the decode, not a copy: a
        32-frame chunk at analysis size is ~50 MB to copy, and the face pass asks for one per
        chunk; the read-only flag keeps callers from writing into the shared frames."""
        idx = np.clip(np.asarray(indices, dtype=np.int64) - self.start_frame, 0, max(0, len(self.frames) - 1))
        if idx.ndim == 1 and len(idx) >= 2:
            step = int(idx[1] - idx[0])
            if step > 0 and bool((np.diff(idx) == step).all()):
                view = self.frames[int(idx[0]):int(idx[-1]) + 1:step].view()
                view.flags.writeable = False
                return view
        # any other pick is a copy: into a frame buffer (see ``frame_buffer``), not numpy's
        # huge-page-advised memory; camera motion's resampled pick paid ~2 ms per frame for it
        out = frame_buffer(idx.shape + self.frames.shape[1:])
        np.take(self.frames, idx, axis=0, out=out)
        return out


def display_size(info: ProbeInfo) -> tuple[int, int]:
    w, h = int(info.width or 0), int(info.height or 0)
    return (h, w) if (info.rotation or 0) % 180 == 90 else (w, h)


_F_SETPIPE_SZ = 1031  # Linux fcntl


@functools.lru_cache(maxsize=1)
def _pipe_max_bytes() -> int:
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20


def _widen_pipe(fd: int, frame_bytes: int) -> None:
    """Let the decoder's pipe hold a whole frame (up to the system's limit, 1 MB by default)
    instead of Linux's 64 KB: an analysis frame (1.5 MB) then crosses in 2 reads instead of
    about 40, each a wake-up of the reader and of ffmpeg. The bytes are the same; the
    decode's CPU (reader + ffmpeg) fell ~3 % (benchmarks/perf/STAGE_COSTS.md). Best effort:
    other systems keep their default."""
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, min(max(frame_bytes, 1 << 16), _pipe_max_bytes()))
    except (ImportError, OSError, ValueError):
        pass


class _DecoderChild:
    """One ffmpeg child writing raw frames to a pipe: address-space cap, stderr drained by a
    thread (a chatty decoder never blocks on a full pipe), a kill timer, and one way to end it
    that turns a timeout or a failure into a ``MediaError`` naming the file."""

    def __init__(self, cmd: list[str], frame_bytes: int, timeout_s: float, path) -> None:
        self.frame_bytes, self.timeout_s, self.path = frame_bytes, timeout_s, path
        self.err_chunks: list[bytes] = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0)
        _limit_child(self.proc.pid, decoder_max_bytes())
        _widen_pipe(self.proc.stdout.fileno(), frame_bytes)
        self._t_err = threading.Thread(target=lambda: self.err_chunks.append(self.proc.stderr.read()), daemon=True)
        self._t_err.start()
        self.timed_out = threading.Event()
        self._timer = threading.Timer(timeout_s, self._kill)
        self._timer.start()

    def _kill(self) -> None:
        self.timed_out.set()
        self.proc.kill()

    def read_frame(self, view: memoryview) -> bool:
        """Fill ``view`` with one frame; False at end of stream (a partial frame is dropped)."""
        got = 0
        while got < self.frame_bytes:
            k = self.proc.stdout.readinto(view[got:])
            if not k:
                return False
            got += k
        return True

    def finish(self, stopped_early: bool, check: bool = True) -> None:
        """End the child (killed when the reader ``stopped_early``); with ``check``, raise on a
        timeout, or on a failure that was not our own kill."""
        if stopped_early and self.proc.poll() is None:
            self.proc.kill()
        self.proc.stdout.close()
        rc = self.proc.wait()
        self._timer.cancel()
        self._t_err.join(5)
        if not check:
            return
        if self.timed_out.is_set():
            raise MediaError(f"{self.path}: video decode timed out after {self.timeout_s:.0f}s")
        if rc != 0 and not stopped_early:
            msg = b"".join(self.err_chunks).decode(errors="replace").strip()[-500:]
            how = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
            raise MediaError(f"{self.path}: video decoder failed ({how}): {msg or 'no message'}")


def _run_ffmpeg(cmd: list[str], frame_bytes: int, est_frames: int, max_frames: int | None,
                timeout_s: float, path) -> tuple[np.ndarray, int]:
    """Run ``cmd``; read rgb24 frames of ``frame_bytes`` from its stdout into one preallocated
    buffer (no stacking copy). Returns (buffer, n_frames)."""
    cap = max(1, est_frames)
    if max_frames is not None:
        cap = min(cap, max_frames)
    # the estimate comes from the container's duration: populate only what the frame cache
    # could hold anyway, so a file claiming hours never commits that memory up front
    buf = frame_buffer((cap, frame_bytes), populate=cap * frame_bytes <= cache_budget_bytes())
    n = 0
    child = _DecoderChild(cmd, frame_bytes, timeout_s, path)
    truncated = False
    try:
        while True:
            if n == len(buf):
                if max_frames is not None and n >= max_frames:
                    truncated = True
                    break
                grow = min(max(16, len(buf) // 2), (max_frames - n) if max_frames is not None else 1 << 30)
                bigger = frame_buffer((len(buf) + grow, frame_bytes), populate=False)
                bigger[:n] = buf[:n]
                buf = bigger
            if not child.read_frame(memoryview(buf[n])):
                break  # EOF (a partial last frame is dropped)
            n += 1
    except BaseException:
        child.finish(stopped_early=True, check=False)  # the reader's own error is the one to see
        raise
    child.finish(stopped_early=truncated)
    return buf, n


def decode_frames(path, *, rate: float | None = None, start_frame: int = 0, end_frame: int | None = None,
                  size: tuple[int, int] | None = None, max_side: int | None = ANALYSIS_MAX_SIDE,
                  max_pixels: int | None = ANALYSIS_MAX_PIXELS, info: ProbeInfo | None = None,
                  max_frames: int | None = None, timeout_s: float = 600.0) -> Frames:
    """Decode [start_frame, end_frame) of the constant-rate timeline (``rate``, default the
    source's average rate) at a bounded upright size, in an ffmpeg child process.

    ``size`` forces (w, h); else the display size bounded by ``max_side`` / ``max_pixels``.
    Raises ``MediaError`` if ffmpeg fails or produces no frame."""
    info = info or probe(path)
    if not info.has_video or not info.width or not info.height:
        raise MediaError(f"{path}: no video stream to decode")
    rate = float(rate or info.fps or 25.0)
    dw, dh = display_size(info)
    w, h = size or bounded_size(dw, dh, max_side, max_pixels)
    start_frame = max(0, int(start_frame))
    start_s = start_frame / rate
    cmd = [_ffmpeg(), "-nostdin", "-v", "error", "-threads", str(decode_threads())]
    if start_frame:
        cmd += ["-ss", f"{start_s:.6f}"]
    cmd += ["-i", str(path)]
    n_want = None
    if end_frame is not None:
        n_want = max(0, int(end_frame) - start_frame)
        cmd += ["-frames:v", str(n_want)]
        max_frames = n_want if max_frames is None else min(max_frames, n_want)
    # fps by real timestamps, anchored at the seek point (VFR -> constant rate); area
    # averaging so that small analysis frames do not alias
    vf = f"fps={rate!r}:start_time=0,scale={w}:{h}:flags=area,setsar=1"
    cmd += ["-map", "0:v:0", "-an", "-sn", "-dn", "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    if n_want is not None:
        est = n_want
    else:
        dur = max(0.0, (info.duration_s or 0.0) - start_s)
        est = int(math.ceil(dur * rate)) + 2 if dur else 64
    buf, n = _run_ffmpeg(cmd, w * h * 3, est, max_frames, timeout_s, path)
    if n == 0 and (n_want is None or n_want > 0):
        raise MediaError(f"{path}: no decodable video frames from frame {start_frame}")
    frames = buf[:n].reshape(n, h, w, 3)
    if n < len(buf) // 2:
        fitted = frame_buffer(frames.shape)
        fitted[...] = frames
        frames = fitted  # release an over-estimated buffer
    return Frames(frames=frames, rate=rate, start_frame=start_frame, display_width=dw, display_height=dh,
                  complete=n_want is None or n < n_want)


# --- per-process cache -----------------------------------------------------------------------
class FrameCache:
    """LRU of recent decodes, bounded in bytes. Keyed by (path, mtime, size-class, rate)."""

    def __init__(self, budget_bytes: int | None = None):
        self.budget = cache_budget_bytes() if budget_bytes is None else int(budget_bytes)
        self._items: OrderedDict[tuple, Frames] = OrderedDict()
        self._lock = threading.Lock()
        self.decodes = 0  # ffmpeg runs, for tests and the cost table
        self.hits = 0

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self._items.values())

    def find(self, key_prefix: tuple, start: int, end: int | None) -> Frames | None:
        """A cached decode covering [start, end) (end None: to the end of the stream)."""
        with self._lock:
            for key, fr in reversed(self._items.items()):
                if key[:len(key_prefix)] == key_prefix and fr.start_frame <= start and (
                        fr.complete or (end is not None and end <= fr.end_frame)):
                    self._items.move_to_end(key)
                    self.hits += 1
                    return fr
        return None

    def reserve(self, nbytes: int) -> None:
        """Evict least recently used decodes until ``nbytes`` more fit the budget (called
        before a decode, so that the worker never holds the old cache and the new decode)."""
        with self._lock:
            while self._items and sum(f.nbytes for f in self._items.values()) + nbytes > self.budget:
                self._items.popitem(last=False)

    def put(self, key: tuple, fr: Frames) -> None:
        if fr.nbytes > self.budget:
            return
        with self._lock:
            self._items[key] = fr
            self._items.move_to_end(key)
            while self._items and sum(f.nbytes for f in self._items.values()) > self.budget:
                self._items.popitem(last=False)


_CACHE: FrameCache | None = None


def frame_cache() -> FrameCache:
    global _CACHE
    if _CACHE is None:
        _CACHE = FrameCache()
    return _CACHE


@functools.lru_cache(maxsize=64)
def _probe_of(key: tuple) -> ProbeInfo:
    return probe(key[0])


def probe_cached(path) -> ProbeInfo:
    """``probe`` kept per process for the file's ``file_key``."""
    return _probe_of(file_key(path))


def _slice(fr: Frames, start: int, end: int) -> Frames:
    a, b = start - fr.start_frame, end - fr.start_frame
    a, b = max(0, a), max(0, min(b, len(fr.frames)))
    return Frames(frames=fr.frames[a:max(a, b)], rate=fr.rate, start_frame=fr.start_frame + a,
                  display_width=fr.display_width, display_height=fr.display_height,
                  complete=fr.complete and b >= len(fr.frames))


def resize_frames(frames: np.ndarray, w: int, h: int, interpolation: int) -> np.ndarray:
    """(T, H, W, C) frames resized to (T, h, w, C) with cv2, each straight into one frame buffer
    (``frame_buffer``: no per-frame copy, no huge-page-advised memory)."""
    import cv2

    out = frame_buffer((len(frames), h, w, frames.shape[3]))
    for f, o in zip(frames, out):
        cv2.resize(f, (w, h), dst=o, interpolation=interpolation)
    return out


def _resized(fr: Frames, w: int, h: int) -> Frames:
    import cv2

    # area averaging against aliasing where the shrink is 2x or more; below that bilinear is
    # as good and cv2's non-integer area path is ~5x slower
    shrink = fr.frames.shape[2] / max(1, w) if len(fr.frames) else 1.0
    interp = cv2.INTER_AREA if shrink >= 2.0 else cv2.INTER_LINEAR
    out = resize_frames(fr.frames, w, h, interp)
    return Frames(frames=out, rate=fr.rate, start_frame=fr.start_frame, display_width=fr.display_width,
                  display_height=fr.display_height, complete=fr.complete)


def timeline(path, rate: float | None = None) -> tuple[float, int]:
    """(rate, number of frames) of ``path``'s constant-rate timeline, from probe."""
    info = probe_cached(path)
    rate = float(rate or info.fps or 25.0)
    n = int(round((info.duration_s or 0.0) * rate)) if info.duration_s else int(info.num_frames or 0)
    return rate, n


def load_frames(path, start_frame: int = 0, end_frame: int | None = None, *, rate: float | None = None,
                overview: bool = False, cache: FrameCache | None = None) -> Frames:
    """Frames of [start_frame, end_frame) (None: to the end of the stream) on ``path``'s
    timeline at ``rate`` (default: the source's average rate), at the analysis size (or the
    smaller overview size for shots and camera motion). Served from the per-process cache when
    a cached decode covers the span; an overview request is also served by shrinking a cached
    analysis decode. The whole source is decoded (and cached) when it fits the cache budget,
    so later stages asking for sub-spans do not decode again."""
    cache = cache or frame_cache()
    info = probe_cached(path)
    rate = float(rate or info.fps or 25.0)
    fkey = file_key(path)
    dw, dh = display_size(info)
    ow, oh = bounded_size(dw, dh, OVERVIEW_MAX_SIDE, None)
    start = max(0, int(start_frame))
    end = None if end_frame is None else max(start, int(end_frame))
    for kind in (["overview", "analysis"] if overview else ["analysis"]):
        fr = cache.find(fkey + (kind, rate), start, end)
        if fr is not None:
            if overview and kind == "analysis":
                # shrink the whole cached decode once; shots and camera motion both read it
                cache.reserve(len(fr.frames) * ow * oh * 3)
                fr = _resized(fr, ow, oh)
                cache.put(fkey + ("overview", rate), fr)
            return _slice(fr, start, fr.end_frame if end is None else end)
    size = (ow, oh) if overview else bounded_size(dw, dh)
    whole = (timeline(path, rate)[1] + 2) * size[0] * size[1] * 3 <= cache.budget
    a, b = (0, None) if whole else (start, end)
    n_frames = (timeline(path, rate)[1] + 2 - a) if b is None else (b - a)
    cache.reserve(n_frames * size[0] * size[1] * 3)
    fr = decode_frames(path, rate=rate, start_frame=a, end_frame=b, size=size, info=info)
    cache.decodes += 1
    cache.put(fkey + ("overview" if overview else "analysis", rate), fr)
    # (the timeline estimate from probe can exceed the decodable frames by a few: clamped)
    return _slice(fr, start, fr.end_frame if end is None else end)


def decodable_frames(path, rate: float | None = None) -> int:
    """Decode the whole video in a child process and return its number of frames on the
    timeline. The decode is kept in the cache (analysis size, else overview size) when it
    fits, so the stages after ``probe`` do not decode again; otherwise only counted at a tiny
    size. Raises ``MediaError`` when nothing decodes."""
    info = probe_cached(path)
    rate = float(rate or info.fps or 25.0)
    cache = frame_cache()
    dw, dh = display_size(info)
    n_est = timeline(path, rate)[1] + 2
    for overview, size in ((False, bounded_size(dw, dh)), (True, bounded_size(dw, dh, OVERVIEW_MAX_SIDE, None))):
        if n_est * size[0] * size[1] * 3 <= cache.budget:
            fr = load_frames(path, 0, None, rate=rate, overview=overview, cache=cache)
            return fr.end_frame
    fr = decode_frames(path, rate=rate, size=(16, 16), info=info)
    return fr.end_frame


def iter_frames(path, *, rate: float | None = None, size: tuple[int, int] | None = None, overview: bool = False,
                chunk_frames: int = 256, timeout_s: float = 3600.0):
    """Frames of the whole constant-rate timeline in chunks of ``chunk_frames`` (T, h, w, 3)
    from one ffmpeg child (same filters as ``decode_frames``), for sources too long to hold:
    memory is one chunk, whatever the source's length. Served from the cache when a decode of
    the whole source is already there. Raises ``MediaError`` when ffmpeg fails or gives no frame."""
    info = probe_cached(path)
    rate = float(rate or info.fps or 25.0)
    dw, dh = display_size(info)
    w, h = size or (bounded_size(dw, dh, OVERVIEW_MAX_SIDE, None) if overview else bounded_size(dw, dh))
    cached = frame_cache().find(file_key(path) + ("overview" if overview else "analysis", rate), 0, None)
    if cached is not None and cached.frames.shape[1:3] == (h, w):
        for a in range(0, len(cached.frames), chunk_frames):
            yield cached.frames[a:a + chunk_frames]
        return
    if not info.has_video or not w or not h:
        raise MediaError(f"{path}: no video stream to decode")
    vf = f"fps={rate!r}:start_time=0,scale={w}:{h}:flags=area,setsar=1"
    cmd = [_ffmpeg(), "-nostdin", "-v", "error", "-threads", str(decode_threads()), "-i", str(path),
           "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    frame_bytes = w * h * 3
    child = _DecoderChild(cmd, frame_bytes, timeout_s, path)
    total, eof = 0, False
    try:
        while not eof:
            buf = frame_buffer((chunk_frames, frame_bytes), populate=False)
            n = 0
            while n < chunk_frames:
                if not child.read_frame(memoryview(buf[n])):
                    eof = True
                    break
                n += 1
            if n:
                total += n
                yield buf[:n].reshape(n, h, w, 3)
    except BaseException:  # GeneratorExit included: the consumer stopped early
        child.finish(stopped_early=True, check=False)
        raise
    child.finish(stopped_early=False)
    if total == 0:
        raise MediaError(f"{path}: no decodable video frames")
