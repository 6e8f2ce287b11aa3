"""Pipeline configs: YAML -> ordered, contract-checked stage list and its shard schema.

A config may start from another one with ``extends: <name or path>``; it then lists only what
differs: top-level keys replace the base's, and each entry of ``stages`` patches the base stage
of the same name (its ``params`` are merged over the base's). A stage the base does not have is
inserted with ``after: <stage name>``; ``drop: true`` removes a base stage.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import pyarrow as pa

from curation.base import Stage, StageConfigError, check_contracts
from pipelines.registry import build_stage, stage_class
from pipelines.schema import SchemaConflictError, schema_for

CONFIG_DIR = Path(__file__).parent / "configs"
# columns every source row has before the first stage (set by the runner)
SOURCE_COLUMNS = ("source_path", "source_abs_path", "source_sha256", "partition", "status")


@dataclass
class PipelineConfig:
    name: str
    stages: list[dict[str, Any]]
    partition_size: int = 4
    batch_size: int = 1
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()

    @property
    def schema(self) -> pa.Schema:
        """The shard schema: bookkeeping columns plus every field the stages declare."""
        return schema_for([stage_class(st["name"]) for st in self.stages])


def resolve_config_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.exists():
        return p
    for cand in (CONFIG_DIR / f"{name_or_path}", CONFIG_DIR / f"{name_or_path}.yaml"):
        if cand.exists():
            return cand
    known = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))
    raise StageConfigError(f"{name_or_path}: no such pipeline config file; built-in configs: {known}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise StageConfigError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise StageConfigError(f"{path}: a pipeline config is a mapping with 'name' and 'stages'")
    return raw


def _merge_stages(base: list[dict], patches: list, path: Path) -> list[dict]:
    stages = copy.deepcopy(base)
    for patch in patches:
        if not isinstance(patch, dict) or "name" not in patch:
            raise StageConfigError(f"{path}: every stage needs a 'name' (got {patch!r})")
        names = [st["name"] for st in stages]
        if patch["name"] in names:
            i = names.index(patch["name"])
            if patch.get("drop"):
                del stages[i]
                continue
            stages[i]["params"] = {**(stages[i].get("params") or {}), **(patch.get("params") or {})}
        elif patch.get("after") in names:
            stages.insert(names.index(patch["after"]) + 1,
                          {"name": patch["name"], "params": dict(patch.get("params") or {})})
        else:
            raise StageConfigError(
                f"{path}: stage {patch['name']!r} is not in the base config ({names}); add "
                f"'after: <stage>' to insert it")
    return stages


def _resolve(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The config at ``path`` with its ``extends`` chain applied."""
    raw = _read_yaml(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    local = [c for c in (path.parent / str(parent), path.parent / f"{parent}.yaml") if c.is_file()]
    try:
        base_path = local[0] if local else resolve_config_path(str(parent))
    except StageConfigError as e:
        raise StageConfigError(f"{path}: extends {parent!r}: {e}") from None
    if base_path.resolve() in seen:
        raise StageConfigError(f"{path}: 'extends' forms a cycle through {base_path}")
    base = _resolve(base_path, seen + (path.resolve(),))
    out = {**base, **{k: v for k, v in raw.items() if k != "stages"}}
    out["stages"] = _merge_stages(base.get("stages") or [], raw.get("stages") or [], path)
    return out


def load_config(name_or_path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> PipelineConfig:
    path = resolve_config_path(name_or_path)
    raw = _resolve(path)
    if not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise StageConfigError(f"{path}: needs a non-empty 'stages' list")
    raw = copy.deepcopy(raw)
    for st in raw["stages"]:
        if not isinstance(st, dict) or "name" not in st:
            raise StageConfigError(f"{path}: every stage needs a 'name' (got {st!r})")
        st.setdefault("params", {})
        st["params"] = {**(st["params"] or {}), **((overrides or {}).get(st["name"], {}))}
    raw.setdefault("name", path.stem)
    cfg = PipelineConfig(
        name=raw["name"],
        stages=raw["stages"],
        partition_size=int(raw.get("partition_size", 4)),
        batch_size=int(raw.get("batch_size", 1)),
        raw=raw,
    )
    build_stages(cfg)  # contracts, cross-stage parameters and the schema are checked at load
    return cfg


def build_stages(cfg: PipelineConfig) -> list[Stage]:
    """The configured stages, contract-checked: each stage's requirements come from earlier
    stages, parameters that depend on another stage agree with it (``Stage.check_upstream``),
    and the declared fields form one schema."""
    stages = [build_stage(st["name"], st.get("params")) for st in cfg.stages]
    check_contracts(stages, SOURCE_COLUMNS)
    try:
        schema_for(stages)
    except SchemaConflictError as e:
        raise StageConfigError(f"pipeline {cfg.name!r}: {e}") from None
    return stages


def describe(cfg: PipelineConfig) -> str:
    stages = build_stages(cfg)
    lines = [f"pipeline {cfg.name} (config sha256 {cfg.sha256[:12]}, partition_size {cfg.partition_size})"]
    lines.append("executors run every stage of a clip in one worker (Ray: one actor pool per resource class, "
                 "stages set up once per actor)")
    for i, st in enumerate(stages, 1):
        d = st.describe()
        lines.append(f"{i}. {d['name']} v{d['version']}  cpus={d['resources']['cpus']} gpus={d['resources']['gpus']}")
        lines.append(f"     requires: {', '.join(d['requires']) or '-'}")
        lines.append(f"     produces: {', '.join(d['produces']) or '-'}")
        fields = ", ".join(f"{k}:{f.type}" + (f" [{f.unit}]" if f.unit else "") for k, f in st.fields.items()
                           if not str(f.type).startswith(("list<item: struct", "struct")))
        nested = [k for k, f in st.fields.items() if str(f.type).startswith(("list<item: struct", "struct"))]
        lines.append(f"     fields:   {fields or '-'}" + (f"; nested: {', '.join(nested)} (docs/shards.md)" if nested else ""))
        params = ", ".join(f"{k}={v}" for k, v in d["config"].items())
        lines.append(f"     params:   {params or '-'}")
    return "\n".join(lines)
