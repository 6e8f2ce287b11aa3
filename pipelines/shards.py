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
import hashlib
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.schema import SCHEMA_VERSION, check_schema_version, rows_to_table, table_to_rows
from pipelines.storage import Storage

KINDS = ("clips", "rejects")


class ManifestError(RuntimeError):
    pass


def storage(run: Any) -> Storage:
    return run if isinstance(run, Storage) else Storage(run)


def marker_rel(partition: str) -> str:
    return f"_markers/{partition}.json"


def clean_partition(store: Storage, partition: str) -> list[str]:
    """Remove every file (finished or temporary) of an incomplete partition."""
    removed = []
    for k in KINDS:
        for name in store.listdir(k):
            if name == f"{partition}.parquet" or name.startswith(f".{partition}.parquet.tmp-"):
                store.delete(f"{k}/{name}")
                removed.append(f"{k}/{name}")
    return removed


def write_partition(store: Storage, partition: str, rows: list[dict], metadata: dict[str, str],
                    inputs: list[str], seconds: float, extra: dict | None = None) -> dict:
    """Write the partition's clips/rejects files, then its completion marker. Returns the marker."""
    files = []
    by_kind = {"clips": [r for r in rows if r.get("status") == "ok"],
               "rejects": [r for r in rows if r.get("status") != "ok"]}
    for kind, krows in by_kind.items():
        rel = f"{kind}/{partition}.parquet"
        if not krows:
            store.delete(rel)
            continue
        table = rows_to_table(krows, metadata={**metadata, "partition": partition})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        store.write_bytes(rel, data)
        files.append({"path": rel, "kind": kind, "rows": len(krows),
                      "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    status = collections.Counter(r.get("status") for r in rows)
    reasons = collections.Counter(r.get("reason") for r in rows if r.get("status") != "ok")
    marker = {
        "partition": partition, "inputs": inputs, "files": files, "rows": len(rows),
        "status": dict(status), "reasons": dict(reasons), "seconds": round(seconds, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(extra or {}),
    }
    store.write_json(marker_rel(partition), marker)
    return marker


def read_marker(store: Storage, partition: str) -> dict | None:
    rel = marker_rel(partition)
    try:
        m = store.read_json(rel)
    except (FileNotFoundError, OSError, ValueError):
        return None
    # a marker whose files vanished is not a completion
    if not all(store.is_file(f["path"]) for f in m.get("files", [])):
        return None
    return m


def _read_table(store: Storage, rel: str):
    # use_threads=False: pyarrow 25's threaded reader over an in-memory buffer can leave a thread
    # behind that aborts the interpreter at exit ("terminate called without an active exception")
    t = pq.read_table(pa.BufferReader(store.read_bytes(rel)), use_threads=False)
    check_schema_version(t.schema.metadata, store.path(rel))
    return t


def read_partition_rows(store: Storage, partition: str) -> list[dict]:
    rows: list[dict] = []
    for k in KINDS:
        rel = f"{k}/{partition}.parquet"
        if store.is_file(rel):
            rows.extend(table_to_rows(_read_table(store, rel)))
    return rows


def build_manifest(store: Storage, run_info: dict, partitions: list[str]) -> dict:
    files, totals, reasons = [], collections.Counter(), collections.Counter()
    stage_seconds: collections.Counter = collections.Counter()
    for part in partitions:
        m = read_marker(store, part)
        if m is None:
            raise ManifestError(f"{store}: partition {part} is not complete; re-run to finish it")
        for f in m["files"]:
            files.append({**f, "sha256": store.sha256(f["path"]), "bytes": store.size(f["path"])})
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
        # paths found under the input that are not rows (by reason), so that none vanishes
        "skipped": run_info.get("skipped") or {"total": 0, "by_reason": {}, "examples": {}},
        "complete": True,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store.write_json("manifest.json", manifest)
    return manifest


def read_manifest(run_dir: Any) -> dict:
    store = storage(run_dir)
    if not store.is_file("manifest.json"):
        raise ManifestError(
            f"{store.path('manifest.json')} does not exist: the run is incomplete or this is not a run "
            f"directory; finish it with `anytalker curate run ... --output {run_dir}` (it resumes)"
        )
    m = store.read_json("manifest.json")
    if not m.get("complete"):
        raise ManifestError(f"{store.path('manifest.json')}: manifest is not marked complete; re-run the curation job")
    check_schema_version({b"schema_version": str(m.get("schema_version", "")).encode()},
                         store.path("manifest.json"))
    return m


def read_rows(run_dir: Any, kind: str = "clips", verify: bool = True) -> list[dict]:
    """Rows of every ``kind`` file listed in the complete manifest (sha256 verified)."""
    store = storage(run_dir)
    m = read_manifest(store)
    rows: list[dict] = []
    for f in m["files"]:
        if f["kind"] != kind:
            continue
        if verify and store.sha256(f["path"]) != f["sha256"]:
            raise ManifestError(f"{store.path(f['path'])}: sha256 differs from manifest.json; the shard was "
                                "modified or is corrupt — re-run the curation job with --overwrite")
        rows.extend(table_to_rows(_read_table(store, f["path"])))
    return rows
