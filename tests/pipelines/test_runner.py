"""Local curation runs: shards, manifest, resume, orphan cleanup, retry of failed rows, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.base import Stage
from curation.media import sha256_file
from pipelines import registry, shards
from pipelines.runner import run_curation
from pipelines.schema import SCHEMA_VERSION

BAD = {"bad/zero_byte.mp4": "empty_file", "bad/text_named.mp4": "decode_error",
       "bad/truncated_50.mp4": "decode_error", "bad/no_audio.mp4": "no_audio"}


def _all_rows(run: Path) -> list[dict]:
    return shards.read_rows(run, "clips") + shards.read_rows(run, "rejects")


def test_cli_run_writes_verified_shards_and_reports_rejects(small_inputs, tmp_path):
    out = tmp_path / "run"
    # audio required so that the run shows a no_audio reject (video_only itself takes silent sources)
    res = subprocess.run([sys.executable, "-m", "anytalker.cli", "curate", "run", "video_only",
                          "--input", str(small_inputs), "--output", str(out), "-q",
                          "--set", "probe.require_audio=true"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "rejected 4" in res.stdout and "decode_error: 2" in res.stdout, res.stdout

    manifest = json.loads((out / "manifest.json").read_text())
    run_info = json.loads((out / "run.json").read_text())
    assert manifest["complete"] and manifest["schema_version"] == SCHEMA_VERSION
    assert run_info["config_name"] == "video_only"
    for f in manifest["files"]:
        path = out / f["path"]
        assert sha256_file(path) == f["sha256"]
        table = pq.read_table(path)
        assert table.num_rows == f["rows"]
        md = table.schema.metadata
        assert md[b"schema_version"].decode() == SCHEMA_VERSION
        assert md[b"config_sha256"].decode() == manifest["config_sha256"]

    rows = _all_rows(out)
    by_src = {}
    for r in rows:
        by_src.setdefault(r["source_path"], []).append(r)
    for src, reason in BAD.items():
        assert [r["reason"] for r in by_src[src]] == [reason]
    assert all(r["status"] == "ok" for r in by_src["synthetic_a.mp4"])
    assert len({r["clip_id"] for r in rows}) == len(rows)
    assert manifest["totals"]["filtered"] == 4 and manifest["reasons"]["decode_error"] == 2
    assert manifest["totals"]["ok"] == sum(1 for r in rows if r["status"] == "ok")

    # shards open directly in pandas, pyarrow datasets and DuckDB
    import duckdb
    import pandas as pd

    df = pd.read_parquet(out / "clips")
    assert len(df) == manifest["totals"]["ok"] and "shake_score" in df.columns and "extra" not in df.columns
    assert "persons" not in df.columns  # the schema holds exactly the columns of the pipeline's stages
    n = duckdb.sql(f"select count(*) from read_parquet('{out}/rejects/*.parquet') where status='filtered'").fetchall()[0][0]
    assert n == 4

    # status / rejects subcommands read the same run
    st = subprocess.run([sys.executable, "-m", "anytalker.cli", "curate", "status", str(out), "--json"],
                        capture_output=True, text=True)
    assert json.loads(st.stdout)["complete"] is True
    rj = subprocess.run([sys.executable, "-m", "anytalker.cli", "curate", "rejects", str(out)],
                        capture_output=True, text=True)
    assert "decode_error: 2" in rj.stdout and "bad/text_named.mp4" in rj.stdout


def test_rerun_skips_done_partitions_and_cleans_orphans(small_inputs, tmp_path):
    out = tmp_path / "run"
    first = run_curation("video_only", small_inputs, out, progress=False)
    ids = sorted(r["clip_id"] for r in _all_rows(out))
    again = run_curation("video_only", small_inputs, out, progress=False)
    assert again.partitions_done == 0 and again.partitions_skipped == first.partitions_done

    # simulate a crash in partition 1: marker gone, a half-written temp file left behind
    (out / "_markers" / "part-00001.json").unlink()
    orphan = out / "clips" / ".part-00001.parquet.tmp-999"
    orphan.write_bytes(b"partial")
    resumed = run_curation("video_only", small_inputs, out, progress=False)
    assert resumed.partitions_done == 1 and not orphan.exists()
    assert sorted(r["clip_id"] for r in _all_rows(out)) == ids
    assert resumed.totals == first.totals


def test_different_config_in_same_output_is_refused(small_inputs, tmp_path):
    from kernel.errors import UserError

    out = tmp_path / "run"
    run_curation("video_only", small_inputs, out, limit=2, progress=False)
    with pytest.raises(UserError, match="different config"):
        run_curation("video_only", small_inputs, out, limit=2, progress=False,
                     overrides={"clips": {"max_clip_s": 5.0}})
    run_curation("video_only", small_inputs, out, limit=2, progress=False, overwrite=True,
                 overrides={"clips": {"max_clip_s": 5.0}})


class Flaky(Stage):
    """Fails with a transient error while a flag file exists."""

    name = "flaky"
    params = {"flag": ""}

    def process(self, row):
        if Path(self.flag).exists() and "synthetic_b" in row["source_path"]:
            raise MemoryError("simulated out of memory")
        return row


def test_retry_failed_requeues_only_failed_rows(small_inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(registry.STAGES, "flaky", f"{__name__}:Flaky")
    flag = tmp_path / "flag"
    flag.write_text("1")
    cfg = tmp_path / "flaky.yaml"
    cfg.write_text(f"name: flaky\npartition_size: 2\nstages:\n  - name: probe\n  - name: flaky\n    params: {{flag: '{flag}'}}\n")
    out = tmp_path / "run"
    first = run_curation(cfg, small_inputs, out, progress=False)
    assert first.totals["failed"] == 1 and first.reasons == {**first.reasons, "out_of_memory": 1}
    before = {r["clip_id"]: r for r in _all_rows(out)}
    flag.unlink()
    second = run_curation(cfg, small_inputs, out, retry_failed=True, progress=False)
    assert second.partitions_done == 1 and second.totals["failed"] == 0
    after = {r["clip_id"]: r for r in _all_rows(out)}
    assert set(after) == set(before)
    fixed = [r for r in after.values() if "synthetic_b" in r["source_path"]]
    assert fixed and all(r["status"] == "ok" for r in fixed)


def test_identical_sources_are_deduplicated_across_partitions(tmp_path, ffmpeg):
    import shutil

    from tests.badinputs import talking_like

    src = tmp_path / "in"
    src.mkdir()
    talking_like(src / "a.mp4", seconds=3.0)
    talking_like(src / "b.mp4", seconds=4.0)
    shutil.copy(src / "a.mp4", src / "z_copy_of_a.mp4")  # sorts last: lands in a later partition
    out = tmp_path / "run"
    summary = run_curation("video_only", src, out, progress=False)
    rows = _all_rows(out)
    assert len({r["clip_id"] for r in rows}) == len(rows)
    dup = [r for r in rows if r["source_path"] == "z_copy_of_a.mp4"]
    assert [(r["status"], r["reason"]) for r in dup] == [("filtered", "duplicate")]
    assert "a.mp4" in dup[0]["error_detail"] and summary.reasons == {"duplicate": 1}
    # deduplicated before any stage ran: no stage touched the copy
    assert not dup[0]["stage_versions"] and dup[0]["container"] is None
    # a resumed run keeps the same decision (seen hashes come back from the markers)
    (out / "_markers" / "part-00001.json").unlink()
    run_curation("video_only", src, out, progress=False)
    assert sorted(r["clip_id"] for r in _all_rows(out)) == sorted(r["clip_id"] for r in rows)
