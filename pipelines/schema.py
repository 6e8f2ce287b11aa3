"""The Parquet schema of curated shards, generated from the stages of the pipeline.

Columns: the run's bookkeeping (``BASE_FIELDS``), then every field the stages declare
(``Stage.fields``, in pipeline order; a field two stages write must have one type), then
``stage_versions`` and ``stage_seconds`` as structs with one member per stage. clips/ and
rejects/ share the schema. There is no catch-all column: a stage key without a declaration
fails the row in the adapter (``curation.base``), before it could reach a shard.

Every field carries its unit and meaning in its Arrow field metadata (``unit``, ``doc``); the
file metadata repeats the units as one JSON map (``units``), names the data root the relative
``source_path`` values point into (``data_root`` as given, ``data_root_abs``), and states the
conventions for frames and intervals (``conventions``; see docs/shards.md).
Bump ``SCHEMA_VERSION`` on any incompatible change; readers check it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterable, Sequence

import pyarrow as pa

from curation.base import ROW_FIELDS, Stage
from curation.fields import FRAMES_CONVENTION, INTERVAL_CONVENTION, Field, flat_units

SCHEMA_VERSION = "2.0"
# uuid5 namespace for clip ids: stable forever, so ids are comparable across runs and versions.
CLIP_NAMESPACE = uuid.UUID("5b0b7a8e-4c1e-5a57-9d1f-a17a1ca1e200")

# set by the runner before the first stage (source_abs_path is run-local and never stored)
SOURCE_FIELDS: dict[str, Field] = {
    "source_path": Field(pa.string(), None, "relative to the data root in the file metadata"),
    "source_sha256": Field(pa.string(), None, "sha256 of the source bytes"),
    "partition": Field(pa.string(), None, "run partition the row was written in"),
}
BASE_FIELDS: dict[str, Field] = {
    "clip_id": Field(pa.string(), None, "uuid5 of source sha256 and span: stable across runs"),
    **SOURCE_FIELDS,
    **ROW_FIELDS,
    "attempts": Field(pa.int32(), None, "times the source has been run (bounded --retry-failed)"),
}
_REQUIRED = {"clip_id", "source_path", "status"}
RUN_LOCAL_KEYS = ("source_abs_path",)
CONVENTIONS = {"frames": FRAMES_CONVENTION, "intervals": INTERVAL_CONVENTION,
               "frame_index": "source frame indices; end_frame is exclusive",
               "fps": "persons.frames are sampled at analysis_fps (25 by default), not at the source fps"}


def clip_id_for(source_key: str, start_frame: int | None, end_frame: int | None) -> str:
    """Deterministic id: uuid5 of the source's sha256 (or path when unreadable) and span."""
    span = "source" if start_frame is None else f"{int(start_frame)}-{int(end_frame)}"
    # a key holding a non-UTF-8 file name (a duplicate's path) is hashed as its shard value
    return str(uuid.uuid5(CLIP_NAMESPACE, utf8_safe(f"{source_key}:{span}")))


class SchemaConflictError(ValueError):
    pass


def utf8_safe(text: str) -> str:
    """``text`` as valid UTF-8: a file name that is not UTF-8 (read by Python as lone surrogates,
    e.g. Latin-1 ``caf\xe9.mp4``) is stored with its raw bytes escaped (``caf\\xe9.mp4``) instead of
    failing the partition's Parquet write."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _utf8_values(v: Any) -> Any:
    if isinstance(v, str):
        return utf8_safe(v)
    if isinstance(v, dict):
        return {k: _utf8_values(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_utf8_values(x) for x in v]
    return v


def stage_fields(stages: Sequence[Stage | type[Stage]]) -> dict[str, Field]:
    """Every declared field of the pipeline, in order; two declarations of a name must agree."""
    out: dict[str, Field] = {}
    owner: dict[str, str] = {}
    for st in stages:
        for name, f in st.fields.items():
            if name in BASE_FIELDS:
                if BASE_FIELDS[name].type != f.type:
                    raise SchemaConflictError(f"stage {st.name!r} declares {name!r} as {f.type}; the runner's "
                                              f"column has type {BASE_FIELDS[name].type}")
                continue
            if name in out and out[name].type != f.type:
                raise SchemaConflictError(
                    f"stages {owner[name]!r} and {st.name!r} declare {name!r} as {out[name].type} and {f.type}; "
                    "one column has one type")
            if name not in out:
                out[name], owner[name] = f, st.name
    return out


def schema_for(stages: Sequence[Stage | type[Stage]]) -> pa.Schema:
    names = list(dict.fromkeys(st.name for st in stages))
    fields = [f.arrow(n, nullable=n not in _REQUIRED) for n, f in BASE_FIELDS.items()]
    fields += [f.arrow(n) for n, f in stage_fields(stages).items()]
    fields.append(Field(pa.struct([pa.field(n, pa.string()) for n in names]), None,
                        "version of each stage that processed the row").arrow("stage_versions"))
    fields.append(Field(pa.struct([pa.field(n, pa.float64()) for n in names]), "s",
                        "wall time per stage (a batch's time shared over its rows); varies run to run")
                  .arrow("stage_seconds"))
    return pa.schema(fields)


def units_of(schema: pa.Schema) -> dict[str, str]:
    units: dict[str, str] = {}
    for f in schema:
        u = (f.metadata or {}).get(b"unit")
        flat_units(f.name, f.type, u.decode() if u else None, units)
    return units


def schema_metadata(schema: pa.Schema, metadata: dict[str, Any] | None = None) -> dict[bytes, bytes]:
    md = {b"schema_version": SCHEMA_VERSION.encode(),
          b"units": json.dumps(units_of(schema), sort_keys=True).encode(),
          b"conventions": json.dumps(CONVENTIONS, sort_keys=True).encode()}
    for k, v in (metadata or {}).items():
        md[k.encode()] = (v if isinstance(v, str) else json.dumps(v, sort_keys=True)).encode()
    return md


def _row_for(row: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    unknown = sorted(k for k in row if k not in schema.names and k not in RUN_LOCAL_KEYS)
    if unknown:
        raise SchemaConflictError(f"row of {row.get('source_path')!r} has key(s) {unknown} that no stage of the "
                                  "pipeline declares")
    return {n: _utf8_values(row.get(n)) for n in schema.names}


def default_schema() -> pa.Schema:
    """The schema of a pipeline made of every registered stage (for hand-made shards)."""
    from pipelines.registry import STAGES, stage_class

    return schema_for([stage_class(n) for n in STAGES])


def with_fields(schema: pa.Schema, fields: dict[str, Field]) -> pa.Schema:
    """``schema`` plus declared ``fields`` (for shards written outside a pipeline, e.g. a
    hand-made training set with a column of its own)."""
    for name, f in fields.items():
        if name in schema.names:
            if schema.field(name).type != f.type:
                raise SchemaConflictError(f"{name!r} is {schema.field(name).type} in the schema, not {f.type}")
            continue
        schema = schema.append(f.arrow(name))
    return schema


def rows_to_table(rows: Iterable[dict[str, Any]], schema: pa.Schema | None = None,
                  metadata: dict[str, Any] | None = None) -> pa.Table:
    schema = schema or default_schema()
    table = pa.Table.from_pylist([_row_for(r, schema) for r in rows], schema=schema)
    return table.replace_schema_metadata(schema_metadata(schema, metadata))


def table_to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts; ``stage_versions``/``stage_seconds`` keep only the stages that ran."""
    rows = table.to_pylist()
    for r in rows:
        for k in ("stage_versions", "stage_seconds"):
            if isinstance(r.get(k), dict):
                r[k] = {s: v for s, v in r[k].items() if v is not None}
    return rows


class SchemaVersionError(RuntimeError):
    pass


def check_schema_version(metadata: dict[bytes, bytes] | None, path: str = "") -> None:
    found = (metadata or {}).get(b"schema_version", b"").decode() or "missing"
    if found.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SchemaVersionError(
            f"{path}: shard schema_version {found}, this toolkit reads {SCHEMA_VERSION}; "
            "re-run the curation job with this toolkit version (anytalker curate run ... --overwrite)"
        )
