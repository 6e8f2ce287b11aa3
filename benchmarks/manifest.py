"""Benchmark manifests: what a submission must contain and what each item is scored against.

Two on-disk formats load into one in-memory ``Manifest``:

- ``anytalker-benchmark-manifest/1`` (``benchmarks/<name>/<version>/manifest.json``): multi-person
  items with one audio track per person (InteractiveEyes);
- ``anytalker-single-person-manifest/1``: a user's own HDTF-style set, one reference image and one
  audio track per item (schema: ``benchmarks/schemas/single_person_manifest.schema.json``).

Both are validated with their JSON schema (``jsonschema``) before use; a broken manifest is a
``UserError`` naming the file and the failing field.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from kernel.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent
SCHEMA_DIR = PACKAGE_DIR / "schemas"
BENCHMARK_FORMAT = "anytalker-benchmark-manifest/1"
SINGLE_PERSON_FORMAT = "anytalker-single-person-manifest/1"

# defaults for a single-person manifest that does not state its protocol
DEFAULT_PROTOCOL = {
    "video_file_pattern": "{item_id}.mp4",
    "fps_min": 15.0,
    "fps_max": 60.0,
    "min_duration_slack_s": 0.25,
    "max_extra_duration_s": 2.0,
    "audio_track_required": True,
    "min_width": 64,
    "min_height": 64,
}


@dataclass
class DataFile:
    """One data file (audio track or reference image); any listed copy (path, sha256) verifies."""

    copies: list[tuple[str, str]]  # (path relative to the audio root, sha256 or "" when unpinned)
    duration_s: float | None = None

    @property
    def path(self) -> str:
        return self.copies[0][0]


@dataclass
class Person:
    index: int
    side: str | None
    speaking_intervals: list[list[float]]  # raw values as stored (see Manifest.interval_format)
    audio: DataFile


@dataclass
class Item:
    item_id: str
    video_file: str
    num_persons: int
    persons: list[Person]
    audio_duration_s: float | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    reference: DataFile | None = None  # reference image (single-person sets)
    real_video: str | None = None


@dataclass
class Manifest:
    benchmark: str
    version: str
    format: str
    path: Path
    sha256: str
    protocol: dict
    interval_format: str
    items: list[Item]
    data_root: Path | None = None  # where relative audio/reference paths resolve (single-person sets)
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def item_ids(self) -> list[str]:
        return [it.item_id for it in self.items]

    def item(self, item_id: str) -> Item:
        for it in self.items:
            if it.item_id == item_id:
                return it
        raise KeyError(item_id)

    def select(self, item_ids: list[str] | None) -> list[Item]:
        """The items to check/score: all, or the ``--items`` subset (unknown ids are an error)."""
        if not item_ids:
            return list(self.items)
        known = set(self.item_ids)
        unknown = [i for i in item_ids if i not in known]
        if unknown:
            raise UserError(f"{self.path}: unknown item id(s) {', '.join(unknown)}; "
                            f"valid ids: {self.items[0].item_id} ... {self.items[-1].item_id}")
        wanted = set(item_ids)
        return [it for it in self.items if it.item_id in wanted]


def parse_items_option(text: str | None) -> list[str] | None:
    """``--items a,b,c`` -> ["a", "b", "c"] (None when not given)."""
    if not text:
        return None
    ids = [t.strip() for t in text.split(",") if t.strip()]
    return ids or None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def schema_errors(doc, schema_name: str) -> list[str]:
    """Schema violations as readable strings, "<field path>: <message>" (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema(schema_name))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}" for e in errors]


def validate_json(doc, schema_name: str, source: str | os.PathLike) -> None:
    """Raise ``UserError`` listing the schema violations (first 20)."""
    errors = schema_errors(doc, schema_name)
    if errors:
        raise UserError(f"{source}: does not follow {schema_name}: " + "; ".join(errors[:20])
                        + "; fix these fields (see docs/benchmarks.md)")


def benchmark_dir(benchmark: str, version: str) -> Path:
    d = PACKAGE_DIR / benchmark / version
    if not (d / "manifest.json").is_file():
        available = sorted(f"{p.parent.parent.name} {p.parent.name}" for p in PACKAGE_DIR.glob("*/*/manifest.json"))
        raise UserError(f"{d / 'manifest.json'}: no such benchmark version; available: "
                        f"{', '.join(available) or 'none'} (or pass --manifest PATH)")
    return d


def load_benchmark(benchmark: str = "interactive_eyes", version: str = "v1") -> Manifest:
    return load_manifest(benchmark_dir(benchmark, version) / "manifest.json")


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Load either manifest format (chosen by its ``format`` field)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: manifest not found; pass an existing manifest.json") from None
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e}); fix the manifest") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt == BENCHMARK_FORMAT:
        return _load_benchmark_manifest(doc, path, sha256_bytes(data))
    if fmt == SINGLE_PERSON_FORMAT:
        return _load_single_person_manifest(doc, path, sha256_bytes(data))
    raise UserError(f"{path}: unknown manifest format {fmt!r}; expected {BENCHMARK_FORMAT!r} "
                    f"or {SINGLE_PERSON_FORMAT!r} in the 'format' field")


def _load_benchmark_manifest(doc: dict, path: Path, digest: str) -> Manifest:
    validate_json(doc, "benchmark_manifest.schema.json", path)
    items = []
    for it in doc["items"]:
        persons = []
        for p in sorted(it["persons"], key=lambda p: p["index"]):
            a = p["audio"]
            copies = [(a["path"], a["sha256"])]
            if a.get("original"):
                copies.append((a["original"]["path"], a["original"]["sha256"]))
            persons.append(Person(p["index"], p.get("side"), p["speaking_intervals"],
                                  DataFile(copies, a.get("duration_s"))))
        items.append(Item(it["item_id"], it["video_file"], it["num_persons"], persons,
                          it.get("audio_duration_s"), it.get("min_duration_s"), it.get("max_duration_s")))
    _check_unique(items, path)
    return Manifest(doc["benchmark"], doc["version"], BENCHMARK_FORMAT, path, digest,
                    {**DEFAULT_PROTOCOL, **doc["protocol"]},
                    (doc.get("intervals") or {}).get("default_format", "seconds"), items, raw=doc)


def _load_single_person_manifest(doc: dict, path: Path, digest: str) -> Manifest:
    validate_json(doc, "single_person_manifest.schema.json", path)
    protocol = {**DEFAULT_PROTOCOL, **(doc.get("protocol") or {})}
    root = (path.parent / doc.get("root", ".")).resolve()
    items = []
    for it in doc["items"]:
        dur = it.get("audio_duration_s")
        if dur is None:
            dur = _probe_duration(root / it["audio"])
        intervals = it.get("speaking_intervals")
        if intervals is None:  # a single talking head speaks throughout unless told otherwise
            intervals = [[0.0, dur]] if dur else []
        person = Person(0, None, intervals, DataFile([(it["audio"], it.get("audio_sha256", ""))], dur))
        items.append(Item(
            it["item_id"], protocol["video_file_pattern"].format(item_id=it["item_id"]), 1, [person], dur,
            round(dur - protocol["min_duration_slack_s"], 3) if dur else None,
            round(dur + protocol["max_extra_duration_s"], 3) if dur else None,
            reference=DataFile([(it["reference"], it.get("reference_sha256", ""))]),
            real_video=it.get("real_video"),
        ))
    _check_unique(items, path)
    return Manifest(doc["name"], doc["version"], SINGLE_PERSON_FORMAT, path, digest, protocol, "seconds",
                    items, data_root=root, raw=doc)


def _probe_duration(audio: Path) -> float | None:
    from curation.media import MediaError, probe

    try:
        return probe(audio).duration_s
    except (MediaError, OSError):
        return None  # reported as a missing/unreadable audio file when scoring


def _check_unique(items: list[Item], path: Path) -> None:
    seen: set[str] = set()
    for it in items:
        if it.item_id in seen:
            raise UserError(f"{path}: item id {it.item_id!r} appears twice; make item ids unique")
        seen.add(it.item_id)
