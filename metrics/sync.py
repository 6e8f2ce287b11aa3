"""Lip-sync metrics on joonson's SyncNet definitions (the primitives live in ``curation.sync``).

Per face track, a distance curve over audio-video offsets -vshift..+vshift at 25 fps:
Sync-D = minimum distance, Sync-C = median(curve) - minimum, offset = vshift - argmin
(joonson's sign: positive offset = audio leads video; audio delayed by k frames -> offset -k).
Videos not at 25 fps are resampled (``analyze_video(fps=25)``, nearest frame).

Backends: ``landmark`` (offline default, mouth opening from the mediapipe mesh) and
``syncnet`` (joonson's network, weights supplied by the user). A result is labelled with its
backend; numbers of different backends are never comparable.

- ``sync_c`` / ``sync_d``: every face track against the mixed audio (the sample's
  ``mixed_audio_path`` or the video's own track); the video value is the mean over tracks.
- ``sync_c_star`` (paper Eq. 7): each person's Sync-C on their own face track over their own
  speaking intervals (per-speaker audio if given, else the mixed track), weighted by speaking
  duration: sum_i L_i * SyncC_i / sum_i L_i.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

from kernel.errors import UserError
from metrics import _analysis
from metrics.base import ItemResult, Metric, MetricSkip, Sample
from metrics.intervals import intervals_to_mask

log = logging.getLogger(__name__)

SYNC_FPS = 25.0
AUDIO_SR = 16000

_AUDIO_CACHE: "OrderedDict[tuple, np.ndarray]" = OrderedDict()


def _load_audio(path) -> np.ndarray:
    from curation.media import MediaError, load_audio, probe

    key = _analysis._file_key(path)
    if key in _AUDIO_CACHE:
        return _AUDIO_CACHE[key]
    try:
        info = probe(path)
    except MediaError as e:
        raise MetricSkip("unreadable", str(e)) from None
    if not info.has_audio:
        raise MetricSkip("no_audio", f"{path} has no audio stream; pass the driving audio "
                         "(mixed_audio_path / --audio-dir)")
    audio = load_audio(path, sr=AUDIO_SR)
    if audio.size == 0:
        raise MetricSkip("no_audio", f"{path}: the audio stream is empty")
    _AUDIO_CACHE[key] = audio
    while len(_AUDIO_CACHE) > 4:
        _AUDIO_CACHE.popitem(last=False)
    return audio


class _SyncBase(Metric):
    backends = ("landmark", "syncnet")
    params = {"backend": "landmark", "weights": None, "vshift": 15}

    def __init__(self, **options):
        super().__init__(**options)
        from curation.sync import get_sync_backend

        try:
            self.sync_backend = get_sync_backend(self.params["backend"], weights=self.params["weights"])
        except (ValueError, FileNotFoundError, OSError) as e:
            raise UserError(f"{self.params['weights'] or 'sync backend'}: {e}") from None
        self.backend = self.sync_backend.name
        self.backend_version = self.sync_backend.version

    # shared per-track scoring ----------------------------------------------------------------
    def _analysis(self, video_path):
        needs_landmarks = getattr(self.sync_backend, "needs", "mouth_open") == "mouth_open"
        return _analysis.analyze(video_path, fps=SYNC_FPS, with_landmarks=needs_landmarks)

    def _track_score(self, video_path, analysis, track, audio: np.ndarray, valid: np.ndarray):
        """SyncResult of one track, or raises ValueError with the reason."""
        from curation.sync import SyncInput, face_crops_for_syncnet, sync_score

        kw = {}
        if getattr(self.sync_backend, "needs", "mouth_open") == "face_crops":
            kw["face_crops"] = face_crops_for_syncnet(video_path, analysis.frame_indices, track.boxes)
        else:
            kw["mouth_open"] = track.mouth_open
        inp = SyncInput(audio=audio, fps=analysis.fps, valid=valid, **kw)
        return sync_score(self.sync_backend, inp, vshift=int(self.params["vshift"]))


class _TrackSync(_SyncBase):
    """Sync-C / Sync-D: every face track against the mixed audio; mean over tracks."""

    _RESULTS: "OrderedDict[tuple, dict]" = OrderedDict()  # shared by Sync-C and Sync-D of one run
    stat = ""

    def _per_track(self, sample: Sample) -> dict:
        audio_path = sample.mixed_audio_path or sample.video_path
        key = (_analysis._file_key(sample.video_path), _analysis._file_key(audio_path),
               self.backend, self.backend_version, int(self.params["vshift"]))
        if key in self._RESULTS:
            return self._RESULTS[key]
        audio = _load_audio(audio_path)
        analysis = self._analysis(sample.video_path)
        if not analysis.tracks:
            raise MetricSkip("no_face", "no face track in the video")
        tracks, errors = [], []
        for i, tr in enumerate(analysis.tracks):
            try:
                r = self._track_score(sample.video_path, analysis, tr, audio, tr.detected.copy())
            except ValueError as e:
                errors.append({"index": i, "reason": str(e)})
                continue
            tracks.append({"index": i, "conf": float(r.conf), "min_dist": float(r.min_dist),
                           "offset": int(r.offset), "n_frames": int(r.n_frames)})
        out = {"tracks": tracks, "unscored_tracks": errors, "audio": str(audio_path),
               "face_backend": _analysis.backend_label(analysis), "fps": analysis.fps}
        type(self)._RESULTS[key] = out
        while len(self._RESULTS) > 8:
            self._RESULTS.popitem(last=False)
        return out

    def score(self, sample: Sample) -> ItemResult:
        res = self._per_track(sample)
        if not res["tracks"]:
            detail = "; ".join(e["reason"] for e in res["unscored_tracks"]) or "no track"
            raise MetricSkip("too_short", f"no face track could be scored: {detail}")
        value = float(np.mean([t[self.stat] for t in res["tracks"]]))
        return ItemResult(sample.item_id, True, value, dict(res))


class SyncC(_TrackSync):
    name = "sync_c"
    version = "1"
    higher_is_better = True
    stat = "conf"
    description = "Sync-C: median - min of the audio-visual distance curve over +-15 frames (per track, averaged)"


class SyncD(_TrackSync):
    name = "sync_d"
    version = "1"
    higher_is_better = False
    stat = "min_dist"
    description = "Sync-D: minimum audio-visual distance over +-15 frames (per track, averaged); lower is better"


class SyncCStar(_SyncBase):
    name = "sync_c_star"
    version = "1"
    higher_is_better = True
    requires = ("video_path", "speaking_intervals")
    description = ("Sync-C* (paper Eq. 7): each person's Sync-C over their own speaking intervals, "
                   "weighted by speaking duration")

    def score(self, sample: Sample) -> ItemResult:
        n = len(sample.speaking_intervals)
        if sample.audio_paths and len(sample.audio_paths) != n:
            raise MetricSkip("bad_input", f"{len(sample.audio_paths)} audio tracks for {n} persons")
        analysis = self._analysis(sample.video_path)
        tracks = _analysis.pick_persons(analysis, n)
        if len(tracks) < n:
            raise MetricSkip("too_few_faces", f"{len(analysis.tracks)} face track(s), {n} person(s) in the intervals")
        times = np.arange(len(analysis.frame_indices)) / analysis.fps
        duration = len(times) / analysis.fps
        persons, num, den = [], 0.0, 0.0
        for i, (tr, ivs) in enumerate(zip(tracks, sample.speaking_intervals)):
            speak_s = float(sum(max(0.0, min(e, duration) - max(s, 0.0)) for s, e in ivs))
            entry = {"index": i, "speaking_s": round(speak_s, 4)}
            persons.append(entry)
            if speak_s <= 0:
                entry["excluded"] = "never speaks"
                continue
            # the person's own track if given, else the mixed track
            audio_path = ((sample.audio_paths[i] if sample.audio_paths else None)
                          or sample.mixed_audio_path or sample.video_path)
            entry["audio"] = str(audio_path)
            valid = tr.detected & intervals_to_mask(ivs, times)
            try:
                r = self._track_score(sample.video_path, analysis, tr, _load_audio(audio_path), valid)
            except ValueError as e:
                entry["excluded"] = str(e)
                continue
            entry.update(conf=float(r.conf), min_dist=float(r.min_dist), offset=int(r.offset),
                         n_frames=int(r.n_frames))
            num += speak_s * r.conf
            den += speak_s
        if den <= 0:
            reasons = "; ".join(f"person {p['index']}: {p.get('excluded')}" for p in persons)
            raise MetricSkip("no_speech" if all(p["speaking_s"] <= 0 for p in persons) else "too_short",
                             f"no person could be scored ({reasons})")
        return ItemResult(sample.item_id, True, num / den, {
            "persons": persons, "interval_format": sample.interval_format,
            "per_speaker_audio": bool(sample.audio_paths and all(sample.audio_paths)), "fps": analysis.fps,
            "face_backend": _analysis.backend_label(analysis),
        })
