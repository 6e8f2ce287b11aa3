"""Motion-head-only trial on ``model.motion_ceiling``'s splits and features (round 6 figures in
docs/model.md): ``python -m model.motion_trial SHARDS STEPS SEQ_FRAMES '{"hidden": 64}'``
(the JSON holds MotionHead keyword arguments, plus ``noise``: feature noise std). No face tokens
(zeros): the trial asks what the audio alone gives on unseen clips. Prints the tail split and
each of 5 source-video folds: window r / span r of the predicted vs true opening, own vs other
audio (as ``model.motion_ceiling``)."""
import json
import sys
import time

import numpy as np
import torch

from model.motion import MotionHead, lip_centroid
from model.motion_ceiling import WINDOW, _span_r, clip_table, fold_splits, opening, tail_split

STEPS, SEQ, KW, NOISE, F = 600, 48, {}, 0.0, 160

def ref_frame(c, s):
    lips = c["lips"][s]
    ok = np.where(np.isfinite(lips).all((1, 2)))[0]
    return lips[ok[0]] if len(ok) else None

def run(train, test, seed=0):
    torch.manual_seed(seed); rng = np.random.default_rng(seed)
    head = MotionHead(F, 8, 40, **KW)
    parts = []
    for c, s in train:
        lips, feats = c["lips"][s], c["feats"][s]
        ok = np.where(np.isfinite(lips).all((1, 2)))[0]
        if len(lips) >= SEQ and len(ok) > 5:
            parts.append((torch.from_numpy(feats), torch.from_numpy(lips), ok))
    # basis from deformations vs random refs
    defs = []
    for f, l, ok in parts:
        r = l[rng.choice(ok, 1)[0]]
        d = (l - lip_centroid(l)) - (r - lip_centroid(r))
        defs.append(d / (r[0] - r[10]).norm())
    print("basis", head.fit_basis(torch.cat(defs)), flush=True)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    face = torch.zeros(32, 1, 1, 8)
    w = np.array([len(p[0]) - SEQ + 1 for p in parts], float); w /= w.sum()
    for step in range(STEPS):
        picks = rng.choice(len(parts), 32, p=w)
        A, L, R = [], [], []
        for k in picks:
            f, l, ok = parts[k]
            o = rng.integers(0, len(f) - SEQ + 1)
            A.append(f[o:o + SEQ]); L.append(l[o:o + SEQ]); R.append(l[rng.choice(ok)])
        A = torch.stack(A)[:, None]; L = torch.stack(L)[:, None]; R = torch.stack(R)[:, None]
        if NOISE:
            A = A + NOISE * torch.randn_like(A)
        head.train()
        pred = head.coefficients(face, A, R)
        tgt = head.target_coefficients(L, R)
        ok = torch.isfinite(tgt).all(-1)
        loss = (pred[ok] - tgt[ok]).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    head.eval()
    res = {"own": [], "other": []}
    tests = []
    for (c, s) in test:
        r = ref_frame(c, slice(None))
        tests.append((c, s, torch.from_numpy(c["feats"][s]), c["lips"][s], r))
    with torch.no_grad():
        for k, (c, s, f, lips, r) in enumerate(tests):
            other = tests[(k + 1) % len(tests)][2]
            fo = other.repeat((len(f) // len(other)) + 1, 1)[: len(f)]
            rt = torch.from_numpy(r)[None, None]
            for key, ff in (("own", f), ("other", fo)):
                d = head(torch.zeros(1, 1, 1, 8), ff[None, None], rt)[0, 0]
                pl = rt[0, 0][None] + d
                res[key].append((opening(pl.numpy()), opening(lips)))
    out = {}
    for key in ("own", "other"):
        pp, tt, spans = [], [], []
        for p, t in res[key]:
            spans.append(_span_r(p, t))
            for s0 in range(0, len(p) - WINDOW + 1, WINDOW):
                a, b = p[s0:s0 + WINDOW], t[s0:s0 + WINDOW]
                g = np.isfinite(b)
                if g.sum() >= 5:
                    pp.append(a[g] - a[g].mean()); tt.append(b[g] - b[g].mean())
        out[f"r_win_{key}"] = round(float(np.corrcoef(np.concatenate(pp), np.concatenate(tt))[0, 1]), 4)
        out[f"r_span_{key}"] = round(float(np.nanmean(spans)), 4)
    out["final_loss"] = round(float(loss.detach()), 4)
    return out

def main() -> None:
    global STEPS, SEQ, KW, NOISE, F
    torch.set_num_threads(1)
    STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    SEQ = int(sys.argv[3]) if len(sys.argv) > 3 else 48
    KW = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    NOISE = float(KW.pop("noise", 0.0))
    clips = clip_table(sys.argv[1])
    F = clips[0]["feats"].shape[1]
    t0 = time.time()
    tr, te = tail_split(clips)
    print("tail", run(tr, te), round(time.time() - t0), flush=True)
    fr = []
    for tr, te in fold_splits(clips, 5):
        fr.append(run(tr, te)); print("fold", fr[-1], flush=True)
    print("folds mean", {k: round(float(np.mean([f[k] for f in fr])), 4) for k in fr[0]}, round(time.time() - t0))


if __name__ == "__main__":
    main()
