"""Shared fixtures: the real media in ../shared/data (skipped with a message when absent)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kernel.data import default_data_root

# Local curation runs in tests (and the CLI runs they start) stay in one process unless a test
# asks for worker processes: starting them costs seconds per run. The worker processes have
# their own tests (tests/pipelines/test_local_workers.py).
os.environ.setdefault("ANYTALKER_LOCAL_WORKERS", "1")

REPO = Path(__file__).resolve().parents[1]
# the one data-root resolver ($ANYTALKER_DATA, deprecated $ANYTALKER_SHARED, ../shared/data, fetched set)
SHARED = default_data_root()


def shared_file(rel: str) -> Path:
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"real test media {p} is absent: put the shared data set at {SHARED} "
                    "(or set ANYTALKER_DATA) to run this test")
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data directory {SHARED} is absent (set ANYTALKER_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        pytest.skip("ffmpeg is not installed (apt-get install -y ffmpeg)")
    return exe


def run_ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], stdin=subprocess.DEVNULL, check=True)
