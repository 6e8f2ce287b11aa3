"""Name -> metric class. Modules are imported on first use so ``list_metrics`` stays cheap."""

from __future__ import annotations

import importlib

from metrics.base import Metric

_METRICS: dict[str, str] = {
    "sync_c": "metrics.sync:SyncC",
    "sync_d": "metrics.sync:SyncD",
    "sync_c_star": "metrics.sync:SyncCStar",
    "lipsync_judge": "metrics.sync:LipSyncJudge",
    "lipsync_judge_star": "metrics.sync:LipSyncJudgeStar",
    "identity": "metrics.identity:IdentitySimilarity",
    "interactivity": "metrics.interactivity:Interactivity",
    "fid": "metrics.frechet:FID",
    "fvd": "metrics.frechet:FVD",
}


def metric_names() -> list[str]:
    return list(_METRICS)


def metric_class(name: str) -> type[Metric]:
    """The metric's class (its params, backends, direction) without building it."""
    if name not in _METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(_METRICS)}")
    module, cls = _METRICS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def list_metrics() -> list[dict]:
    rows = []
    for name in _METRICS:
        cls = metric_class(name)
        rows.append({
            "name": name,
            "version": cls.version,
            "higher_is_better": cls.higher_is_better,
            "backends": list(cls.backends),
            "requires": list(cls.requires),
            "description": cls.description,
        })
    return rows


def get_metric(name: str, **options) -> Metric:
    """Build a metric; ``options`` override its params (e.g. backend="syncnet", weights=path)."""
    return metric_class(name)(**options)
