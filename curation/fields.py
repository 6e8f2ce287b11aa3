"""Typed stage outputs: every column a stage writes is declared as a ``Field`` (Arrow type, unit,
one-line meaning), and ``encode`` is the one function that turns a stage's Python/numpy value
into the plain value of that Arrow type.

The stage adapter (``curation.base.run_stage_batch``) is the only caller of ``encode``, for
both executors, so rows are identical whether they travel through Ray or stay in-process, and
a value a stage cannot express in its declared type becomes that row's ``failed`` reason
instead of crashing a worker. ``pipelines.schema`` builds the shard schema from the same
declarations.

Conventions (also written into every shard's metadata):

* intervals have one shape everywhere: ``{start, end, speaker}`` in seconds relative to the
  row's ``start_s`` (``speaker`` null where it is implied, e.g. a person's own turns);
* frame indices are source frame indices (``fps`` of the source), end exclusive;
* per-person ``frames`` lists the source frame index of each analysed frame, sampled at the
  analysis rate (25 fps by default, ``analysis_fps``): a 24 fps source repeats about one
  source index in 24 (213 entries for 205 source frames), a 50 fps source skips every other.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

FRAMES_CONVENTION = (
    "persons.frames (and boxes, mouth_open aligned with it) lists the source frame index of each "
    "analysed frame, sampled at analysis_fps (25 by default); sources at other rates repeat or "
    "skip source indices (a 24 fps source repeats about one index in 24)"
)
INTERVAL_CONVENTION = "intervals are {start, end, speaker} in seconds relative to the row's start_s"


@dataclass(frozen=True)
class Field:
    """One declared output column: Arrow type, unit (None for unitless labels) and meaning."""

    type: pa.DataType
    unit: str | None = None
    doc: str = ""

    def arrow(self, name: str, nullable: bool = True) -> pa.Field:
        md = {}
        if self.unit:
            md[b"unit"] = self.unit.encode()
        if self.doc:
            md[b"doc"] = self.doc.encode()
        return pa.field(name, self.type, nullable=nullable, metadata=md or None)


def _f(name: str, type_: pa.DataType, unit: str | None = None, doc: str = "") -> pa.Field:
    return Field(type_, unit, doc).arrow(name)


INTERVAL = pa.struct([
    _f("start", pa.float64(), "s", "clip-relative start"),
    _f("end", pa.float64(), "s", "clip-relative end (exclusive)"),
    _f("speaker", pa.string(), None, "diarization label; null for a person's own turns"),
])
INTERVALS = pa.list_(INTERVAL)

PERSON = pa.struct([
    _f("index", pa.int32(), None, "0 = leftmost person"),
    _f("frames", pa.list_(pa.int64()), "frame", FRAMES_CONVENTION),
    _f("boxes", pa.list_(pa.list_(pa.float32())), "px", "[x1, y1, x2, y2] per analysed frame, null = missed"),
    _f("ref_box", pa.list_(pa.float32()), "px", "first detected box of the clip"),
    _f("face_size", pa.float32(), "px", "median box side"),
    _f("audio_ref", pa.string(), None, "data-root-relative audio file, or mix:<source_path>"),
    _f("speaking_intervals", INTERVALS, "s", INTERVAL_CONVENTION),
    _f("speaking_s", pa.float64(), "s", "total speaking time"),
    _f("sync_offset", pa.int32(), "frame@25fps", "audio-visual offset of the bound voice"),
    _f("sync_conf", pa.float64(), "sync backend scale", "lip-sync confidence of the bound voice"),
    _f("sync_dist", pa.float64(), "sync backend scale", "lip-sync distance at sync_offset"),
    _f("lip_motion", pa.float64(), "inter-ocular distance", "spread of the inner-lip opening"),
    _f("speech_frac", pa.float64(), "1", "speech share of the bound audio under the face (silero-vad)"),
    _f("static_mouth", pa.bool_(), None, "lips do not move: the face does not talk"),
])


class EncodeError(TypeError):
    pass


def _plain(v: Any) -> Any:
    if isinstance(v, enum.Enum):
        return v.value
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy scalars and arrays
        return v.tolist()
    return v


def encode(value: Any, type_: pa.DataType, where: str = "") -> Any:
    """``value`` as plain Python of Arrow type ``type_`` (non-finite floats become null)."""
    v = _plain(value)
    if v is None:
        return None
    t = type_
    if pa.types.is_floating(t):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EncodeError(f"{where}: expected a number, got {type(value).__name__}")
        f = float(v)
        return f if math.isfinite(f) else None
    if pa.types.is_integer(t):
        if isinstance(v, float):
            if not math.isfinite(v):
                return None
            if not v.is_integer():
                raise EncodeError(f"{where}: expected an integer, got {v!r}")
            return int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise EncodeError(f"{where}: expected an integer, got {type(value).__name__}")
        return v
    if pa.types.is_boolean(t):
        if not isinstance(v, bool):
            raise EncodeError(f"{where}: expected a bool, got {type(value).__name__}")
        return v
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if not isinstance(v, str):
            raise EncodeError(f"{where}: expected a string, got {type(value).__name__}")
        return v
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        if not isinstance(v, (list, tuple)):
            raise EncodeError(f"{where}: expected a list, got {type(value).__name__}")
        vt = t.value_type
        # plain floats into a float list and plain ints into an integer list (per-frame
        # signals, landmarks: most of a row's values) take the short way, with the same result
        # as ``encode``; anything else, and every error, goes through ``encode`` with its path
        if pa.types.is_floating(vt):
            return [(x if math.isfinite(x) else None) if type(x) is float else encode(x, vt, f"{where}[{i}]")
                    for i, x in enumerate(v)]
        if pa.types.is_integer(vt):
            return [x if type(x) is int else encode(x, vt, f"{where}[{i}]") for i, x in enumerate(v)]
        return [encode(x, vt, f"{where}[{i}]") for i, x in enumerate(v)]
    if pa.types.is_struct(t):
        if not isinstance(v, dict):
            raise EncodeError(f"{where}: expected a struct (dict), got {type(value).__name__}")
        names = {t.field(i).name for i in range(t.num_fields)}
        unknown = sorted(set(map(str, v)) - names)
        if unknown:
            raise EncodeError(f"{where}: undeclared key(s) {unknown}; declared: {sorted(names)}")
        return {t.field(i).name: encode(v.get(t.field(i).name), t.field(i).type, f"{where}.{t.field(i).name}")
                for i in range(t.num_fields)}
    if pa.types.is_map(t):
        if not isinstance(v, dict):
            raise EncodeError(f"{where}: expected a map (dict), got {type(value).__name__}")
        return {str(k): encode(x, t.item_type, f"{where}[{k}]") for k, x in v.items()}
    raise EncodeError(f"{where}: no encoder for Arrow type {t}")


def flat_units(name: str, type_: pa.DataType, unit: str | None, out: dict[str, str]) -> None:
    """``{"persons.boxes": "px", ...}``: the unit of every (nested) field that has one."""
    if unit:
        out[name] = unit
    t = type_
    while pa.types.is_list(t) or pa.types.is_large_list(t):
        t = t.value_type
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            f = t.field(i)
            u = (f.metadata or {}).get(b"unit")
            flat_units(f"{name}.{f.name}", f.type, u.decode() if u else None, out)
