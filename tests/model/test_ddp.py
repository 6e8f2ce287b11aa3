"""The distributed path: torch DDP launched by torchrun, 2 CPU processes (gloo), 2 steps."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.model.conftest import MICRO


@pytest.mark.slow
def test_torchrun_two_cpu_processes(clip_run, tmp_path):
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(yaml.safe_dump({"extends": "tiny", "name": "micro", **MICRO}))
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "anytalker.cli", "train", str(cfg), "--shards", str(clip_run), "--output", str(out),
           "--steps", "2", "--threads", "1", "-q"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2]  # only rank 0 logs
    assert all(r["world_size"] == 2 for r in recs)
    assert (out / "checkpoints" / "last.pt").is_file()
