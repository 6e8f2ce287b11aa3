"""InteractiveEyes v1 manifest (built from shared/data ground truth) and the single-person format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kernel.errors import UserError
from benchmarks.interactive_eyes import build_manifest
from benchmarks.manifest import load_benchmark, load_manifest, parse_items_option
from tests.conftest import REPO, shared_file

MANIFEST = REPO / "benchmarks" / "interactive_eyes" / "v1" / "manifest.json"


def test_manifest_has_29_two_person_items_with_protocol():
    m = load_benchmark("interactive_eyes", "v1")
    assert m.item_ids == [f"interact_{n}" for n in range(1, 30)]
    assert all(it.num_persons == 2 and len(it.persons) == 2 for it in m.items)
    assert all(it.video_file == f"{it.item_id}.mp4" for it in m.items)
    assert m.protocol["fps_min"] <= 24 <= m.protocol["fps_max"]  # the published clip's rate is accepted
    assert m.interval_format == "seconds"
    it11 = m.item("interact_11")
    assert [p.side for p in it11.persons] == ["left", "right"]
    assert it11.persons[0].speaking_intervals == [[4.16, 8.18]]  # SOURCES.md: left 4.16-8.18
    assert it11.persons[1].speaking_intervals == [[0.0, 4.16]]
    assert it11.audio_duration_s == pytest.approx(8.597)
    assert it11.min_duration_s < 8.598 < it11.max_duration_s  # interact_11.mp4 is 8.598 s
    # both copies of every track are recorded: FLAC first, upstream WAV second
    flac, wav = it11.persons[0].audio.copies
    assert flac == ("audio_left/interact_11_left.flac",
                    "89103ab2ab4126807e9ab6778abaea37845b6935c3e0c7ac38cfe8411c24748f")
    assert wav == ("audio_left/interact_11_left.wav",
                   "37ecea9014a684470c5a6be8d25c861b459f6cfa2cbda0cde1c55093688ae870")
    # interact_23..29: the left person never speaks ([[0.0, 0.0]] kept as stored)
    assert m.item("interact_23").persons[0].speaking_intervals == [[0.0, 0.0]]
    assert m.raw["intervals"]["max_fractional_part"] < 0.30


def test_manifest_matches_shared_ground_truth(shared_data):
    """Intervals equal speaker_duration.json; every FLAC in shared/ has the manifest's sha256."""
    from curation.media import sha256_file

    m = load_benchmark()
    table = json.loads((shared_data / "anytalker_benchmark" / "speaker_duration.json").read_text())
    for it in m.items:
        spans = table[f"{it.item_id}.mp4"]
        assert [p.speaking_intervals for p in it.persons] == [spans["left"], spans["right"]]
        for p in it.persons:
            rel, sha = p.audio.copies[0]
            assert sha256_file(shared_data / "anytalker_benchmark" / rel) == sha, rel


def test_committed_manifest_is_the_build_output(shared_data):
    assert build_manifest.main(["--data", str(shared_data), "--out", str(MANIFEST), "--check"]) == 0


def test_build_parses_every_sources_row():
    text = shared_file("SOURCES.md").read_text(encoding="utf-8")
    rows = build_manifest.parse_sources(text)
    assert len(rows) == 58
    assert rows[(29, "right")]["flac_sha"] == "ba01358816a04057bff0e1dc163b19480d3c1d95415212cfaa20304d553e28dc"


def test_items_option_and_unknown_ids():
    m = load_benchmark()
    assert parse_items_option(" interact_3, interact_11 ,") == ["interact_3", "interact_11"]
    assert [it.item_id for it in m.select(["interact_11", "interact_3"])] == ["interact_3", "interact_11"]
    with pytest.raises(UserError, match="interact_30"):
        m.select(["interact_30"])


def test_broken_manifest_names_the_field(tmp_path):
    doc = json.loads(MANIFEST.read_text())
    doc["items"][0]["persons"][0]["audio"]["sha256"] = "nothex"
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"items/0/persons/0/audio/sha256"):
        load_manifest(p)
    p.write_text('{"format": "something-else"}')
    with pytest.raises(UserError, match="unknown manifest format"):
        load_manifest(p)


def _docs_example() -> dict:
    text = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    m = re.search(r"```json single-person-manifest\n(.*?)```", text, re.S)
    assert m, "docs/benchmarks.md must hold the single-person manifest example"
    return json.loads(m.group(1))


def test_single_person_manifest_example_from_docs_loads(tmp_path, ffmpeg):
    from tests.conftest import run_ffmpeg

    doc = _docs_example()
    root = tmp_path / doc.get("root", ".")
    for it in doc["items"]:
        (root / it["reference"]).parent.mkdir(parents=True, exist_ok=True)
        run_ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64", "-frames:v", "1", str(root / it["reference"]))
        (root / it["audio"]).parent.mkdir(parents=True, exist_ok=True)
        run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=3", "-ar", "16000", str(root / it["audio"]))
        it.pop("audio_sha256", None)
        it.pop("reference_sha256", None)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(doc))
    m = load_manifest(path)
    assert m.benchmark == doc["name"] and len(m.items) == len(doc["items"])
    first = m.items[0]
    assert first.num_persons == 1 and first.video_file == f"{first.item_id}.mp4"
    assert first.reference is not None and first.reference.path == doc["items"][0]["reference"]
    assert first.audio_duration_s == pytest.approx(doc["items"][0].get("audio_duration_s", 3.0), abs=0.05)
    # speaking intervals default to the whole audio when not given
    no_iv = next(it for it, raw in zip(m.items, doc["items"]) if "speaking_intervals" not in raw)
    assert no_iv.persons[0].speaking_intervals == [[0.0, no_iv.audio_duration_s]]


def test_single_person_manifest_rejects_unknown_fields(tmp_path):
    doc = _docs_example()
    doc["items"][0]["refrence"] = "typo.png"
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="refrence"):
        load_manifest(p)
