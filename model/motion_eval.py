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

from model.motion import destination, lip_centroid, lip_opening, mouth_width


def _shape_error(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Mean point distance (crop px) of two (T, K, 2) lip shapes, centroids removed (the
    deformation's own terms: head motion is not the head's job)."""
    return float(((pred - lip_centroid(pred)) - (true - lip_centroid(true))).norm(dim=-1).mean())


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) < 1e-9 or np.std(y) < 1e-9:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _windows(n: int, size: int) -> list[slice]:
    return [slice(s, s + size) for s in range(0, n - size + 1, size)]


@torch.no_grad()
def heldout_motion(model, source) -> dict:
    """On each clip's held-out frames (``train.motion_holdout``, never trained on), predicted as
    one sequence from a training reference: the predicted and true inner-lip opening per frame.
    ``r_matched`` / ``r_shuffled``: pooled Pearson r over ``num_frames`` windows, each window
    centred on its own mean (the timing, not the identity's mean opening; round 5's figure), with
    the clip's own audio and with the next held-out clip's audio (a derangement, cut or repeated
    to length); ``matched_beats_shuffled``: fraction of windows whose own-audio r beats the
    other's; ``span_r_*``: mean over clips of the r over the whole held-out span (seconds, the
    scale of the benchmark's items); lip-shape errors in mouth widths (``*_mw``), also of the
    reference's own shape (predicting no motion)."""
    if model.motion is None:
        return {"skipped": "the model has no motion head (model.motion_head: false)"}
    seqs = source.heldout_sequences()
    if not seqs:
        return {"skipped": "no held-out frames with lips (train.motion_holdout is 0 or clips have < 3 windows)"}
    was = model.training
    model.eval()
    win = source.T
    true_o, pred_o, shuf_o, per_m, per_s, span_m, span_s, err_m, err_s, err_0 = ([] for _ in range(10))
    for k, seq in enumerate(seqs):
        other = seqs[(k + 1) % len(seqs)]["audio"]
        n = seq["audio"].shape[2]
        other = other.repeat(1, 1, n // other.shape[2] + 1, 1)[:, :, :n]
        ft = model.encode_faces(seq["faces"])
        ref, lips = seq["ref_lips"][0, 0], seq["lips"][0, 0]
        if not bool(torch.isfinite(ref).all()):
            continue
        width = float(mouth_width(ref))
        d_m = destination(ref, model.motion(ft, seq["audio"], seq["ref_lips"])[0, 0])
        d_s = destination(ref, model.motion(ft, other, seq["ref_lips"])[0, 0])
        ok = torch.isfinite(lips).all(-1).all(-1)
        o_true = np.where(ok.numpy(), lip_opening(torch.nan_to_num(lips)).numpy(), np.nan)
        o_m, o_s = lip_opening(d_m).numpy(), lip_opening(d_s).numpy()
        span_m.append(_pearson(o_m[ok.numpy()], o_true[ok.numpy()]))
        span_s.append(_pearson(o_s[ok.numpy()], o_true[ok.numpy()]))
        for w in _windows(n, win):
            g = ok[w].numpy()
            if g.sum() < 5:
                continue
            t, m, s_ = o_true[w][g], o_m[w][g], o_s[w][g]
            true_o.append(t - t.mean())
            pred_o.append(m - m.mean())
            shuf_o.append(s_ - s_.mean())
            per_m.append(_pearson(m, t))
            per_s.append(_pearson(s_, t))
        good = ok.numpy()
        err_m.append(_shape_error(d_m[good], lips[good]) / width)
        err_s.append(_shape_error(d_s[good], lips[good]) / width)
        err_0.append(_shape_error(ref.expand_as(lips[good]), lips[good]) / width)
    model.train(was)
    if not true_o:
        return {"skipped": "no held-out window has landmarks on 5+ frames"}
    both = [(m, s) for m, s in zip(per_m, per_s) if np.isfinite(m) and np.isfinite(s)]
    return {"clips": len(span_m), "windows": len(true_o),
            "r_matched": round(_pearson(np.concatenate(pred_o), np.concatenate(true_o)), 4),
            "r_shuffled": round(_pearson(np.concatenate(shuf_o), np.concatenate(true_o)), 4),
            "matched_beats_shuffled": round(float(np.mean([m > s for m, s in both])), 4) if both else float("nan"),
            "windows_compared": len(both),
            "span_r_matched": round(float(np.nanmean(span_m)), 4),
            "span_r_shuffled": round(float(np.nanmean(span_s)), 4),
            "landmark_error_mw_matched": round(float(np.mean(err_m)), 4),
            "landmark_error_mw_shuffled": round(float(np.mean(err_s)), 4),
            "landmark_error_mw_reference": round(float(np.mean(err_0)), 4),
            # amplitude: predicted / true spread of the opening (a regression's shrinkage), and the
            # gain generation applies (``MotionHead.amplitude_gain``, from training sequences)
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
