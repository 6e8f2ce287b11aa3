"""Does a checkpoint's mouth depend on the audio? The audio-swap gap on fixed batches at fixed t.

    python -m model.audio_gap --checkpoint CKPT --shards RUN_DIR [--batches 6] [--code DIR] [--json OUT]

``--code`` puts another checkout's ``model`` package first (a checkpoint of older code needs its
code), as in ``model.sampler_speed``.

For each of ``--batches`` batches (steps 900000.. of the shards' batch sequence, not the steps a
short run trains on, though the windows come from the same training clips) and each t in
0.5 / 0.8 / 1.0, with one fixed noise draw: the mean squared error of the predicted clean
mouth-region tokens (latent frames 1..) with the samples' own audio and with the audio rolled by
one sample in the batch. ``gap_pct`` = 100 * (swapped / own - 1); ``batches_swap_worse`` counts
the batches where the wrong audio did worse. A model that ignores the audio has gap 0 and about
half of the batches worse by chance. Training diagnostics log the same gap per log step on the
step's own batch (``audio_swap_gap_t1``); this fixes the batches so checkpoints compare.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from model.code_checkout import use_model_package_from

T_VALUES = (0.5, 0.8, 1.0)
FIRST_STEP = 900_000


def mouth_swap_gap(checkpoint: str | Path, shards: str | Path, batches: int = 6) -> dict:
    from model.data import ShardTrainingSource
    from model.dit import patchify
    from model.flow import predict_x0
    from model.generate import load_model

    model, cfg, frontend, _ = load_model(checkpoint)
    model.eval()
    source = ShardTrainingSource(shards, cfg, frontend)
    data = [source.batch(FIRST_STEP + k) for k in range(batches)]
    out = {}
    with torch.no_grad():
        for t_value in T_VALUES:
            own, swapped = [], []
            for k, batch in enumerate(data):
                video = batch["video"]
                b, _, frames = video.shape[:3]
                x0 = patchify(video, model.patch)
                noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(k))
                t = torch.full((b,), t_value)
                xt = (1 - t_value) * x0 + t_value * noise
                lat = (frames - 1) // 4 + 1
                s = x0.shape[1] // lat
                mouth = batch["mouth_masks"].reshape(b, -1).repeat(1, lat - 1) > 0

                def err(audio):
                    ft, at = model.encode_conditions(batch["ref"], batch["faces"], audio)
                    x0_hat = predict_x0(model, xt, t, batch["ref"], video[:, :, 0], ft, at, batch["face_masks"],
                                        frames)
                    return float((x0_hat[:, s:] - x0[:, s:]).pow(2).mean(-1)[mouth].mean())

                own.append(err(batch["audio"]))
                swapped.append(err(torch.roll(batch["audio"], 1, 0)))
            own_a, swap_a = np.array(own), np.array(swapped)
            out[f"t={t_value}"] = {"mouth_mse_own": round(float(own_a.mean()), 6),
                                   "mouth_mse_swapped": round(float(swap_a.mean()), 6),
                                   "gap_pct": round(100 * float(swap_a.mean() / own_a.mean() - 1), 3),
                                   "batches_swap_worse": int((swap_a > own_a).sum()), "batches": batches}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.audio_gap", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--shards", required=True, help="the run directory the model was trained on")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--code", help="checkout whose model/ package loads the checkpoint (default: this one)")
    args = ap.parse_args(argv)
    if args.code:
        use_model_package_from(args.code)
    torch.set_num_threads(args.threads)
    for path, what in ((Path(args.checkpoint), "checkpoint"), (Path(args.shards), "shards run directory")):
        if not path.exists():
            print(f"error: {path}: no such {what}", file=sys.stderr)
            return 2
    res = {"checkpoint": args.checkpoint, **mouth_swap_gap(args.checkpoint, args.shards, args.batches)}
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
