from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.badinputs import build_corpus, talking_like
from tests.conftest import SHARED


@pytest.fixture(scope="session")
def small_inputs(tmp_path_factory, ffmpeg) -> Path:
    """Three synthetic clips, one real talking clip (if shared data is present) and four bad
    inputs: enough for several partitions, fast to curate."""
    root = tmp_path_factory.mktemp("inputs")
    talking_like(root / "synthetic_a.mp4", seconds=3.0)
    talking_like(root / "synthetic_b.mp4", seconds=5.0, size="480x360")
    talking_like(root / "synthetic_c.mp4", seconds=2.5)
    real = SHARED / "talking" / "sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"
    if real.exists():
        os.symlink(real, root / "real_talking.mp4")
    corpus = build_corpus(root / "bad")
    # keep only four kinds to stay fast: zero byte, text, truncated, no audio
    keep = {"zero_byte.mp4", "text_named.mp4", "truncated_50.mp4", "no_audio.mp4"}
    for name in corpus:
        p = root / "bad" / name
        if name not in keep:
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir():
                p.rmdir()
    return root
