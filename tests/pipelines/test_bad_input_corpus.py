"""The full bad-input corpus through ``run_curation``: every input becomes rows with a specific
status and reason code, no job crashes, and the manifest's reason histogram matches the rows.

Corpus (tests/badinputs.py), 29 inputs of 26 kinds:
  video level (video_only pipeline, fast): 16 from ``build_corpus`` (13 kinds), 5 unusual but
  valid videos / file-system oddities, 3 audio kinds that are valid videos; the 8K-frame video
  runs alone (slow: ~10 s of decoding on a free core);
  speech level (``speech`` stage): silent and tone audio -> no_speech, a zero-sample audio
  track -> no_audio;
  face level (``faces`` stage, expected_persons=1): 0, 1, 3, 5 real faces -> no_face / accepted /
  too_many_faces / too_many_faces.
"""

from __future__ import annotations

import collections
import importlib.util
from pathlib import Path

import pytest

from pipelines import shards
from pipelines.report import write_report
from pipelines.runner import run_curation
from tests.badinputs import (build_8k_header, build_audio_cases, build_corpus, build_face_count_cases,
                             build_more_video_cases)

# several inputs of one kind (truncation points, the two ends of a symlink loop) count once
_SAME_KIND = {"truncated_10.mp4": "truncated", "truncated_50.mp4": "truncated", "truncated_90.mp4": "truncated",
              "loop_a.mp4": "symlink_loop", "loop_b.mp4": "symlink_loop"}
EARLY_STAGES = ("probe", "shots", "camera_motion", "clips")
PERSON_STAGES = ("speech", "faces", "av_sync", "person_filter")


def count_kinds(names) -> int:
    return len({_SAME_KIND.get(n, n) for n in names})


def _missing_stages(names) -> list[str]:
    return [s for s in names if importlib.util.find_spec(f"curation.stages.{s}") is None]


def _config(tmp: Path, name: str, stages: list[str], params: dict[str, str] | None = None) -> Path:
    lines = [f"name: {name}", "partition_size: 4", "stages:"]
    for s in stages:
        lines.append(f"  - name: {s}")
        if params and s in params:
            lines.append(f"    params: {params[s]}")
    path = tmp / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_and_check(config, inputs: Path, out: Path, expected: dict[str, str]) -> list[dict]:
    """Curate ``inputs``; check each expected input's rows and the manifest. Returns all rows.

    ``expected[name]`` is a reason code (exactly one reject row with it) or '' (accepted: one or
    more rows, all ok).
    """
    summary = run_curation(config, inputs, out, progress=False)
    rows = shards.read_rows(out, "clips") + shards.read_rows(out, "rejects")
    by_source: dict[str, list[dict]] = collections.defaultdict(list)
    for r in rows:
        by_source[r["source_path"]].append(r)
    assert set(by_source) == set(expected), "every input, and nothing else, becomes rows"
    problems = []
    for name, reason in sorted(expected.items()):
        got = by_source[name]
        if reason:
            if [(r["status"], r["reason"]) for r in got] != [("filtered", reason)]:
                problems.append((name, reason, [(r["status"], r["reason"], r.get("error_detail")) for r in got]))
        elif not got or any(r["status"] != "ok" for r in got):
            problems.append((name, "accepted", [(r["status"], r["reason"], r.get("error_detail")) for r in got]))
    assert not problems, problems
    # nothing crashed: no row is an exception/timeout/oom row
    assert not [r for r in rows if r["reason"] in ("exception", "timeout", "out_of_memory")]
    # the manifest's histogram is the rows' histogram
    manifest = shards.read_manifest(out)
    rejects = [r for r in rows if r["status"] != "ok"]
    assert manifest["reasons"] == dict(collections.Counter(r["reason"] for r in rejects))
    assert summary.totals == manifest["totals"]
    assert manifest["totals"]["ok"] == len(rows) - len(rejects)
    return rows


@pytest.fixture(scope="module")
def video_corpus(tmp_path_factory, ffmpeg) -> tuple[Path, dict[str, str], dict[str, str]]:
    """(root, expected under probe for every input, expected under speech for the audio kinds)."""
    root = tmp_path_factory.mktemp("corpus")
    expected = build_corpus(root)
    expected.update(build_more_video_cases(root, include_8k=False))  # 8K: its own slow test
    speech = build_audio_cases(root)
    expected.update({name: "" for name in speech})  # valid videos with an audio stream
    return root, expected, speech


def test_video_level_corpus_gives_one_reason_per_input(video_corpus, tmp_path):
    root, expected, speech = video_corpus
    assert len(expected) == 24 and count_kinds(expected) == 21
    # video_only's stages, with audio required so that the no-audio kind has its reason
    # (video_only itself takes silent sources)
    cfg = _config(tmp_path, "video_level", list(EARLY_STAGES), {"probe": "{require_audio: true}"})
    rows = run_and_check(cfg, root, tmp_path / "run", expected)
    by_source = {r["source_path"]: r for r in rows}
    # the unusual-but-valid inputs keep their real properties
    assert (by_source["aspect_9x16.mp4"]["width"], by_source["aspect_9x16.mp4"]["height"]) == (270, 480)
    vfr = by_source["variable_fps.mp4"]
    assert vfr["num_frames"] == 50 and 12.5 < vfr["fps"] < 13.5  # 25 frames in 1 s, then every 3rd
    assert by_source["zero_second_audio.mkv"]["has_audio"] is True
    assert "new\nline.mp4" in by_source

    # the report of this run: a block per reason, a placeholder naming the error for every
    # sample without a decodable video, control characters in names made visible
    html = write_report(tmp_path / "run", tmp_path / "report.html").read_text()
    for reason in {r["reason"] for r in rows if r["status"] != "ok"}:
        assert f'class="reason-samples" data-reason="{reason}"' in html
    assert html.count('class="placeholder"') >= 7  # empty, text, truncated, moov, audio-only, dir, links
    assert "new\\nline.mp4</h3>" in html


@pytest.mark.slow
def test_8k_frame_size_is_too_large_unless_the_limit_is_raised(tmp_path, ffmpeg):
    # decision (issue 11): probe.max_frame_pixels (4096x2304) refuses it before any decode
    root = tmp_path / "inputs"
    root.mkdir()
    build_8k_header(root)
    rows = run_and_check("video_only", root, tmp_path / "run", {"header_8k.mp4": "too_large"})
    assert [(r["width"], r["height"]) for r in rows] == [(7680, 4320)]
    cfg = _config(tmp_path, "big_ok", ["probe"], {"probe": "{max_frame_pixels: 40000000}"})
    rows = run_and_check(cfg, root, tmp_path / "run2", {"header_8k.mp4": ""})
    assert [(r["width"], r["height"], r["num_frames"]) for r in rows] == [(7680, 4320, 12)]


@pytest.fixture(scope="module")
def face_corpus(tmp_path_factory, shared_data, ffmpeg) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("faces")
    return root, build_face_count_cases(root, shared_data)


@pytest.mark.slow
def test_face_count_corpus_under_faces_stage(face_corpus, tmp_path):
    missing = _missing_stages(["faces"])
    if missing:
        pytest.skip("curation/stages/faces.py is not in this build")
    root, expected = face_corpus
    # the single_person recipe's video and face stages; speech/sync are tested separately below
    cfg = _config(tmp_path, "faces_only", [*EARLY_STAGES, "faces"], {"faces": "{expected_persons: 1}"})
    rows = run_and_check(cfg, root, tmp_path / "run", expected)
    by_source = {r["source_path"]: r for r in rows}
    assert [by_source[f"faces_{n}.mp4"]["num_persons"] for n in (0, 1, 3, 5)] == [0, 1, 3, 5]
    assert all(by_source[f"faces_{n}.mp4"]["failed_stage"] == "faces" for n in (0, 3, 5))


@pytest.mark.slow
def test_audio_corpus_under_speech_stage(video_corpus, face_corpus, tmp_path):
    missing = _missing_stages(["speech"])
    if missing:
        pytest.skip("curation/stages/speech.py is not in this build yet: the no_speech cases cannot run")
    root, _, speech = video_corpus
    face_root, _ = face_corpus
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in speech:
        (inputs / name).symlink_to(root / name)
    # positive control: a still image with real speech must pass the speech stage
    (inputs / "faces_1.mp4").symlink_to(face_root / "faces_1.mp4")
    cfg = _config(tmp_path, "speech_only", [*EARLY_STAGES, "speech"], {"speech": "{mode: single}"})
    rows = run_and_check(cfg, inputs, tmp_path / "run", {**speech, "faces_1.mp4": ""})
    assert all(r["failed_stage"] == "speech" for r in rows if r["status"] != "ok")


@pytest.mark.slow
def test_person_corpus_under_single_person_pipeline(video_corpus, face_corpus, tmp_path):
    missing = _missing_stages(PERSON_STAGES)
    if missing:
        pytest.skip(f"person stages not in this build yet: {missing}")
    root, _, speech = video_corpus
    face_root, faces = face_corpus
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in speech:
        (inputs / name).symlink_to(root / name)
    for name in faces:
        (inputs / name).symlink_to(face_root / name)
    summary = run_curation("single_person", inputs, tmp_path / "run", progress=False)
    rows = shards.read_rows(tmp_path / "run", "clips") + shards.read_rows(tmp_path / "run", "rejects")
    by_source = collections.defaultdict(list)
    for r in rows:
        by_source[r["source_path"]].append(r)
    for name, reason in {**speech, **{k: v for k, v in faces.items() if v}}.items():
        assert [r["reason"] for r in by_source[name]] == [reason], (name, by_source[name])
    # one face: past the faces stage (a still image may then fail lip sync, which is correct)
    one = by_source["faces_1.mp4"]
    assert one and all(r["status"] == "ok" or r["failed_stage"] not in (*EARLY_STAGES, "speech", "faces")
                       for r in one), one
    assert summary.manifest["reasons"] == dict(collections.Counter(r["reason"] for r in rows if r["status"] != "ok"))


def test_corpus_size_is_what_the_docs_state(video_corpus, face_corpus):
    _, expected, _ = video_corpus
    _, faces = face_corpus
    everything = {**expected, **faces, "header_8k.mp4": "too_large"}
    assert len(everything) == 29 and count_kinds(everything) == 26
