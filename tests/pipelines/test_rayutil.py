"""Ray start-up (pipelines.rayutil): a runtime started here carries no runtime environment, so
actors get the workers Ray prestarts at ray.init; the preflight probe is read without blocking."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.ray


@pytest.fixture
def local_runtime():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray runtime is already up in this process")
    before = dict(os.environ)
    from pipelines.executors import start_ray, stop_ray

    assert start_ray(2, cpus_per_worker=1)
    try:
        yield ray, before
    finally:
        stop_ray()


def _actor_view():
    import ray

    @ray.remote(num_cpus=1)
    class Probe:
        def view(self):
            import sys

            ctx = ray.get_runtime_context()
            return {"runtime_env": dict(ctx.runtime_env or {}), "omp": os.environ.get("OMP_NUM_THREADS"),
                    "owner": os.environ.get("ANYTALKER_RAY_OWNER"), "stdin_tty": os.isatty(0),
                    "pid": os.getpid(), "argv0": sys.argv[0], "nice": os.nice(0),
                    # imported by the worker as it started (this module does not import it)
                    "ray_data_preloaded": "ray.data" in sys.modules}

    return Probe


def test_local_runtime_has_no_runtime_env_and_workers_inherit_caps_and_owner(local_runtime):
    ray, before = local_runtime
    actor = _actor_view().remote()
    view = ray.get(actor.view.remote(), timeout=120)
    # a runtime env would keep actors off the workers prestarted at ray.init (a fresh worker per actor)
    assert not {k: v for k, v in view["runtime_env"].items() if v}, view["runtime_env"]
    assert view["omp"] == "1"  # the thread cap of a 1-CPU worker, inherited
    assert view["owner"] and view["owner"].split(":")[0] == str(os.getpid())  # leftovers can be found
    assert not view["stdin_tty"]
    # the actors doing the work have the driver's priority (Ray's default: 15 levels lower)
    assert view["nice"] == os.nice(0), view["nice"]
    # the worker imported Ray Data as it started, before it took this actor (warm start)
    assert view["ray_data_preloaded"]
    # the driver's own environment is as it was: the caps and the tag went to the runtime only
    assert {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "ANYTALKER_RAY_OWNER")} == \
        {k: before.get(k) for k in ("OMP_NUM_THREADS", "ANYTALKER_RAY_OWNER")}


def test_preflight_is_submitted_without_waiting_and_read_later(local_runtime):
    from pipelines import rayutil

    ray, _ = local_runtime
    ref = rayutil.start_preflight()  # returns at once: a reference, not the answer
    assert isinstance(ref, ray.ObjectRef)
    rayutil.check_preflight(ref, timeout_s=120)  # a healthy runtime: no error
    assert rayutil.preflight_failed(ref) is None


def test_a_failed_preflight_is_named_before_the_runs_own_error(local_runtime):
    from kernel.errors import UserError
    from pipelines import rayutil

    ray, _ = local_runtime

    @ray.remote(num_cpus=0)
    def broken():
        raise ImportError("no module named scenedetect")

    ref = broken.remote()
    ray.wait([ref], timeout=120)
    err = rayutil.preflight_failed(ref)
    assert isinstance(err, UserError) and "a worker failed to start" in str(err) and "scenedetect" in str(err)

