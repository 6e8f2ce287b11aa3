"""Shards describe themselves and open in the tools users already have: pandas, pyarrow, DuckDB
and Hugging Face datasets (the README's example is run as written)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from pipelines import shards
from pipelines.pipeline import load_config
from pipelines.runner import run_curation
from tests.conftest import REPO


PROGRESS: list[str] = []


@pytest.fixture(scope="module")
def run(small_inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("formats") / "run"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # the progress bar writes to stderr
        run_curation("video_only", small_inputs, out, progress=True)
    PROGRESS.append(err.getvalue())
    return out


def test_progress_bar_moves_per_input_with_status_counts(run):
    text = PROGRESS[0].replace("\r", "\n")
    n = sum(shards.read_manifest(run)["totals"].values())
    steps = sorted({int(m) for m in re.findall(r"\| *(\d+)/8 \[", text)})
    assert steps == list(range(0, 9)), text[-2000:]  # 8 inputs, one step each
    assert re.search(r"ok=\d+, filtered=\d+, failed=\d+", text) and "input/s" in text or "s/input" in text
    assert n >= 8


def test_files_carry_data_root_units_conventions_and_typed_versions(run, small_inputs):
    f = sorted((run / "clips").glob("*.parquet"))[0]
    schema = pq.read_schema(f)
    md = {k.decode(): v.decode() for k, v in schema.metadata.items()}
    assert md["data_root"] == str(small_inputs) and Path(md["data_root_abs"]).is_dir()
    units = json.loads(md["units"])
    assert units["start_s"] == "s" and units["start_frame"] == "frame" and units["shake_score"]
    assert "25 fps" in json.loads(md["conventions"])["frames"] or "analysis_fps" in json.loads(md["conventions"])["frames"]
    assert schema.field("duration_s").metadata[b"unit"] == b"s"
    assert pa.types.is_struct(schema.field("stage_versions").type) and "extra" not in schema.names
    # exactly the pipeline's columns, in the file as in the generated schema
    assert schema.names == load_config("video_only").schema.names
    row = shards.read_rows(run, "clips")[0]
    from pipelines.registry import stage_class

    assert row["stage_versions"] == {n: stage_class(n).version for n in ("probe", "shots", "camera_motion", "clips")}


def test_shards_open_in_pandas_pyarrow_duckdb_and_datasets(run, tmp_path):
    import duckdb
    import pandas as pd

    n_ok = shards.read_manifest(run)["totals"]["ok"]
    df = pd.read_parquet(run / "clips")
    assert len(df) == n_ok and set(df["status"]) == {"ok"}
    table = pads.dataset(run / "clips", format="parquet").to_table()
    assert table.num_rows == n_ok
    from pipelines.registry import stage_class

    probe_v = stage_class("probe").version
    versions = duckdb.sql(f"select stage_versions.probe from read_parquet('{run}/clips/*.parquet')").fetchall()
    assert versions == [(probe_v,)] * n_ok

    datasets = pytest.importorskip("datasets", reason="datasets is a test extra: pip install -e .[test]")
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- datasets-example -->\s*```python\n(.*?)```", readme, re.S)
    assert block, "README lost its datasets example"
    code = block.group(1).replace("runs/r1", str(run))
    scope: dict = {}
    exec(compile(code, "README.md:datasets-example", "exec"), scope)  # noqa: S102 - the documented example
    clips = scope["clips"]
    assert isinstance(clips, datasets.Dataset) and clips.num_rows == n_ok
    assert clips[0]["stage_versions"]["probe"] == probe_v and clips[0]["source_path"]
