"""How much of the lip motion can a *low-capacity* map from audio predict on clips it did not see?

``python -m model.motion_ceiling --shards SHARDS [--json OUT]`` fits a closed-form ridge
regression from the training front end's audio features (``model.audio``: log-mel, normalised
per clip, +-``--context`` video frames) to the lips of the shards' ``lips`` column (mediapipe
landmarks, ``anytalker train-set``): the inner-lip opening / mouth width and the first
``--pca`` principal components of the lip shape (centroid removed, divided by the clip's
median mouth width). Two held-out schemes, both scoring r (Pearson, each window centred on its
own mean, as ``model.motion_eval`` does) with the window's own audio and with another
held-out window's audio:

* ``tail``: train on the first 90 % of every clip, test on the last 10 % (the motion head's
  held-out windows, ``train.motion_holdout``);
* ``clip_folds``: grouped k-fold over source videos (the two people of a two-person video are
  one group): the test clips' speakers and faces are unseen.

The ridge penalty is picked by an inner grouped split of the training part only. The figure is
what a linear map of the same audio features achieves, the reference the learned head is
compared with (docs/model.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from model.audio import LogMelFrontend, frame_windows
from model.motion import lip_opening, mouth_width

WINDOW = 9  # frames per evaluation window (the tiny config's num_frames)
FPS = 24.0


def clip_table(shards: str | Path, fps: float = FPS, n_mels: int = 40, mels_per_frame: int = 4) -> list[dict]:
    """Per single-person clip with lip labels: audio features (n, F) at ``fps`` and lips (n, K, 2)
    in units of the clip's median mouth width (NaN where the mesh found no face)."""
    from curation.media import load_audio, sample_indices
    from model.shard_reader import read_clip_rows
    from model.trainset import LIP_POINTS

    manifest, rows = read_clip_rows(shards)
    root = Path(manifest.get("data_root") or ".")
    frontend = LogMelFrontend(n_mels, mels_per_frame)
    out = []
    for row in rows:
        persons = row.get("persons") or []
        if row.get("status", "ok") != "ok" or row.get("lips") is None or len(persons) != 1:
            continue
        lips_src = np.asarray(row["lips"], np.float32).reshape(-1, len(LIP_POINTS), 2)
        idx = sample_indices(int(row["start_frame"]), int(row["end_frame"]), float(row["fps"]), fps)
        rel = np.clip(np.asarray(idx) - int(row["start_frame"]), 0, len(lips_src) - 1)
        lips = lips_src[rel]
        width = mouth_width(torch.from_numpy(lips)).numpy()
        scale = float(np.nanmedian(width))
        if not np.isfinite(scale) or scale <= 0:
            continue
        ref = persons[0]["audio_ref"]
        audio = load_audio(root / (ref[4:] if ref.startswith("mix:") else ref), start_s=float(row.get("start_s") or 0),
                           end_s=float(row.get("start_s") or 0) + len(idx) / fps)
        feats = frontend(audio, len(idx), fps)
        out.append({"clip_id": row["clip_id"], "source": row["source_path"], "feats": feats, "lips": lips / scale})
    return out


def opening(lips: np.ndarray) -> np.ndarray:
    """(n, K, 2) -> (n,) mean inner-lip gap (``model.motion.lip_opening``)."""
    return lip_opening(torch.from_numpy(lips)).numpy()


def shape(lips: np.ndarray) -> np.ndarray:
    return (lips - lips.mean(1, keepdims=True)).reshape(len(lips), -1)


def design(feats: np.ndarray, context: int) -> np.ndarray:
    """(n, F) -> (n, (2 context + 1) F): frames t-context..t+context, edge-clamped."""
    return frame_windows(feats, 2 * context + 1).reshape(len(feats), -1)


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu, ym = x.mean(0), y.mean(0)
    xc = x - mu
    w = np.linalg.solve(xc.T @ xc + alpha * len(x) * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, mu, ym


def ridge_predict(model, x):
    w, mu, ym = model
    return (x - mu) @ w + ym


def windowed_r(pred: np.ndarray, true: np.ndarray, starts: list[int]) -> float:
    """Pooled Pearson r of (pred, true), each ``WINDOW``-frame window centred on its own mean."""
    ps, ts = [], []
    for s in starts:
        p, t = pred[s:s + WINDOW], true[s:s + WINDOW]
        ok = np.isfinite(t) & np.isfinite(p)
        if ok.sum() < 5:
            continue
        ps.append(p[ok] - p[ok].mean())
        ts.append(t[ok] - t[ok].mean())
    if not ps:
        return float("nan")
    p, t = np.concatenate(ps), np.concatenate(ts)
    return float(np.corrcoef(p, t)[0, 1]) if np.std(p) > 1e-12 and np.std(t) > 1e-12 else float("nan")


def _targets(clip: dict, basis: np.ndarray | None, mean_shape: np.ndarray | None) -> np.ndarray:
    o = opening(clip["lips"])[:, None]
    if basis is None:
        return o
    return np.concatenate([o, (shape(clip["lips"]) - mean_shape) @ basis.T], 1)


def evaluate(train: list[tuple[dict, slice]], test: list[tuple[dict, slice]], context: int, alpha: float,
             n_pca: int) -> dict:
    """Fit on the ``train`` (clip, frame span) parts, score on the ``test`` parts."""
    tr_shapes = np.concatenate([shape(c["lips"][s]) for c, s in train])
    ok = np.isfinite(tr_shapes).all(1)
    mean_shape = tr_shapes[ok].mean(0)
    basis = np.linalg.svd(tr_shapes[ok] - mean_shape, full_matrices=False)[2][:n_pca] if n_pca else None
    xs, ys = [], []
    for c, s in train:
        x, y = design(c["feats"], context)[s], _targets(c, basis, mean_shape)[s]
        good = np.isfinite(y).all(1)
        xs.append(x[good])
        ys.append(y[good] - y[good].mean(0))  # per-clip centred: the clip's mean mouth is not the audio's
    model = ridge_fit(np.concatenate(xs), np.concatenate(ys), alpha)
    tests = [(c, s, design(c["feats"], context)[s], _targets(c, basis, mean_shape)[s]) for c, s in test]
    res = {"own": [], "other": []}
    per_target_own, per_target_other = [], []
    for k, (c, s, x, y) in enumerate(tests):
        other = tests[(k + 1) % len(tests)][2]
        xo = np.resize(other, x.shape) if len(other) < len(x) else other[: len(x)]
        starts = list(range(0, len(x) - WINDOW + 1, WINDOW))
        for key, xx in (("own", x), ("other", xo)):
            p = ridge_predict(model, xx)
            res[key].append((p, y, starts))
    out = {}
    for j in range(res["own"][0][1].shape[1]):
        name = "opening" if j == 0 else f"pc{j}"
        for key in ("own", "other"):
            pooled_p, pooled_t = [], []
            for p, y, starts in res[key]:
                for s0 in starts:
                    pp, tt = p[s0:s0 + WINDOW, j], y[s0:s0 + WINDOW, j]
                    good = np.isfinite(tt)
                    if good.sum() >= 5:
                        pooled_p.append(pp[good] - pp[good].mean())
                        pooled_t.append(tt[good] - tt[good].mean())
            pp, tt = np.concatenate(pooled_p), np.concatenate(pooled_t)
            out[f"r_{name}_{key}"] = round(float(np.corrcoef(pp, tt)[0, 1]), 4)
        if j == 0:
            wins = [(windowed_r(po[:, 0], yo[:, 0], [s0]), windowed_r(ps[:, 0], yo[:, 0], [s0]))
                    for (po, yo, st), (ps, _, _) in zip(res["own"], res["other"]) for s0 in st]
            wins = [(a, b) for a, b in wins if np.isfinite(a) and np.isfinite(b)]
            out["opening_windows"] = len(wins)
            out["opening_own_beats_other"] = round(float(np.mean([a > b for a, b in wins])), 4) if wins else None
            # whole test span (the benchmark's items are 3 s): r of the uncentred opening per span
            out["r_opening_span_own"] = round(float(np.nanmean(
                [_span_r(p[:, 0], y[:, 0]) for p, y, _ in res["own"]])), 4)
            out["r_opening_span_other"] = round(float(np.nanmean(
                [_span_r(p[:, 0], y[:, 0]) for p, y, _ in res["other"]])), 4)
    return out


def _span_r(p, t):
    ok = np.isfinite(p) & np.isfinite(t)
    if ok.sum() < 10 or np.std(t[ok]) < 1e-9 or np.std(p[ok]) < 1e-9:
        return float("nan")
    return float(np.corrcoef(p[ok], t[ok])[0, 1])


def groups_of(clips: list[dict]) -> list[str]:
    return [c["source"] for c in clips]


def tail_split(clips: list[dict], frac: float = 0.1):
    train, test = [], []
    for c in clips:
        n = len(c["feats"])
        cut = n - max(WINDOW, int(round(frac * n)))
        train.append((c, slice(0, cut)))
        test.append((c, slice(cut, n)))
    return train, test


def fold_splits(clips: list[dict], k: int, seed: int = 0):
    srcs = sorted(set(groups_of(clips)))
    order = np.random.default_rng(seed).permutation(len(srcs))
    fold_of = {srcs[j]: i % k for i, j in enumerate(order)}
    for f in range(k):
        yield ([(c, slice(None)) for c in clips if fold_of[c["source"]] != f],
               [(c, slice(None)) for c in clips if fold_of[c["source"]] == f])


def pick_alpha(train: list[tuple[dict, slice]], context: int, n_pca: int, alphas) -> float:
    """Inner grouped 3-fold split of the training part: the alpha with the best own-audio
    opening r (never looks at the test part)."""
    srcs = sorted({c["source"] for c, _ in train})
    best, best_r = alphas[0], -np.inf
    for a in alphas:
        rs = []
        for f in range(3):
            inner_test = [(c, s) for c, s in train if srcs.index(c["source"]) % 3 == f]
            inner_train = [(c, s) for c, s in train if srcs.index(c["source"]) % 3 != f]
            if inner_test and inner_train:
                rs.append(evaluate(inner_train, inner_test, context, a, 0)["r_opening_own"])
        if np.mean(rs) > best_r:
            best, best_r = a, float(np.mean(rs))
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.motion_ceiling", description=__doc__.splitlines()[0])
    ap.add_argument("--shards", required=True)
    ap.add_argument("--context", type=int, action="append", help="audio context +-frames (repeatable; default 2 4 6)")
    ap.add_argument("--pca", type=int, default=3)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    clips = clip_table(args.shards)
    alphas = [0.1, 1.0, 10.0, 100.0]
    result = {"clips": len(clips), "frames": int(sum(len(c["feats"]) for c in clips)),
              "sources": len(set(groups_of(clips))), "features": "logmel 40 x 4 per frame, CMVN per clip"}
    for ctx in args.context or [2, 4, 6]:
        tr, te = tail_split(clips)
        a = pick_alpha(tr, ctx, args.pca, alphas)
        result[f"tail_ctx{ctx}"] = {"alpha": a, **evaluate(tr, te, ctx, a, args.pca)}
        folds = []
        for tr, te in fold_splits(clips, args.folds):
            a = pick_alpha(tr, ctx, args.pca, alphas)
            folds.append({"alpha": a, **evaluate(tr, te, ctx, a, args.pca)})
        keys = [k for k in folds[0] if k != "alpha" and isinstance(folds[0][k], (int, float))]
        result[f"clip_folds_ctx{ctx}"] = {k: round(float(np.mean([f[k] for f in folds])), 4) for k in keys}
        result[f"clip_folds_ctx{ctx}"]["alphas"] = [f["alpha"] for f in folds]
        print(json.dumps({k: result[k] for k in (f"tail_ctx{ctx}", f"clip_folds_ctx{ctx}")}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
