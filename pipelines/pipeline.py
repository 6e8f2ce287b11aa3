"""Pipeline configs: YAML -> ordered, contract-checked stage list."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curation.base import Stage, StageConfigError, check_contracts
from pipelines.registry import build_stage

CONFIG_DIR = Path(__file__).parent / "configs"
# columns every source row has before the first stage (set by the runner)
SOURCE_COLUMNS = ("source_path", "source_abs_path", "partition", "status")


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


def resolve_config_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.exists():
        return p
    for cand in (CONFIG_DIR / f"{name_or_path}", CONFIG_DIR / f"{name_or_path}.yaml"):
        if cand.exists():
            return cand
    known = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))
    raise StageConfigError(f"{name_or_path}: no such pipeline config file; built-in configs: {known}")


def load_config(name_or_path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> PipelineConfig:
    path = resolve_config_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise StageConfigError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise StageConfigError(f"{path}: needs a non-empty 'stages' list")
    raw = copy.deepcopy(raw)
    for st in raw["stages"]:
        if not isinstance(st, dict) or "name" not in st:
            raise StageConfigError(f"{path}: every stage needs a 'name' (got {st!r})")
        st.setdefault("params", {})
        st["params"] = {**(st["params"] or {}), **((overrides or {}).get(st["name"], {}))}
    return PipelineConfig(
        name=raw.get("name", path.stem),
        stages=raw["stages"],
        partition_size=int(raw.get("partition_size", 4)),
        batch_size=int(raw.get("batch_size", 1)),
        raw=raw,
    )


def build_stages(cfg: PipelineConfig) -> list[Stage]:
    stages = [build_stage(st["name"], st.get("params")) for st in cfg.stages]
    check_contracts(stages, SOURCE_COLUMNS)
    return stages


def describe(cfg: PipelineConfig) -> str:
    stages = build_stages(cfg)
    lines = [f"pipeline {cfg.name} (config sha256 {cfg.sha256[:12]}, partition_size {cfg.partition_size})"]
    for i, st in enumerate(stages, 1):
        d = st.describe()
        mode = "actor pool" if st.uses_model else "tasks"
        lines.append(f"{i}. {d['name']} v{d['version']}  cpus={d['resources']['cpus']} gpus={d['resources']['gpus']} ({mode})")
        lines.append(f"     requires: {', '.join(d['requires']) or '-'}")
        lines.append(f"     produces: {', '.join(d['produces']) or '-'}")
        params = ", ".join(f"{k}={v}" for k, v in d["config"].items())
        lines.append(f"     params:   {params or '-'}")
    return "\n".join(lines)
