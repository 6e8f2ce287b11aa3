"""The one Parquet schema of curated shards (clips/ and rejects/ share it).

Row dicts from stages map onto it with ``rows_to_table``; keys the schema has no column for
are kept losslessly in the ``extra`` JSON column, so no stage output is ever dropped.
Bump ``SCHEMA_VERSION`` on any incompatible change; readers check it.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any, Iterable

import pyarrow as pa

SCHEMA_VERSION = "1.1"  # 1.1: attempts
# uuid5 namespace for clip ids: stable forever, so ids are comparable across runs and versions.
CLIP_NAMESPACE = uuid.UUID("5b0b7a8e-4c1e-5a57-9d1f-a17a1ca1e200")

PERSON_TYPE = pa.struct(
    [
        pa.field("index", pa.int32()),  # 0 = leftmost person
        pa.field("frames", pa.list_(pa.int64())),  # absolute source frame index of each box
        pa.field("boxes", pa.list_(pa.list_(pa.float32()))),  # [x1,y1,x2,y2] px, null = missed
        pa.field("ref_box", pa.list_(pa.float32())),  # box on the clip's first frame
        pa.field("face_size", pa.float32()),  # median box side, px
        pa.field("audio_ref", pa.string()),  # data-root-relative audio file, or "mix:<source>"
        pa.field("speaking_intervals", pa.list_(pa.list_(pa.float64()))),  # clip-relative s
        pa.field("speaking_s", pa.float64()),
        pa.field("sync_offset", pa.int32()),  # frames at 25 fps
        pa.field("sync_conf", pa.float64()),
        pa.field("sync_dist", pa.float64()),
    ]
)

INTERVAL_TYPE = pa.struct(
    [pa.field("start", pa.float64()), pa.field("end", pa.float64()), pa.field("speaker", pa.string())]
)

SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("source_path", pa.string(), nullable=False),  # relative to the data root
        pa.field("source_sha256", pa.string()),
        pa.field("partition", pa.string()),
        pa.field("status", pa.string(), nullable=False),  # ok | filtered | failed
        pa.field("reason", pa.string()),  # curation.base.Reason value
        pa.field("error_detail", pa.string()),
        pa.field("failed_stage", pa.string()),
        pa.field("attempts", pa.int32()),  # times the source has been run (bounded --retry-failed)
        pa.field("stage_versions", pa.string()),  # JSON {stage: version}
        # probe
        pa.field("container", pa.string()),
        pa.field("video_codec", pa.string()),
        pa.field("audio_codec", pa.string()),
        pa.field("has_audio", pa.bool_()),
        pa.field("audio_sample_rate", pa.int32()),
        pa.field("audio_channels", pa.int32()),
        pa.field("duration_s", pa.float64()),
        pa.field("fps", pa.float64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("num_frames", pa.int64()),
        # span (shots / clips); end is exclusive
        pa.field("shot_index", pa.int32()),
        pa.field("clip_index", pa.int32()),
        pa.field("start_frame", pa.int64()),
        pa.field("end_frame", pa.int64()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("clip_num_frames", pa.int64()),
        # camera motion
        pa.field("shake_score", pa.float64()),
        # faces
        pa.field("num_persons", pa.int32()),
        pa.field("frac_exact_n_faces", pa.float64()),
        pa.field("min_face_size", pa.float64()),
        pa.field("order_stable", pa.bool_()),
        pa.field("identity_swap", pa.bool_()),
        pa.field("persons", pa.list_(PERSON_TYPE)),
        # speech + sync
        pa.field("vad_backend", pa.string()),
        pa.field("diarization_backend", pa.string()),
        pa.field("speech_seed", pa.int64()),
        pa.field("speech_intervals", pa.list_(INTERVAL_TYPE)),
        pa.field("sync_backend", pa.string()),
        pa.field("sync_matrix", pa.list_(pa.list_(pa.float64()))),  # audio source x face (conf)
        pa.field("extra", pa.string()),  # JSON of every row key without a column
    ]
)

COLUMNS = tuple(SCHEMA.names)
_JSON_COLUMNS = {"stage_versions"}


def clip_id_for(source_key: str, start_frame: int | None, end_frame: int | None) -> str:
    """Deterministic id: uuid5 of the source's sha256 (or path when unreadable) and span."""
    span = "source" if start_frame is None else f"{int(start_frame)}-{int(end_frame)}"
    return str(uuid.uuid5(CLIP_NAMESPACE, f"{source_key}:{span}"))


def utf8_safe(text: str) -> str:
    """``text`` as valid UTF-8: a file name that is not UTF-8 (read by Python as lone surrogates,
    e.g. Latin-1 ``caf\xe9.mp4``) is stored with its raw bytes escaped (``caf\\xe9.mp4``) instead of
    failing the partition's Parquet write."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _jsonable(v: Any) -> Any:
    if isinstance(v, str):
        return utf8_safe(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "tolist"):  # numpy scalars / arrays
        return _jsonable(v.tolist())
    return v


def normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    """Row dict -> dict with exactly the schema's columns (extras folded into ``extra``)."""
    out: dict[str, Any] = {}
    extra = dict(json.loads(row["extra"])) if isinstance(row.get("extra"), str) else dict(row.get("extra") or {})
    for k, v in row.items():
        if k == "extra":
            continue
        if k in SCHEMA.names:
            out[k] = _jsonable(v)
        else:
            extra[k] = _jsonable(v)
    for k in _JSON_COLUMNS:
        if k in out and not isinstance(out[k], str) and out[k] is not None:
            out[k] = json.dumps(out[k], sort_keys=True)
    out["extra"] = json.dumps(extra, sort_keys=True) if extra else None
    for name in SCHEMA.names:
        out.setdefault(name, None)
    return out


def rows_to_table(rows: Iterable[dict[str, Any]], metadata: dict[str, str] | None = None) -> pa.Table:
    table = pa.Table.from_pylist([normalize_row(r) for r in rows], schema=SCHEMA)
    md = {b"schema_version": SCHEMA_VERSION.encode()}
    for k, v in (metadata or {}).items():
        md[k.encode()] = str(v).encode()
    return table.replace_schema_metadata(md)


def table_to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Inverse of ``rows_to_table``: extras are unfolded back into top-level keys."""
    rows = []
    for r in table.to_pylist():
        extra = json.loads(r.pop("extra") or "{}")
        for k in _JSON_COLUMNS:
            if r.get(k):
                r[k] = json.loads(r[k])
        r.update(extra)
        rows.append(r)
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
