"""`anytalker train` and `anytalker generate`: the bundled AFCA model (see docs/model.md)."""

from __future__ import annotations

import argparse
import json
import os

from anytalker.cli_common import progress_enabled
from kernel.errors import UserError


def _model_errors():
    from model.audio import AudioBackendError
    from model.checkpoint import CheckpointError
    from model.config import ConfigError
    from model.face_encoder import FaceEncoderError
    from model.generate import GenerateError
    from model.shard_reader import ShardError

    return (AudioBackendError, CheckpointError, ConfigError, FaceEncoderError, GenerateError, ShardError)


def _parse_set(items: list[str]) -> dict:
    """--set train.lr=1e-4 -> {"train": {"lr": 1e-4}} (values parsed as YAML scalars)."""
    import yaml

    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. --set train.lr=1e-4")
        key, val = item.split("=", 1)
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        parsed = yaml.safe_load(val)
        if isinstance(parsed, str):
            try:  # YAML 1.1 reads "5e-6" (no dot) as a string; a number was meant
                parsed = float(parsed)
            except ValueError:
                pass
        node[parts[-1]] = parsed
    return out


def cmd_train_sync_judge(args) -> int:
    """`anytalker train sync-judge`: the offline lip-sync judge (curation.sync_judge)."""
    import shlex
    import sys

    import torch

    from curation.sync_judge import WEIGHTS_DIR
    from curation.sync_judge.train import default_training_sources, train_and_save

    torch.set_num_threads(args.threads or 2)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.shards:
        from pipelines.shards import read_rows

        if not os.path.isdir(args.shards):
            raise UserError(f"{args.shards}: not a directory; pass the run directory of `anytalker curate run`")
        sources = []
        for r in read_rows(args.shards):
            if r.get("status", "ok") != "ok" or len(r.get("persons") or []) != 1:
                continue
            fps = float(r.get("fps") or 25.0)
            span = (int(r["start_frame"]) / fps, int(r["end_frame"]) / fps)
            sources.append((r["source_abs_path"], f"{r.get('source_path')}[{r['start_frame']}:{r['end_frame']}]", span))
        if not sources:
            raise UserError(f"{args.shards}: no accepted single-person clip to train on; run `anytalker curate run single_person` first")
    else:
        from kernel.data import resolve_data_root

        sources = default_training_sources(resolve_data_root(args.data))
        if not sources:
            raise UserError(f"{args.data or 'data root'}: no in-sync clip found (eval/labels.csv, talking/); pass --data or --shards")
    # a crop judge never lands in the package by default: av_sync and the metrics read landmark judges only
    out = args.output or (os.path.join("runs", "sync-judge-crops") if args.crops else
                          str(WEIGHTS_DIR) if not args.shards else os.path.join("runs", "sync-judge"))
    command = "anytalker train sync-judge " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    try:
        summary = train_and_save(sources, out, seeds=args.seeds, steps=args.steps, device=device, command=command.strip(),
                                 crops=args.crops)
    except ValueError as e:
        raise UserError(str(e)) from e
    print(json.dumps(summary, indent=2))
    return 0


def cmd_train_overlap_detector(args) -> int:
    """`anytalker train overlap-detector`: the overlapped-speech detector (curation.overlap)."""
    import shlex
    import sys
    from pathlib import Path

    import torch

    from curation.overlap import WEIGHTS_DIR
    from curation.overlap.train import TrainConfig, train_and_save
    from kernel.data import resolve_data_root

    if args.shards:
        raise UserError("--shards: the overlap detector trains on mixtures of per-speaker audio, not shards; "
                        "pass --data (a folder with anytalker_benchmark/audio_left|right, eval/talking_real)")
    torch.set_num_threads(args.threads or 1)
    out = args.output or str(WEIGHTS_DIR)
    command = "anytalker train overlap-detector " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    try:
        # the mixture features are cached by their sources' sha256 and the config (~3 CPU minutes)
        summary = train_and_save(resolve_data_root(args.data), out, TrainConfig(), command=command.strip(),
                                 cache=Path.home() / ".cache" / "anytalker")
    except ValueError as e:
        raise UserError(str(e)) from e
    summary = {k: v for k, v in summary.items() if k != "clips"} | {"n_clips": len(summary["clips"]), "output": out}
    print(json.dumps(summary, indent=2))
    return 0


def cmd_train(args) -> int:
    if args.config == "sync-judge":
        return cmd_train_sync_judge(args)
    if args.config == "overlap-detector":
        return cmd_train_overlap_detector(args)
    import torch

    from model.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.shards:
        raise UserError("--shards is required: pass the run directory of `anytalker curate run`")
    if not os.path.isdir(args.shards):
        raise UserError(f"{args.shards}: not a directory; pass the run directory of `anytalker curate run`")
    out = args.output or os.path.join("runs", f"train-{os.path.splitext(os.path.basename(args.config))[0]}")
    try:
        result = train(args.config, args.shards, out, steps=args.steps, resume=args.resume,
                       overrides=_parse_set(args.set), progress=progress_enabled(args), init=args.init)
    except _model_errors() as e:
        raise UserError(str(e)) from e
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(result, indent=2))
    return 0


def cmd_generate(args) -> int:
    import torch

    from model.generate import generate, parse_boxes

    # all cores by default (torch's own default can be lower, e.g. under a CPU quota)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    for a in args.audio:
        if not os.path.isfile(a):
            raise UserError(f"{a}: audio file not found; pass one --audio per person, left to right")
    if not os.path.isfile(args.image):
        raise UserError(f"{args.image}: reference image not found; pass a PNG/JPEG with the people's faces")
    try:
        boxes = parse_boxes(args.boxes) if args.boxes else None
        record = generate(args.checkpoint, args.image, args.audio, args.output, seconds=args.seconds,
                          steps=args.steps, cfg_scale=args.cfg, boxes=boxes, seed=args.seed,
                          height=args.height, progress=progress_enabled(args), sync_guidance=args.sync_guidance)
    except _model_errors() as e:
        raise UserError(str(e)) from e
    print(json.dumps(record, indent=2))
    return 0


def register(sub) -> None:
    from anytalker import cli_common as c

    p = c.leaf(sub, "train", "train the AFCA model on curated shards", [
        "anytalker train tiny --shards demo_run/single_person --output runs/tiny --steps 300 --threads 1",
        "anytalker train sync-judge",
        "anytalker train overlap-detector",
        "torchrun --nproc_per_node 2 -m anytalker.cli train base --shards runs/r1 --output runs/base",
    ], description="Train the Audio-Face Cross Attention model (flow matching) on a curated run "
                   "directory. Multi-process: torchrun --nproc_per_node N -m anytalker.cli train ...")
    p.add_argument("config", help="config name (tiny, base) or a YAML path; `sync-judge` trains the offline "
                                  "lip-sync judge instead (default: on the shared clips, into the package's weights); "
                                  "`overlap-detector` the diarization's overlapped-speech detector")
    p.add_argument("--shards", help="run directory with a complete manifest.json (sync-judge: accepted clips to train on)")
    p.add_argument("--data", help="sync-judge: data folder with eval/labels.csv and talking/; overlap-detector: with "
                                        "anytalker_benchmark/audio_left|right, eval/ (default ../shared/data)")
    p.add_argument("--seeds", type=int, default=3, help="sync-judge: ensemble size (one network per seed)")
    p.add_argument("--crops", action="store_true",
                   help="sync-judge: mouth crops as a second lip input (round 4b, not the shipped kind: "
                        "av_sync and the metrics read only landmark judges)")
    c.add_output(p, "output directory (checkpoints/, metrics.jsonl); default runs/train-CONFIG", old=("--out",),
                 metavar="DIR")
    p.add_argument("--steps", type=int, help="total training steps (default: train.steps of the config)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoints/last.pt")
    p.add_argument("--init", metavar="CKPT", help="start a new run (step 0, fresh optimizer) from these weights, "
                                                  "e.g. stage 2 from stage 1: --init S1/checkpoints/last.pt "
                                                  "--set train.stage=2 --set train.lr=5e-6 (config = CKPT's + --set)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config value (repeatable), e.g. train.lr=1e-4 (refused with --resume: use --init)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    c.old_spelling(p, "--no-progress", "quiet", "-q/--quiet", switch=True, const=True)
    p.set_defaults(func=cmd_train)

    g = c.leaf(sub, "generate", "generate a talking video from a reference image and audios", [
        "anytalker generate --checkpoint runs/tiny/checkpoints/last.pt --image ../shared/data/images/anytalker/2p-0.png \\\n"
        "    --audio ../shared/data/anytalker_benchmark/audio_left/interact_11_left.flac \\\n"
        "    --audio ../shared/data/anytalker_benchmark/audio_right/interact_11_right.flac --output generated/interact_11.mp4",
    ], description="Generate a talking video: faces in the reference image are bound to the "
                   "--audio files from left to right.")
    g.add_argument("--checkpoint", required=True, help="checkpoint .pt written by `anytalker train`")
    g.add_argument("--image", required=True, help="reference image (first frame)")
    g.add_argument("--audio", action="append", required=True, help="audio of one person; repeat, left to right")
    c.add_output(g, "output .mp4 (a .json sidecar records how it was made)", required=True, old=("--out",),
                 metavar="FILE")
    g.add_argument("--seconds", type=float, help="video length (default: the longest audio)")
    g.add_argument("--sample-steps", dest="steps", type=int,
                   help="sampling (ODE) steps per chunk (default: sample.steps of the config)")
    c.old_spelling(g, "--steps", "steps", "--sample-steps", type=int)
    g.add_argument("--cfg", type=float, help="audio classifier-free guidance scale (default: sample.cfg)")
    g.add_argument("--boxes", help="face boxes 'x1,y1,x2,y2;...' in image pixels instead of detection")
    g.add_argument("--height", type=int, help="output height (default: the config's; width keeps the aspect)")
    g.add_argument("--seed", type=int, default=0, help="random seed of the sampler (default: %(default)s)")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: all cores; use 1 on a shared machine)")
    g.add_argument("--sync-guidance", action=argparse.BooleanOptionalAction, default=None,
                   help="move the predicted lips toward the sync judge's sync with each person's own audio "
                        "(classifier guidance; default: sample.sync_guidance_steps of the checkpoint's config)")
    c.old_spelling(g, "--no-progress", "quiet", "-q/--quiet", switch=True, const=True)
    g.set_defaults(func=cmd_generate)
    register_train_set(sub)


def cmd_train_set(args) -> int:
    from curation.media import MediaError
    from model.trainset import build_train_set

    root = args.data
    for v in args.videos:
        if not os.path.isfile(os.path.join(root, v)):
            raise UserError(f"{os.path.join(root, v)}: video not found; pass paths relative to --data")
    audio_refs = {}
    for spec in args.person_audio or []:
        video, _, files = spec.partition("=")
        if not files:
            raise UserError(f"--person-audio {spec!r}: expected VIDEO=LEFT.wav,RIGHT.wav (paths relative to --data)")
        audio_refs[video] = files.split(",")
    try:
        result = build_train_set(args.videos, root, args.output, holdout=args.holdout, audio_refs=audio_refs)
    except MediaError as e:
        raise UserError(str(e)) from e
    print(json.dumps(result, indent=2))
    return 0


def register_train_set(sub) -> None:
    from anytalker import cli_common as c

    t = c.leaf(sub, "train-set", "build a training set (clips shards) from face tracks of talking videos", [
        "anytalker train-set talking/latentsync_demo1_video.mp4 --data ../shared/data --output runs/trainset",
    ], description="Detect the face(s) of each video, write its first (1 - holdout) as a training clip row "
                   "(engine manifest format) and list the held-out tail in split.json.")
    t.add_argument("videos", nargs="+", help="videos, relative to --data")
    g = t.add_mutually_exclusive_group(required=True)
    g.add_argument("--data", dest="data", metavar="DIR", help="data root the video paths are relative to")
    c.old_spelling(t, "--data-root", "data", "--data", group=g)
    c.add_output(t, "output run directory (manifest.json, clips/, split.json)", required=True, old=("--out",),
                 metavar="DIR")
    t.add_argument("--holdout", type=float, default=0.3,
                   help="fraction of each video held out at its end (default: %(default)s)")
    t.add_argument("--person-audio", action="append", metavar="VIDEO=A.wav,B.wav",
                   help="per-person audio files of a multi-person video, left to right")
    t.set_defaults(func=cmd_train_set)
