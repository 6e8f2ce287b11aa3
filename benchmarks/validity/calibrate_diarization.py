"""Calibrate the VAD post-processing (bridge, pad) and the speaker-count threshold on a labelled
folder of ``X.wav`` + ``X.rttm``, with leave-one-file-out figures.

    python -m benchmarks.validity.calibrate_diarization --data /tmp/diar [--json OUT]

* bridge / pad: the grid point with the lowest duration-weighted DER (speaker count given).
  Leave-one-file-out: each file is scored with the grid point chosen on all the other files.
* resegmentation passes x overlap heuristic (``curation.audio.diarize(resegment_passes=,
  detect_overlap=)``) at the chosen bridge / pad, speaker count given: in-sample and
  leave-one-file-out DER per setting (reported, not copied automatically: see docs/calibration.md).
* speaker count: the linkage threshold with the best class-balanced accuracy (1, 2, 3+ speakers);
  leave-one-file-out accuracy per class as above.

Prints the chosen values (to copy into ``curation/audio.py``) and the leave-one-out figures.
Calibrate on a folder that does not hold the files you report (e.g. the set built by
``build_diarization_set`` from the per-speaker tracks, then report ``audio/sample.wav``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

BRIDGES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
PADS = (0.0, 0.05, 0.1, 0.2, 0.3)
RESEGMENT_PASSES = (0, 1, 3, 5)
THRESHOLDS = tuple(np.round(np.arange(0.15, 0.60, 0.01), 2))


def main(argv: list[str] | None = None) -> int:
    import torch
    from scipy.cluster.hierarchy import linkage

    from benchmarks.validity.diarization import analyse, components, diarize_file, find_pairs, load_rttm, weighted
    from curation import audio

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="calibration folder (X.wav + X.rttm)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pairs = find_pairs(args.data)
    if not pairs:
        print(f"error: {args.data}: no X.wav with an X.rttm beside it", file=sys.stderr)
        return 2
    files = []
    for wav_path, rttm, _ in pairs:
        ref = load_rttm(rttm)
        files.append((wav_path.stem, ref, len(ref.labels()), *analyse(wav_path, frame_embeddings=True)))
    grid = list(itertools.product(BRIDGES, PADS))
    comps = np.zeros((len(files), len(grid), 4))  # total, fa, miss, conf
    for i, (name, ref, n_true, wav, raw, emb, frame_emb) in enumerate(files):
        for j, (b, p) in enumerate(grid):
            c = components(ref, diarize_file(wav, raw, emb, frame_emb, n_true, 4, b, p))
            comps[i, j] = [c["total"], c["false_alarm"], c["missed"], c["confusion"]]

    def der(rows):
        return float(rows[:, 1:].sum() / max(rows[:, 0].sum(), 1e-9))

    best_j = int(np.argmin([der(comps[:, j]) for j in range(len(grid))]))
    loo_rows, zero_rows = [], comps[:, grid.index((0.0, 0.0))]
    for i in range(len(files)):
        rest = np.delete(comps, i, axis=0)
        j = int(np.argmin([der(rest[:, jj]) for jj in range(len(grid))]))
        loo_rows.append(comps[i, j])
    loo_rows = np.array(loo_rows)
    bridge, pad = grid[best_j]

    # resegmentation x overlap heuristic at the chosen bridge / pad (one voice: nothing to change)
    reseg = list(itertools.product(RESEGMENT_PASSES, (True, False)))
    rcomps = np.zeros((len(files), len(reseg), 4))
    for i, (name, ref, n_true, wav, raw, emb, frame_emb) in enumerate(files):
        for j, (passes, overlap) in enumerate(reseg):
            if n_true == 1 and j > 0:
                rcomps[i, j] = rcomps[i, 0]
                continue
            c = components(ref, diarize_file(wav, raw, emb, frame_emb, n_true, 4, bridge, pad,
                                             detect_overlap=overlap, resegment_passes=passes))
            rcomps[i, j] = [c["total"], c["false_alarm"], c["missed"], c["confusion"]]
    rloo = []
    for i in range(len(files)):
        rest = np.delete(rcomps, i, axis=0)
        rloo.append(rcomps[i, int(np.argmin([der(rest[:, jj]) for jj in range(len(reseg))]))])
    rloo = np.array(rloo)
    reseg_best = reseg[int(np.argmin([der(rcomps[:, j]) for j in range(len(reseg))]))]

    # speaker count on the chosen post-processing
    heights, truth = [], []
    for name, ref, n_true, wav, raw, (times, emb), _ in files:
        prints = audio.segment_voiceprints(times, emb, raw)  # voices from voiced windows only
        h = linkage(prints.astype(np.float64), "average", metric="cosine")[:, 2] if len(prints) >= 2 else np.array([])
        heights.append(h)
        truth.append(min(n_true, 3))

    def count(h, thr):
        return min(3, 1 + int((h > thr).sum()))

    def balanced(idx, thr):
        accs = [np.mean([count(heights[i], thr) == truth[i] for i in idx if truth[i] == k])
                for k in (1, 2, 3) if any(truth[i] == k for i in idx)]
        return float(np.mean(accs))

    all_idx = list(range(len(files)))
    thr = THRESHOLDS[int(np.argmax([balanced(all_idx, t) for t in THRESHOLDS]))]
    loo_ok = []
    for i in all_idx:
        rest = [k for k in all_idx if k != i]
        t = THRESHOLDS[int(np.argmax([balanced(rest, tt) for tt in THRESHOLDS]))]
        loo_ok.append(count(heights[i], t) == truth[i])
    loo_ok = np.array(loo_ok)
    truth_a = np.array(truth)
    res = {
        "n_files": len(files), "files_by_speakers": {k: int((truth_a == k).sum()) for k in (1, 2, 3)},
        "chosen": {"vad_bridge_s": bridge, "vad_pad_s": pad, "count_linkage_threshold": float(thr)},
        "der_given_count_raw_vad": round(der(zero_rows), 4),
        "der_given_count_chosen_in_sample": round(der(comps[:, best_j]), 4),
        "der_given_count_leave_one_out": round(der(loo_rows), 4),
        "loo_components": weighted([{"total": r[0], "false_alarm": r[1], "missed": r[2], "confusion": r[3]}
                                    for r in loo_rows]),
        "resegmentation": {
            "best_in_sample": {"resegment_passes": reseg_best[0], "detect_overlap": reseg_best[1]},
            "der_leave_one_out": round(der(rloo), 4),
            "loo_components": weighted([{"total": r[0], "false_alarm": r[1], "missed": r[2], "confusion": r[3]}
                                        for r in rloo]),
            "grid_der": {f"passes={p},overlap={o}": round(der(rcomps[:, j]), 4) for j, (p, o) in enumerate(reseg)},
        },
        "count_accuracy_leave_one_out": {k: round(float(loo_ok[truth_a == k].mean()), 3) for k in (1, 2, 3)
                                         if (truth_a == k).any()},
        "count_accuracy_in_sample": {k: round(float(np.mean([count(heights[i], thr) == k for i in all_idx if truth[i] == k])), 3)
                                     for k in (1, 2, 3) if (truth_a == k).any()},
        "grid_der": {f"bridge={b},pad={p}": round(der(comps[:, j]), 4) for j, (b, p) in enumerate(grid)},
    }
    text = json.dumps(res, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
