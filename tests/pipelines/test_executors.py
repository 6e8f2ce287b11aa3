"""Executor plumbing that needs no Ray runtime: fusion by resource class, per-worker thread caps."""

from __future__ import annotations

import os

from curation.base import Resources, Stage
from pipelines import registry
from pipelines.executors import THREAD_ENV_VARS, cap_threads, resource_groups


class GpuStage(Stage):
    name = "gpu_stage"
    resources = Resources(cpus=1, gpus=1)


def test_cpu_stages_fuse_into_one_pool_and_gpu_stages_get_their_own_when_gpus_exist(monkeypatch):
    monkeypatch.setitem(registry.STAGES, "gpu_stage", f"{__name__}:GpuStage")
    specs = [{"name": "probe"}, {"name": "shots"}, {"name": "gpu_stage"}, {"name": "clips"}]
    with_gpu = resource_groups(specs, gpus_available=True)
    assert [[s["name"] for s in g["specs"]] for g in with_gpu] == [["probe", "shots"], ["gpu_stage"], ["clips"]]
    assert [g["gpus"] for g in with_gpu] == [0.0, 1, 0.0]
    cpu_only = resource_groups(specs, gpus_available=False)
    assert len(cpu_only) == 1 and cpu_only[0]["gpus"] == 0.0 and len(cpu_only[0]["specs"]) == 4


def test_cap_threads_limits_blas_torch_and_opencv(monkeypatch):
    import cv2
    import torch

    for var in THREAD_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    from threadpoolctl import threadpool_info, threadpool_limits

    before_torch, before_cv = torch.get_num_threads(), cv2.getNumThreads()
    before_blas = max((p["num_threads"] for p in threadpool_info()), default=1)
    try:
        cap_threads(1)
        assert all(os.environ[v] == "1" for v in THREAD_ENV_VARS)
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    finally:
        torch.set_num_threads(before_torch)
        cv2.setNumThreads(before_cv)
        threadpool_limits(before_blas)


class SlowSetupStage(Stage):
    name = "slow_setup"
    produces = ()

    def setup(self) -> None:
        import time

        time.sleep(1.0)

    def process(self, row):
        sum(i * i for i in range(50_000))  # some CPU
        return row


def test_local_worker_clock_keeps_set_up_out_of_busy_time(monkeypatch):
    from pipelines.executors import LocalExecutor

    monkeypatch.setitem(registry.STAGES, "slow_setup", f"{__name__}:SlowSetupStage")
    monkeypatch.setattr("pipelines.executors.build_pipeline_stages",
                        lambda specs: [registry.build_stage(s["name"], s.get("params")) for s in specs])
    ex = LocalExecutor([{"name": "slow_setup"}], workers=1)  # in-process: the stage is registered here only
    out = list(ex.run_stream([{"source_path": f"s{i}", "status": "ok"} for i in range(3)]))
    assert len(out) == 3
    (secs,) = ex.worker_seconds.values()
    assert 1.0 <= secs["setup_s"] < 3.0  # set up once, on the first source
    assert 0.0 < secs["busy_s"] < secs["setup_s"]  # the sleep is not busy time
    assert secs["cpu_s"] > 0.0
    # the processing window leaves the set-up out, as a Ray actor's does (it sets up before)
    assert secs["last_end"] - secs["first_start"] < secs["setup_s"]
    # the start-up split: process started <= clock made (set-up began) <= first source started
    assert secs["process_start"] <= secs["born"] + 0.01 and secs["born"] <= secs["first_start"]


def test_default_local_worker_count_follows_cpus_memory_and_sources(monkeypatch):
    from pipelines import executors

    monkeypatch.delenv(executors.LOCAL_WORKERS_ENV, raising=False)
    monkeypatch.setattr(executors, "machine_cpus", lambda: 8)
    monkeypatch.setattr(executors, "workers_memory_allows", lambda: 3)
    assert executors.local_worker_count(None, 100) == 3  # memory for 3 workers of 1.5 GB
    assert executors.local_worker_count(None, 2) == 2  # never more workers than sources
    assert executors.local_worker_count(None, 1) == 1  # one source: in-process
    assert executors.local_worker_count(6, 100) == 6  # asked for: given
    monkeypatch.setenv(executors.LOCAL_WORKERS_ENV, "1")
    assert executors.local_worker_count(None, 100) == 1
