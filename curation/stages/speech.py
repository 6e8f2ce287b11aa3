"""`speech`: voice activity, diarization, overlap removal and regrouping (AnyTalker recipe).

``mode="single"`` (single-person clips): the clip's speech is diarized into speaker turns,
fragments where two speakers overlap are dropped, and consecutive clean turns of one speaker are
regrouped into spans whose lengths are drawn from N(``regroup_mean_s``, ``regroup_std_s``)
(seeded; the per-clip seed is recorded in ``speech_seed``). Each span becomes a new row (fan-out)
with its own ``start_frame``/``end_frame``/``start_s``/``end_s`` and ``clip_index``.

``mode="multi"`` (two-person clips): the clip is kept whole and its speaker turns are written to
``speech_intervals`` (overlaps kept: "both speak" is a valid two-person state); ``av_sync`` and
``person_filter`` bind each voice to a face.

All times in ``speech_intervals`` are seconds relative to the row's own ``start_s``.

Defaults (measurements in docs/calibration.md):

* ``min_speech_s`` 1.0 s: less VAD speech than this in a clip is ``no_speech``.
* ``max_speakers`` 4 (single) / 2 via the multi-person config: more voices -> ``too_many_speakers``.
  A single-person source may legitimately contain an off-screen second voice: its turns become
  separate spans that the sync stage then judges against the visible face.
* ``max_overlap_frac`` 0.5: a clip whose overlapped speech exceeds this fraction of its speech
  is ``overlapping_speech`` (in single mode overlaps are always cut out first; the reason is
  also used when nothing clean is left).
* ``regroup_mean_s`` 4.0 / ``regroup_std_s`` 0.5: the paper's N(4 s, 0.5 s).
* ``max_gap_s`` 1.0: a longer pause ends a span.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
import pyarrow as pa

from curation import audio as speech
from curation import intervals
from curation.base import Reason, Resources, Row, Stage, reject
from curation.fields import INTERVAL_CONVENTION, INTERVALS, Field
from curation.media import load_audio


def _speech_seconds(segments) -> float:
    return float(sum(e - s for s, e, *_ in segments))


@dataclass
class SpeechParams:
    """Parameters of ``speech`` (see the stage docstring for the measurements behind them)."""

    mode: str = "single"
    vad_backend: str = "silero"
    diarization_backend: str = "default"
    pyannote_pipeline: str | None = None
    num_speakers: int | None = None
    max_speakers: int = 4
    regroup_mean_s: float = 4.0
    regroup_std_s: float = 0.5
    max_gap_s: float = 1.0
    seed: int = 0
    max_overlap_frac: float = 0.5
    min_speech_s: float = 1.0


class SpeechStage(Stage):
    name = "speech"
    # 2: the regrouping seed follows the source bytes (sha256), not the path; 3: diarization
    # labelling v4 (centroids from confident windows, curation.audio.CENTROID_TRIM); 4: labelling
    # v5 (learnt overlap detector: overlapped speech found and cut out of clean speech)
    version = "4"
    requires = ("source_abs_path", "fps", "start_frame", "end_frame", "start_s", "end_s")
    produces = ("vad_backend", "diarization_backend", "speech_seed", "speech_intervals")
    fields = {
        "vad_backend": Field(pa.string()), "diarization_backend": Field(pa.string()),
        "speech_seed": Field(pa.int64(), None, "seed of this clip's N(mean, std) regrouping"),
        "speech_intervals": Field(INTERVALS, "s", INTERVAL_CONVENTION),
        "overlap_intervals": Field(INTERVALS, "s", "overlapped speech (speaker null)"),
        "speech_s": Field(pa.float64(), "s", "VAD speech in the clip"),
        "num_speakers_found": Field(pa.int32()), "overlap_s": Field(pa.float64(), "s"),
        "parent_clip_index": Field(pa.int32()),
        "parent_start_frame": Field(pa.int64(), "frame"), "parent_end_frame": Field(pa.int64(), "frame"),
        "clip_index": Field(pa.int32()), "clip_num_frames": Field(pa.int64(), "frame"),
        "start_frame": Field(pa.int64(), "frame"), "end_frame": Field(pa.int64(), "frame"),
        "start_s": Field(pa.float64(), "s"), "end_s": Field(pa.float64(), "s"),
    }
    resources = Resources(cpus=1.0)
    uses_model = True
    params = SpeechParams

    def setup(self) -> None:
        if self.mode not in ("single", "multi"):
            raise ValueError(f"speech: mode must be 'single' or 'multi', got {self.mode!r}")
        if self.vad_backend != "silero":
            raise ValueError(f"speech: vad_backend {self.vad_backend!r} unknown; only 'silero' is built in")
        speech.diarization_backend_name(self.diarization_backend)  # validates the name
        if self.diarization_backend == "pyannote":
            speech.require_pyannote()  # fail at start-up, not once per clip
        # load the models once per worker, not per row
        speech._silero_model()
        if self.diarization_backend in ("default", "resemblyzer"):
            speech._voice_encoder()

    def _clip_seed(self, row: Row) -> int:
        # keyed by the source's bytes, not its path: the same video gives the same spans wherever
        # it sits (another output folder, a moved dataset, a resumed run on another mount)
        source = row.get("source_sha256") or row.get("source_path") or row.get("source_abs_path")
        key = f"{source}:{row.get('start_frame')}:{row.get('end_frame')}"
        return (int(self.seed) * 1_000_003 + zlib.crc32(key.encode())) % (2**31)

    def process(self, row: Row) -> Row | list[Row]:
        backends = {
            "vad_backend": speech.vad_backend_name(),
            "diarization_backend": speech.diarization_backend_name(self.diarization_backend),
        }
        row = {**row, **backends}
        if row.get("has_audio") is False:
            return reject(row, Reason.NO_AUDIO, "source has no audio stream", self.name)
        start_s, end_s = float(row["start_s"]), float(row["end_s"])
        wav = load_audio(row["source_abs_path"], start_s=start_s, end_s=end_s)
        if wav.size == 0:
            return reject(row, Reason.NO_AUDIO, "audio stream decodes to no samples", self.name)
        voiced = speech.raw_vad_segments(wav)
        vad = speech.postprocess_vad(voiced, len(wav) / speech.SR)  # speech as reference RTTMs mark it
        speech_s = _speech_seconds(vad)
        row["speech_s"] = round(speech_s, 3)
        if speech_s < self.min_speech_s:
            return reject(row, Reason.NO_SPEECH, f"{speech_s:.2f}s of speech < min_speech_s={self.min_speech_s}",
                          self.name)
        turns = speech.diarize(wav, backend=self.diarization_backend, num_speakers=self.num_speakers,
                               pyannote_pipeline=self.pyannote_pipeline, max_speakers=max(2, int(self.max_speakers)),
                               speech=vad, voiced=voiced)
        clean, overlaps = speech.remove_overlaps(turns)
        speakers = sorted({t[2] for t in turns})
        overlap_s = _speech_seconds(overlaps)
        row.update(num_speakers_found=len(speakers), overlap_s=round(overlap_s, 3))
        if len(speakers) > int(self.max_speakers):
            return reject(row, Reason.TOO_MANY_SPEAKERS,
                          f"{len(speakers)} speakers > max_speakers={self.max_speakers}", self.name)
        if overlap_s > self.max_overlap_frac * speech_s:
            return reject(row, Reason.OVERLAPPING_SPEECH,
                          f"{overlap_s:.2f}s of {speech_s:.2f}s speech overlapped > max_overlap_frac={self.max_overlap_frac}",
                          self.name)
        if self.mode == "multi":
            return self._multi(row, turns, overlaps)
        return self._single(row, clean, overlaps, voiced)

    def _multi(self, row: Row, turns, overlaps) -> Row:
        return {
            **row,
            "speech_seed": None,
            "speech_intervals": [{"start": s, "end": e, "speaker": k} for s, e, k in turns],
            "overlap_intervals": [{"start": s, "end": e, "speaker": None} for s, e in overlaps],
        }

    def _single(self, row: Row, clean, overlaps, voiced) -> Row | list[Row]:
        seed = self._clip_seed(row)
        # spans are cut from the voiced pieces of each turn, so they end in real pauses: the
        # bridged turn is the annotation, the voiced pieces are what a training clip holds
        voiced_tl = intervals.timeline(voiced)
        pieces = [(a, b, k) for s, e, k in clean
                  for a, b in intervals.pairs(voiced_tl.crop(intervals.Segment(s, e)), 3)] if voiced else clean
        spans = speech.regroup(pieces, mean_s=self.regroup_mean_s, std_s=self.regroup_std_s, seed=seed,
                               max_gap_s=self.max_gap_s, barriers=overlaps)
        fps = float(row["fps"])
        a0, b0 = int(row["start_frame"]), int(row["end_frame"])
        spans_f = []
        for s, e in spans:
            fs, fe = a0 + int(round(s * fps)), min(b0, a0 + int(round(e * fps)))
            if fe > fs:
                spans_f.append((fs, fe, s, e))
        if not spans_f:
            reason = Reason.OVERLAPPING_SPEECH if overlaps and _speech_seconds(clean) < self.regroup_mean_s - 3 * self.regroup_std_s else Reason.NO_SPEECH
            return reject({**row, "speech_seed": seed,
                           "speech_intervals": [{"start": s, "end": e, "speaker": k} for s, e, k in clean]},
                          reason, f"no clean single-speaker span of at least "
                          f"{self.regroup_mean_s - 3 * self.regroup_std_s:.1f}s", self.name)
        out = []
        parent = {"parent_clip_index": row.get("clip_index"), "parent_start_frame": a0, "parent_end_frame": b0}
        for j, (fs, fe, s, e) in enumerate(spans_f):
            t0 = (fs - a0) / fps
            t1 = (fe - a0) / fps
            ivs = [{"start": round(max(ts, t0) - t0, 3), "end": round(min(te, t1) - t0, 3), "speaker": k}
                   for ts, te, k in clean if te > t0 and ts < t1]
            out.append({
                **row,
                **parent,
                "clip_index": j,
                "start_frame": fs,
                "end_frame": fe,
                "start_s": fs / fps,
                "end_s": fe / fps,
                "clip_num_frames": fe - fs,
                "speech_seed": seed,
                "speech_intervals": ivs,
            })
        return out
