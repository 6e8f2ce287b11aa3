"""Calibrate the VAD post-processing (bridge, pad) and the speaker-count threshold on a labelled
folder of ``X.wav`` + ``X.rttm``, with leave-one-file-out figures.

    python -m benchmarks.validity.calibrate_diarization --data /tmp/diar [--json OUT] [--skip-vad-grid]

* VAD bridge / pad x turn bridge (``curation.audio.TURN_BRIDGE_S``: pauses between two turns
  of the same speaker filled after labelling): the grid point with the lowest duration-weighted
  DER (speaker count given), with the module's labelling algorithm. Leave-one-out: each
  recording is scored with the grid point chosen on the other recordings.
* the labelling algorithm at the chosen bridge / pad, speaker count given (``ALGORITHMS``):
  confident-window centroid trimming x centroid passes, resegmentation on / off, centroid margin,
  Viterbi smoothing, overlap heuristic (``curation.audio.diarize(...)`` keywords): in-sample and leave-one-out DER per
  setting; the best in-sample setting is printed (to copy into ``curation/audio.py``).

Leave-one-out leaves out a whole recording: every file built from the same benchmark pair
(``interact_N`` in its name: the ``one_``, ``two_`` and ``conv_`` files of that pair) is left out
together, so a recording's other re-timings never choose its parameters.
* speaker count: the voice-print segment length x linkage threshold with the best
  class-balanced accuracy (1, 2, 3+ speakers); leave-one-recording-out accuracy per class at the
  module's segment length (threshold chosen on the other recordings), per segment length, and
  with the segment length chosen on the other recordings too.

Prints the chosen values (to copy into ``curation/audio.py``) and the leave-one-out figures.
Calibrate on a folder that does not hold the files you report (e.g. the set built by
``build_diarization_set`` from the per-speaker tracks, then report ``audio/sample.wav``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

BRIDGES = (0.0, 0.25, 0.5, 1.0, 1.5)
PADS = (0.0, 0.05, 0.1, 0.2)
TURN_BRIDGES = (0.0, 0.5, 1.0, 1.5, 2.0)
# labelling settings (``curation.audio.diarize`` keywords); every one names its centroid
# trimming and passes, so the list does not shift with the module defaults. v3 = trim 0 with 4
# centroid passes; v4 (module default) = trim 0.5 with none.
_V4 = dict(centroid_trim=0.5, centroid_passes=0)
ALGORITHMS = [
    dict(centroid_trim=trim, centroid_passes=cp, centroid_margin_s=0.3, resegment_passes=5, detect_overlap=False)
    for trim in (0.0, 0.25, 0.5, 0.75) for cp in (0, 4)
] + [
    dict(centroid_trim=0.0, centroid_passes=4, resegment_passes=0, detect_overlap=False),
    dict(**_V4, resegment_passes=0, detect_overlap=False),
    dict(**_V4, centroid_margin_s=0.0, detect_overlap=False),
    dict(**_V4, smoothing="viterbi", switch_penalty=0.03, detect_overlap=False),
    dict(**_V4, detect_overlap=True),
    dict(**_V4, refine=False, detect_overlap=False),  # v5 labelling (v6: change-point refinement on)
]


def recording_groups(names: list[str]) -> np.ndarray:
    """Files built from the same recording share a group (``interact_N`` in the name; a
    narrowband copy ``X_nb`` goes with ``X``); others are their own group."""
    import re

    bare = [n[: -len("_nb")] if n.endswith("_nb") else n for n in names]  # narrowband copies
    keys = [(m.group(0) if (m := re.search(r"interact_\d+", n)) else n) for n in bare]
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.array([index[k] for k in keys])


def of_kind(name: str, kind: str) -> bool:
    """``_nb``: a narrowband copy; else the built file's prefix (``conv_`` is not ``xconv_``)."""
    return name.endswith(kind) if kind.startswith("_") else name.startswith(kind)


def setting_name(d: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in d.items())
THRESHOLDS = tuple(np.round(np.arange(0.15, 0.60, 0.01), 2))
COUNT_SEGMENTS = (0.8, 1.0, 1.5, 2.0, 3.0)


def main(argv: list[str] | None = None) -> int:
    import torch
    from scipy.cluster.hierarchy import linkage

    from benchmarks.validity.diarization import analyse, components, diarize_file, find_pairs, load_rttm, weighted
    from curation import audio

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="calibration folder (X.wav + X.rttm)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--skip-vad-grid", action="store_true",
                    help="keep the module's VAD bridge / pad / turn bridge (step 1 scores only that point)")
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

    bridges, pads, turn_bridges = ((audio.VAD_BRIDGE_S,), (audio.VAD_PAD_S,), (audio.TURN_BRIDGE_S,)) \
        if args.skip_vad_grid else (BRIDGES, PADS, TURN_BRIDGES)
    grid = list(itertools.product(bridges, pads, turn_bridges))
    comps = np.zeros((len(files), len(grid), 4))  # total, fa, miss, conf
    for i, (name, ref, n_true, wav, raw, emb, frame_emb) in enumerate(files):
        for b, p in itertools.product(bridges, pads):
            turns = diarize_file(wav, raw, emb, frame_emb, n_true, 4, b, p, turn_bridge_s=0.0)
            for tb in turn_bridges:  # the turn bridge only post-processes the turns
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
    zero_rows = comps[:, grid.index((0.0, 0.0, 0.0))] if (0.0, 0.0, 0.0) in grid else None
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
               "centroid_trim": audio.CENTROID_TRIM, "resegment_passes": audio.RESEGMENT_PASSES,
               "smoothing": audio.SMOOTHING, "switch_penalty": audio.VITERBI_SWITCH_PENALTY,
               "detect_overlap": audio.DETECT_OVERLAP}

    # speaker count: segment length of the voice prints x linkage threshold, class-balanced
    truth_a = np.array([min(f[2], 3) for f in files])
    correct = np.zeros((len(COUNT_SEGMENTS), len(THRESHOLDS), len(files)), bool)
    for si, seg in enumerate(COUNT_SEGMENTS):
        for i, (name, ref, n_true, wav, raw, (times, emb), _) in enumerate(files):
            prints = audio.segment_voiceprints(times, emb, raw, seg)  # voices from voiced windows only
            h = linkage(prints.astype(np.float64), "average", metric="cosine")[:, 2] if len(prints) >= 2 else np.array([])
            correct[si, :, i] = [min(3, 1 + int((h > t).sum())) == truth_a[i] for t in THRESHOLDS]
    classes = [k for k in (1, 2, 3) if (truth_a == k).any()]

    def balanced(sel: np.ndarray) -> np.ndarray:
        """(segments, thresholds) class-balanced accuracy over the files in ``sel``."""
        return np.mean([correct[:, :, sel & (truth_a == k)].mean(2) for k in classes
                        if (sel & (truth_a == k)).any()], axis=0)

    def pick(sel: np.ndarray, si: int | None = None) -> tuple[int, int]:
        acc = balanced(sel)
        if si is not None:
            return si, int(np.argmax(acc[si]))
        return tuple(int(x) for x in np.unravel_index(np.argmax(acc), acc.shape))

    everything = np.ones(len(files), bool)
    seg_i, thr_i = pick(everything)
    thr = THRESHOLDS[thr_i]
    module_seg = COUNT_SEGMENTS.index(audio.COUNT_SEGMENT_S) if audio.COUNT_SEGMENT_S in COUNT_SEGMENTS else seg_i

    def count_loo(si: int | None) -> np.ndarray:
        """Right / wrong per file, the segment length (unless ``si``) and threshold chosen on the
        other recordings."""
        ok = np.zeros(len(files), bool)
        for g in np.unique(groups):
            s_i, t_i = pick(groups != g, si)
            ok[groups == g] = correct[s_i, t_i, groups == g]
        return ok

    def by_class(ok: np.ndarray) -> dict:
        return {k: round(float(ok[truth_a == k].mean()), 3) for k in classes}

    loo_ok = count_loo(module_seg)
    per_segment = {str(seg): {"threshold_in_sample": float(THRESHOLDS[pick(everything, si)[1]]),
                              "in_sample": by_class(correct[si, pick(everything, si)[1]]),
                              "leave_one_out": by_class(count_loo(si))}
                   for si, seg in enumerate(COUNT_SEGMENTS)}
    module_thr_i = pick(everything, module_seg)[1]
    res = {
        "n_files": len(files), "files_by_speakers": {k: int((truth_a == k).sum()) for k in (1, 2, 3)},
        "chosen": {"vad_bridge_s": bridge, "vad_pad_s": pad, "turn_bridge_s": turn_bridge,
                   "count_segment_s": COUNT_SEGMENTS[seg_i], "count_linkage_threshold": float(thr),
                   "count_linkage_threshold_at_module_segment": float(THRESHOLDS[module_thr_i])},
        "der_given_count_raw_vad": round(der(zero_rows), 4) if zero_rows is not None else None,
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
                                                                          if of_kind(f[0], kind)], j]), 4)
                                                   for kind in ("two_", "conv_", "lconv_", "xconv_", "three_", "_nb")
                                                   if any(of_kind(f[0], kind) for f in files)}
                                 for j, d in enumerate(ALGORITHMS)},
            "module_defaults": current,
        },
        "n_recording_groups": int(len(np.unique(groups))),
        "count_segment_s_module": audio.COUNT_SEGMENT_S,
        "count_accuracy_leave_one_out": by_class(loo_ok),
        "count_accuracy_in_sample": by_class(correct[module_seg, module_thr_i]),
        "count_accuracy_leave_one_out_segment_also_chosen": by_class(count_loo(None)),
        "count_by_segment_s": per_segment,
        "grid_der": {f"bridge={b},pad={p},turn_bridge={tb}": round(der(comps[:, j]), 4)
                     for j, (b, p, tb) in enumerate(grid)},
    }
    from benchmarks.validity.diarization import print_report

    return print_report(res, args.json)


if __name__ == "__main__":
    sys.exit(main())
