"""A generated corpus of bad (and legitimately valid) inputs with the reason each must get.

Built with ffmpeg lavfi + byte surgery; nothing here is committed media.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def _ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def talking_like(path: Path, seconds: float = 3.0, size: str = "320x240", audio: bool = True,
                 rate: int = 25) -> Path:
    """A synthetic video (static SMPTE bars + tone): decodes fine, no face, no camera motion."""
    args = ["-f", "lavfi", "-i", f"smptebars=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-shortest"]
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
    weird.write_bytes(data)
    expected[weird.name] = ""
    return expected
