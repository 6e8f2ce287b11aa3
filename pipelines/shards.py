"""Run directory layout, atomic shard writes, completion markers and the manifest.

    RUN/run.json                      resolved config, versions, inputs (written at start)
    RUN/clips/part-00000.parquet      accepted rows (status ok)
    RUN/rejects/part-00000.parquet    filtered + failed rows (same schema)
    RUN/_markers/part-00000.json      completion marker: a partition is done iff this exists
    RUN/manifest.json                 every file with rows + sha256, totals, reasons (at end)

Files are written under a temporary name and renamed, so a reader never sees a partial file;
readers use only files listed in a complete manifest and verify their sha256.
"""

from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from curation.media import sha256_file
from pipelines.schema import SCHEMA_VERSION, check_schema_version, rows_to_table, table_to_rows

KINDS = ("clips", "rejects")


class ManifestError(RuntimeError):
    pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def marker_path(run_dir: Path, partition: str) -> Path:
    return run_dir / "_markers" / f"{partition}.json"


def partition_files(run_dir: Path, partition: str) -> list[Path]:
    return [run_dir / k / f"{partition}.parquet" for k in KINDS]


def clean_partition(run_dir: Path, partition: str) -> list[Path]:
    """Remove every file (finished or temporary) of an incomplete partition."""
    removed = []
    for k in KINDS:
        d = run_dir / k
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.name == f"{partition}.parquet" or p.name.startswith(f".{partition}.parquet.tmp-"):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def write_partition(run_dir: Path, partition: str, rows: list[dict], metadata: dict[str, str],
                    inputs: list[str], seconds: float) -> dict:
    """Write the partition's clips/rejects files, then its completion marker. Returns the marker."""
    import io

    files = []
    by_kind = {"clips": [r for r in rows if r.get("status") == "ok"],
               "rejects": [r for r in rows if r.get("status") != "ok"]}
    for kind, krows in by_kind.items():
        path = run_dir / kind / f"{partition}.parquet"
        if not krows:
            path.unlink(missing_ok=True)
            continue
        table = rows_to_table(krows, metadata={**metadata, "partition": partition})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        atomic_write_bytes(path, buf.getvalue())
        files.append({"path": f"{kind}/{partition}.parquet", "kind": kind, "rows": len(krows),
                      "sha256": sha256_file(path), "bytes": path.stat().st_size})
    status = collections.Counter(r.get("status") for r in rows)
    reasons = collections.Counter(r.get("reason") for r in rows if r.get("status") != "ok")
    marker = {
        "partition": partition, "inputs": inputs, "files": files, "rows": len(rows),
        "status": dict(status), "reasons": dict(reasons), "seconds": round(seconds, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(marker_path(run_dir, partition), marker)
    return marker


def read_marker(run_dir: Path, partition: str) -> dict | None:
    p = marker_path(run_dir, partition)
    if not p.exists():
        return None
    try:
        m = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    # a marker whose files vanished is not a completion
    if not all((run_dir / f["path"]).exists() for f in m.get("files", [])):
        return None
    return m


def read_partition_rows(run_dir: Path, partition: str) -> list[dict]:
    rows: list[dict] = []
    for p in partition_files(run_dir, partition):
        if p.exists():
            t = pq.read_table(p)
            check_schema_version(t.schema.metadata, str(p))
            rows.extend(table_to_rows(t))
    return rows


def build_manifest(run_dir: Path, run_info: dict, partitions: list[str]) -> dict:
    files, totals, reasons = [], collections.Counter(), collections.Counter()
    stage_seconds: collections.Counter = collections.Counter()
    for part in partitions:
        m = read_marker(run_dir, part)
        if m is None:
            raise ManifestError(f"{run_dir}: partition {part} is not complete; re-run to finish it")
        for f in m["files"]:
            path = run_dir / f["path"]
            files.append({**f, "sha256": sha256_file(path), "bytes": path.stat().st_size})
        totals.update(m["status"])
        reasons.update(m["reasons"])
        stage_seconds.update(m.get("stage_seconds", {}))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "toolkit_version": run_info.get("toolkit_version"),
        "config_name": run_info.get("config_name"),
        "config_sha256": run_info.get("config_sha256"),
        "data_root": run_info.get("data_root"),
        "run_id": run_info.get("run_id"),
        "partitions": len(partitions),
        "files": files,
        "totals": {k: int(totals.get(k, 0)) for k in ("ok", "filtered", "failed")},
        "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], str(kv[0])))),
        "stage_seconds": {k: round(v, 3) for k, v in stage_seconds.items()},
        "complete": True,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(run_dir / "manifest.json", manifest)
    return manifest


def read_manifest(run_dir: str | os.PathLike) -> dict:
    p = Path(run_dir) / "manifest.json"
    if not p.exists():
        raise ManifestError(
            f"{p} does not exist: the run is incomplete or this is not a run directory; "
            f"finish it with `anytalker curate run ... --output {run_dir}` (it resumes)"
        )
    m = json.loads(p.read_text())
    if not m.get("complete"):
        raise ManifestError(f"{p}: manifest is not marked complete; re-run the curation job")
    check_schema_version({b"schema_version": str(m.get("schema_version", "")).encode()}, str(p))
    return m


def read_rows(run_dir: str | os.PathLike, kind: str = "clips", verify: bool = True) -> list[dict]:
    """Rows of every ``kind`` file listed in the complete manifest (sha256 verified)."""
    run_dir = Path(run_dir)
    m = read_manifest(run_dir)
    rows: list[dict] = []
    for f in m["files"]:
        if f["kind"] != kind:
            continue
        path = run_dir / f["path"]
        if verify and sha256_file(path) != f["sha256"]:
            raise ManifestError(f"{path}: sha256 differs from manifest.json; the shard was modified or "
                                "is corrupt — re-run the curation job with --overwrite")
        t = pq.read_table(path)
        check_schema_version(t.schema.metadata, str(path))
        rows.extend(table_to_rows(t))
    return rows
