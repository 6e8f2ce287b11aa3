"""Every path under --input becomes a row or a counted skip; nothing hangs; retries are bounded
(issue 11, items 2-4). The full ~45-input corpus under a memory cap is the slow variant in
``test_bad_input_corpus_under_memory_cap.py``."""

from __future__ import annotations

import collections
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines import shards
from pipelines.runner import MAX_ATTEMPTS, Skipped, discover_inputs, run_curation
from tests.badinputs import build_issue11_cases, talking_like

REPO = Path(__file__).resolve().parents[2]
MEMORY_CAP = 3 << 30  # bytes of address space: the cap the issue's corpus runs under


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def curate_capped(inputs: Path, out: Path, *extra: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
    """The CLI in a subprocess under the memory cap, standard input /dev/null."""
    # the CLI's main, reporting its own peak RSS on the last stderr line
    code = ("import resource, sys\nfrom anytalker.cli import main\nrc = main(sys.argv[1:])\n"
            "print(f'peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}', file=sys.stderr)\n"
            "sys.exit(rc)\n")
    cmd = [sys.executable, "-c", code, "curate", "run", "video_only", "--input", str(inputs),
           "--output", str(out), "-q", *extra]
    return subprocess.run(cmd, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout_s, preexec_fn=_limit_memory)


def rows_by_source(run: Path) -> dict[str, list[dict]]:
    by: dict[str, list[dict]] = collections.defaultdict(list)
    for r in shards.read_rows(run, "clips") + shards.read_rows(run, "rejects"):
        by[r["source_path"]].append(r)
    return by


def check_accounting(run: Path, expected: dict[str, str], skipped: dict[str, int], timeout_s: float = 600) -> None:
    by = rows_by_source(run)
    assert set(by) == set(expected), (set(by) ^ set(expected))
    wrong = {}
    for name, reason in expected.items():
        got = [(r["status"], r["reason"]) for r in by[name]]
        if reason and got != [("filtered", reason)]:
            wrong[name] = (reason, got, [r.get("error_detail") for r in by[name]])
        if not reason and not all(s == "ok" for s, _ in got):
            wrong[name] = ("accepted", got, [r.get("error_detail") for r in by[name]])
    assert not wrong, wrong
    manifest = shards.read_manifest(run)
    assert manifest["skipped"]["by_reason"] == skipped
    # no item took longer than its stage timeouts allow (+60 s)
    for name, rows in by.items():
        spent = sum(sum((r.get("stage_seconds") or {}).values()) for r in rows)
        assert spent < timeout_s + 60, (name, spent)


def test_issue11_inputs_each_become_a_row_or_a_counted_skip_under_3gb(tmp_path, ffmpeg):
    inputs, outside = tmp_path / "in", tmp_path / "outside"
    expected, skipped = build_issue11_cases(inputs, outside)
    t0 = time.time()
    res = curate_capped(inputs, tmp_path / "run")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert time.time() - t0 < 300  # the FIFO and the device did not block
    check_accounting(tmp_path / "run", expected, skipped)
    assert "skipped: 4 (not_a_video_name 3, symlinked_folder 1)" in res.stdout
    # the hostile name was a file name, never shell text
    assert not list(tmp_path.rglob("PWNED")) and not (REPO / "PWNED").exists()


def test_list_file_entries_each_become_a_row_or_a_counted_skip(tmp_path, ffmpeg):
    good = talking_like(tmp_path / "good.mp4", seconds=2.5)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# inputs\n{good}\n{good}\n/dev/zero\n{tmp_path}/missing.mp4\n{tmp_path}\n")
    summary = run_curation("video_only", listing, tmp_path / "run", progress=False, data_root="/")
    by = rows_by_source(tmp_path / "run")
    rel = lambda p: str(p).lstrip("/")  # noqa: E731 - paths relative to data_root "/"
    assert [r["status"] for r in by[rel(good)]] == ["ok"]
    assert [r["reason"] for r in by["dev/zero"]] == ["not_a_file"]
    assert [r["reason"] for r in by[rel(tmp_path / "missing.mp4")]] == ["not_found"]
    assert [r["reason"] for r in by[rel(tmp_path)]] == ["not_a_file"]
    assert summary.skipped.counts == {"repeated_in_list": 1}
    assert shards.read_manifest(tmp_path / "run")["skipped"]["by_reason"] == {"repeated_in_list": 1}


def test_limit_counts_what_it_leaves_out(tmp_path, ffmpeg):
    (tmp_path / "in").mkdir()
    for n in ("a", "b", "c"):
        talking_like(tmp_path / "in" / f"{n}.mp4", seconds=1.5)
    summary = run_curation("video_only", tmp_path / "in", tmp_path / "run", limit=1, progress=False)
    assert summary.skipped.counts == {"beyond_limit": 2}
    assert "skipped: 2 (beyond_limit 2)" in summary.describe()


def test_a_video_file_as_input_and_a_binary_list_are_handled(tmp_path, ffmpeg):
    video = talking_like(tmp_path / "one.mp4", seconds=1.5)
    root, rels = discover_inputs(video)
    assert (root, rels) == (str(tmp_path), ["one.mp4"])
    junk = tmp_path / "list.bin"
    junk.write_bytes(b"\xff\xfe\x00garbage")
    from kernel.errors import UserError

    with pytest.raises(UserError, match="cannot read it as a text list"):
        discover_inputs(junk)
    os.mkfifo(tmp_path / "input_fifo")
    with pytest.raises(UserError, match="not a folder, a video or a text file"):
        discover_inputs(tmp_path / "input_fifo")


def test_unreadable_subfolder_is_a_counted_skip(tmp_path, monkeypatch):
    """As a non-root user a folder without read permission cannot be listed; root can list
    anything, so the listing error is injected here (os.walk reports it through onerror)."""
    (tmp_path / "ok.mp4").write_bytes(b"x")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "lost.mp4").write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    skipped = Skipped()
    _, rels = discover_inputs(tmp_path, skipped=skipped)
    assert rels == ["ok.mp4"]
    assert skipped.counts == {"unreadable_folder": 1} and skipped.examples["unreadable_folder"] == [str(locked)]


def test_retry_failed_is_bounded_by_attempts(tmp_path, ffmpeg):
    (tmp_path / "in").mkdir()
    talking_like(tmp_path / "in" / "a.mp4", seconds=1.5)
    args = dict(overrides={"probe": {"timeout_s": 0.001}}, progress=False)  # every probe times out
    out = tmp_path / "run"
    run_curation("video_only", tmp_path / "in", out, **args)
    for attempt in range(2, MAX_ATTEMPTS + 1):
        summary = run_curation("video_only", tmp_path / "in", out, retry_failed=True, **args)
        rows = shards.read_rows(out, "rejects")
        assert [(r["reason"], r["attempts"]) for r in rows] == [("timeout", attempt)]
        assert summary.partitions_done == 1
    summary = run_curation("video_only", tmp_path / "in", out, retry_failed=True, **args)
    assert summary.partitions_done == 0 and summary.not_retried == 1
    assert f"failed {MAX_ATTEMPTS} times" in summary.describe()
    assert [r["attempts"] for r in shards.read_rows(out, "rejects")] == [MAX_ATTEMPTS]


def test_skipped_describe_and_dict():
    s = Skipped()
    s.add("not_a_video_name", "a.txt")
    s.add("not_a_video_name", "b.gif")
    s.add("beyond_limit", "c.mp4", 3)
    assert s.total == 5
    assert s.describe() == "skipped: 5 (beyond_limit 3, not_a_video_name 2)"
    assert s.to_dict()["examples"]["not_a_video_name"] == ["a.txt", "b.gif"]
