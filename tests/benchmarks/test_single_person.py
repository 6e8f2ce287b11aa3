"""A user's single-person (HDTF-style) manifest drives validate and score like a packaged benchmark."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from anytalker.cli import main
from benchmarks.manifest import load_manifest
from tests.conftest import run_ffmpeg, shared_file

ITEM = "WDA_AlexandriaOcasioCortez_000"


def _hdtf_set(tmp_path: Path) -> tuple[Path, Path]:
    """Manifest (reference frame + driving audio taken from a real HDTF-named clip) and a
    submission holding that clip as the 'generated' video."""
    clip = shared_file(f"talking/sadtalker_{ITEM}.mp4")
    data = tmp_path / "my_hdtf" / "data"
    (data / "refs").mkdir(parents=True)
    (data / "audio").mkdir()
    run_ffmpeg("-i", str(clip), "-frames:v", "1", str(data / "refs" / f"{ITEM}.png"))
    run_ffmpeg("-i", str(clip), "-vn", "-ac", "1", "-ar", "16000", str(data / "audio" / f"{ITEM}.wav"))
    manifest = tmp_path / "my_hdtf" / "manifest.json"
    manifest.write_text(json.dumps({
        "format": "anytalker-single-person-manifest/1", "name": "my_hdtf", "version": "v1", "root": "data",
        "protocol": {"fps_min": 20, "fps_max": 30},
        "items": [{"item_id": ITEM, "reference": f"refs/{ITEM}.png", "audio": f"audio/{ITEM}.wav"}],
    }))
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.copyfile(clip, sub / f"{ITEM}.mp4")
    (sub / "submission.json").write_text(json.dumps({"benchmark": "my_hdtf", "version": "v1",
                                                    "model": "real-clip", "revision": "sadtalker-example"}))
    return manifest, sub


def test_single_person_manifest_validates_a_submission(tmp_path, ffmpeg, capsys):
    manifest, sub = _hdtf_set(tmp_path)
    m = load_manifest(manifest)
    assert m.items[0].audio_duration_s == pytest.approx(8.0, abs=0.1)  # probed from the wav (the audio stream is 8.0 s)
    assert m.items[0].persons[0].speaking_intervals == [[0.0, m.items[0].audio_duration_s]]
    assert main(["bench", "validate", str(sub), "--manifest", str(manifest)]) == 0
    assert "RESULT: VALID" in capsys.readouterr().out
    (sub / "submission.json").write_text(json.dumps({"benchmark": "interactive_eyes", "version": "v1",
                                                    "model": "x", "revision": "y"}))
    assert main(["bench", "validate", str(sub), "--manifest", str(manifest)]) == 1
    assert "benchmark is 'interactive_eyes' but this check is for 'my_hdtf'" in capsys.readouterr().out


@pytest.mark.slow
def test_single_person_score_uses_packaged_default_scoring(tmp_path, ffmpeg):
    manifest, sub = _hdtf_set(tmp_path)
    out = tmp_path / "results.json"
    assert main(["bench", "score", str(sub), "--manifest", str(manifest), "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert (doc["benchmark"], doc["version"], doc["items"]) == ("my_hdtf", "v1", [ITEM])
    assert set(doc["metrics"]) == {"sync_c", "sync_d", "identity"}
    for m in doc["metrics"].values():
        assert m["n_scored"] == 1 and math.isfinite(m["value"]), m
    assert doc["metrics"]["identity"]["value"] > 0.8  # the same real person throughout
