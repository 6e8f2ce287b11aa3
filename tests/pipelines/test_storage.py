"""Inputs and shards on pyarrow filesystems: file:// URIs and a local S3-compatible server (moto)."""

from __future__ import annotations

import socket

import pytest

from pipelines import shards
from pipelines.runner import run_curation
from tests.badinputs import talking_like


def test_file_uri_output_roundtrip(small_inputs, tmp_path):
    out = f"file://{tmp_path}/run"
    summary = run_curation("video_only", small_inputs, out, limit=3, progress=False)
    rows = shards.read_rows(out, "clips") + shards.read_rows(out, "rejects")
    assert len(rows) == sum(summary.totals.values()) and (tmp_path / "run" / "manifest.json").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def s3_server(monkeypatch):
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    yield f"127.0.0.1:{port}"
    server.stop()


def test_s3_inputs_and_shards_on_a_local_s3_server(s3_server, tmp_path, ffmpeg):
    import boto3

    s3 = boto3.client("s3", endpoint_url=f"http://{s3_server}", region_name="us-east-1")
    s3.create_bucket(Bucket="videos")
    for name, secs in (("a.mp4", 3.0), ("sub/b.mp4", 2.5)):
        local = talking_like(tmp_path / name.replace("/", "_"), seconds=secs)
        s3.upload_file(str(local), "videos", f"in/{name}")
    s3.put_object(Bucket="videos", Key="in/broken.mp4", Body=b"not a video")
    q = f"?endpoint_override={s3_server}&scheme=http&region=us-east-1"
    summary = run_curation("video_only", f"s3://videos/in{q}", f"s3://videos/runs/r1{q}", progress=False)
    assert summary.totals == {"ok": 2, "filtered": 1, "failed": 0}
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="videos", Prefix="runs/r1/")["Contents"]}
    assert "runs/r1/manifest.json" in keys and "runs/r1/run.json" in keys
    rows = shards.read_rows(f"s3://videos/runs/r1{q}", "clips")
    assert sorted(r["source_path"] for r in rows) == ["a.mp4", "sub/b.mp4"]
    rejects = shards.read_rows(f"s3://videos/runs/r1{q}", "rejects")
    assert [(r["source_path"], r["reason"]) for r in rejects] == [("broken.mp4", "decode_error")]
    # resume against object storage: nothing left to do
    again = run_curation("video_only", f"s3://videos/in{q}", f"s3://videos/runs/r1{q}", progress=False)
    assert again.partitions_done == 0
