"""Longest first: a pool's sources are handed out by their expected cost, largest first, so its
workers finish together (no worker idling at the end while another runs a long source)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipelines import executors
from pipelines.executors import LocalExecutor, longest_first, source_cost
from tests.badinputs import talking_like


@pytest.fixture(scope="module")
def mixed_sources(tmp_path_factory, ffmpeg) -> list[dict]:
    """Given in name order: short, long, short but large frames, a text file, a missing file."""
    root: Path = tmp_path_factory.mktemp("order")
    talking_like(root / "a_short.mp4", seconds=1.0, size="160x120", audio=False)
    talking_like(root / "b_long.mp4", seconds=3.0, size="160x120", audio=False)
    talking_like(root / "c_big_frames.mp4", seconds=1.2, size="1920x1080", audio=False)
    (root / "d_text.mp4").write_text("not a video\n")
    names = ["a_short.mp4", "b_long.mp4", "c_big_frames.mp4", "d_text.mp4", "e_missing.mp4"]
    return [{"source_path": n, "source_abs_path": str(root / n), "status": "ok", "partition": "part-00000"}
            for n in names]


def test_sources_go_longest_first_and_unreadable_ones_last_in_given_order(mixed_sources, monkeypatch):
    monkeypatch.delenv(executors.SOURCE_ORDER_ENV, raising=False)
    costs = [source_cost(s) for s in mixed_sources]
    assert costs[0] == pytest.approx(1.0 * (1 + 160 * 120 / 4e6), rel=0.05)
    assert costs[1] == pytest.approx(3.0 * (1 + 160 * 120 / 4e6), rel=0.05)
    assert costs[2] == pytest.approx(1.2 * (1 + 1920 * 1080 / 4e6), rel=0.05)  # pixels raise a short clip's cost
    assert costs[3] is None and costs[4] is None
    ordered = [s["source_path"] for s in longest_first(mixed_sources)]
    assert ordered == ["b_long.mp4", "c_big_frames.mp4", "a_short.mp4", "d_text.mp4", "e_missing.mp4"]


def test_a_broken_header_prints_nothing_and_the_log_setting_is_not_left_behind(mixed_sources, tmp_path):
    """In a fresh driver process (OpenCV's FFmpeg reads its log level at its first open)."""
    import json
    import subprocess
    import sys

    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(Path(mixed_sources[1]["source_abs_path"]).read_bytes()[:2000])  # no moov atom
    rows = [{**mixed_sources[0], "source_path": "t.mp4", "source_abs_path": str(truncated)}, mixed_sources[0]]
    code = ("import json, os, sys; from pipelines.executors import longest_first; "
            "rows = json.loads(sys.argv[1]); os.environ.pop('ANYTALKER_SOURCE_ORDER', None); "
            "print(json.dumps([r['source_path'] for r in longest_first(rows)])); "
            "print('OPENCV_FFMPEG_LOGLEVEL' in os.environ)")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(rows)], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    order, leftover = res.stdout.strip().splitlines()[-2:]
    assert json.loads(order) == ["a_short.mp4", "t.mp4"]
    assert "moov" not in res.stderr
    assert leftover == "False"


def test_a_refused_source_is_never_opened_and_given_order_is_kept_on_request(mixed_sources, monkeypatch):
    refused = {**mixed_sources[1], "status": "filtered", "reason": "not_a_file"}
    assert source_cost(refused) is None
    monkeypatch.setenv(executors.SOURCE_ORDER_ENV, "given")
    assert longest_first(mixed_sources) == mixed_sources


def test_a_local_pool_gets_its_sources_longest_first(mixed_sources, monkeypatch):
    monkeypatch.delenv(executors.SOURCE_ORDER_ENV, raising=False)
    handed: list[str] = []

    def fake_pool(self, sources):
        handed.extend(s["source_path"] for s in sources)
        yield from ()

    monkeypatch.setattr(LocalExecutor, "_run_pool", fake_pool)
    ex = LocalExecutor([{"name": "probe"}], workers=2)
    list(ex.run_stream(mixed_sources))
    assert handed == ["b_long.mp4", "c_big_frames.mp4", "a_short.mp4", "d_text.mp4", "e_missing.mp4"]


def _by_size(sources: list[dict]) -> list[str]:
    """The expected size order: largest file first, sources that are no regular file last."""
    sized = [(os.path.getsize(s["source_abs_path"]) if os.path.isfile(s["source_abs_path"]) else None, i)
             for i, s in enumerate(sources)]
    return [sources[i]["source_path"] for size, i in sorted(sized, key=lambda t: (t[0] is None, -(t[0] or 0), t[1]))]


def test_a_run_beyond_the_header_read_limit_is_ordered_by_file_size_without_opening_a_file(mixed_sources,
                                                                                          monkeypatch):
    monkeypatch.delenv(executors.SOURCE_ORDER_ENV, raising=False)
    monkeypatch.setattr(executors, "HEADER_READS_MAX_SOURCES", len(mixed_sources) - 1)

    def no_header_reads(row):
        raise AssertionError(f"{row['source_path']}: header read beyond the limit")

    monkeypatch.setattr(executors, "source_cost", no_header_reads)
    ordered = [s["source_path"] for s in longest_first(mixed_sources)]
    assert ordered == _by_size(mixed_sources)
    assert ordered != [s["source_path"] for s in mixed_sources]  # the size order is not the given one
    assert ordered[-1] == "e_missing.mp4"


def test_header_reads_past_their_time_budget_fall_back_to_file_size_for_every_source(mixed_sources, monkeypatch):
    monkeypatch.delenv(executors.SOURCE_ORDER_ENV, raising=False)
    read: list[str] = []
    real = executors.source_cost

    def slow_cost(row):
        read.append(row["source_path"])
        time.sleep(0.05)
        return real(row)

    monkeypatch.setattr(executors, "source_cost", slow_cost)
    monkeypatch.setattr(executors, "HEADER_READS_BUDGET_S", 0.12)
    ordered = [s["source_path"] for s in longest_first(mixed_sources)]
    assert ordered == _by_size(mixed_sources)  # sizes for all: no mix of header costs and sizes
    assert 1 <= len(read) < len(mixed_sources)  # the reads stopped once the budget was spent
