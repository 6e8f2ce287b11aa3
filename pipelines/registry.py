"""Stage registry: pipeline YAML names -> stage classes (imported lazily, so a pipeline only
loads the heavy libraries of the stages it uses)."""

from __future__ import annotations

import importlib

from curation.base import Stage, StageConfigError

STAGES: dict[str, str] = {
    "probe": "curation.stages.probe:ProbeStage",
    "shots": "curation.stages.shots:ShotsStage",
    "camera_motion": "curation.stages.camera_motion:CameraMotionStage",
    "clips": "curation.stages.clips:ClipsStage",
    "speech": "curation.stages.speech:SpeechStage",
    "faces": "curation.stages.faces:FacesStage",
    "av_sync": "curation.stages.av_sync:AvSyncStage",
    "person_filter": "curation.stages.person_filter:PersonFilter",
}


def stage_class(name: str) -> type[Stage]:
    try:
        target = STAGES[name]
    except KeyError:
        raise StageConfigError(f"unknown stage {name!r}; known stages: {sorted(STAGES)}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def build_stage(name: str, params: dict | None = None) -> Stage:
    return stage_class(name)(**(params or {}))
