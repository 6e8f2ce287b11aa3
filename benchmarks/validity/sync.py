"""Lip-sync judgment: offsets, matched vs mismatched audio, frozen faces, the person filter.

    python -m benchmarks.validity sync --data ../shared/data/eval --json sync.json

Input: a folder with ``labels.csv`` (columns ``file,kind,in_sync,persons,note``; paths relative
to the folder). In-sync clips are the rows with ``in_sync`` 1 and ``persons`` 1; ``kind``
``nonspeech`` rows are faces over non-speech audio; ``audio_only`` rows are extra foreign
audio. Built in a temporary folder, for every in-sync clip:

* the clip muxed with 3 foreign audios (audio-only files and other in-sync clips of the same
  cross-validation fold, so that neither side was seen by the fold's judge);
* its audio delayed by k in {-8, -6, -4, -2, 2, 4, 6, 8} frames twice: by shifting the samples
  and by a container offset (``ffmpeg -itsoffset``), video stream copied;
* its first frame frozen for the whole clip with the original audio.

Every file is read the way the toolkit reads it (``curation.media.load_audio`` on the
container's timeline, the cached mediapipe face analysis at 25 fps). For each backend:

* ``offset_rel_pm1``: readings within +-1 frame of the clip's own k=0 reading minus k;
* ``offset_abs_pm2``: readings within +-2 frames of -k (joonson's sign) on ``talking_real``
  clips (all in-sync clips if the folder has no such kind), k = 0 included;
* ``matched_gt_mismatched``: (clip, foreign audio) pairs where the clip's own audio has the
  higher whole-clip conf;
* ``frozen_lt_real``: frozen clips whose conf is below the real clip's (after the toolkit's
  static-mouth rule; ``frozen_lt_real_raw`` without it);
* ``filter_*``: the ``single_person`` decision (``person_filter`` rules and the backend's
  thresholds) on 4 s windows (step 2 s): accepted in-sync windows, rejected windows of the
  foreign muxes, of the frozen clips, of the ``nonspeech`` clips and of the |k| >= 6 shifts;
* ``window_auc``: in-sync vs mismatched 4 s windows by conf; ``n_clips``.

The learned ``judge`` is scored out of fold: K fold models are trained here on the folder's
in-sync clips (cached by the sha256 of their training clips and configuration), and each clip
and everything built from it is scored by the model that did not see it. Its thresholds are
chosen out of fold too: for each fold, on the other folds' mismatched windows that have speech
under a moving mouth, the lowest ``min_sync_conf`` at which the whole decision (conf and the
|offset| rule) accepts at most 10 % of them. Each window's curve uses the whole track's audio as
context (as ``av_sync`` loads the source's audio around a span), and every offset is judged on
the same frames (``curation.sync_judge.common_support``). ``track_first`` reports what judging
each window at the whole track's offset would give (the curation filter judges a span alone: its
face analysis covers only the span). ``syncnet`` runs only with ``--syncnet-weights``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHECK = "sync"
SHIFTS = (-8, -6, -4, -2, 2, 4, 6, 8)
WINDOW = 100  # 4 s at 25 fps
STEP = 50
VSHIFT = 15
KEYS = ("offset_rel_pm1", "offset_abs_pm2", "matched_gt_mismatched", "frozen_lt_real", "filter_accept_insync",
        "filter_reject_mismatched", "filter_reject_frozen", "filter_reject_nonspeech", "filter_reject_shifted",
        "n_clips")


def add_arguments(parser) -> None:
    parser.add_argument("--backends", default="judge,landmark", help="comma-separated: judge, landmark, syncnet")
    parser.add_argument("--syncnet-weights", help="joonson's syncnet_v2.model (the syncnet backend runs only with it)")
    parser.add_argument("--folds", type=int, default=5, help="clip-level cross-validation folds for the judge")
    parser.add_argument("--seeds", type=int, default=3, help="judge ensemble size per fold")
    parser.add_argument("--steps", type=int, default=None, help="judge training steps (default: the shipped config)")
    parser.add_argument("--cache", help="folder for face analyses and fold models (default ~/.cache/anytalker/sync_judge)")
    parser.add_argument("--max-clips", type=int, help="use only the first N in-sync clips (quick runs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--workdir", help="where the test files are built (default: a new temporary folder; "
                        "files already there are reused)")
    parser.add_argument("--build-only", action="store_true", help="only build the test files (into --workdir)")
    parser.add_argument("--jobs", type=int, default=4, help="ffmpeg / reading jobs at once")


# --------------------------------------------------------------------------------------------
# building the test files


def _ffmpeg(*args: str) -> None:
    res = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], capture_output=True,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)}: {res.stderr.decode(errors='replace')[:400]}")


def _mux(video: Path, audio: Path, out: Path, itsoffset: float = 0.0) -> Path:
    """``video``'s picture (stream copy) with ``audio`` (AAC), padded with silence / cut to the
    video; a non-zero ``itsoffset`` stores a delay in the container."""
    if out.exists():
        return out
    a_in = (["-itsoffset", f"{itsoffset:.6f}"] if itsoffset else []) + ["-i", str(audio)]
    tmp = out.with_name("tmp_" + out.name)  # an interrupted build never leaves a half file behind
    _ffmpeg("-i", str(video), *a_in, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "pcm_s16le",
            "-ar", "16000", "-af", "apad", "-shortest", str(tmp))
    tmp.replace(out)
    return out


def _wav(audio: np.ndarray, out: Path) -> Path:
    from curation.media import write_wav

    if not out.exists():
        write_wav(out, audio)
    return out


def _frozen(video: Path, audio: Path, seconds: float, out: Path) -> Path:
    if out.exists():
        return out
    png = out.with_suffix(".png")
    _ffmpeg("-i", str(video), "-frames:v", "1", str(png))
    _ffmpeg("-loop", "1", "-framerate", "25", "-t", f"{seconds:.3f}", "-i", str(png), "-i", str(audio),
            "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
            "-pix_fmt", "yuv444p", "-c:a", "pcm_s16le", "-shortest", str(out))
    return out


def _shift(wav: np.ndarray, k: int) -> np.ndarray:
    """Audio delayed by k frames (k < 0: advanced), same length."""
    n = abs(k) * 640
    if k > 0:
        return np.concatenate([np.zeros(n, np.float32), wav])[:len(wav)]
    if k < 0:
        return np.concatenate([wav[n:], np.zeros(n, np.float32)])
    return wav


# --------------------------------------------------------------------------------------------
# reading a file the toolkit's way


@dataclass
class Track:
    lips: np.ndarray  # (T, LIP_DIM), NaN rows where no mesh
    mouth_open: np.ndarray  # (T,) landmark backend's signal
    wav: np.ndarray  # container timeline, sample 0 = frame 0
    valid: np.ndarray
    speech: list[float] = field(default_factory=list)  # speech fraction of each 4 s window


def read_track(path: Path, picture_of: Path | None = None) -> Track | None:
    """The main face track of ``path`` and its audio. ``picture_of``: a file whose video stream
    ``path`` carries unchanged (built with ``-c:v copy``), whose face analysis is reused."""
    from curation.faces import FACE_CHIN, FACE_TOP, LIP_POINTS
    from curation.media import load_audio
    from curation.sync_judge.features import STORED_POINTS, face_tracks, lip_features, main_track

    tr = main_track(face_tracks(picture_of or path))
    if tr is None:
        return None
    lm = tr["landmarks"]
    det = np.asarray(tr["detected"], bool)
    lips = lip_features(lm)
    lips[~det] = np.nan
    # curation.faces.mouth_opening on the stored points: inner-lip gaps / face height
    pos = {p: i for i, p in enumerate(STORED_POINTS)}
    upper = lm[:, [pos[p] for p in LIP_POINTS["upper_inner"]]]
    lower = lm[:, [pos[p] for p in LIP_POINTS["lower_inner"]]]
    face_h = np.linalg.norm(lm[:, pos[FACE_CHIN]] - lm[:, pos[FACE_TOP]], axis=1)
    mouth = np.linalg.norm(lower - upper, axis=2).mean(1) / np.where(face_h > 0, face_h, np.nan)
    mouth[~det] = np.nan
    return Track(lips=lips, mouth_open=mouth, wav=load_audio(path), valid=det & np.isfinite(lips).all(1))


# --------------------------------------------------------------------------------------------
# backends: a whole-track curve and 4 s window curves


class _Scorer:
    name = ""

    def curves(self, track: Track, fold: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """(whole-track distance curve, window curves)."""
        raise NotImplementedError


class JudgeScorer(_Scorer):
    name = "judge"

    def __init__(self, fold_nets: list[list]):
        self.fold_nets = fold_nets

    def curves(self, track, fold):
        from curation.sync_judge import curve_from_sims, track_sims

        # the whole track's audio is the context of each window (as av_sync loads the source's
        # audio around a span), so every window frame is compared at every offset
        sims, _ = track_sims(self.fold_nets[fold], track.lips, track.wav, VSHIFT, valid=track.valid)
        whole = curve_from_sims(sims)
        wins = [curve_from_sims(sims, slice(s, s + WINDOW)) for s in range(0, len(track.lips) - WINDOW + 1, STEP)]
        return whole, wins


class LandmarkScorer(_Scorer):
    name = "landmark"

    def __init__(self):
        from curation.sync import LandmarkSync

        self.be = LandmarkSync()

    def _curve(self, mouth, wav, valid):
        from curation.sync import SyncInput

        try:
            return self.be.distance_curve(SyncInput(audio=wav, mouth_open=mouth, valid=valid), VSHIFT)[0]
        except ValueError:
            return np.ones(2 * VSHIFT + 1)  # too few frames: a flat curve, conf 0

    def curves(self, track, fold):
        whole = self._curve(track.mouth_open, track.wav, track.valid)
        wins = []
        for s in range(0, len(track.mouth_open) - WINDOW + 1, STEP):
            wins.append(self._curve(track.mouth_open[s:s + WINDOW], track.wav[s * 640:(s + WINDOW) * 640],
                                    track.valid[s:s + WINDOW]))
        return whole, wins


_VAD = __import__("threading").local()


def _window_speech(wav: np.ndarray, n_frames: int) -> list[float]:
    """Speech share of each 4 s window from one silero-vad pass over the file (the settings of
    ``curation.audio.vad_segments``). One model per thread: silero's model keeps state and must
    not be shared between threads."""
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    if getattr(_VAD, "model", None) is None:
        _VAD.model = load_silero_vad()
    speech = np.zeros(len(wav), bool)
    if len(wav) >= 512:
        for st in get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), _VAD.model,
                                        threshold=0.5, sampling_rate=16000, min_speech_duration_ms=250,
                                        min_silence_duration_ms=100):
            speech[st["start"]:st["end"]] = True
    out = []
    for s in range(0, n_frames - WINDOW + 1, STEP):
        seg = speech[s * 640:(s + WINDOW) * 640]
        out.append(float(seg.mean()) if seg.size else 0.0)
    return out


def _stats(curve: np.ndarray) -> tuple[int, float]:
    j = int(np.argmin(curve))
    return VSHIFT - j, float(np.median(curve) - curve[j])


# --------------------------------------------------------------------------------------------
# fold models of the judge


def _train_job(clips, cfg, path: Path) -> str:
    import torch

    from curation.sync_judge.train import save, state_for_file, train_judge

    torch.set_num_threads(1)
    net, hist = train_judge(clips, cfg)
    save(path, state_for_file(net, cfg, clips, hist, "python -m benchmarks.validity sync (fold model)"))
    return str(path)


def _fold_models(clips: list, folds: list[list[str]], seeds: int, steps: int | None, cache: Path, log,
                 jobs: int = 1) -> list[list]:
    """Per fold, ``seeds`` judges trained without the fold's clips (cached by training set)."""
    import dataclasses
    from concurrent.futures import ProcessPoolExecutor

    from curation.sync_judge import _load
    from curation.sync_judge.train import TrainConfig, clips_key

    light = [dataclasses.replace(c, wav=None) for c in clips]
    paths, todo = [], []
    for held in folds:
        train = [c for c in light if c.sha256 not in held]
        row = []
        for seed in range(seeds):
            cfg = TrainConfig(seed=seed) if steps is None else TrainConfig(seed=seed, steps=steps)
            path = cache / "folds" / f"judge-{clips_key(train, cfg)}.pt"
            row.append(path)
            if not path.is_file():
                todo.append((train, cfg, path))
        paths.append(row)
    if todo:
        log(f"  training {len(todo)} fold models ({jobs} at once)")
        import multiprocessing

        with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
            for done in pool.map(_train_job, *zip(*todo)):
                log(f"  trained {Path(done).name}")
    return [[_load(p)[0] for p in row] for row in paths]


# --------------------------------------------------------------------------------------------


@dataclass
class Reading:
    whole: tuple[int, float]
    windows: list[tuple[int, float]]
    motion: list[float] = field(default_factory=list)  # per window lip motion
    speech: list[float] = field(default_factory=list)  # per window speech fraction
    motion_whole: float = 0.0
    # track first: each window read at the whole track's offset (offset, conf there)
    at_track: list[tuple[int, float]] = field(default_factory=list)


def _read(scorer: _Scorer, track: Track, fold: int) -> Reading:
    from curation.sync_judge import curve_at, lip_motion
    from curation.sync_judge.features import opening_from_lips

    whole, wins = scorer.curves(track, fold)
    opening = opening_from_lips(track.lips)
    r = Reading(whole=_stats(whole), windows=[_stats(c) for c in wins], motion_whole=lip_motion(opening))
    r.at_track = [(r.whole[0], curve_at(c, r.whole[0])[0]) for c in wins]
    for i in range(len(wins)):
        s = i * STEP
        r.motion.append(lip_motion(opening[s:s + WINDOW]))
        r.speech.append(track.speech[i])
    return r


def _apply_static_rule(reading: Reading) -> float:
    from curation.sync_judge import STATIC_LIP_MOTION

    return 0.0 if reading.motion_whole < STATIC_LIP_MOTION else reading.whole[1]


def _decisions(reading: Reading, min_conf: float, max_off: int, track_first: bool = False
               ) -> list[tuple[bool, str | None]]:
    from curation.sync_judge import judge_decision

    wins = reading.at_track if track_first else reading.windows
    return [judge_decision(conf, off, m, sp, min_conf, max_off)
            for (off, conf), m, sp in zip(wins, reading.motion, reading.speech)]


MAX_ACCEPT_MISMATCHED = 0.10  # the operating point: at most 10 % of mismatched speech windows pass


def _choose_threshold(neg: list[tuple[int, float]], max_off: int, max_accept_neg: float = MAX_ACCEPT_MISMATCHED
                      ) -> float:
    """Lowest conf threshold at which the whole decision (conf >= threshold and |offset| <=
    ``max_off``) accepts at most ``max_accept_neg`` of the mismatched windows ``neg`` ((offset,
    conf) of windows with speech under a moving mouth: the ones the rules leave to the network).
    Windows that the offset rule rejects count as rejected, so the threshold is no stricter than
    the operating point needs."""
    if not neg:
        return float("nan")
    allowed = int(np.floor(max_accept_neg * len(neg)))
    confs = np.sort([c for off, c in neg if abs(off) <= max_off])[::-1]
    if len(confs) <= allowed:
        return 0.0
    return float(confs[allowed]) + 1e-6


def _frac(xs) -> float | None:
    xs = list(xs)
    return round(float(np.mean(xs)), 4) if xs else None


def run(args) -> dict:
    import torch

    from curation.media import sha256_file
    from curation.stages.person_filter import SYNC_THRESHOLDS
    from curation.sync_judge.features import cache_dir
    from curation.sync_judge.train import clip_from_file

    torch.set_num_threads(int(args.threads))
    data = Path(args.data)
    labels = data / "labels.csv"
    if not labels.is_file():
        raise SystemExit(f"error: {labels}: not found; the sync check needs a labels.csv (file,kind,in_sync,persons,note)")
    cache = Path(args.cache) if args.cache else cache_dir()
    import os

    os.environ["ANYTALKER_SYNC_CACHE"] = str(cache)
    rows = list(csv.DictReader(labels.open()))
    insync = [r for r in rows if r.get("in_sync") == "1" and r.get("persons") == "1"]
    if args.max_clips:
        insync = insync[:int(args.max_clips)]
    nonspeech = [r for r in rows if r.get("kind") == "nonspeech"]
    audio_only = [r for r in rows if r.get("kind") == "audio_only"]
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True)

    log(f"{len(insync)} in-sync clips, {len(nonspeech)} non-speech, {len(audio_only)} audio-only in {data}")
    clips, meta = [], {}
    for r in insync:
        path = data / r["file"]
        c = clip_from_file(path, name=r["file"], keep_wav=True)
        if c is None:
            log(f"  skipped {r['file']}: no face track with enough frames")
            continue
        clips.append(c)
        meta[c.sha256] = {"row": r, "path": path}
    # folds by clip, in sha256 order (the same folder always gives the same folds)
    shas = sorted(meta)
    k = max(2, min(int(args.folds), len(shas)))
    folds = [shas[i::k] for i in range(k)]
    fold_of = {s: i for i, fold in enumerate(folds) for s in fold}

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    scorers: list[_Scorer] = []
    notes = {}
    for b in ([] if getattr(args, "build_only", False) else backends):
        if b == "judge":
            scorers.append(JudgeScorer(_fold_models(clips, folds, int(args.seeds), args.steps, cache, log,
                                                     jobs=int(args.jobs))))
        elif b == "landmark":
            scorers.append(LandmarkScorer())
        elif b == "syncnet":
            notes["syncnet"] = ("not run: needs --syncnet-weights (joonson's syncnet_v2.model cannot be downloaded here)"
                                if not args.syncnet_weights else "not run: face crops are not cached by this check yet")
        else:
            raise SystemExit(f"error: unknown backend {b!r}; use judge, landmark or syncnet")

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="sync_validity_"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"building test files in {work}")
    # foreign audio pool per fold: audio-only files + the fold's other clips
    pool_files = [data / r["file"] for r in audio_only]
    plan = []  # (sha, role, k, path)
    for sha in shas:
        m = meta[sha]
        c = next(x for x in clips if x.sha256 == sha)
        stem = hashlib.sha256(sha.encode()).hexdigest()[:10]
        orig_wav = _wav(c.wav, work / f"{stem}.wav")
        plan.append((sha, "real", 0, m["path"]))
        same_fold = [meta[s]["path"] for s in folds[fold_of[sha]] if s != sha]
        cands = pool_files + same_fold
        rng = np.random.default_rng(int(sha[:8], 16))
        for i, j in enumerate(rng.choice(len(cands), size=min(3, len(cands)), replace=False)):
            plan.append((sha, "foreign", i, (_mux, m["path"], cands[j], work / f"{stem}_foreign{i}.mkv")))
        for kk in SHIFTS:
            plan.append((sha, "shift_sample", kk, (_mux, m["path"], _wav(_shift(c.wav, kk), work / f"{stem}_s{kk}.wav"),
                                                   work / f"{stem}_sample{kk}.mkv")))
            plan.append((sha, "shift_container", kk, (_mux, m["path"], orig_wav, work / f"{stem}_container{kk}.mkv",
                                                      kk / 25.0)))
        plan.append((sha, "frozen", 0, (_frozen, m["path"], orig_wav, c.n / 25.0, work / f"{stem}_frozen.mkv")))
    for r in nonspeech:
        plan.append((None, "nonspeech", 0, data / r["file"]))
    from concurrent.futures import ThreadPoolExecutor

    # ffmpeg runs in subprocesses: a few at once (the face analysis itself stays serial)
    with ThreadPoolExecutor(max_workers=int(args.jobs)) as pool:
        built = list(pool.map(lambda job: job[0](*job[1:]) if isinstance(job, tuple) else job,
                              [p[3] for p in plan]))
    plan = [(sha, role, kk, path) for (sha, role, kk, _), path in zip(plan, built)]
    if getattr(args, "build_only", False):
        log(f"built {len(plan)} files in {work}")
        return {"data": str(data), "built": len(plan), "workdir": str(work)}
    log(f"{len(plan)} files to read")

    source_of = {str(p[3]): meta[p[0]]["path"] for p in plan
                 if p[0] is not None and p[1] in ("foreign", "shift_sample", "shift_container")}

    from curation.media import MediaError

    def read(path):
        try:
            tr = read_track(Path(path), source_of.get(str(path)))
        except MediaError as e:  # a broken built file is counted, never fatal
            log(f"  unreadable {path}: {str(e)[:120]}")
            return None
        if tr is not None:
            tr.speech = _window_speech(tr.wav, len(tr.lips))
        return tr

    # the first reading of each video stream runs the face mesh: do those serially, the rest
    # (cache hits: only ffmpeg + silero-vad) a few at once
    tracks = {}
    for i, (sha, role, kk, path) in enumerate(plan):
        if role in ("real", "frozen", "nonspeech"):
            tracks[str(path)] = read(path)
    rest = [p for p in plan if str(p[3]) not in tracks]
    with ThreadPoolExecutor(max_workers=int(args.jobs)) as pool:
        for (sha, role, kk, path), tr in zip(rest, pool.map(lambda p: read(p[3]), rest)):
            tracks[str(path)] = tr
    log(f"read {len(tracks)} files")

    result = {"data": str(data), "n_clips": len(shas), "folds": k, "window_s": WINDOW / 25, "step_s": STEP / 25,
              "shifts": list(SHIFTS), "backends": {}, "notes": notes}
    for scorer in scorers:
        log(f"scoring with {scorer.name}")
        readings = {}
        for sha, role, kk, path in plan:
            tr = tracks[str(path)]
            fold = fold_of.get(sha, 0) if sha else 0
            if tr is None:
                readings[(sha, role, kk)] = None
                continue
            if sha is None:  # non-speech clips: every fold model (all out of fold for them)
                readings[(str(path), role, kk)] = _read(scorer, tr, 0)
            else:
                readings[(sha, role, kk)] = _read(scorer, tr, fold)
        result["backends"][scorer.name] = _figures(scorer.name, readings, shas, meta, fold_of, k,
                                                   SYNC_THRESHOLDS.get(scorer.name, (None, 4)))
        if getattr(args, "json_out", None):  # a long run keeps what it has measured so far
            Path(args.json_out).write_text(to_json(result))
    _print_table(result)
    result["seconds"] = round(time.time() - t0, 1)
    return result


def _figures(name, readings, shas, meta, fold_of, n_folds, shipped) -> dict:
    from sklearn.metrics import roc_auc_score

    rel, abs2, matched, frozen, frozen_raw, agree = [], [], [], [], [], []
    real_kinds = {meta[s]["row"].get("kind") for s in shas}
    abs_kind = "talking_real" if "talking_real" in real_kinds else None
    for s in shas:
        real = readings.get((s, "real", 0))
        if real is None:
            continue
        off0, conf0 = real.whole
        is_abs = abs_kind is None or meta[s]["row"].get("kind") == abs_kind
        if is_abs:
            abs2.append(abs(off0) <= 2)
        for kk in SHIFTS:
            offs = {}
            for role in ("shift_sample", "shift_container"):
                r = readings.get((s, role, kk))
                if r is None:
                    continue
                offs[role] = r.whole[0]
                rel.append(abs(r.whole[0] - (off0 - kk)) <= 1)
                if is_abs:
                    abs2.append(abs(r.whole[0] + kk) <= 2)
            if len(offs) == 2:
                agree.append(abs(offs["shift_sample"] - offs["shift_container"]) <= 1)
        for i in range(3):
            r = readings.get((s, "foreign", i))
            if r is not None:
                matched.append(_apply_static_rule(real) > _apply_static_rule(r))
        fr = readings.get((s, "frozen", 0))
        if fr is not None:
            frozen.append(_apply_static_rule(fr) < _apply_static_rule(real))
            frozen_raw.append(fr.whole[1] < conf0)

    def wins(role_filter):
        out = []
        for key, r in readings.items():
            if r is not None and role_filter(key):
                out.append((key, r))
        return out

    pos = wins(lambda key: key[1] == "real")
    neg = wins(lambda key: key[1] == "foreign")
    pos_conf = [c for _, r in pos for _, c in r.windows]
    neg_conf = [c for _, r in neg for _, c in r.windows]
    auc = (roc_auc_score(np.r_[np.ones(len(pos_conf)), np.zeros(len(neg_conf))], np.r_[pos_conf, neg_conf])
           if pos_conf and neg_conf else None)

    def filter_rates(thresholds_of_fold, track_first=False):
        acc_in, rej_mis, rej_fr, rej_ns, rej_sh = [], [], [], [], []
        for key, r in readings.items():
            if r is None:
                continue
            sha, role, kk = key
            fold = fold_of.get(sha, None)
            min_conf, max_off = thresholds_of_fold(fold)
            dec = [ok for ok, _ in _decisions(r, min_conf, max_off, track_first)]
            if role == "real":
                acc_in += dec
            elif role == "foreign":
                rej_mis += [not d for d in dec]
            elif role == "frozen":
                rej_fr += [not d for d in dec]
            elif role == "nonspeech":
                rej_ns += [not d for d in dec]
            elif role.startswith("shift") and abs(kk) >= 6:
                rej_sh += [not d for d in dec]
        return {"filter_accept_insync": _frac(acc_in), "filter_reject_mismatched": _frac(rej_mis),
                "filter_reject_frozen": _frac(rej_fr), "filter_reject_nonspeech": _frac(rej_ns),
                "filter_reject_shifted": _frac(rej_sh),
                "n_windows": {"insync": len(acc_in), "mismatched": len(rej_mis), "frozen": len(rej_fr),
                              "nonspeech": len(rej_ns), "shifted": len(rej_sh)}}

    out = {
        "offset_rel_pm1": _frac(rel),
        "offset_abs_pm2": _frac(abs2),
        "matched_gt_mismatched": _frac(matched),
        "frozen_lt_real": _frac(frozen),
        "n_clips": len(shas),
        "frozen_lt_real_raw": _frac(frozen_raw),
        "container_matches_sample_pm1": _frac(agree),
        "window_auc": round(float(auc), 4) if auc is not None else None,
        "offset_abs_pm2_on": abs_kind or "all in-sync clips",
        "own_offsets": {meta[s]["row"]["file"]: readings[(s, "real", 0)].whole[0]
                        for s in shas if readings.get((s, "real", 0)) is not None},
        "per_clip": _per_clip(readings, shas, meta, abs_kind),
    }
    shipped_conf, shipped_off = shipped
    if name == "judge":
        # thresholds chosen out of fold: for fold f, on the mismatched windows of the other folds
        def neg_windows(exclude_fold, track_first=False):
            from curation.sync_judge import MIN_SPEECH_FRAC, STATIC_LIP_MOTION

            out_ = []
            for key, r in neg:
                if exclude_fold is not None and fold_of.get(key[0]) == exclude_fold:
                    continue
                for w, m, sp in zip(r.at_track if track_first else r.windows, r.motion, r.speech):
                    if m >= STATIC_LIP_MOTION and sp >= MIN_SPEECH_FRAC:
                        out_.append(w)
            return out_

        def chosen(track_first=False):
            per_fold = {f: (_choose_threshold(neg_windows(f, track_first), shipped_off), shipped_off)
                        for f in range(n_folds)}
            on_all = _choose_threshold(neg_windows(None, track_first), shipped_off)
            return per_fold, on_all

        per_fold, chosen_all = chosen()
        # clips outside the folds (non-speech) get the threshold chosen on all windows
        cv = filter_rates(lambda fold: per_fold.get(fold, (chosen_all, shipped_off)))
        out.update(cv)
        out["thresholds"] = {"mode": "out of fold (per fold: at most 10 % of the other folds' mismatched speech "
                                     "windows accepted by the whole decision)",
                             "min_conf_per_fold": [round(per_fold[f][0], 4) for f in range(n_folds)],
                             "max_abs_offset": shipped_off,
                             "chosen_on_all_windows": round(chosen_all, 4)}
        if shipped_conf is not None:
            out["at_shipped_thresholds"] = filter_rates(lambda fold: (shipped_conf, shipped_off))
            out["at_shipped_thresholds"]["min_conf"] = shipped_conf
        # track first: the offset read on the whole track, each window judged at it (out of fold
        # too). The curation filter judges a span on its own (its face analysis covers the span
        # only), so these figures are what a whole-track judgment would give, not the filter's.
        tf_fold, tf_all = chosen(track_first=True)
        tf = filter_rates(lambda fold: tf_fold.get(fold, (tf_all, shipped_off)), track_first=True)
        pos_tf = [c for _, r in pos for _, c in r.at_track]
        neg_tf = [c for _, r in neg for _, c in r.at_track]
        tf["window_auc"] = (round(float(roc_auc_score(np.r_[np.ones(len(pos_tf)), np.zeros(len(neg_tf))],
                                                      np.r_[pos_tf, neg_tf])), 4) if pos_tf and neg_tf else None)
        tf["min_conf_per_fold"] = [round(tf_fold[f][0], 4) for f in range(n_folds)]
        out["track_first"] = tf
    else:
        out.update(filter_rates(lambda fold: (shipped_conf, shipped_off)))
        out["thresholds"] = {"mode": "shipped", "min_conf": shipped_conf, "max_abs_offset": shipped_off}
    return out


def _per_clip(readings, shas, meta, abs_kind) -> dict:
    """Every clip's readings, to see which clips and pairs fail: whole-track offset and conf of
    the clip, of each shift (sample / container), of each foreign mux and of the frozen clip."""
    out = {}
    for s in shas:
        real = readings.get((s, "real", 0))
        if real is None:
            continue
        row = meta[s]["row"]

        def whole(key):
            r = readings.get(key)
            return None if r is None else [int(r.whole[0]), round(float(r.whole[1]), 4)]

        out[row["file"]] = {
            "kind": row.get("kind"), "in_offset_abs": abs_kind is None or row.get("kind") == abs_kind,
            "real": whole((s, "real", 0)),
            "shift_sample": {str(k): whole((s, "shift_sample", k)) for k in SHIFTS},
            "shift_container": {str(k): whole((s, "shift_container", k)) for k in SHIFTS},
            "foreign": [whole((s, "foreign", i)) for i in range(3)],
            "frozen": whole((s, "frozen", 0)),
            "windows": [[int(o), round(float(c), 4)] for o, c in real.windows],
        }
    return out


def _print_table(result: dict) -> None:
    names = list(result["backends"])
    rows = list(KEYS) + ["window_auc", "container_matches_sample_pm1", "frozen_lt_real_raw"]
    print(f"\nsync validity on {result['data']} ({result['n_clips']} in-sync clips, {result['folds']} folds)")
    print(f"{'figure':<30}" + "".join(f"{n:>12}" for n in names))
    for key in rows:
        vals = [result["backends"][n].get(key) for n in names]
        print(f"{key:<30}" + "".join(f"{'-' if v is None else v:>12}" for v in vals))
    for n in names:
        tf = result["backends"][n].get("track_first")
        if tf:
            print(f"{n} track first (windows at the whole track's offset): accept in-sync "
                  f"{tf['filter_accept_insync']}, reject mismatched {tf['filter_reject_mismatched']}, "
                  f"reject shifted {tf['filter_reject_shifted']}, window AUC {tf['window_auc']}")
    for n, note in result.get("notes", {}).items():
        print(f"{n}: {note}")


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, sort_keys=True)
