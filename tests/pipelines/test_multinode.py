"""A Ray cluster with a head and two worker nodes on this machine runs a pipeline like local."""

from __future__ import annotations

import pytest

from pipelines import shards
from pipelines.runner import run_curation

pytestmark = pytest.mark.ray


def test_three_node_cluster_matches_local(small_inputs, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    local = tmp_path / "local"
    run_curation("video_only", small_inputs, local, progress=False)
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 3
        out = tmp_path / "cluster"
        run_curation("video_only", small_inputs, out, executor="ray", ray_address=cluster.address,
                     workers=3, progress=False)
        def ids(run):
            return sorted((r["clip_id"], r["status"]) for r in shards.read_rows(run, "clips") + shards.read_rows(run, "rejects"))
        assert ids(out) == ids(local)
    finally:
        ray.shutdown()
        cluster.shutdown()
