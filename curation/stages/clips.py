"""`clips`: cut shot spans into candidate clips of bounded length (fan-out)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa

from curation.base import Reason, Resources, Row, Stage, reject
from curation.fields import Field


@dataclass
class ClipsParams:
    """Parameters of ``clips`` (see the stage docstring for the measurements behind them)."""

    min_clip_s: float = 2.0
    max_clip_s: float = 20.0


class ClipsStage(Stage):
    """Splits a shot longer than ``max_clip_s`` into equal pieces no longer than it.

    The model trains on up to 81 frames at 24 fps (3.4 s) and the speech stage regroups speech
    into ~N(4 s, 0.5 s) pieces inside each clip, so a clip only has to bound decode and face
    analysis cost: ``max_clip_s`` 20 s (single person) / 12 s (two-person conversations keep
    whole turn exchanges). Shots shorter than ``min_clip_s`` are rejected as ``no_clip``.
    """

    name = "clips"
    version = "1"
    requires = ("start_frame", "end_frame", "fps")
    produces = ("clip_index", "clip_num_frames")
    fields = {
        "clip_index": Field(pa.int32(), None, "piece number within the shot"),
        "clip_num_frames": Field(pa.int64(), "frame"),
        "start_frame": Field(pa.int64(), "frame"), "end_frame": Field(pa.int64(), "frame"),
        "start_s": Field(pa.float64(), "s"), "end_s": Field(pa.float64(), "s"),
    }
    resources = Resources(cpus=0.25)
    params = ClipsParams

    def process(self, row: Row) -> list[Row]:
        fps = float(row["fps"])
        a, b = int(row["start_frame"]), int(row["end_frame"])
        dur = (b - a) / fps
        if dur < self.min_clip_s:
            return [reject({**row, "clip_index": 0, "clip_num_frames": b - a}, Reason.NO_CLIP,
                           f"span {dur:.2f}s shorter than min_clip_s={self.min_clip_s}", self.name)]
        pieces = max(1, math.ceil(dur / self.max_clip_s - 1e-9))
        bounds = [a + round(i * (b - a) / pieces) for i in range(pieces + 1)]
        return [
            {**row, "clip_index": i, "start_frame": s, "end_frame": e, "start_s": s / fps,
             "end_s": e / fps, "clip_num_frames": e - s}
            for i, (s, e) in enumerate(zip(bounds[:-1], bounds[1:]))
        ]
