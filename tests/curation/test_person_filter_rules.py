"""person_filter's explicit sync rules and per-backend thresholds (row level, no media)."""

from __future__ import annotations

import pytest

from curation.stages.person_filter import SYNC_THRESHOLDS, PersonFilter


def _row(backend="judge 1 ensemble:3@x", conf=0.9, offset=0, **person):
    p = {"index": 0, "frames": [0], "boxes": [[0, 0, 1, 1]], "sync_conf": conf, "sync_offset": offset,
         "static_mouth": False, "lip_motion": 0.1, "speech_frac": 0.9, **person}
    return {"persons": [p], "sync_matrix": [[conf]], "sync_offsets": [[offset]], "sync_dists": [[0.5]],
            "sync_speakers": ["mix"], "sync_curves": [[]], "speech_intervals": [], "sync_backend": backend,
            "source_path": "a.mp4"}


def _reason(row, **params):
    out = PersonFilter(**params).process(row)
    return out.get("reason") if out.get("status") == "filtered" else None


def test_static_mouth_and_no_speech_come_before_sync():
    assert _reason(_row()) is None
    assert _reason(_row(static_mouth=True, lip_motion=0.0)) == "static_mouth"
    assert _reason(_row(speech_frac=0.05)) == "no_speech"
    assert _reason(_row(conf=0.0, static_mouth=True)) == "static_mouth"  # not "low_sync"


def test_thresholds_follow_the_rows_backend():
    judge_conf, judge_off = SYNC_THRESHOLDS["judge"]
    assert _reason(_row(conf=judge_conf - 0.01)) == "low_sync"
    assert _reason(_row(conf=judge_conf + 0.01, offset=judge_off + 1)) == "sync_offset"
    assert _reason(_row(backend="landmark 3", conf=0.19)) == "low_sync"
    assert _reason(_row(backend="landmark 3", conf=0.21)) is None
    assert _reason(_row(conf=0.05), min_sync_conf={"judge": 0.01}) is None  # an explicit param wins


def test_syncnet_needs_a_user_threshold():
    with pytest.raises(ValueError, match="min_sync_conf"):
        PersonFilter().process(_row(backend="syncnet syncnet_python 1 weights:x"))
    assert _reason(_row(backend="syncnet s", conf=3.0), min_sync_conf={"syncnet": 2.5}) is None
