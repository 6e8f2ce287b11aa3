"""The motion head's held-out figure: on windows the run did not train on (``train.motion_holdout``),
does the mouth opening it predicts from the audio follow the true opening (mediapipe landmarks),
and better with the window's own audio than with another held-out window's?

``python -m model.motion_eval --checkpoint CKPT --shards SHARDS`` prints it for a checkpoint;
training prints it at the end of a run (``motion_heldout`` in the result).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from model.motion import destination, lip_centroid, lip_opening


def _shape_error(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Mean point distance (crop px) of two (T, K, 2) lip shapes, centroids removed (the
    deformation's own terms: head motion is not the head's job)."""
    return float(((pred - lip_centroid(pred)) - (true - lip_centroid(true))).norm(dim=-1).mean())


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) < 1e-9 or np.std(y) < 1e-9:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


@torch.no_grad()
def heldout_motion(model, source, max_windows: int = 256) -> dict:
    """Per held-out window with landmarks: the predicted and true inner-lip opening per frame,
    each centred on its window's mean (the timing, not the identity's mean opening). Returns the
    pooled Pearson r with the window's own audio (``r_matched``) and with the next held-out
    window's audio (``r_shuffled``, a derangement), the fraction of windows whose own-audio r
    beats the shuffled one, and the lip-shape error (crop px) of both and of the reference's own
    shape (predicting no motion)."""
    if model.motion is None:
        return {"skipped": "the model has no motion head (model.motion_head: false)"}
    was = model.training
    model.eval()
    batches = list(source.heldout_batches())
    if not batches:
        return {"skipped": "no held-out windows (train.motion_holdout is 0 or every clip has < 3 windows)"}
    all_audio = torch.cat([b["audio"] for b in batches])
    n_total = len(all_audio)
    true_o, pred_o, shuf_o, err_m, err_s, err_0, k0 = [], [], [], [], [], [], 0
    for batch in batches:
        b, h = batch["video"].shape[0], batch["video"].shape[3]
        t_frames = batch["video"].shape[2]
        other = all_audio[[(k0 + i + 1) % n_total for i in range(b)]]
        k0 += b
        outs = []
        for audio in (batch["audio"], other):
            ft, at = model.encode_conditions(batch["ref"], batch["faces"], audio)
            outs.append(model.motion(ft, at, batch["ref_lips"], t_frames, float(h)))
        lips, ref = batch["lips"][:, 0], batch["ref_lips"][:, 0]  # identity 0 (single-person windows)
        for i in range(b):
            ok = torch.isfinite(lips[i]).all(-1).all(-1) & bool(torch.isfinite(ref[i]).all())
            if int(ok.sum()) < 5:
                continue
            o_true = lip_opening(lips[i][ok]).numpy()
            d_m = destination(ref[i], outs[0][i, 0])[ok]
            d_s = destination(ref[i], outs[1][i, 0])[ok]
            true_o.append(o_true - o_true.mean())
            pm, ps = lip_opening(d_m).numpy(), lip_opening(d_s).numpy()
            pred_o.append(pm - pm.mean())
            shuf_o.append(ps - ps.mean())
            err_m.append(_shape_error(d_m, lips[i][ok]))
            err_s.append(_shape_error(d_s, lips[i][ok]))
            err_0.append(_shape_error(ref[i].expand_as(lips[i][ok]), lips[i][ok]))
    model.train(was)
    if not true_o:
        return {"skipped": "no held-out window has landmarks on 5+ frames"}
    per_m = [_pearson(p, t) for p, t in zip(pred_o, true_o)]
    per_s = [_pearson(p, t) for p, t in zip(shuf_o, true_o)]
    both = [(m, s) for m, s in zip(per_m, per_s) if np.isfinite(m) and np.isfinite(s)]
    return {"windows": len(true_o),
            "r_matched": round(_pearson(np.concatenate(pred_o), np.concatenate(true_o)), 4),
            "r_shuffled": round(_pearson(np.concatenate(shuf_o), np.concatenate(true_o)), 4),
            "matched_beats_shuffled": round(float(np.mean([m > s for m, s in both])), 4) if both else float("nan"),
            "windows_compared": len(both),
            "landmark_error_px_matched": round(float(np.mean(err_m)), 3),
            "landmark_error_px_shuffled": round(float(np.mean(err_s)), 3),
            "landmark_error_px_reference": round(float(np.mean(err_0)), 3),
            # amplitude: predicted / true spread of the opening (a regression's shrinkage), and the
            # gain generation applies (``MotionHead.amplitude_gain``, from training windows)
            "opening_std_ratio": round(float(np.std(np.concatenate(pred_o)) / max(np.std(np.concatenate(true_o)), 1e-9)), 4),
            "amplitude_gain": round(model.motion.amplitude_gain(), 4)}


def main(argv=None) -> int:
    from model.data import ShardTrainingSource
    from model.generate import load_model

    ap = argparse.ArgumentParser(prog="python -m model.motion_eval", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--shards", required=True)
    args = ap.parse_args(argv)
    model, cfg, frontend, _ = load_model(args.checkpoint)
    source = ShardTrainingSource(args.shards, cfg, frontend)
    print(json.dumps(heldout_motion(model, source), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
