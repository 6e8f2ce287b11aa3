"""Executors run a pipeline's stages over the rows of one partition.

Both give identical rows for the same input: rows travel as JSON through Ray, and the output
order is normalised by ``sort_rows``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from curation.base import Row, Stage, run_stage_batch
from pipelines.registry import build_stage, stage_class

log = logging.getLogger(__name__)


def sort_key(r: Row):
    return (
        str(r.get("source_path")),
        -1 if r.get("start_frame") is None else int(r["start_frame"]),
        -1 if r.get("end_frame") is None else int(r["end_frame"]),
        str(r.get("clip_id") or ""),
    )


def sort_rows(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=sort_key)


def _chunks(rows: list[Row], n: int):
    for i in range(0, len(rows), max(1, n)):
        yield rows[i : i + n]


class LocalExecutor:
    """In-process, sequential: for small runs, tests and debugging."""

    name = "local"

    def __init__(self, stage_specs: list[dict[str, Any]], batch_size: int = 1):
        self.stages: list[Stage] = [build_stage(s["name"], s.get("params")) for s in stage_specs]
        self.batch_size = batch_size

    def run(self, rows: list[Row]) -> list[Row]:
        for stage in self.stages:
            out: list[Row] = []
            for chunk in _chunks(rows, self.batch_size):
                out.extend(run_stage_batch(stage, chunk))
            rows = out
        return sort_rows(rows)

    def close(self) -> None:
        pass


# Worker-side stage cache: a task-mode stage is set up once per worker process, not per batch.
_WORKER_STAGES: dict[str, Stage] = {}


def _worker_stage(name: str, params_json: str) -> Stage:
    key = f"{name}:{params_json}"
    st = _WORKER_STAGES.get(key)
    if st is None:
        st = _WORKER_STAGES[key] = build_stage(name, json.loads(params_json))
    return st


def _decode(batch) -> list[Row]:
    return [json.loads(x) for x in batch["row"]]


def _encode(rows: list[Row]):
    import numpy as np

    return {"row": np.array([json.dumps(r) for r in rows], dtype=object)}


def _run_task_batch(batch, name: str, params_json: str):
    return _encode(run_stage_batch(_worker_stage(name, params_json), _decode(batch)))


class _StageActor:
    """Actor-pool wrapper for stages that load a model: ``setup()`` once per actor."""

    def __init__(self, name: str, params_json: str):
        self.stage = build_stage(name, json.loads(params_json))
        self.stage.ensure_setup()

    def __call__(self, batch):
        return _encode(run_stage_batch(self.stage, _decode(batch)))


class RayDataExecutor:
    """Ray Data: one ``map_batches`` per stage; actor pools for ``uses_model`` stages, tasks
    otherwise; per-stage CPU/GPU from ``Stage.resources``.

    ``address`` None starts a local Ray runtime with ``num_cpus`` = ``workers``; pass "auto" or
    "ray://host:10001" to use an existing cluster.
    """

    name = "ray"

    def __init__(self, stage_specs: list[dict[str, Any]], batch_size: int = 1, workers: int | None = None,
                 address: str | None = None):
        import ray

        self.specs = [(s["name"], json.dumps(s.get("params") or {}, sort_keys=True)) for s in stage_specs]
        self.batch_size = batch_size
        self.workers = workers or os.cpu_count() or 1
        from pipelines import rayutil

        if not ray.is_initialized():
            rayutil.init_ray(address, self.workers)
            self._owns_ray = True
        else:
            self._owns_ray = False
        rayutil.configure_data_context()
        rayutil.preflight()

    def run(self, rows: list[Row]) -> list[Row]:
        import ray

        if not rows:
            return []
        ds = ray.data.from_items([{"row": json.dumps(r)} for r in rows], override_num_blocks=len(rows))
        scale = self._resource_scale()
        for name, params_json in self.specs:
            cls = stage_class(name)
            res = {"num_cpus": round(cls.resources.cpus * scale, 3)}
            if cls.resources.gpus:
                res["num_gpus"] = cls.resources.gpus
            if cls.uses_model:
                ds = ds.map_batches(
                    _StageActor, fn_constructor_kwargs={"name": name, "params_json": params_json},
                    batch_size=self.batch_size, batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self.workers), **res,
                )
            else:
                ds = ds.map_batches(
                    _run_task_batch, fn_kwargs={"name": name, "params_json": params_json},
                    batch_size=self.batch_size, batch_format="numpy", **res,
                )
        from pipelines import rayutil

        try:
            out = [json.loads(r["row"]) for r in ds.take_all()]
        except Exception as e:  # worker errors reach the user as one line, with the log folder
            explained = rayutil.explain_run_error(e)
            if explained is e:
                raise
            raise explained from e
        return sort_rows(out)

    def _resource_scale(self) -> float:
        """Declared CPUs are per-stage needs; on a cluster smaller than their sum every stage
        gets the same share of it, so that all actor pools and tasks can be placed at once
        (Ray Data would otherwise wait forever for CPUs held by other operators' actors)."""
        import ray

        total = float(ray.cluster_resources().get("CPU", 1.0))
        need = sum(stage_class(name).resources.cpus for name, _ in self.specs)
        return min(1.0, total / need) if need > 0 else 1.0

    def close(self) -> None:
        import ray

        if self._owns_ray and ray.is_initialized():
            ray.shutdown()


def make_executor(kind: str, stage_specs: list[dict[str, Any]], batch_size: int = 1,
                  workers: int | None = None, address: str | None = None):
    if kind == "local":
        return LocalExecutor(stage_specs, batch_size=batch_size)
    if kind == "ray":
        return RayDataExecutor(stage_specs, batch_size=batch_size, workers=workers, address=address)
    raise ValueError(f"unknown executor {kind!r}: use 'local' or 'ray'")
