"""The shared decode: constant-rate timeline by real timestamps, upright frames, bounded size,
decoder failures confined to their item, one decode per clip per process."""

from __future__ import annotations

import json
import re
import os
import resource
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from curation import decode
from curation.base import run_stage_batch
from curation.media import MediaError, VideoReader, probe
from curation.stages.faces import FacesStage
from curation.stages.probe import ProbeStage
from tests.conftest import REPO, run_ffmpeg, shared_file

SADTALKER = "talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"


@pytest.fixture(autouse=True)
def _fresh_cache():
    decode.frame_cache().clear()
    yield
    decode.frame_cache().clear()


def test_bounded_size_keeps_aspect_and_never_upscales():
    assert decode.bounded_size(458, 458) == (458, 458)
    assert decode.bounded_size(1080, 1920) == (540, 960)
    w, h = decode.bounded_size(4096, 4096)
    assert w == h and w * h <= decode.ANALYSIS_MAX_PIXELS and w % 2 == 0
    assert decode.bounded_size(640, 360, 320, None) == (320, 180)


def test_constant_rate_source_decodes_to_its_own_frames():
    path = shared_file(SADTALKER)
    fr = decode.decode_frames(path)
    ref = VideoReader(path).get(range(0, 200, 40))
    assert len(fr.frames) == 200 and fr.rate == 25.0 and fr.complete
    # same frames as decord's (codec rounding only): frame numbering is the source's
    diff = np.abs(fr.frames[::40].astype(int) - ref.astype(int)).mean()
    assert diff < 3.0, diff
    sub = decode.decode_frames(path, start_frame=100, end_frame=110)
    assert np.abs(sub.frames.astype(int) - fr.frames[100:110].astype(int)).mean() < 1.0


def test_cache_decodes_a_clip_once_for_every_stage_and_sub_span():
    path = shared_file(SADTALKER)
    cache = decode.frame_cache()
    cache.clear()  # earlier tests in this process may hold (or have counted) this clip
    before = cache.decodes
    whole = decode.load_frames(path, rate=25.0)
    part = decode.load_frames(path, 50, 120, rate=25.0)
    small = decode.load_frames(path, 0, 200, rate=25.0, overview=True)
    assert cache.decodes - before == 1
    assert part.frames.base is not None and np.array_equal(part.frames, whole.frames[50:120])
    assert small.frames.shape[1:3] == (320, 320) and len(small.frames) == 200


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory, ffmpeg):
    """Frame N of a 25 fps ramp has luma 4N; every other frame of the first second is
    dropped and the survivors keep their timestamps (variable frame rate)."""
    out = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "nullsrc=s=128x96:r=25:d=2.4,geq=lum='min(4*N,250)':cb=128:cr=128",
               "-vf", "select='gte(t,1)+not(mod(n,2))'", "-fps_mode", "vfr", "-c:v", "libx264", "-qp", "0",
               "-pix_fmt", "yuv420p", str(out))
    return out


def test_variable_frame_rate_is_timed_by_timestamps(vfr_clip):
    info = probe(vfr_clip)
    assert info.variable_frame_rate, info
    fr = decode.decode_frames(vfr_clip, rate=25.0)
    luma = fr.frames[..., 0].reshape(len(fr.frames), -1).mean(1)
    k = np.arange(len(luma))

    def ramp(n):  # limited-range luma 4n -> full-range RGB grey
        return np.clip((np.minimum(4 * n, 250) - 16) * 255 / 219, 0, 255)

    expected = ramp(k)
    # at 25 fps on real timestamps, frame k shows the content of time k/25 (a dropped frame
    # repeats its predecessor: at most one ramp step, 4.7 grey levels, behind; codec noise ~1)
    assert len(luma) >= 59 and np.all(np.abs(luma - expected) <= 7.0), np.c_[k, luma, expected][:30]
    # reading by the average rate (the old way) drifts by several frames in the first second
    vr = VideoReader(vfr_clip)
    avg_idx = np.round(np.arange(len(vr)) / info.fps * 25.0).astype(int)
    naive = vr.get(range(len(vr)))[..., 0].reshape(len(vr), -1).mean(1)
    assert np.max(np.abs(naive - ramp(avg_idx))) > 12


@pytest.fixture(scope="module")
def rotated_clips(tmp_path_factory, ffmpeg):
    """The first 2 s of sadtalker stored sideways: (a) with rotation metadata saying so, as a
    phone records it; (b) without metadata, so it plays sideways."""
    src = shared_file(SADTALKER)
    d = tmp_path_factory.mktemp("rot")
    sideways = d / "sideways.mp4"
    run_ffmpeg("-i", str(src), "-t", "2", "-vf", "transpose=1,scale=384:512", "-c:v", "libx264",
               "-preset", "ultrafast", "-c:a", "aac", str(sideways))
    tagged = d / "tagged.mp4"
    run_ffmpeg("-i", str(sideways), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(tagged))
    return tagged, sideways


def test_rotation_is_applied_everywhere(rotated_clips):
    tagged, _ = rotated_clips
    info = probe(tagged)
    assert info.rotation == 90 and (info.width, info.height) == (384, 512)
    row = run_stage_batch(ProbeStage(), [{"source_abs_path": str(tagged), "source_path": "t", "status": "ok"}])[0]
    assert row["status"] == "ok" and (row["width"], row["height"]) == (512, 384) and row["rotation"] == 90
    fr = decode.load_frames(tagged, rate=row["fps"])
    assert fr.frames.shape[1:3] == (384, 512)  # upright: (h, w)
    faces = run_stage_batch(FacesStage(), [{**row, "start_frame": 0, "end_frame": row["num_frames"]}])[0]
    assert faces["status"] == "ok", faces.get("error_detail")
    boxes = np.array([b for b in faces["persons"][0]["boxes"] if b is not None])
    assert boxes[:, 2].max() <= 512 + 1 and boxes[:, 3].max() <= 384 + 1


def test_sideways_clip_without_metadata_names_the_rotation(rotated_clips):
    _, sideways = rotated_clips
    row = run_stage_batch(ProbeStage(), [{"source_abs_path": str(sideways), "source_path": "s", "status": "ok"}])[0]
    out = run_stage_batch(FacesStage(), [{**row, "start_frame": 0, "end_frame": row["num_frames"]}])[0]
    assert out["reason"] == "no_face"
    assert re.search("turned (90|270) degrees", out["error_detail"]) and "rotation metadata" in out["error_detail"]


def test_decoder_failure_is_a_media_error_not_a_crash(tmp_path, monkeypatch):
    # a decoder that cannot get memory (here: a 16 MB address-space cap on the child) dies
    # alone; the caller gets MediaError -> decode_error
    path = shared_file(SADTALKER)
    monkeypatch.setenv("ANYTALKER_DECODER_MAX_MB", "16")
    with pytest.raises(MediaError, match="video decoder failed"):
        decode.decode_frames(path)
    row = run_stage_batch(ProbeStage(), [{"source_abs_path": str(path), "source_path": "s", "status": "ok"}])[0]
    assert row["status"] == "filtered" and row["reason"] == "decode_error"


def test_garbage_after_a_valid_header_is_a_decode_error(tmp_path):
    src = shared_file(SADTALKER).read_bytes()
    bad = tmp_path / "bad.mp4"
    # keep the header (moov at the front or back parses), scramble the media payload
    rng = np.random.default_rng(0)
    data = bytearray(src)
    mid = slice(len(data) // 10, len(data) - len(data) // 10)
    data[mid] = rng.integers(0, 256, mid.stop - mid.start, dtype=np.uint8).tobytes()
    bad.write_bytes(bytes(data))
    row = run_stage_batch(ProbeStage(), [{"source_abs_path": str(bad), "source_path": "b", "status": "ok"}])[0]
    # either no frame decodes (decode_error) or the damaged part is dropped; never an exception
    assert row["reason"] in (None, "decode_error", "too_short"), row
    assert row.get("reason") != "exception"


def _crashing_ffmpeg(tmp_path) -> str:
    """An ffmpeg wrapper that dies of SIGSEGV when decoding a file whose name contains
    "crashme" (a decoder crash, as a corrupt stream can cause) and is ffmpeg otherwise."""
    wrapper = tmp_path / "ffmpeg-crashing"
    wrapper.write_text('#!/bin/sh\ncase "$*" in *crashme*) kill -SEGV $$;; esac\nexec ffmpeg "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_decoder_crash_is_confined_to_its_item(tmp_path, monkeypatch):
    good = shared_file(SADTALKER)
    crash = tmp_path / "crashme.mp4"
    crash.write_bytes(good.read_bytes())
    monkeypatch.setenv("ANYTALKER_FFMPEG", _crashing_ffmpeg(tmp_path))
    rows = run_stage_batch(ProbeStage(), [
        {"source_abs_path": str(p), "source_path": p.name, "status": "ok"} for p in (crash, good)])
    by = {r["source_path"]: r for r in rows}
    assert by["crashme.mp4"]["reason"] == "decode_error"
    assert "signal 11" in by["crashme.mp4"]["error_detail"]
    assert by[good.name]["status"] == "ok" and by[good.name]["num_frames"] == 200


@pytest.mark.slow
def test_4096_source_curates_under_1_5_gb_and_a_decoder_crash_stays_in_its_item(tmp_path, ffmpeg):
    """30 frames of 4096x4096 (the issue's 4.3 GB file), a good clip and a copy of it whose
    decoder crashes, through the full single-person pipeline in a child process: peak RSS of
    the worker < 1.5 GB; the crash gives one decode_error row and the good clip is accepted."""
    big = tmp_path / "big4096.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=s=4096x4096:r=25:d=1.2", "-f", "lavfi", "-i",
               "sine=f=220:d=1.2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
               "-shortest", str(big))
    good = shared_file(SADTALKER)
    crash = tmp_path / "crashme.mp4"
    crash.write_bytes(good.read_bytes() + b"\0")  # distinct bytes: not deduplicated
    listing = tmp_path / "in.txt"
    listing.write_text(f"{big}\n{good}\n{crash}\n")
    script = textwrap.dedent(f"""
        import json, resource, sys
        from pipelines.runner import run_curation
        from pipelines.shards import read_rows
        # the probe's too_large limit (9.4 MP) would refuse the 16.8 MP frames before any decode:
        # raised here so that the bounded decode itself is what is measured
        run_curation("single_person", {str(listing)!r}, sys.argv[1], executor="local", progress=False,
                     overrides={{"probe": {{"max_frame_pixels": 4096 * 4096}}}})
        rows = read_rows(sys.argv[1]) + read_rows(sys.argv[1], kind="rejects")
        print(json.dumps({{"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                           "child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                           "rows": [[r["source_path"], r["status"], r["reason"]] for r in rows]}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANYTALKER_FFMPEG": _crashing_ffmpeg(tmp_path)}
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], capture_output=True, text=True,
                         env=env, stdin=subprocess.DEVNULL, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"peak RSS of the curation worker: {out['rss_mb']:.0f} MB")
    assert out["rss_mb"] < 1536, out
    rows = out["rows"]
    assert [r[1:] for r in rows if r[0].endswith("crashme.mp4")] == [["filtered", "decode_error"]], rows
    assert all(r[2] not in ("decode_error", "too_large") for r in rows if r[0].endswith("big4096.mp4")), rows
    assert any(r[0].endswith(good.name) and r[1] == "ok" for r in rows), rows


def _vm_flags_of(address: int) -> list[str] | None:
    """VmFlags of the mapping of this process that holds ``address`` (Linux /proc/self/smaps)."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and all(c in "0123456789abcdef-" for c in head):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and line.startswith("VmFlags:"):
                return line.split()[1:]
    return None


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc/self/smaps")
def test_decoded_frames_are_not_advised_for_huge_pages(tmp_path):
    # numpy advises huge pages (MADV_HUGEPAGE, VmFlags "hg") for arrays >= 4 MB; faulting in
    # such write-once decode buffers cost 0.7-15 ms (mean ~6.6) of system time per 540x960 frame
    # here against ~1.25 on ordinary pages (STAGE_COSTS round 6)
    clip = tmp_path / "big.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc=s=640x480:r=25:d=2.4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
               str(clip))
    fr = decode.decode_frames(clip)
    assert fr.frames.nbytes >= decode._OWN_MAPPING_MIN_BYTES and fr.frames.flags.writeable
    # (numpy advises from the first whole page on: look in the middle of the buffer)
    flags = _vm_flags_of(fr.frames.ctypes.data + fr.frames.nbytes // 2)
    assert flags is not None and "hg" not in flags, flags
    # the overview shrink's buffer too, and it holds the same pixels cv2 gives frame by frame
    import cv2

    small = decode._resized(fr, 560, 420)
    assert "hg" not in _vm_flags_of(small.frames.ctypes.data + small.frames.nbytes // 2)
    ref = np.stack([cv2.resize(f, (560, 420), interpolation=cv2.INTER_LINEAR) for f in fr.frames])
    assert np.array_equal(small.frames, ref)
    # an uneven pick (camera motion's resampling) is a copy into a frame buffer, same pixels
    pick = [i for i in range(60) if i % 3]
    picked = fr.at(pick)
    assert np.array_equal(picked, fr.frames[pick]) and picked.nbytes >= decode._OWN_MAPPING_MIN_BYTES
    assert "hg" not in _vm_flags_of(picked.ctypes.data + picked.nbytes // 2)
    # small buffers stay ordinary numpy arrays
    assert decode.frame_buffer((2, 16)).base is None
