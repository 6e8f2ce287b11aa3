"""``python -m benchmarks.model_quality --json OUT [--data ../shared/data] [--work DIR]``

Protocol (all choices fixed here, none tuned on the scores):

* Training identities: the talking clips of ``talking/`` and ``eval/talking_real`` (own voice),
  ``eval/talking_generated`` marked in sync, and both people of ``interact_11`` (per-person
  audio). ``anytalker train-set`` keeps the first 70 % of each clip for training.
* Held-out audio, never seen in training:
  - clip level: the last 30 % of every training clip (same speaker, unseen speech), and the
    second clips of speakers trained on their first clip (Obama, andrew, feifeili);
  - speaker level: speakers with no training clip (BobMenendez, KristiNoem, and speech-only
    files of ``eval/audio_only``).
  Each item is one identity (reference frame from its training span) and ``--seconds`` of
  held-out audio: own speech for clip-level items, the held-out speaker's for speaker-level ones.
* For item k, ``matched`` is generated with its audio a_k, ``shuffled`` with the audio of item
  k+1 (a derangement); both are scored against a_k. Main number: LSE-J, the offline sync
  judge's confidence (``metrics.sync.LipSyncJudge``; a static mouth scores 0);
  ``matched_beats_shuffled`` is the fraction of items scored on both videos where matched >
  shuffled (ties lose). The motion head trains with the loss of judge seeds 0 and 1
  (``train.motion_judge_weight``) and generation may be guided by them (``model.sync_guidance``),
  so the same count is also made with judge seed 2 alone (``*_heldout_judge``), a seed that
  never trains or guides: a gain seen by the ensemble but not by seed 2 is adversarial, not lip sync.
  Secondary (``proxy_*``): Pearson correlation of the mouth opening (mediapipe inner-lip gap /
  face height, ``curation.faces``) with the audio's log-RMS envelope per frame, counted the same
  way; it uses no learnt judge at all. ``rendered_vs_intended_r``: Pearson r of the rendered
  mouth opening with the opening generation meant to show (the sidecar's
  ``intended_opening_px``), mean over matched videos: whether the video shows the guided lips.
* ``identity``: ``metrics.identity`` (dlib backend) of each matched video, mean over items.
* ``sharpness_ratio``: variance of the Laplacian inside the face box of generated frames / the
  reference frame's, mean over matched videos.
* ``identical_consecutive_frames``: consecutive decoded frames that are pixel-identical, summed.
  ``identical_consecutive_frames_before_encoding``: the same on the frames ``generate`` wrote
  (its sidecar): x264's noise decodes a fully static video as almost no equal pairs.
* ``own_interval_motion_ratio``: ``images/anytalker/2p-0.png`` driven by the two interact_11
  audios; per person, mean |d mouth opening / dt| inside their own speaking interval
  (``speaker_duration.json``) / outside it.
* ``train_minutes``: wall minutes of ``anytalker train``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HELD_OUT_SPEAKERS = ["eval/talking_real/SadTalker_WDA_BobMenendez_000.mp4", "eval/talking_real/styletalk_KristiNoem.mkv"]
SECOND_CLIPS = {  # held-out clip -> the training clip of the same speaker
    "eval/talking_real/styletalk_Obama_clip2.mkv": "eval/talking_real/styletalk_Obama_clip1.mkv",
    "eval/talking_real/styletalk_andrew_clip_2.mkv": "eval/talking_real/styletalk_andrew_clip_1.mkv",
    "eval/talking_real/styletalk_feifeili_clip2_short.mkv": "eval/talking_real/styletalk_feifeili_clip1.mkv",
}
AUDIO_ONLY = ["eval/audio_only/InfiniteTalk_multi_1-man.wav", "eval/audio_only/InfiniteTalk_multi_1-woman.wav",
              "eval/audio_only/MuseTalk_sun.wav", "eval/audio_only/SadTalker_chinese_news.wav",
              "eval/audio_only/video-retalking_audio1.wav"]
TALKING = ["talking/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4", "talking/infinitetalk_ref_video.mp4",
           "talking/latentsync_demo1_video.mp4", "talking/syncnet_example_video.avi"]
TWO_PERSON = "anytalker_benchmark/interact_11.mp4"
TWO_PERSON_AUDIO = ["anytalker_benchmark/audio_left/interact_11_left.flac",
                    "anytalker_benchmark/audio_right/interact_11_right.flac"]
SR = 16000


def log(msg: str) -> None:
    print(f"[model_quality {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cli(args: list[str], threads: int) -> dict:
    """Run ``anytalker ARGS`` and return its JSON output (stdout); the error names the command."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "anytalker.cli", *args]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"`anytalker {' '.join(args[:2])} ...` failed ({res.returncode}): {res.stderr.strip()[-800:]}")
    out = res.stdout
    return json.loads(out[out.index("{"):]) if "{" in out else {}


def training_videos(data: Path) -> list[str]:
    vids = list(TALKING)
    with open(data / "eval" / "labels.csv") as f:
        for row in csv.DictReader(f):
            rel = f"eval/{row['file']}"
            if rel in HELD_OUT_SPEAKERS or rel in SECOND_CLIPS:
                continue
            if row["kind"] in ("talking_real", "talking_generated") and row["in_sync"] == "1" and row["persons"] == "1":
                vids.append(rel)
    return vids + [TWO_PERSON]


# --- media helpers (curation primitives) ------------------------------------------------------
def write_frame_png(video: Path, frame: int, out: Path) -> None:
    from PIL import Image

    from curation.media import VideoReader

    Image.fromarray(VideoReader(video).get([frame])[0]).save(out)


def write_audio_segment(src: Path, start_s: float, seconds: float, out: Path) -> bool:
    from curation.media import load_audio, write_wav

    a = load_audio(src, sr=SR, start_s=start_s, end_s=start_s + seconds)
    if len(a) < 0.8 * seconds * SR or np.abs(a).max() < 1e-3:
        return False
    write_wav(out, a, SR)
    return True


def log_rms_envelope(audio: np.ndarray, n: int, fps: float) -> np.ndarray:
    hop = SR / fps
    win = int(round(hop))
    audio = np.pad(audio, (0, max(0, int(np.ceil(n * hop)) + win - len(audio))))
    starts = np.round(np.arange(n) * hop).astype(int)
    frames = audio[starts[:, None] + np.arange(win)[None]]
    return np.log(np.sqrt((frames ** 2).mean(1)) + 1e-4)


def mouth_tracks(video: Path, fps: float = 25.0):
    from metrics import _analysis  # shared with the identity metric: one face analysis per video

    a = _analysis.analyze(video, fps=fps, with_landmarks=True)
    return a, [t.mouth_open for t in a.tracks]


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 8 or np.std(x[ok]) < 1e-9 or np.std(y[ok]) < 1e-9:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def sync_corr(video: Path, audio_path: Path) -> float:
    from curation.media import load_audio

    analysis, mouths = mouth_tracks(video)
    if not mouths:
        return float("nan")
    mouth = max(mouths, key=lambda m: np.isfinite(m).sum())
    env = log_rms_envelope(load_audio(audio_path, sr=SR), len(mouth), analysis.fps)
    return pearson(mouth, env)


# The judge seed that never guides generation (``sample.sync_guidance_seeds`` must not hold it):
# its LSE-J is the check that a gain from sync guidance is not adversarial to the guiding seeds.
HELDOUT_JUDGE_SEED = 2


def heldout_judge_weights() -> str:
    from curation.sync_judge import WEIGHTS_DIR

    return str(WEIGHTS_DIR / f"judge_seed{HELDOUT_JUDGE_SEED}.pt")


def judge_conf(video: Path, audio_path: Path, weights: str | None = None) -> tuple[float, str | None]:
    """LSE-J (``metrics.sync.LipSyncJudge``, the offline sync judge) of the video's face against
    ``audio_path``: (score, None) or (NaN, the metric's skip reason). A mouth that does not move
    scores 0 by the metric's own rule. ``weights``: one judge seed's file instead of the ensemble."""
    from metrics.base import MetricSkip, Sample
    from metrics.sync import LipSyncJudge

    try:
        metric = LipSyncJudge(weights=weights) if weights else LipSyncJudge()
        r = metric.score(Sample(video.stem, str(video), mixed_audio_path=str(audio_path)))
    except MetricSkip as e:
        return float("nan"), str(e)
    return float(r.value), None


def rendered_vs_intended(video: Path) -> float:
    """Pearson r of the rendered mouth opening (mediapipe on the generated frames, 25 fps) with
    the opening the head and the sync guidance chose for them (``mouth_motion.intended_opening_px``
    of the sidecar, at the video's frame rate), first identity; NaN without either. Low r: the
    video does not show the lips the judge was shown, so a judge's gain would not be real."""
    side = json.loads(video.with_suffix(".json").read_text())
    intended = (side.get("mouth_motion") or {}).get("intended_opening_px")
    if not intended:
        return float("nan")
    analysis, mouths = mouth_tracks(video)
    if not mouths:
        return float("nan")
    mouth = max(mouths, key=lambda m: np.isfinite(m).sum())
    want = np.asarray(intended[0], np.float64)
    idx = np.asarray(analysis.frame_indices)
    ok = idx < len(want)
    return pearson(np.asarray(mouth, np.float64)[ok][1:], want[idx[ok]][1:])  # frame 0 is the reference


def sharpness_and_repeats(video: Path) -> tuple[float, int]:
    import cv2

    from curation.media import read_frames

    frames = read_frames(video)
    side = json.loads(video.with_suffix(".json").read_text())
    from PIL import Image

    with Image.open(side["image"]) as im:
        iw, ih = im.size
    sx, sy = side["width"] / iw, side["height"] / ih
    ratios = []
    for b in side["boxes"]:
        x1, y1, x2, y2 = int(b[0] * sx), int(b[1] * sy), int(np.ceil(b[2] * sx)), int(np.ceil(b[3] * sy))
        lap = [cv2.Laplacian(cv2.cvtColor(f[y1:y2, x1:x2], cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for f in frames]
        ratios.append(float(np.mean(lap[1:]) / max(lap[0], 1e-9)))
    repeats = int(sum(np.array_equal(frames[k], frames[k + 1]) for k in range(len(frames) - 1)))
    return float(np.mean(ratios)), repeats


def identity_of(video: Path) -> float:
    from metrics.base import MetricSkip, Sample
    from metrics.identity import IdentitySimilarity

    try:
        return float(IdentitySimilarity().score(Sample(video.stem, str(video))).value)
    except MetricSkip:
        return float("nan")


def contact_sheet(videos: list[Path], out: Path, n_cols: int = 8, cell: int = 128) -> None:
    import cv2
    from PIL import Image

    from curation.media import read_frames

    rows = []
    for v in videos:
        frames = read_frames(v)
        idx = np.linspace(0, len(frames) - 1, n_cols).round().astype(int)
        cells = [cv2.resize(frames[i], (int(cell * frames.shape[2] / frames.shape[1]), cell)) for i in idx]
        rows.append(np.concatenate(cells, 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    Image.fromarray(np.concatenate(rows, 0)).save(out)


# --- protocol -------------------------------------------------------------------------------
def build_items(data: Path, work: Path, split: dict, seconds: float, max_tail_items: int) -> list[dict]:
    """Held-out audio items: identity (image + box) + audio segment."""
    train_rows = {r["clip_id"]: r for r in split["train"] if r["status"] == "ok"}
    by_source = {}
    for r in train_rows.values():
        by_source.setdefault(r["source_path"], []).append(r)
    refs = {}

    def identity_image(row) -> tuple[Path, list]:
        key = row["clip_id"]
        if key not in refs:
            png = work / "refs" / f"{key}.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            write_frame_png(data / row["source_path"], int(row["ref_frame"]), png)
            refs[key] = (png, row["ref_box"])
        return refs[key]

    def audio_source(rel_or_mix: str) -> Path:
        return data / (rel_or_mix[4:] if rel_or_mix.startswith("mix:") else rel_or_mix)

    items = []
    seg_dir = work / "audio"
    seg_dir.mkdir(parents=True, exist_ok=True)
    # only tails long enough for an item (``write_audio_segment`` refuses < 80 % of ``seconds``)
    # are spread over: striding over all tails first (before round 6) picked short ones and
    # dropped every usable tail of the 39-clip set (0 of 9)
    tails = [h for h in split["heldout"] if h["source_path"] != TWO_PERSON
             and float(h["end_s"]) - float(h["start_s"]) >= 0.8 * seconds]
    step = max(1, len(tails) // max_tail_items)
    for h in tails[::step][:max_tail_items]:  # clip level: the held-out tail of a training clip
        row = next((r for r in by_source.get(h["source_path"], []) if r["clip_id"].endswith(f"-p{h['person']}")
                    or len(by_source[h["source_path"]]) == 1), None)
        wav = seg_dir / f"tail_{Path(h['source_path']).stem}.wav"
        if row and write_audio_segment(audio_source(h["audio_ref"]), h["start_s"], seconds, wav):
            items.append({"kind": "clip_tail", "identity": row["clip_id"], "audio": wav, "ref": identity_image(row)})
    for held, trained in SECOND_CLIPS.items():  # clip level: the same speaker's other clip
        rows = by_source.get(trained)
        wav = seg_dir / f"clip2_{Path(held).stem}.wav"
        if rows and write_audio_segment(data / held, 1.0, seconds, wav):
            items.append({"kind": "clip_other", "identity": rows[0]["clip_id"], "audio": wav,
                          "ref": identity_image(rows[0])})
    identities = sorted(train_rows)
    for k, rel in enumerate(HELD_OUT_SPEAKERS + AUDIO_ONLY):  # speaker level
        wav = seg_dir / f"speaker_{Path(rel).stem}.wav"
        row = train_rows[identities[(7 * k) % len(identities)]]
        if (data / rel).is_file() and write_audio_segment(data / rel, 1.0, seconds, wav):
            items.append({"kind": "speaker", "identity": row["clip_id"], "audio": wav, "ref": identity_image(row)})
    return items


def balanced(items: list[dict], max_items: int) -> list[dict]:
    """At most ``max_items``, taken round-robin over the kinds (clip tail, other clip, speaker)."""
    kinds: dict[str, list[dict]] = {}
    for it in items:
        kinds.setdefault(it["kind"], []).append(it)
    out, k = [], 0
    while len(out) < min(max_items, len(items)):
        for group in kinds.values():
            if k < len(group) and len(out) < max_items:
                out.append(group[k])
        k += 1
    return out


def generate(ckpt: Path, image: Path, box, audios: list[Path], out: Path, threads: int, seconds: float,
             sync_guidance: str = "config") -> dict:
    args = ["generate", "--checkpoint", str(ckpt), "--image", str(image), "--output", str(out),
            "--seconds", str(seconds), "--threads", str(threads), "--quiet"]
    if sync_guidance != "config":
        args.append("--sync-guidance" if sync_guidance == "on" else "--no-sync-guidance")
    if box is not None:
        args += ["--boxes", ",".join(f"{v:.1f}" for v in box)]
    for a in audios:
        args += ["--audio", str(a)]
    return cli(args, threads)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.model_quality", description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="write the figures here")
    ap.add_argument("--data", default="../shared/data", help="the shared data folder")
    ap.add_argument("--work", default="runs/model_quality", help="working directory (shards, run, videos)")
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--steps", type=int, help="training steps (default: the config's)")
    ap.add_argument("--set", action="append", default=[], help="config override passed to `anytalker train`")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each held-out audio item")
    ap.add_argument("--max-tail-items", type=int, default=10)
    ap.add_argument("--max-items", type=int, default=24, help="held-out items in all, balanced over the kinds")
    ap.add_argument("--reuse", action="store_true", help="reuse an existing training set and checkpoint in --work")
    ap.add_argument("--sync-guidance", choices=("config", "on", "off"), default="config",
                    help="sync-judge guidance at generation (default: the checkpoint's config)")
    ap.add_argument("--videos", default="videos", help="subfolder of --work for the generated videos (compare "
                                                       "settings on one checkpoint with --reuse)")
    args = ap.parse_args(argv)
    data, work = Path(args.data).resolve(), Path(args.work).resolve()
    if not (data / "eval" / "labels.csv").is_file():
        print(f"error: {data}: no eval/labels.csv; pass --data pointing at the shared data folder", file=sys.stderr)
        return 2
    work.mkdir(parents=True, exist_ok=True)
    shards, run = work / "shards", work / "run"
    ckpt = run / "checkpoints" / "last.pt"

    if not (args.reuse and (shards / "split.json").is_file()):
        log("building the training set from face tracks")
        vids = [v for v in training_videos(data) if (data / v).is_file()]
        cli(["train-set", *vids, "--data", str(data), "--output", str(shards), "--holdout", "0.3",
             "--person-audio", f"{TWO_PERSON}={','.join(TWO_PERSON_AUDIO)}"], args.threads)
    split = json.loads((shards / "split.json").read_text())
    train_result, train_minutes = {}, None
    if not (args.reuse and ckpt.is_file()):
        log("training")
        t0 = time.time()
        targs = ["train", args.config, "--shards", str(shards), "--output", str(run), "--threads", str(args.threads),
                 "--quiet"] + (["--steps", str(args.steps)] if args.steps else [])
        for s in args.set:
            targs += ["--set", s]
        train_result = cli(targs, args.threads)
        train_minutes = (time.time() - t0) / 60
        (work / "train_result.json").write_text(json.dumps({**train_result, "train_minutes": train_minutes}, indent=2))
    elif (work / "train_result.json").is_file():
        prev = json.loads((work / "train_result.json").read_text())
        train_result, train_minutes = prev, prev.get("train_minutes")

    items = balanced(build_items(data, work, split, args.seconds, args.max_tail_items), args.max_items)
    log(f"{len(items)} held-out audio items; generating matched and shuffled videos")
    vid_dir = work / args.videos
    vid_dir.mkdir(exist_ok=True)
    rows = []
    for k, it in enumerate(items):
        other = items[(k + 1) % len(items)]["audio"]
        png, box = it["ref"]
        matched, shuffled = vid_dir / f"{k:02d}_matched.mp4", vid_dir / f"{k:02d}_shuffled.mp4"
        rec = generate(ckpt, png, box, [it["audio"]], matched, args.threads, args.seconds, args.sync_guidance)
        generate(ckpt, png, box, [other], shuffled, args.threads, args.seconds, args.sync_guidance)
        guiding = (rec.get("mouth_motion") or {}).get("sync_guidance") or {}
        if guiding.get("steps") and HELDOUT_JUDGE_SEED in guiding.get("seeds", []):
            raise RuntimeError(f"sample.sync_guidance_seeds {guiding['seeds']} holds judge seed {HELDOUT_JUDGE_SEED}, "
                               "the seed this benchmark keeps for scoring; guide with the other seeds")
        j_m, why_m = judge_conf(matched, it["audio"])
        j_s, why_s = judge_conf(shuffled, it["audio"])
        h_m, _ = judge_conf(matched, it["audio"], heldout_judge_weights())
        h_s, _ = judge_conf(shuffled, it["audio"], heldout_judge_weights())
        c_m, c_s = sync_corr(matched, it["audio"]), sync_corr(shuffled, it["audio"])
        sharp, rep_m = sharpness_and_repeats(matched)
        _, rep_s = sharpness_and_repeats(shuffled)
        row = {"item": k, "kind": it["kind"], "identity": it["identity"], "audio": it["audio"].name,
               "judge_matched": j_m, "judge_shuffled": j_s, "judge_unscored": why_m or why_s,
               "heldout_judge_matched": h_m, "heldout_judge_shuffled": h_s,
               "rendered_vs_intended_r": rendered_vs_intended(matched),
               "sync_guidance": guiding,
               "corr_matched": c_m, "corr_shuffled": c_s, "identity_similarity": identity_of(matched),
               "sharpness_ratio": sharp, "identical_consecutive_frames": rep_m + rep_s,
               # the same count on the frames generate wrote (its sidecar): the encoder's noise
               # made a fully static video (72 equal frames, round 6's item 12) decode as 1 pair
               "identical_before_encoding": sum(int(json.loads(v.with_suffix(".json").read_text()).get(
                   "identical_consecutive_frames_before_encoding", 0)) for v in (matched, shuffled)),
               "seconds_per_generated_second": rec.get("seconds_per_generated_second")}
        rows.append(row)
        log(f"item {k} {it['kind']:10s} LSE-J matched {j_m:.3f} shuffled {j_s:.3f} (seed {HELDOUT_JUDGE_SEED}: {h_m:.3f} "
            f"{h_s:.3f}) rendered~intended r={row['rendered_vs_intended_r']:+.2f} | matched r={c_m:+.3f} shuffled r={c_s:+.3f} id={row['identity_similarity']:.3f} "
            f"sharp={sharp:.2f}")

    log("two-person generation: 2p-0.png + interact_11 audios")
    two = vid_dir / "2p-0_interact_11.mp4"
    generate(ckpt, data / "images/anytalker/2p-0.png", None, [data / a for a in TWO_PERSON_AUDIO], two, args.threads, 0,
             args.sync_guidance)
    intervals = json.loads((data / "anytalker_benchmark/speaker_duration.json").read_text())["interact_11.mp4"]
    analysis, mouths = mouth_tracks(two)
    t = np.arange(len(analysis.frame_indices)) / analysis.fps  # analysis time axis
    own_ratio = [float("nan"), float("nan")]  # NaN = the face tracker did not hold that person
    for slot, (name, mouth) in enumerate(zip(("left", "right"), mouths[:2] if len(mouths) >= 2 else [])):
        motion = np.abs(np.diff(mouth, prepend=np.nan))
        inside = np.zeros(len(t), bool)
        for a, b in intervals[name]:
            inside |= (t >= a) & (t < b)
        mi, mo = np.nanmean(motion[inside]), np.nanmean(motion[~inside])
        own_ratio[slot] = float(mi / mo) if mo > 0 else float("nan")
    _, rep_two = sharpness_and_repeats(two)

    # main number: the sync judge (LSE-J); an item counts as scored when both videos were scored
    # (a static mouth scores 0 and then cannot beat anything: ties are losses)
    judged = [r for r in rows if np.isfinite(r["judge_matched"]) and np.isfinite(r["judge_shuffled"])]
    beats = float(np.mean([r["judge_matched"] > r["judge_shuffled"] for r in judged])) if judged else float("nan")
    held = [r for r in rows if np.isfinite(r["heldout_judge_matched"]) and np.isfinite(r["heldout_judge_shuffled"])]
    beats_held = (float(np.mean([r["heldout_judge_matched"] > r["heldout_judge_shuffled"] for r in held]))
                  if held else float("nan"))
    valid = [r for r in rows if np.isfinite(r["corr_matched"]) and np.isfinite(r["corr_shuffled"])]
    proxy = float(np.mean([r["corr_matched"] > r["corr_shuffled"] for r in valid])) if valid else float("nan")
    result = {
        "matched_beats_shuffled": beats,
        "matched_beats_shuffled_by_kind": {k: float(np.mean([r["judge_matched"] > r["judge_shuffled"]
                                                             for r in judged if r["kind"] == k]))
                                           for k in sorted({r["kind"] for r in judged})},
        "n_items_scored": len(judged), "n_items": len(rows),
        "mean_judge_matched": float(np.mean([r["judge_matched"] for r in judged])) if judged else None,
        "mean_judge_shuffled": float(np.mean([r["judge_shuffled"] for r in judged])) if judged else None,
        # the same count with judge seed 2 alone, the seed that never guides generation: if the
        # ensemble's figure is far above this one, the guidance fooled the guiding seeds
        "matched_beats_shuffled_heldout_judge": beats_held,
        "heldout_judge_seed": HELDOUT_JUDGE_SEED,
        "heldout_judge_n_items_scored": len(held),
        "mean_heldout_judge_matched": float(np.mean([r["heldout_judge_matched"] for r in held])) if held else None,
        "mean_heldout_judge_shuffled": float(np.mean([r["heldout_judge_shuffled"] for r in held])) if held else None,
        "sync_guidance": rows[0]["sync_guidance"] if rows else None,
        "rendered_vs_intended_r": float(np.nanmean([r["rendered_vs_intended_r"] for r in rows])) if rows else None,
        "proxy_matched_beats_shuffled": proxy,
        "proxy_n_items_scored": len(valid),
        "mean_corr_matched": float(np.mean([r["corr_matched"] for r in valid])) if valid else None,
        "mean_corr_shuffled": float(np.mean([r["corr_shuffled"] for r in valid])) if valid else None,
        "identity": float(np.nanmean([r["identity_similarity"] for r in rows])),
        "n_identity_scored": int(np.isfinite([r["identity_similarity"] for r in rows]).sum()),
        "identity_backend": "dlib (metrics.identity)",
        "sharpness_ratio": float(np.mean([r["sharpness_ratio"] for r in rows])),
        "identical_consecutive_frames": int(sum(r["identical_consecutive_frames"] for r in rows) + rep_two),
        "identical_consecutive_frames_before_encoding": int(sum(r["identical_before_encoding"] for r in rows) + int(
            json.loads(two.with_suffix(".json").read_text()).get("identical_consecutive_frames_before_encoding", 0))),
        "own_interval_motion_ratio": own_ratio,
        "two_person_tracks": len(mouths),
        "train_minutes": train_minutes,
        "train_diagnostics": train_result.get("diagnostics"),
        # the motion head's own figure on windows the run did not train on (model.motion_eval)
        "motion_heldout": train_result.get("motion_heldout"),
        "sync_measure": ("matched_beats_shuffled: LSE-J (metrics.sync.LipSyncJudge, the offline sync judge) of the "
                         "matched vs the shuffled video, both against the matched audio; proxy_*: Pearson(mouth "
                         "opening, log-RMS audio envelope), mediapipe landmarks"),
        "config": args.config, "threads": args.threads, "seconds_per_item": args.seconds,
        "seconds_per_generated_second": float(np.mean([r["seconds_per_generated_second"] or np.nan for r in rows])),
        "items": rows,
    }
    sheet = work / "contact_sheet.png"
    contact_sheet([vid_dir / f"{k:02d}_matched.mp4" for k in range(min(6, len(rows)))] + [two], sheet)
    result["contact_sheet"] = str(sheet)
    Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    for key in ("matched_beats_shuffled", "matched_beats_shuffled_heldout_judge", "proxy_matched_beats_shuffled",
                "rendered_vs_intended_r", "identity", "identical_consecutive_frames_before_encoding", "sharpness_ratio", "identical_consecutive_frames",
                "own_interval_motion_ratio", "train_minutes"):
        print(f"{key:30s} {result[key]}")
    if result["train_diagnostics"]:
        gap = result["train_diagnostics"]["audio_swap_gap"]
        print(f"{'audio_swap_gap first/last':30s} {gap['first']:.4f} / {gap['last']:.4f}")
        if "audio_swap_gap_t1" in result["train_diagnostics"]:
            gap1 = result["train_diagnostics"]["audio_swap_gap_t1"]
            print(f"{'audio_swap_gap_t1 first/last':30s} {gap1['first']:.4f} / {gap1['last']:.4f}")
    if result["motion_heldout"]:
        print(f"{'motion head, held-out windows':30s} {json.dumps(result['motion_heldout'])}")
    print(f"contact sheet: {sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
