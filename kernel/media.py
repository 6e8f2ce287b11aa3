"""Generic media helpers every layer may use: ffmpeg lookup and file hashing.

Decoding (frames, audio, probing) stays in ``curation.media``; only what needs no media library
lives here, so the kernel imports nothing heavier than the standard library.
"""

from __future__ import annotations

import hashlib
import os
import shutil


class MediaError(RuntimeError):
    """A media file cannot be read; the message names the file."""


def require_ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MediaError("ffmpeg is not on PATH: install it (Debian: apt-get install -y ffmpeg)")
    return exe


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
