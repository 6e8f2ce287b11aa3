"""`anytalker bench score`: real metrics on the real benchmark clip, and every refusal path."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest

from anytalker import __version__
from kernel.data import candidate_roots
from anytalker.cli import main
from benchmarks.manifest import load_benchmark
from tests.benchmarks.test_validate import META, make_submission
from tests.conftest import REPO, run_ffmpeg, shared_file

V1 = REPO / "benchmarks" / "interactive_eyes" / "v1"


@pytest.fixture
def audio_root(shared_data) -> Path:
    return shared_data / "anytalker_benchmark"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_score_interactivity_on_real_clip_with_benchmark_intervals(tmp_path, audio_root, capsys):
    """Fast acceptance: validate + Interactivity (mediapipe) on interact_11 with its intervals."""
    sub = make_submission(tmp_path)
    out = tmp_path / "results.json"
    rc = main(["bench", "score", str(sub), "--items", "interact_11", "--metric", "interactivity",
               "--audio-dir", str(audio_root), "--output", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "anytalker-benchmark-results/1"
    assert (doc["benchmark"], doc["version"], doc["items"]) == ("interactive_eyes", "v1", ["interact_11"])
    assert doc["manifest_sha256"] == _sha(V1 / "manifest.json")
    assert doc["scoring_sha256"] == _sha(V1 / "scoring.yaml")
    assert doc["toolkit"]["version"] == __version__ and doc["date"].endswith("+00:00")
    # submission digest, recomputed the documented way
    video_sha = _sha(sub / "interact_11.mp4")
    assert video_sha == "72089b75a338c5c6c330e76fed3320e0c2e9c65d951f79fdf3957c414a3c9642"  # SOURCES.md
    text = f"submission.json {_sha(sub / 'submission.json')}\ninteract_11.mp4 {video_sha}\n"
    assert doc["submission"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert doc["submission"]["model"] == META["model"]

    m = doc["metrics"]["interactivity"]
    assert set(doc["metrics"]) == {"interactivity"}
    assert (m["name"], m["version"], m["backend"]) == ("interactivity", "2", "mediapipe-facemesh-478")
    assert m["backend_version"] and m["pinned"] == {"version": "2", "backend": "mediapipe-facemesh-478"}
    assert m["n_scored"] == 1 and m["n_failed"] == 0
    assert math.isfinite(m["value"]) and m["value"] > 0  # two real people do move while listening
    assert m["ci_low"] is None and m["ci_high"] is None and m["ci_method"] is None  # one item: no CI
    item = m["items"][0]
    assert item["item_id"] == "interact_11" and item["ok"]
    # the benchmark intervals (read as seconds) reached the metric: a person listens on every
    # frame outside their own intervals (left speaks 4.16-8.18 s, right 0-4.16 s; 205 frames at 24 fps)
    times = [k / 24 for k in range(205)]
    left_listen = sum(1 for t in times if not 4.16 <= t < 8.18) / 24
    right_listen = sum(1 for t in times if not 0.0 <= t < 4.16) / 24
    persons = item["components"]["persons"]
    assert [p["listening_s"] for p in persons] == [pytest.approx(left_listen, abs=1e-3),
                                                  pytest.approx(right_listen, abs=1e-3)]
    assert item["components"]["interval_format"] == "seconds"
    assert "interactivity" in capsys.readouterr().out


def test_score_refuses_incomplete_submission(tmp_path, audio_root, capsys):
    sub = make_submission(tmp_path)
    out = tmp_path / "r.json"
    assert main(["bench", "score", str(sub), "--audio-dir", str(audio_root), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "submission is not valid, not scoring it" in err and "interact_1.mp4: missing" in err
    assert not out.exists()


def test_missing_audio_root_says_what_to_fetch(tmp_path, monkeypatch, capsys):
    sub = make_submission(tmp_path)
    monkeypatch.delenv("ANYTALKER_DATA", raising=False)
    missing = tmp_path / "no_audio_here"
    assert main(["bench", "score", str(sub), "--items", "interact_11", "--audio-dir", str(missing),
                 "--output", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: benchmark audio folder not found" in err
    assert "HKUST-C4G/AnyTalker" in err and "audio_left" in err and "--audio-dir" in err


def test_default_audio_root_order(tmp_path, monkeypatch):
    from benchmarks.scoring import audio_root_candidates

    m = load_benchmark()
    monkeypatch.setenv("ANYTALKER_DATA", str(tmp_path))
    got = audio_root_candidates(m, None)
    assert got[0] == tmp_path / "anytalker_benchmark"  # $ANYTALKER_DATA first, then the resolver's others
    assert got == [root / "anytalker_benchmark" for _label, root in candidate_roots()]
    assert audio_root_candidates(m, "/x") == [Path("/x")]


def test_damaged_audio_is_refused_by_sha256(tmp_path, audio_root, capsys):
    sub = make_submission(tmp_path)
    bad_root = tmp_path / "audio"
    (bad_root / "audio_left").mkdir(parents=True)
    (bad_root / "audio_right").mkdir()
    (bad_root / "audio_left" / "interact_11_left.flac").write_bytes(b"not the benchmark audio")
    shutil.copyfile(audio_root / "audio_right" / "interact_11_right.flac",
                    bad_root / "audio_right" / "interact_11_right.flac")
    assert main(["bench", "score", str(sub), "--items", "interact_11", "--audio-dir", str(bad_root),
                 "--output", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "interact_11_left.flac: sha256" in err and "differs from the manifest's 89103ab2ab41" in err
    assert "interact_11_right" not in err  # the good copy verifies


def test_upstream_wav_copy_verifies_too(tmp_path):
    """A file verifies against either listed copy: an unknown WAV is refused with the WAV's pin."""
    from benchmarks.scoring import verify_file

    item = load_benchmark().item("interact_11")
    root = tmp_path / "a"
    (root / "audio_left").mkdir(parents=True)
    (root / "audio_left" / "interact_11_left.wav").write_bytes(b"RIFF....")
    path, err = verify_file(root, item.persons[0].audio, "audio")
    assert path is None and "37ecea9014a6" in err  # the upstream WAV's sha256 from SOURCES.md
    good = shared_file("anytalker_benchmark/audio_left/interact_11_left.flac")
    shutil.copyfile(good, root / "audio_left" / "interact_11_left.flac")
    path, err = verify_file(root, item.persons[0].audio, "audio")
    assert err is None and path.name == "interact_11_left.flac"


def test_unpinned_backend_is_refused(tmp_path, audio_root, capsys):
    sub = make_submission(tmp_path)
    text = (V1 / "scoring.yaml").read_text().replace(
        "  - name: sync_c\n    version: \"1\"\n    backend: landmark", "  - name: sync_c\n    version: \"1\"\n    backend: syncnet")
    assert "backend: syncnet" in text
    alt = tmp_path / "scoring.yaml"
    alt.write_text(text)
    assert main(["bench", "score", str(sub), "--items", "interact_11", "--metric", "sync_c", "--scoring", str(alt),
                 "--audio-dir", str(audio_root), "--output", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "sync_c: backend 'landmark' != pinned 'syncnet'" in err and "--allow-unpinned" in err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_allow_unpinned_scores_and_marks_the_results(tmp_path, audio_root):
    sub = make_submission(tmp_path)
    alt = tmp_path / "scoring.yaml"
    alt.write_text((V1 / "scoring.yaml").read_text().replace(
        "  - name: sync_c\n    version: \"1\"\n    backend: landmark", "  - name: sync_c\n    version: \"1\"\n    backend: syncnet"))
    out = tmp_path / "r.json"
    assert main(["bench", "score", str(sub), "--items", "interact_11", "--metric", "sync_c", "--scoring", str(alt),
                 "--audio-dir", str(audio_root), "--output", str(out), "--allow-unpinned"]) == 0
    doc = json.loads(out.read_text())
    assert doc["pinning"] == {"ok": False, "differences": ["sync_c: backend 'landmark' != pinned 'syncnet'"]}
    assert doc["metrics"]["sync_c"]["backend"] == "landmark"


def test_reference_scoring_needs_weights_variable(tmp_path, audio_root, monkeypatch, capsys):
    sub = make_submission(tmp_path)
    monkeypatch.delenv("ANYTALKER_SYNCNET_WEIGHTS", raising=False)
    assert main(["bench", "score", str(sub), "--items", "interact_11", "--metric", "sync_c_star",
                 "--scoring", str(V1 / "scoring_reference.yaml"), "--audio-dir", str(audio_root),
                 "--output", str(tmp_path / "r.json")]) == 2
    assert "set ANYTALKER_SYNCNET_WEIGHTS to the file's path" in capsys.readouterr().err


def test_unknown_metric_subset_is_refused(tmp_path, audio_root, capsys):
    sub = make_submission(tmp_path)
    assert main(["bench", "score", str(sub), "--items", "interact_11", "--metric", "fvd",
                 "--audio-dir", str(audio_root), "--output", str(tmp_path / "r.json")]) == 2
    assert "metric(s) fvd not in this benchmark's scoring" in capsys.readouterr().err


@pytest.mark.slow
def test_full_scoring_ranks_real_clip_above_frozen_copy(tmp_path, audio_root, ffmpeg):
    """All pinned metrics on the real clip and on a frozen-frame copy, then the leaderboard."""
    (tmp_path / "real").mkdir()
    real = make_submission(tmp_path / "real")
    frozen = tmp_path / "frozen" / "submission"
    frozen.mkdir(parents=True)
    (frozen / "submission.json").write_text(json.dumps({**META, "model": "frozen-first-frame"}))
    clip = shared_file("anytalker_benchmark/interact_11.mp4")
    # first frame held for the clip's length, with the clip's own audio
    run_ffmpeg("-i", str(clip), "-filter_complex", "[0:v]trim=end_frame=1,loop=loop=-1:size=1,setpts=N/24/TB,fps=24[v]",
               "-map", "[v]", "-map", "0:a", "-t", "8.59", "-c:v", "libx264", "-pix_fmt", "yuv420p",
               "-c:a", "aac", str(frozen / "interact_11.mp4"))
    outs = []
    for name, sub in (("real", real), ("frozen", frozen)):
        out = tmp_path / f"{name}.json"
        assert main(["bench", "score", str(sub), "--items", "interact_11", "--audio-dir", str(audio_root),
                     "--output", str(out)]) == 0
        outs.append(out)
    docs = [json.loads(p.read_text()) for p in outs]
    assert set(docs[0]["metrics"]) == {"interactivity", "sync_c_star", "sync_c", "sync_d", "identity"}
    assert docs[0]["metrics"]["interactivity"]["value"] > docs[1]["metrics"]["interactivity"]["value"] + 0.1
    board_json = tmp_path / "lb.json"
    assert main(["bench", "leaderboard", *map(str, outs), "--output", str(board_json),
                 "--html", str(tmp_path / "lb.html")]) == 0
    rows = json.loads(board_json.read_text())["groups"][0]["rows"]
    assert [r["model"] for r in rows] == [META["model"], "frozen-first-frame"]


@pytest.mark.slow
def test_reference_scoring_file_pins_the_syncnet_backend(tmp_path, audio_root, monkeypatch):
    """scoring_reference.yaml with SyncNet weights in the real file format (random init: the
    published weights cannot be downloaded here); checks the pin matches what loads."""
    import torch
    from syncnet_python.SyncNetModel import S

    torch.manual_seed(0)
    weights = tmp_path / "syncnet_v2.model"
    torch.save(S(num_layers_in_fc_layers=1024).state_dict(), weights)
    monkeypatch.setenv("ANYTALKER_SYNCNET_WEIGHTS", str(weights))
    sub = make_submission(tmp_path)
    out = tmp_path / "r.json"
    assert main(["bench", "score", str(sub), "--items", "interact_11", "--metric", "sync_c",
                 "--scoring", str(V1 / "scoring_reference.yaml"), "--audio-dir", str(audio_root),
                 "--output", str(out)]) == 0
    m = json.loads(out.read_text())["metrics"]["sync_c"]
    assert m["backend"] == "syncnet" and "syncnet_v2.model@" in m["backend_version"]
    assert m["n_scored"] + m["n_failed"] == 1


def test_interval_readings_reach_the_samples(tmp_path, audio_root):
    """seconds (default) vs timecode30 (4.16 -> 4 s + 16/30 s); [[0, 0]] -> never speaks."""
    from benchmarks.scoring import build_samples

    m = load_benchmark()
    items = m.select(["interact_11", "interact_23"])
    secs = build_samples(m, items, tmp_path, audio_root, "seconds")
    assert secs[0].speaking_intervals == [[(4.16, 8.18)], [(0.0, 4.16)]]
    assert secs[0].interval_format == "seconds"
    assert secs[0].audio_paths == [str(audio_root / "audio_left/interact_11_left.flac"),
                                   str(audio_root / "audio_right/interact_11_right.flac")]
    assert secs[1].speaking_intervals[0] == []  # interact_23: the left person never speaks
    tc = build_samples(m, items, tmp_path, audio_root, "timecode30")
    assert tc[0].speaking_intervals == [[(pytest.approx(4 + 16 / 30), pytest.approx(8 + 18 / 30))],
                                        [(0.0, pytest.approx(4 + 16 / 30))]]
    assert tc[0].interval_format == "timecode30"
