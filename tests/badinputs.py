"""A generated corpus of bad (and legitimately valid) inputs with the reason each must get.

Built with ffmpeg lavfi + byte surgery; nothing here is committed media.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def _ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], stdin=subprocess.DEVNULL, check=True)


def talking_like(path: Path, seconds: float = 3.0, size: str = "320x240", audio: bool = True,
                 rate: int = 25) -> Path:
    """A synthetic video (static SMPTE bars + tone): decodes fine, no face, no camera motion.

    The tone's pitch comes from the file name, so two files never have identical bytes (the
    runner would reject the second as a ``duplicate``)."""
    import zlib

    args = ["-f", "lavfi", "-i", f"smptebars=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        hz = 220 + zlib.crc32(os.fsencode(path.name)) % 600
        args += ["-f", "lavfi", "-i", f"sine=frequency={hz}:duration={seconds}", "-c:a", "aac", "-shortest"]
    _ff(*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    return path


def build_corpus(root: Path) -> dict[str, str]:
    """Write the corpus under ``root``; return {relative path: expected reason ('' = accepted by probe)}."""
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    good = talking_like(root / "good.mp4", seconds=4.0)
    expected["good.mp4"] = ""
    data = good.read_bytes()

    (root / "zero_byte.mp4").write_bytes(b"")
    expected["zero_byte.mp4"] = "empty_file"
    (root / "text_named.mp4").write_text("this is not a video\n" * 20)
    expected["text_named.mp4"] = "decode_error"
    for pct in (10, 50, 90):
        (root / f"truncated_{pct}.mp4").write_bytes(data[: len(data) * pct // 100])
        expected[f"truncated_{pct}.mp4"] = "decode_error"
    # corrupt the moov atom's payload (faststart-less mp4 keeps moov at the end)
    moov = data.find(b"moov")
    corrupt = bytearray(data)
    if moov > 0:
        for i in range(moov + 4, min(len(corrupt), moov + 4 + 400)):
            corrupt[i] = 0xFF
    (root / "corrupt_moov.mp4").write_bytes(bytes(corrupt))
    expected["corrupt_moov.mp4"] = "decode_error"
    talking_like(root / "no_audio.mp4", audio=False)
    expected["no_audio.mp4"] = "no_audio"
    _ff("-f", "lavfi", "-i", "sine=frequency=300:duration=3", "-c:a", "aac", str(root / "audio_only.mp4"))
    expected["audio_only.mp4"] = "no_video"
    talking_like(root / "one_frame.mp4", seconds=0.04)
    expected["one_frame.mp4"] = "too_short"
    talking_like(root / "tiny_1x1.mp4", size="2x2")
    expected["tiny_1x1.mp4"] = "too_small"
    (root / "dir_named.mp4").mkdir(exist_ok=True)
    expected["dir_named.mp4"] = "not_a_file"
    loop_a, loop_b = root / "loop_a.mp4", root / "loop_b.mp4"
    for p in (loop_a, loop_b):
        if p.is_symlink():
            p.unlink()
    os.symlink(loop_b.name, loop_a)
    os.symlink(loop_a.name, loop_b)
    expected["loop_a.mp4"] = "not_found"
    expected["loop_b.mp4"] = "not_found"
    broken = root / "broken_link.mp4"
    if broken.is_symlink():
        broken.unlink()
    os.symlink("does_not_exist.mp4", broken)
    expected["broken_link.mp4"] = "not_found"
    weird = root / "spaces and ünïcödé.mp4"
    talking_like(weird, seconds=4.0)
    expected[weird.name] = ""
    return expected


# --- the rest of the corpus (issue 7): valid-but-unusual video, audio kinds, face counts --------


def build_more_video_cases(root: Path, include_8k: bool = True) -> dict[str, str]:
    """Unusual but legitimate videos and file-system oddities; {name: reason under ``probe``}.

    Decisions: a variable-frame-rate file is accepted (decord decodes every frame; timing uses
    the average rate ffprobe reports); 4:3 and 9:16 are within ``max_aspect``; an 8K-sized
    frame is ``too_large`` (issue 11: probe's ``max_frame_pixels`` limit, 4096x2304, refuses
    frames whose decode could exhaust memory, before decoding any); a name
    with a newline is a valid POSIX name (only a folder input can carry it: list files are
    line-based); a chmod 000 file is ``unreadable`` except for root, who can read it anyway.
    """
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    # variable frame rate: every frame for 1 s, then every 3rd, original timestamps kept
    _ff("-f", "lavfi", "-i", "smptebars=size=320x240:rate=25:duration=4", "-f", "lavfi",
        "-i", "sine=frequency=440:duration=4", "-vf", r"select='lt(n\,25)+not(mod(n\,3))'",
        "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
        str(root / "variable_fps.mp4"))
    expected["variable_fps.mp4"] = ""
    talking_like(root / "aspect_4x3.mp4", seconds=3.0, size="640x480")
    expected["aspect_4x3.mp4"] = ""
    talking_like(root / "aspect_9x16.mp4", seconds=3.0, size="270x480")
    expected["aspect_9x16.mp4"] = ""
    if include_8k:
        build_8k_header(root)
        expected["header_8k.mp4"] = "too_large"
    talking_like(root / "new\nline.mp4", seconds=3.0)
    expected["new\nline.mp4"] = ""
    locked = talking_like(root / "no_permission.mp4", seconds=3.0)
    os.chmod(locked, 0)
    # root reads any file regardless of its mode bits
    expected["no_permission.mp4"] = "" if os.geteuid() == 0 else "unreadable"
    return expected


def build_8k_header(root: Path) -> Path:
    """7680x4320 frames of flat colour at 5 fps for 2.4 s: a ~120 kB file that must not blow
    up memory or time (probe refuses it as ``too_large`` from its header)."""
    path = root / "header_8k.mp4"
    _ff("-f", "lavfi", "-i", "color=c=0x406080:size=7680x4320:rate=5:duration=2.4", "-f", "lavfi",
        "-i", "sine=frequency=440:duration=2.4", "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path))
    return path


def build_audio_cases(root: Path) -> dict[str, str]:
    """Videos whose audio holds no speech; {name: reason under the ``speech`` stage}.

    All of them are valid videos with an audio stream, so ``probe`` and the video_only
    pipeline accept them; a pipeline with ``speech`` must reject each: silence and a tone with
    ``no_speech``, the zero-sample track with ``no_audio`` (the speech stage's own check: the
    stream exists but decodes to no samples, so there is no audio to look for speech in).
    """
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    # an audio stream with zero samples (Matroska keeps an empty track; mp4 muxers drop it)
    empty_wav = root / ".empty.wav"
    _ff("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "0", "-c:a", "pcm_s16le", str(empty_wav))
    _ff("-f", "lavfi", "-i", "smptebars=size=320x240:rate=25:duration=3", "-i", str(empty_wav),
        "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
        str(root / "zero_second_audio.mkv"))
    empty_wav.unlink()
    expected["zero_second_audio.mkv"] = "no_audio"
    _ff("-f", "lavfi", "-i", "smptebars=size=320x240:rate=25:duration=3", "-f", "lavfi",
        "-i", "anullsrc=r=44100:cl=stereo", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
        "-c:a", "aac", str(root / "silent_audio.mp4"))
    expected["silent_audio.mp4"] = "no_speech"
    talking_like(root / "tone_audio.mp4", seconds=3.0)  # a 440 Hz sine: sound, not speech
    expected["tone_audio.mp4"] = "no_speech"
    return expected


# Faces in the shared photos, (x1, y1, x2, y2) px as found by the mediapipe full-range detector
# (curation.faces.FaceDetector, mediapipe 0.10.21); each is cropped with margin into a tile.
FACE_CROPS = [
    ("images/face_recognition/obama.jpg", (356, 134, 641, 419)),
    ("images/face_recognition/biden.jpg", (422, 227, 756, 561)),
    ("images/anytalker/2p-0.png", (119, 132, 310, 323)),
    ("images/anytalker/2p-0.png", (593, 103, 800, 310)),
    ("images/anytalker/2p-1.png", (301, 178, 642, 518)),
]
NO_FACE_CROP = ("images/face_recognition/biden.jpg", (100, 1500, 900, 2100))  # suit and hands
SPEECH_WAV = "talking/syncnet_example_speech.wav"


def _load_rgb(path: Path):
    # PIL, not cv2.imread: once decord is imported, OpenCV's PNG decoder fails in that process
    # ("libpng error: bad parameters to zlib") unless cv2 was imported first
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _face_tile(image: Path, box: tuple[int, int, int, int], side: int = 180, margin: float = 1.5):
    import cv2

    img = _load_rgb(image)
    h, w = img.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * margin / 2
    x1, y1 = int(max(0, cx - half)), int(max(0, cy - half))
    x2, y2 = int(min(w, cx + half)), int(min(h, cy + half))
    return cv2.resize(img[y1:y2, x1:x2], (side, side), interpolation=cv2.INTER_AREA)


def face_grid(shared: Path, n_faces: int):
    """A 640x400 RGB frame with ``n_faces`` face tiles (0..5) on a plain background."""
    import cv2
    import numpy as np

    frame = np.full((400, 640, 3), (90, 80, 70), np.uint8)
    if n_faces == 0:
        rel, (x1, y1, x2, y2) = NO_FACE_CROP
        img = _load_rgb(shared / rel)
        frame[10:390, 20:620] = cv2.resize(img[y1:y2, x1:x2], (600, 380), interpolation=cv2.INTER_AREA)
        return frame
    if n_faces > len(FACE_CROPS):
        raise ValueError(f"at most {len(FACE_CROPS)} faces, asked for {n_faces}")
    slots = [(20, 10), (230, 10), (440, 10), (20, 210), (230, 210), (440, 210)]
    for (rel, box), (x, y) in zip(FACE_CROPS[:n_faces], slots):
        frame[y:y + 180, x:x + 180] = _face_tile(shared / rel, box)
    return frame


def build_face_count_cases(root: Path, shared: Path, seconds: float = 3.0) -> dict[str, str]:
    """Still-image videos with 0, 1, 3 and 5 real faces and real speech audio;
    {name: reason under ``faces`` with expected_persons=1} ('' = accepted by faces)."""
    import numpy as np

    from curation.media import write_video

    root.mkdir(parents=True, exist_ok=True)
    speech = root / ".speech.wav"
    _ff("-i", str(shared / SPEECH_WAV), "-t", f"{seconds}", str(speech))
    expected = {}
    for n, reason in ((0, "no_face"), (1, ""), (3, "too_many_faces"), (5, "too_many_faces")):
        frames = np.repeat(face_grid(shared, n)[None], int(round(seconds * 25)), axis=0)
        write_video(root / f"faces_{n}.mp4", frames, 25, audio=speech)
        expected[f"faces_{n}.mp4"] = reason
    speech.unlink()
    return expected


# --- malformed benchmark submissions (issue 11): each must be INVALID with a reason ------------

_SUB_META = b'{"benchmark": "interactive_eyes", "version": "v1", "model": "m", "revision": "r"}'


def _patch_sizes(data: bytearray, name: bytes, file_size: int | None = None, method: int | None = None) -> bytearray:
    """Rewrite a member's uncompressed size / compression method in its local header AND its
    central directory entry (a header that lies consistently, as an attacker writes it)."""
    import struct

    for sig, size_off, method_off, name_len_off, name_off in ((b"PK\x03\x04", 22, 8, 26, 30),
                                                               (b"PK\x01\x02", 24, 10, 28, 46)):
        pos = 0
        while (pos := data.find(sig, pos)) >= 0:
            n = struct.unpack_from("<H", data, pos + name_len_off)[0]
            if bytes(data[pos + name_off: pos + name_off + n]) == name:
                if file_size is not None:
                    struct.pack_into("<I", data, pos + size_off, file_size)
                if method is not None:
                    struct.pack_into("<H", data, pos + method_off, method)
            pos += 4
    return data


def build_bad_submissions(root: Path) -> dict[str, str]:
    """Zips that once crashed ``bench validate``; {file name: text the INVALID report must contain}."""
    import io
    import zipfile

    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}

    def write(name: str, members: list[tuple[str, bytes]], compression=zipfile.ZIP_DEFLATED) -> bytearray:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for n, d in members:
                zf.writestr(n, d)
        return bytearray(buf.getvalue())

    # 1. zip bomb whose headers claim 1000 bytes for 64 MB of zeros (ratio check sees 1000:65k)
    bomb = write("bomb", [("submission.json", _SUB_META), ("interact_11.mp4", b"\0" * (64 << 20))])
    (root / "bomb_lying_header.zip").write_bytes(_patch_sizes(bomb, b"interact_11.mp4", file_size=1000))
    out["bomb_lying_header.zip"] = "extraction failed"
    # 2. a member whose bytes were altered after zipping: CRC error when read
    crc = write("crc", [("submission.json", _SUB_META), ("interact_11.mp4", b"x" * 5000)], zipfile.ZIP_STORED)
    i = crc.find(b"x" * 100)
    crc[i] = ord("y")
    (root / "crc_error.zip").write_bytes(crc)
    out["crc_error.zip"] = "CRC"
    # 3./4. one name both a file and a folder, in both orders
    (root / "clash_file_then_folder.zip").write_bytes(
        write("c1", [("submission.json", _SUB_META), ("interact_11.mp4", b"v"), ("interact_11.mp4/x", b"v")]))
    out["clash_file_then_folder.zip"] = "both a file and a folder"
    (root / "clash_folder_then_file.zip").write_bytes(
        write("c2", [("submission.json", _SUB_META), ("a/b.mp4", b"v"), ("a", b"v")]))
    out["clash_folder_then_file.zip"] = "both a file and a folder"
    # 5. submission.json of 100,000 nested arrays
    (root / "deep_json.zip").write_bytes(write("d", [("submission.json", b"[" * 100000 + b"]" * 100000)]))
    out["deep_json.zip"] = "nested too deeply"
    # 6. a compression method zipfile cannot read (9 = deflate64)
    odd = write("m", [("submission.json", _SUB_META), ("interact_11.mp4", b"v" * 100)])
    (root / "unsupported_compression.zip").write_bytes(_patch_sizes(odd, b"interact_11.mp4", method=9))
    out["unsupported_compression.zip"] = "compression method 9 is not supported"
    # more, from an attacker's or a careless user's hand
    whole = write("t", [("submission.json", _SUB_META), ("interact_11.mp4", bytes(range(256)) * 64)],
                  zipfile.ZIP_STORED)
    (root / "truncated.zip").write_bytes(bytes(whole[: len(whole) // 2]))
    out["truncated.zip"] = "neither a folder nor a zip"
    (root / "huge_json.zip").write_bytes(write("h", [("submission.json", b" " * (2 << 20) + b"{}")], zipfile.ZIP_STORED))
    out["huge_json.zip"] = "byte limit"
    (root / "json_not_object.zip").write_bytes(write("j", [("submission.json", b"[1, 2, 3]")]))
    out["json_not_object.zip"] = "submission.json"
    (root / "long_name.zip").write_bytes(write("l", [("submission.json", _SUB_META), ("x" * 300 + ".mp4", b"v")]))
    out["long_name.zip"] = "INVALID"
    (root / "not_a_zip.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    out["not_a_zip.zip"] = "INVALID"
    return out


# --- issue 11: non-regular files, hostile names, oversized frames, things that must be counted ---


def build_issue11_cases(root: Path, outside: Path, include_huge: bool = True) -> tuple[dict[str, str], dict[str, int]]:
    """Curation inputs that once hung, vanished or could abort a job.

    Returns ({relative path: reason under ``probe`` ('' = accepted)}, {skip reason: count}) for a
    folder input. ``outside`` receives a file that a link in ``root`` points to.
    """
    import socket

    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    skipped: dict[str, int] = {}
    # not regular files: refused from stat alone (opening a FIFO blocks; a device never ends)
    os.mkfifo(root / "fifo.mp4")
    expected["fifo.mp4"] = "not_a_file"
    os.symlink("/dev/zero", root / "link_to_char_device.mp4")
    expected["link_to_char_device.mp4"] = "not_a_file"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(root / "socket.mp4"))
    sock.close()
    expected["socket.mp4"] = "not_a_file"
    # a folder named like a video: a row itself, and its contents are curated too
    (root / "folder_named.mov").mkdir()
    expected["folder_named.mov"] = "not_a_file"
    talking_like(root / "folder_named.mov" / "inside.mp4", seconds=3.0)
    expected["folder_named.mov/inside.mp4"] = ""
    (root / "empty_folder.mkv").mkdir()
    expected["empty_folder.mkv"] = "not_a_file"
    if include_huge:
        # 30 frames of 4096x4096: a small file whose full decode once took 4.3 GB
        _ff("-f", "lavfi", "-i", "color=c=0x808080:size=4096x4096:rate=10:duration=3", "-f", "lavfi",
            "-i", "sine=frequency=500:duration=3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
            "yuv420p", "-c:a", "aac", "-shortest", str(root / "huge_frames_4096.mp4"))
        expected["huge_frames_4096.mp4"] = "too_large"
    # junk a careless copy leaves behind: macOS resource forks named like the videos
    (root / "._appledouble.mp4").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 4092)
    expected["._appledouble.mp4"] = "decode_error"
    # hostile or awkward names that must reach ffprobe/decord as plain file names
    talking_like(root / "UPPER_CASE.MP4", seconds=3.0)
    expected["UPPER_CASE.MP4"] = ""
    talking_like(root / "-i.mp4", seconds=3.0)
    expected["-i.mp4"] = ""
    talking_like(root / "$(touch PWNED) `id`;.mp4", seconds=3.0)
    expected["$(touch PWNED) `id`;.mp4"] = ""
    long_name = "n" * 230 + ".mp4"
    talking_like(root / long_name, seconds=3.0)
    expected[long_name] = ""
    # a link to a video outside the input folder, and a hard link with the same bytes as another input
    talking_like(outside / "elsewhere.mp4", seconds=3.0)
    os.symlink(outside / "elsewhere.mp4", root / "link_outside.mp4")
    expected["link_outside.mp4"] = ""
    os.link(root / "UPPER_CASE.MP4", root / "zz_hard_link.mp4")
    expected["zz_hard_link.mp4"] = "duplicate"
    # a 4096x16 strip (too small beats bad aspect: no face fits in 16 px)
    talking_like(root / "strip.mp4", seconds=2.0, size="4096x16")
    expected["strip.mp4"] = "too_small"
    # a subtitle-only Matroska file: no video, no audio
    srt = outside / "sub.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:02,000\nhello\n")
    _ff("-i", str(srt), "-c:s", "srt", str(root / "subtitles_only.mkv"))
    expected["subtitles_only.mkv"] = "decode_error"
    # a Latin-1 file name (not UTF-8): stored with its byte escaped, and still curated
    from pipelines.schema import utf8_safe

    latin1 = os.fsdecode(b"caf\xe9_latin1.mp4")
    talking_like(root / latin1, seconds=3.0)
    expected[utf8_safe(latin1)] = ""
    # text that makes demuxers reach out: an HLS playlist to a network URL, an ffconcat list of a
    # local file; ffmpeg must refuse both (no connection, no file read through them)
    (root / "playlist_named.mp4").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n"
                                             "http://127.0.0.1:9/x.ts\n#EXT-X-ENDLIST\n")
    expected["playlist_named.mp4"] = "decode_error"
    (root / "concat_named.mp4").write_text(f"ffconcat version 1.0\nfile {outside / 'elsewhere.mp4'}\n")
    expected["concat_named.mp4"] = "decode_error"
    # an archive renamed to .mp4
    import zipfile

    with zipfile.ZipFile(root / "zip_named.mp4", "w") as zf:
        zf.writestr("clip.mp4", b"\0" * 1000)
    expected["zip_named.mp4"] = "decode_error"
    # counted skips: names without a video extension, and a symlinked folder (not followed)
    (root / "notes.txt").write_text("shot list\n")
    (root / ".DS_Store").write_bytes(b"\0" * 64)
    _ff("-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=1", str(root / "anim.gif"))
    skipped["not_a_video_name"] = 3
    os.symlink(outside, root / "linked_folder")
    skipped["symlinked_folder"] = 1
    return expected, skipped
