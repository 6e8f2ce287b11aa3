"""Lip-sync metrics on joonson's SyncNet definitions (the primitives live in ``curation.sync``).

Two families with their own names, so that no number is read as what it is not:

- ``sync_c`` / ``sync_d`` / ``sync_c_star`` (the paper's Sync-C, Sync-D, Sync-C*): joonson's
  SyncNet only (``backend: syncnet`` with the user's ``syncnet_v2.model``). Without those
  weights they refuse to run rather than report another network's number under Sync-C.
- ``lipsync_judge`` / ``lipsync_judge_star`` (LSE-J, LSE-J*; the offline default): the same
  curve statistics (median - min over +-15 frames) from this project's learned sync judge
  (``curation.sync_judge``). On their own scale: never compared with Sync-C, never ranked
  together with it. A face whose lips do not move scores 0 (not talking); a track whose audio
  holds no speech is not scored (``no_speech``).

Per face track, a distance curve over audio-video offsets -vshift..+vshift at 25 fps:
Sync-D = minimum distance, Sync-C = median(curve) - minimum, offset = vshift - argmin
(joonson's sign: positive offset = audio leads video; audio delayed by k frames -> offset -k).
Videos not at 25 fps are resampled (``analyze_video(fps=25)``, nearest frame).

A result is labelled with its backend; numbers of different backends are never comparable.

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
from curation.media import file_key
from metrics import _analysis
from metrics.base import ItemResult, Metric, MetricSkip, Sample
from metrics.intervals import intervals_to_mask

log = logging.getLogger(__name__)

SYNC_FPS = 25.0
AUDIO_SR = 16000

_AUDIO_CACHE: "OrderedDict[tuple, np.ndarray]" = OrderedDict()


def _load_audio(path) -> np.ndarray:
    from curation.media import MediaError, load_audio, probe

    key = file_key(path)
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
    """SyncNet's metrics: joonson's network only."""

    backends = ("syncnet",)
    params = {"backend": "syncnet", "weights": None, "vshift": 15}

    def __init__(self, **options):
        super().__init__(**options)
        from curation.sync import get_sync_backend

        if self.params["backend"] not in self.backends:
            raise UserError(f"{self.name}: backend {self.params['backend']!r} is not one of {', '.join(self.backends)}"
                            + ("; Sync-C/Sync-D are SyncNet's numbers: for the offline judge use the metrics "
                               "lipsync_judge / lipsync_judge_star (LSE-J)" if "syncnet" in self.backends else ""))
        if self.params["backend"] == "syncnet" and not self.params["weights"]:
            raise UserError(f"{self.name}: the paper's Sync-C/Sync-D need joonson's SyncNet weights: pass "
                            "--backend syncnet --weights syncnet_v2.model (`anytalker fetch syncnet_v2 --from FILE`); "
                            "offline, use the metric lipsync_judge (LSE-J) instead")
        try:
            self.sync_backend = get_sync_backend(self.params["backend"], weights=self.params["weights"])
        except (ValueError, FileNotFoundError, OSError) as e:
            raise UserError(f"{self.params['weights'] or 'sync backend'}: {e}") from None
        self.backend = self.sync_backend.name
        self.backend_version = self.sync_backend.version

    # shared per-track scoring ----------------------------------------------------------------
    def _analysis(self, video_path):
        needs_landmarks = getattr(self.sync_backend, "needs", "mouth_open") != "face_crops"
        return _analysis.analyze(video_path, fps=SYNC_FPS, with_landmarks=needs_landmarks)

    def _track_score(self, video_path, analysis, track, audio: np.ndarray, valid: np.ndarray):
        """SyncResult of one track, or raises ValueError with the reason."""
        from curation.sync import SyncInput, face_crops_for_syncnet, sync_score

        kw = {}
        needs = getattr(self.sync_backend, "needs", "mouth_open")
        if needs == "face_crops":
            kw["face_crops"] = face_crops_for_syncnet(video_path, analysis.frame_indices, track.boxes)
        elif needs == "lips":
            kw["lips"] = _track_lips(track)
        else:
            kw["mouth_open"] = track.mouth_open
        inp = SyncInput(audio=audio, fps=analysis.fps, valid=valid, **kw)
        result = sync_score(self.sync_backend, inp, vshift=int(self.params["vshift"]))
        return self._rules(result, inp, track, audio, valid)

    def _rules(self, result, inp, track, audio, valid):
        return result


def _track_lips(track) -> np.ndarray:
    from curation.sync_judge.features import lip_features

    if track.landmarks is None:
        raise ValueError("the face analysis has no landmarks")
    lips = lip_features(track.landmarks)
    lips[~np.asarray(track.detected, bool)] = np.nan
    return lips


class _JudgeRules:
    """LSE-J's rules: a static mouth is not talking (score 0); no speech under the face is
    not scored."""

    backends = ("judge",)
    params = {"backend": "judge", "weights": None, "vshift": 15}

    def _rules(self, result, inp, track, audio, valid):
        from curation.sync_judge import MIN_SPEECH_FRAC, STATIC_LIP_MOTION, lip_motion, speech_fraction
        from curation.sync_judge.features import opening_from_lips

        frames = np.flatnonzero(np.asarray(valid, bool)) if valid is not None else np.arange(len(inp.lips))
        if frames.size:
            lo, hi = frames[0], frames[-1] + 1
            speech = speech_fraction(audio[int(lo * AUDIO_SR / SYNC_FPS):int(hi * AUDIO_SR / SYNC_FPS)])
            if speech < MIN_SPEECH_FRAC:
                raise ValueError(f"no_speech: {speech:.0%} of the audio under the face is speech")
        motion = lip_motion(opening_from_lips(inp.lips[frames]))
        if motion < STATIC_LIP_MOTION:
            result.conf = 0.0  # a frozen mouth does not talk, whatever the curve says
            result.offset = 0
        return result


class _TrackSync(_SyncBase):
    """Sync-C / Sync-D: every face track against the mixed audio; mean over tracks."""

    _RESULTS: "OrderedDict[tuple, dict]" = OrderedDict()  # shared by Sync-C and Sync-D of one run
    stat = ""

    def _per_track(self, sample: Sample) -> dict:
        audio_path = sample.mixed_audio_path or sample.video_path
        key = (file_key(sample.video_path), file_key(audio_path),
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
            reasons = [e["reason"] for e in res["unscored_tracks"]]
            detail = "; ".join(reasons) or "no track"
            code = "no_speech" if reasons and all(r.startswith("no_speech") for r in reasons) else "too_short"
            raise MetricSkip(code, f"no face track could be scored: {detail}")
        value = float(np.mean([t[self.stat] for t in res["tracks"]]))
        return ItemResult(sample.item_id, True, value, dict(res))


class SyncC(_TrackSync):
    name = "sync_c"
    display_name = "Sync-C"
    version = "1"
    higher_is_better = True
    stat = "conf"
    description = "Sync-C: median - min of the audio-visual distance curve over +-15 frames (per track, averaged)"


class SyncD(_TrackSync):
    name = "sync_d"
    display_name = "Sync-D"
    version = "1"
    higher_is_better = False
    stat = "min_dist"
    description = "Sync-D: minimum audio-visual distance over +-15 frames (per track, averaged); lower is better"


class LipSyncJudge(_JudgeRules, _TrackSync):
    name = "lipsync_judge"
    display_name = "LSE-J"
    version = "1"
    higher_is_better = True
    stat = "conf"
    description = ("LSE-J: the offline sync judge's median - min distance over +-15 frames (per track, averaged); "
                   "its own scale, not Sync-C")


class SyncCStar(_SyncBase):
    name = "sync_c_star"
    display_name = "Sync-C*"
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


class LipSyncJudgeStar(_JudgeRules, SyncCStar):
    name = "lipsync_judge_star"
    display_name = "LSE-J*"
    version = "1"
    description = ("LSE-J*: LSE-J of each person over their own speaking intervals, weighted by speaking "
                   "duration (Sync-C*'s recipe with the offline sync judge; not Sync-C*)")
