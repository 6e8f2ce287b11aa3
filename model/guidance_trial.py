"""Sync guidance without rendering: does it make the lips match their own audio for a judge
seed that did not guide? ``python -m model.guidance_trial --checkpoint CKPT [--steps 40]
[--penalty 0.5] [--seconds 3]``

Items: 3 s segments (at 5 s, 9 s, 13 s) of the speech files of ``eval/audio_only`` (never a
training clip of the model or of the judge), the left face of ``images/anytalker/2p-0.png`` as
the identity. Per item k: the head's lips for audio k (``c0``) and the guided lips (``c``), both
scored against audio k and against audio k+1 (a derangement) by each judge seed alone, as
LSE-J's confidence (median - min of the distance curve over +-15 frames) on the lips the
generation would render (no mesh on pixels: ``benchmarks.model_quality`` does that, and checks
the render). Prints, per seed, the fraction of items where matched beats shuffled and the mean
confidences, for the head alone and guided.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

SEGMENTS_S = (5.0, 9.0, 13.0)  # after the benchmark's items (1-4 s of five of these files): tuning never sees them


def conf(nets, lips: np.ndarray, wave: np.ndarray) -> float:
    from curation.sync_judge import curve_from_sims, track_sims

    sims, _ = track_sims(nets, lips, wave, 15)
    c = curve_from_sims(sims)
    return float(np.median(c) - c.min())


def main(argv=None) -> int:
    from curation.media import load_audio
    from curation.sync_judge import WEIGHTS_DIR, load_ensemble
    from model.audio import frame_windows
    from model.generate import detect_faces, load_model, read_image, reference_lips
    from model.data import crop_face, crop_region, map_points
    from model.data import to_model_range
    from model.motion import centre_features
    from model.sync_guidance import SyncGuidance, guide_coefficients, judge_lip_features, resample_frames, JUDGE_FPS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--penalty", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seeds", default="0,1", help="judge seeds that guide")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--smooth", type=float, default=1.5, help="sync_guidance_smooth (frames; 0 = off)")
    ap.add_argument("--augment", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = Path(args.data)
    model, cfg, frontend, _ = load_model(args.checkpoint)
    v = cfg["video"]
    fps, crop_h, crop_w = float(v["fps"]), int(v["height"]), int(v["width"])
    rgb = read_image(data / "images/anytalker/2p-0.png")
    boxes, _ = detect_faces(rgb, "2p-0.png")
    box = sorted(boxes, key=lambda b: b[0])[0]
    x0, y0, cw, ch = crop_region([box], rgb.shape[1], rgb.shape[0], crop_w / crop_h, float(v["crop_scale"]))
    pts = map_points(reference_lips(rgb, [box])[0][0], x0, y0, cw, ch, crop_w, crop_h)
    ref_lips, eyes = torch.from_numpy(pts[:-2])[None, None], torch.from_numpy(pts[-2:])[None]
    face_tokens = model.encode_faces(to_model_range(crop_face(rgb, box, int(cfg["model"]["face_size"]))[None, None]))
    n = int(round(args.seconds * fps))
    waves = []
    for f in sorted((data / "eval/audio_only").iterdir()):
        for s in SEGMENTS_S:
            w = load_audio(f, sr=16000, start_s=s, end_s=s + args.seconds)
            if len(w) >= 0.95 * args.seconds * 16000 and np.abs(w).max() > 1e-3:
                waves.append(np.pad(w, (0, max(0, int(n / fps * 16000) - len(w)))))
    seeds = tuple(int(s) for s in args.seeds.split(","))
    guidance = SyncGuidance(steps=args.steps, lr=args.lr, penalty=args.penalty, seeds=seeds, smooth=args.smooth,
                            augment=args.augment)
    gain = model.motion.amplitude_gain()
    lips_of = {}
    for k, w in enumerate(waves):
        feats = torch.from_numpy(frame_windows(frontend(w, n, fps), int(cfg["model"]["audio_window"]))).float()
        with torch.no_grad():
            c0 = model.motion.with_gain(model.motion.coefficients(face_tokens, centre_features(feats)[None, None],
                                                                  ref_lips), gain)[:, 0]
        c, rec = guide_coefficients(model.motion, c0, ref_lips[:, 0], eyes, [w], fps, guidance)
        for name, cc in (("head", c0), ("guided", c)):
            with torch.no_grad():
                p = ref_lips[:, 0][:, None] + model.motion.to_deformation(cc[:, None], ref_lips)[:, 0]
                lips_of[(name, k)] = judge_lip_features(resample_frames(p, fps, JUDGE_FPS), eyes)[0].numpy()
    result = {"items": len(waves), "guiding_seeds": list(seeds), "steps": args.steps, "penalty": args.penalty,
              "smooth": args.smooth, "augment": args.augment}
    for seed in (0, 1, 2):
        nets, _ = load_ensemble((str(WEIGHTS_DIR / f"judge_seed{seed}.pt"),))
        for name in ("head", "guided"):
            m = [conf(nets, lips_of[(name, k)], waves[k]) for k in range(len(waves))]
            s = [conf(nets, lips_of[(name, k)], waves[(k + 1) % len(waves)]) for k in range(len(waves))]
            result[f"seed{seed}_{name}"] = {"beats": round(float(np.mean(np.array(m) > np.array(s))), 3),
                                            "matched": round(float(np.mean(m)), 4), "shuffled": round(float(np.mean(s)), 4)}
            print(f"seed {seed}{' (guides)' if seed in seeds else ' (held out)'} {name:6s}: matched beats shuffled "
                  f"{result[f'seed{seed}_{name}']['beats']:.3f}, mean conf {np.mean(m):.3f} vs {np.mean(s):.3f}", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
