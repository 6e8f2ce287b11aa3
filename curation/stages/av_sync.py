"""`av_sync`: lip-sync of every face track against every audio source of the clip.

Audio sources are the speakers of ``speech_intervals`` (from the ``speech`` stage). The source
has one mixed audio track, so "the audio of speaker k" is the mix scored only on the frames
inside k's turns (``SyncInput.valid``); when the clip has a single speaker every frame is
scored (pauses, where lips and audio are both quiet, carry sync information too).

Writes ``sync_backend`` (name + version), ``sync_matrix`` (rows: speakers in
``sync_speakers`` order, columns: persons left -> right; entries: joonson confidence, None
where too few frames could be scored), ``sync_offsets`` / ``sync_dists`` (same layout), and
provisional per-person ``sync_offset``/``sync_conf``/``sync_dist`` from each face's
best-matching voice; ``person_filter`` binds voices to faces and finalises them.

Also per person: ``lip_motion`` (spread of the inner-lip opening, inter-ocular units) with
``static_mouth`` when it is below ``curation.sync_judge.STATIC_LIP_MOTION`` (such a face scores
conf 0: it does not talk, whatever the curve says), and ``speech_frac`` (silero-vad speech share
of the audio under the face; ``person_filter`` rejects < ``MIN_SPEECH_FRAC`` as ``no_speech``).

Params: ``backend`` "judge" (offline default: the learned sync judge shipped in
``curation/sync_judge/weights``; ``weights`` may name other ``anytalker train sync-judge``
weights), "landmark" (the former heuristic) or "syncnet" (``weights`` = path to joonson's
syncnet_v2.model, the reference for the paper's Sync-C), ``vshift`` 15 (joonson's default search range, frames at 25 fps),
``interval_margin_s`` 0.2 (a turn's frames are extended by this much on each side: diarization
boundaries are coarser than lip onsets).

Audio context: backends with ``audio_context`` (the judge) get the source's audio ``vshift``
frames before and after the face track as well, so that every frame of a 4 s span is compared at
every offset of the search (on the span alone, the far offsets would be judged on fewer frames
than the near ones; see ``curation.sync_judge.common_support``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curation.base import Reason, Resources, Row, Stage, reject
from curation.fields import PERSON, Field
from curation.intervals import mask
from curation.media import load_audio
from curation.sync import DEFAULT_BACKEND, SyncInput, face_crops_for_syncnet, get_sync_backend, sync_score
from curation.sync_judge import STATIC_LIP_MOTION, lip_motion, speech_fraction
from curation.sync_judge.features import LIP_DIM, opening_from_lips


def _lips_array(rows, n: int) -> np.ndarray | None:
    """Per-frame lip features of one person as (n, LIP_DIM), NaN where the mesh is missing."""
    if not rows:
        return None
    out = np.full((n, LIP_DIM), np.nan)
    for t, v in enumerate(rows[:n]):
        if v is not None:
            out[t] = v
    return out


def speakers_in_order(intervals: list[dict]) -> list[str]:
    """Speakers sorted by their first turn."""
    first: dict[str, float] = {}
    for iv in intervals or []:
        k = str(iv["speaker"])
        first[k] = min(first.get(k, np.inf), float(iv["start"]))
    return sorted(first, key=first.get)


@dataclass
class AvSyncParams:
    """Parameters of ``av_sync`` (see the stage docstring for the measurements behind them)."""

    backend: str = DEFAULT_BACKEND
    weights: str | None = None
    vshift: int = 15
    interval_margin_s: float = 0.2


class AvSyncStage(Stage):
    name = "av_sync"
    version = "1"
    requires = ("persons", "speech_intervals")
    produces = ("sync_backend", "sync_matrix")
    fields = {
        "sync_backend": Field(pa.string(), None, "name and version"),
        "persons": Field(pa.list_(PERSON)),
        "sync_speakers": Field(pa.list_(pa.string()), None, "rows of sync_matrix"),
        "sync_matrix": Field(pa.list_(pa.list_(pa.float64())), "sync backend scale", "confidence, speaker x person"),
        "sync_offsets": Field(pa.list_(pa.list_(pa.int32())), "frame@25fps"),
        "sync_dists": Field(pa.list_(pa.list_(pa.float64())), "sync backend scale"),
        "sync_curves": Field(pa.list_(pa.list_(pa.list_(pa.float64()))), "sync backend scale",
                             "distance per offset -vshift..vshift"),
    }
    resources = Resources(cpus=1.0)
    uses_model = True
    params = AvSyncParams

    def setup(self) -> None:
        self._backend = get_sync_backend(self.backend, self.weights)

    def _valid_mask(self, times: np.ndarray, intervals: list[dict], speaker: str) -> np.ndarray:
        m = self.interval_margin_s
        segs = [(float(iv["start"]) - m, float(iv["end"]) + m) for iv in intervals if str(iv["speaker"]) == speaker]
        return mask(segs, times, closed=False)

    def process(self, row: Row) -> Row:
        be = self._backend
        row = {**row, "sync_backend": f"{be.name} {be.version}"}
        persons = list(row.get("persons") or [])
        if not persons:
            return reject(row, Reason.NO_FACE, "no person track to score", self.name)
        fps = float(row["fps"])
        start_frame = int(row["start_frame"])
        a_fps = float(row.get("analysis_fps") or 25.0)
        intervals = list(row.get("speech_intervals") or [])
        speakers = speakers_in_order(intervals)
        mouths = row.get("mouth_open") or [None] * len(persons)
        lip_rows = row.get("lip_features") or [None] * len(persons)

        results: list[list[dict | None]] = [[None] * len(persons) for _ in (speakers or ["mix"])]
        for j, person in enumerate(persons):
            frames = np.asarray(person["frames"], dtype=np.int64)
            if frames.size == 0:
                continue
            # audio sample 0 aligned with this track's first analysed frame; a backend that uses
            # audio context (the judge) also gets the source's audio up to vshift frames before
            # and after the track, so every frame of a short span is compared at every offset
            t0 = frames[0] / fps
            n = len(frames)
            ctx = int(self.vshift) if getattr(be, "audio_context", False) else 0
            a_start = max(0.0, t0 - ctx / a_fps)
            lead = int(round((t0 - a_start) * a_fps))
            a_start = t0 - lead / a_fps
            wav_ctx = load_audio(row["source_abs_path"], start_s=a_start, end_s=t0 + (n + ctx) / a_fps + 0.1)
            hop = int(round(16000 / a_fps))
            wav = wav_ctx[lead * hop:lead * hop + int(round((n / a_fps + 0.1) * 16000))]  # the track's own audio
            times = (frames - start_frame) / fps  # clip-relative seconds of each analysed frame
            base = {"audio": wav_ctx, "fps": a_fps, "audio_lead": lead}
            lips = _lips_array(lip_rows[j] if j < len(lip_rows) else None, n)
            # explicit rules, every backend: a frozen mouth does not talk; silence is not a sync failure
            motion = lip_motion(opening_from_lips(lips)) if lips is not None else None
            speech = speech_fraction(wav)
            if be.needs == "lips":
                if lips is None:
                    continue
                base["lips"] = lips
            elif be.needs == "mouth_open":
                mo = mouths[j] if j < len(mouths) else None
                if mo is None:
                    continue
                base["mouth_open"] = np.array([np.nan if v is None else v for v in mo], dtype=np.float64)
            else:
                base["face_crops"] = face_crops_for_syncnet(row["source_abs_path"], frames, person["boxes"])
            for k, spk in enumerate(speakers or ["mix"]):
                valid = None if len(speakers) <= 1 else self._valid_mask(times, intervals, spk)
                try:
                    res = sync_score(be, SyncInput(valid=valid, **base), vshift=int(self.vshift))
                except ValueError as e:  # too few frames for this voice on this face
                    results[k][j] = {"error": str(e)}
                    continue
                static = motion is not None and motion < STATIC_LIP_MOTION
                results[k][j] = {"offset": res.offset, "conf": 0.0 if static else res.conf,
                                 "min_dist": res.min_dist, "n_frames": res.n_frames, "dists": res.dists,
                                 "lip_motion": motion, "speech_frac": round(speech, 3), "static_mouth": static}

        def grid(key):
            return [[(r or {}).get(key) for r in row_] for row_ in results]

        new_persons = []
        for j, person in enumerate(persons):
            col = [results[k][j] for k in range(len(results)) if results[k][j] and "conf" in results[k][j]]
            best = max(col, key=lambda r: r["conf"]) if col else None
            new_persons.append({
                **person,
                "sync_offset": best["offset"] if best else None,
                "sync_conf": best["conf"] if best else None,
                "sync_dist": best["min_dist"] if best else None,
                "lip_motion": best["lip_motion"] if best else None,
                "speech_frac": best["speech_frac"] if best else None,
                "static_mouth": best["static_mouth"] if best else None,
            })
        # the per-frame lip landmarks are the judge's input, not a result: keep shards small
        out = {
            **{k: v for k, v in row.items() if k != "lip_features"},
            "persons": new_persons,
            "sync_speakers": speakers or ["mix"],
            "sync_matrix": grid("conf"),
            "sync_offsets": grid("offset"),
            "sync_dists": grid("min_dist"),
            "sync_curves": grid("dists"),
        }
        if all(r is None or "conf" not in r for row_ in results for r in row_):
            errors = sorted({r["error"] for row_ in results for r in row_ if r and "error" in r})
            return reject(out, Reason.LOW_SYNC, "no face/voice pair could be scored: " + "; ".join(errors),
                          self.name)
        return out
