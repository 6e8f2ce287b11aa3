"""Pipeline configs: `extends:`, cross-stage parameter checks and the generated shard schema."""

from __future__ import annotations

import pyarrow as pa
import pytest
import yaml

from curation.base import Stage, StageConfigError
from curation.fields import Field
from pipelines import registry
from pipelines.pipeline import CONFIG_DIR, load_config


def test_multi_person_states_only_what_differs_from_single_person():
    raw = yaml.safe_load((CONFIG_DIR / "multi_person.yaml").read_text())
    assert raw["extends"] == "single_person"
    assert {st["name"] for st in raw["stages"]} == {"clips", "speech", "faces", "person_filter"}
    single, multi = load_config("single_person"), load_config("multi_person")
    assert [s["name"] for s in multi.stages] == [s["name"] for s in single.stages]
    by_single = {s["name"]: s["params"] for s in single.stages}
    for st in multi.stages:
        differs = {k for k, v in st["params"].items() if by_single[st["name"]].get(k, object()) != v}
        stated = next((p.get("params") or {} for p in raw["stages"] if p["name"] == st["name"]), {})
        assert differs <= set(stated), (st["name"], differs)
    assert by_single["probe"] == {s["name"]: s["params"] for s in multi.stages}["probe"]
    assert multi.sha256 != single.sha256 and multi.name == "multi_person"


def test_extends_inserts_drops_and_rejects_unknown_stages(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nstages:\n  - name: probe\n  - name: shots\n  - name: clips\n")
    (tmp_path / "child.yaml").write_text(
        "extends: base\nname: child\nstages:\n  - name: camera_motion\n    after: shots\n"
        "  - name: clips\n    drop: true\n  - name: shots\n    params: {threshold: 30.0}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert [s["name"] for s in cfg.stages] == ["probe", "shots", "camera_motion"]
    assert cfg.stages[1]["params"] == {"threshold": 30.0}
    (tmp_path / "bad.yaml").write_text("extends: base\nstages:\n  - name: faces\n")
    with pytest.raises(StageConfigError, match="after"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "loop.yaml").write_text("extends: loop\nstages: []\n")
    with pytest.raises(StageConfigError, match="cycle"):
        load_config(tmp_path / "loop.yaml")


def test_sync_threshold_is_checked_against_the_sync_backend_at_load():
    with pytest.raises(StageConfigError, match="no threshold for av_sync backend 'syncnet'"):
        load_config("single_person", overrides={"av_sync": {"backend": "syncnet"}})
    cfg = load_config("single_person", overrides={"av_sync": {"backend": "syncnet"},
                                                  "person_filter": {"min_sync_conf": {"syncnet": 3.0}}})
    assert cfg.stages[-1]["params"]["min_sync_conf"] == {"syncnet": 3.0}
    with pytest.raises(StageConfigError, match="min_sync_conf"):
        load_config("single_person", overrides={"person_filter": {"min_sync_conf": 0.2}})


class WritesShotIndexAsText(Stage):
    name = "shot_label"
    requires = ("shot_index",)
    fields = {"shot_index": Field(pa.string())}


def test_one_column_has_one_type(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.STAGES, "shot_label", f"{__name__}:WritesShotIndexAsText")
    (tmp_path / "c.yaml").write_text("stages:\n  - name: probe\n  - name: shots\n  - name: shot_label\n")
    with pytest.raises(StageConfigError, match="shot_index"):
        load_config(tmp_path / "c.yaml")


def test_schema_is_generated_from_the_stages_with_units():
    schema = load_config("single_person").schema
    assert "extra" not in schema.names and {"persons", "sync_matrix", "shake_score"} <= set(schema.names)
    assert "persons" not in load_config("video_only").schema.names
    person = schema.field("persons").type.value_type
    assert person.field("boxes").metadata[b"unit"] == b"px"
    assert person.field("speaking_intervals").type == schema.field("speech_intervals").type  # one interval shape
    assert [f.name for f in schema.field("stage_versions").type] == [s["name"] for s in load_config("single_person").stages]
