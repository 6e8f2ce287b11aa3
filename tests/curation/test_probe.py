"""probe: each kind of bad input gets its own reason; real clips pass."""

from __future__ import annotations

import pytest

from curation.base import run_stage_batch
from curation.stages.probe import ProbeStage
from tests.badinputs import build_corpus
from tests.conftest import shared_file


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, ffmpeg):
    root = tmp_path_factory.mktemp("bad")
    return root, build_corpus(root)


def test_every_bad_input_gets_its_reason(corpus):
    root, expected = corpus
    rows = [{"source_path": name, "source_abs_path": str(root / name), "status": "ok"} for name in expected]
    out = run_stage_batch(ProbeStage(), rows)
    got = {r["source_path"]: (r.get("reason") or "") for r in out}
    assert got == expected


def test_real_clip_is_probed(ffmpeg):
    video = shared_file("talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4")
    (row,) = run_stage_batch(ProbeStage(), [{"source_path": "x", "source_abs_path": str(video), "status": "ok"}])
    assert row["status"] == "ok"
    assert (row["width"], row["height"], row["fps"], row["num_frames"]) == (512, 512, 25.0, 200)
    assert row["has_audio"] and row["audio_codec"] == "aac"
    assert row["source_sha256"] == "a85242c3fc4d50e2202cea393b9e7ee59019759b68e78e26a254d528c22615a7"
