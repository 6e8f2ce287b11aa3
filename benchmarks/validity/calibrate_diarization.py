"""Calibrate the VAD post-processing (bridge, pad) and the speaker-count threshold on a labelled
folder of ``X.wav`` + ``X.rttm``, with leave-one-file-out figures.

    python -m benchmarks.validity.calibrate_diarization --data /tmp/diar [--json OUT]

* VAD bridge / pad x turn bridge (``curation.audio.TURN_BRIDGE_S``: pauses between two turns
  of the same speaker filled after labelling): the grid point with the lowest duration-weighted
  DER (speaker count given), with the module's labelling algorithm. Leave-one-out: each
  recording is scored with the grid point chosen on the other recordings.
* the labelling algorithm at the chosen bridge / pad, speaker count given: centroid margin x
  centroid passes x smoothing (median / Viterbi switch penalty) x overlap heuristic, plus
  resegmentation (``curation.audio.diarize(...)`` keywords): in-sample and leave-one-out DER per
  setting; the best in-sample setting is printed (to copy into ``curation/audio.py``).

Leave-one-out leaves out a whole recording: every file built from the same benchmark pair
(``interact_N`` in its name: the ``one_``, ``two_`` and ``conv_`` files of that pair) is left out
together, so a recording's other re-timings never choose its parameters.
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

BRIDGES = (0.0, 0.25, 0.5, 1.0, 1.5)
PADS = (0.0, 0.05, 0.1, 0.2)
TURN_BRIDGES = (0.0, 0.5, 1.0, 1.5, 2.0)
ALGORITHMS = [
    dict(centroid_margin_s=m, centroid_passes=cp, smoothing=sm, switch_penalty=pen, detect_overlap=ov)
    for m in (0.0, 0.3) for cp in (0, 4)
    for sm, pen in (("median", 0.0), ("viterbi", 0.03)) for ov in (True, False)
] + [dict(resegment_passes=0, detect_overlap=ov) for ov in (True, False)
     ] + [dict(resegment_passes=rp, centroid_margin_s=m, detect_overlap=ov)
     for rp in (3, 5) for m in (0.0, 0.3) for ov in (True, False)]


def recording_groups(names: list[str]) -> np.ndarray:
    """Files built from the same recording share a group (``interact_N`` in the name); others
    are their own group."""
    import re

    keys = [(m.group(0) if (m := re.search(r"interact_\d+", n)) else n) for n in names]
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.array([index[k] for k in keys])


def setting_name(d: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in d.items())
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
    from curation.intervals import bridge_within_turns

    grid = list(itertools.product(BRIDGES, PADS, TURN_BRIDGES))
    comps = np.zeros((len(files), len(grid), 4))  # total, fa, miss, conf
    for i, (name, ref, n_true, wav, raw, emb, frame_emb) in enumerate(files):
        for b, p in itertools.product(BRIDGES, PADS):
            turns = diarize_file(wav, raw, emb, frame_emb, n_true, 4, b, p, turn_bridge_s=0.0)
            for tb in TURN_BRIDGES:  # the turn bridge only post-processes the turns
                c = components(ref, bridge_within_turns(turns, tb))
                comps[i, grid.index((b, p, tb))] = [c["total"], c["false_alarm"], c["missed"], c["confusion"]]

    def der(rows):
        return float(rows[:, 1:].sum() / max(rows[:, 0].sum(), 1e-9))

    groups = recording_groups([f[0] for f in files])

    def leave_one_out(c: np.ndarray) -> np.ndarray:
        """Each file scored with the setting chosen on the files of the other recordings."""
        out = np.zeros((len(files), 4))
        for g in np.unique(groups):
            rest = c[groups != g]
            out[groups == g] = c[groups == g, int(np.argmin([der(rest[:, jj]) for jj in range(c.shape[1])]))]
        return out

    best_j = int(np.argmin([der(comps[:, j]) for j in range(len(grid))]))
    zero_rows = comps[:, grid.index((0.0, 0.0, 0.0))]
    loo_rows = leave_one_out(comps)
    bridge, pad, turn_bridge = grid[best_j]

    # labelling algorithm at the chosen bridge / pad (one voice: nothing to change)
    rcomps = np.zeros((len(files), len(ALGORITHMS), 4))
    for i, (name, ref, n_true, wav, raw, emb, frame_emb) in enumerate(files):
        for j, setting in enumerate(ALGORITHMS):
            if n_true == 1 and j > 0:
                rcomps[i, j] = rcomps[i, 0]
                continue
            c = components(ref, diarize_file(wav, raw, emb, frame_emb, n_true, 4, bridge, pad,
                                             turn_bridge_s=turn_bridge, **setting))
            rcomps[i, j] = [c["total"], c["false_alarm"], c["missed"], c["confusion"]]
    rloo = leave_one_out(rcomps)
    reseg_best = ALGORITHMS[int(np.argmin([der(rcomps[:, j]) for j in range(len(ALGORITHMS))]))]
    current = {"centroid_margin_s": audio.CENTROID_MARGIN_S, "centroid_passes": audio.CENTROID_PASSES,
               "smoothing": audio.SMOOTHING, "switch_penalty": audio.VITERBI_SWITCH_PENALTY,
               "detect_overlap": audio.DETECT_OVERLAP}

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
        rest = [k for k in all_idx if groups[k] != groups[i]]
        t = THRESHOLDS[int(np.argmax([balanced(rest, tt) for tt in THRESHOLDS]))]
        loo_ok.append(count(heights[i], t) == truth[i])
    loo_ok = np.array(loo_ok)
    truth_a = np.array(truth)
    res = {
        "n_files": len(files), "files_by_speakers": {k: int((truth_a == k).sum()) for k in (1, 2, 3)},
        "chosen": {"vad_bridge_s": bridge, "vad_pad_s": pad, "turn_bridge_s": turn_bridge,
                   "count_linkage_threshold": float(thr)},
        "der_given_count_raw_vad": round(der(zero_rows), 4),
        "der_given_count_chosen_in_sample": round(der(comps[:, best_j]), 4),
        "der_given_count_leave_one_out": round(der(loo_rows), 4),
        "loo_components": weighted([{"total": r[0], "false_alarm": r[1], "missed": r[2], "confusion": r[3]}
                                    for r in loo_rows]),
        "algorithm": {
            "best_in_sample": reseg_best,
            "der_leave_one_out": round(der(rloo), 4),
            "loo_components": weighted([{"total": r[0], "false_alarm": r[1], "missed": r[2], "confusion": r[3]}
                                        for r in rloo]),
            "grid_der": {setting_name(d): round(der(rcomps[:, j]), 4) for j, d in enumerate(ALGORITHMS)},
            "grid_der_by_kind": {setting_name(d): {kind: round(der(rcomps[[i for i, f in enumerate(files)
                                                                          if f[0].startswith(kind)], j]), 4)
                                                   for kind in ("two_", "conv_", "xconv_", "three_")
                                                   if any(f[0].startswith(kind) for f in files)}
                                 for j, d in enumerate(ALGORITHMS)},
            "module_defaults": current,
        },
        "n_recording_groups": int(len(np.unique(groups))),
        "count_accuracy_leave_one_out": {k: round(float(loo_ok[truth_a == k].mean()), 3) for k in (1, 2, 3)
                                         if (truth_a == k).any()},
        "count_accuracy_in_sample": {k: round(float(np.mean([count(heights[i], thr) == k for i in all_idx if truth[i] == k])), 3)
                                     for k in (1, 2, 3) if (truth_a == k).any()},
        "grid_der": {f"bridge={b},pad={p},turn_bridge={tb}": round(der(comps[:, j]), 4)
                     for j, (b, p, tb) in enumerate(grid)},
    }
    text = json.dumps(res, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
