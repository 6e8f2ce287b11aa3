"""Read curated clip rows from a run directory, only through its complete manifest.

All reading goes through ``pipelines.shards`` (sha256 of every listed file and the schema
version are verified there), so training never sees a partially written or foreign shard.
"""

from __future__ import annotations

import json
from pathlib import Path

from kernel.media import sha256_file
from pipelines import shards as engine_shards
from pipelines.schema import SchemaVersionError


class ShardError(RuntimeError):
    """The run directory cannot be used for training; the message names the file and the fix."""


def read_clip_rows(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """(manifest, rows of kind 'clips') for a complete run directory."""
    run_dir = Path(run_dir)
    try:
        manifest = engine_shards.read_manifest(run_dir)
        rows = engine_shards.read_rows(run_dir, kind="clips")
    except (engine_shards.ManifestError, SchemaVersionError, FileNotFoundError) as e:
        raise ShardError(str(e)) from e
    except json.JSONDecodeError as e:
        raise ShardError(f"{run_dir / 'manifest.json'}: not valid JSON ({e}); re-run the curation job") from e
    return manifest, rows


def write_test_run(run_dir: str | Path, rows: list[dict], data_root: str | Path) -> Path:
    """Write ``rows`` as one clips shard plus a complete manifest (the engine's format).

    For tests and for hand-made training sets; production shards come from ``anytalker curate``.
    """
    import pyarrow.parquet as pq_w

    from kernel import __version__
    from pipelines.schema import SCHEMA_VERSION, rows_to_table

    run_dir = Path(run_dir)
    (run_dir / "clips").mkdir(parents=True, exist_ok=True)
    rel = "clips/part-00000.parquet"
    pq_w.write_table(rows_to_table(rows), run_dir / rel)
    status = [r.get("status", "ok") for r in rows]
    manifest = {
        "schema_version": SCHEMA_VERSION, "toolkit_version": __version__,
        "data_root": str(Path(data_root).resolve()), "config_sha256": None,
        "files": [{"path": rel, "kind": "clips", "rows": len(rows), "sha256": sha256_file(run_dir / rel)}],
        "totals": {s: status.count(s) for s in ("ok", "filtered", "failed")}, "reasons": {}, "complete": True,
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run_dir
