"""Where a file's diarization error sits: per reference turn, 10 ms frames.

    python -m benchmarks.validity.diagnose_diarization --data ../shared/data/audio [--json OUT]

For every ``X.wav`` + ``X.rttm`` (speaker count given, the module's labelling), hypothesis
speakers are mapped to reference speakers by pyannote.metrics' optimal mapping, then every
10 ms frame's DER components are split over the reference turns active in it (equal shares):

* ``confusion_s``: the turn's speaker talks, the hypothesis has speech but a different (mapped)
  speaker; split into the part within ``--boundary`` s of a reference speaker change
  (``confusion_near_change_s``: the embedding window straddles two voices) and the rest;
* ``missed_s``, ``missed_in_overlap_s``; ``detector_fired_s``: overlapped frames where the
  overlap detector's probability reaches the module's threshold; ``second_assigned_s``:
  overlapped frames where the hypothesis has two speakers.

A diagnosis only: it chooses nothing (no threshold or constant is read from its output).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

STEP = 0.01


def turn_table(ref, hyp_turns, prob_times=None, prob=None, threshold: float = 0.7, boundary: float = 0.5) -> list[dict]:
    from pyannote.metrics.diarization import DiarizationErrorRate

    from curation.intervals import annotation

    hyp = annotation(hyp_turns, uri=ref.uri)
    mapping = DiarizationErrorRate().optimal_mapping(ref, hyp)
    hyp = hyp.rename_labels(mapping)
    end = max(ref.get_timeline().extent().end, hyp.get_timeline().extent().end if hyp else 0.0)
    t = np.arange(0.0, end, STEP) + STEP / 2
    ref_turns = sorted((s.start, s.end, k) for s, _, k in ref.itertracks(yield_label=True))
    ref_on = np.array([(t >= s) & (t < e) for s, e, _ in ref_turns])
    hyp_lab = {}
    for s, _, k in hyp.itertracks(yield_label=True):
        hyp_lab.setdefault(k, np.zeros(len(t), bool))
        hyp_lab[k] |= (t >= s.start) & (t < s.end)
    n_ref = ref_on.sum(0)
    n_hyp = np.sum(list(hyp_lab.values()), axis=0) if hyp_lab else np.zeros(len(t), int)
    # speaker changes of the reference: any turn start or end that is not a file edge
    changes = np.array(sorted({x for s, e, _ in ref_turns for x in (s, e)}))
    near_change = np.min(np.abs(t[:, None] - changes[None, :]), axis=1) <= boundary if len(changes) else np.zeros(len(t), bool)
    fired = np.interp(t, prob_times, prob) >= threshold if prob is not None else np.zeros(len(t), bool)
    # per frame, pyannote's components: confusion = min(n_ref, n_hyp) - correct, missed =
    # max(0, n_ref - n_hyp); both are shared among the reference turns whose speaker the
    # hypothesis does not have at that frame
    matched = np.array([hyp_lab.get(k, np.zeros(len(t), bool)) for _, _, k in ref_turns]) & ref_on
    n_correct = matched.sum(0)
    conf_f = np.minimum(n_ref, n_hyp) - n_correct
    miss_f = np.maximum(0, n_ref - n_hyp)
    n_unmatched = (ref_on & ~matched).sum(0)
    conf_share = np.where(n_unmatched > 0, conf_f / np.maximum(n_unmatched, 1), 0.0)
    miss_share = np.where(n_unmatched > 0, miss_f / np.maximum(n_unmatched, 1), 0.0)
    rows = []
    for j, (s, e, k) in enumerate(ref_turns):
        on = ref_on[j]
        lost = on & ~matched[j]
        ov = on & (n_ref >= 2)
        rows.append({
            "start": round(s, 2), "end": round(e, 2), "duration": round(e - s, 2), "speaker": k,
            "short": bool(e - s < 1.5),
            "confusion_s": round(float((conf_share * lost).sum() * STEP), 2),
            "confusion_near_change_s": round(float((conf_share * (lost & near_change)).sum() * STEP), 2),
            "missed_s": round(float((miss_share * lost).sum() * STEP), 2),
            "overlap_s": round(float(ov.sum() * STEP), 2),
            "missed_in_overlap_s": round(float((miss_share * (lost & ov)).sum() * STEP), 2),
            "detector_fired_s": round(float((ov & fired).sum() * STEP), 2),
            "second_assigned_s": round(float((ov & (n_hyp >= 2)).sum() * STEP), 2),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    import torch

    from benchmarks.validity.diarization import analyse, diarize_file, find_pairs, load_rttm, print_report
    from curation import audio
    from curation.overlap import overlap_probability

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--boundary", type=float, default=0.5, help="s around a reference change counted as 'near'")
    ap.add_argument("--no-refine", action="store_true", help="labelling v5: without the v6 change-point refinement")
    ap.add_argument("--only", default="", help="only files whose name contains this (e.g. conv_)")
    ap.add_argument("--summary-only", action="store_true", help="leave the per-turn tables out of the output")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = {"backend": audio.diarization_backend_name(), "refine_changes": not args.no_refine, "files": {}}
    for wav_path, rttm, _ in find_pairs(args.data):
        if args.only not in wav_path.stem:
            continue
        ref = load_rttm(rttm)
        wav, raw, emb, frame_emb = analyse(wav_path)
        turns = diarize_file(wav, raw, emb, frame_emb, len(ref.labels()), 4, refine=not args.no_refine)
        prob = overlap_probability(wav, emb[0], emb[1])
        out["files"][wav_path.stem] = turn_table(ref, turns, emb[0], prob, audio.OVERLAP_THRESHOLD, args.boundary)
    out["summary"] = summary([r for rows in out["files"].values() for r in rows])
    if args.summary_only:
        del out["files"]
    return print_report(out, args.json)


def summary(rows: list[dict]) -> dict:
    """Totals over turns, as fractions of the reference speech (sum of turn durations)."""
    ref_s = sum(r["duration"] for r in rows) or 1.0

    def frac(key, sel=lambda r: True):
        return round(sum(r[key] for r in rows if sel(r)) / ref_s, 4)

    ov = sum(r["overlap_s"] for r in rows)
    return {
        "turns": len(rows), "reference_s": round(ref_s, 2),
        "confusion": frac("confusion_s"), "confusion_near_change": frac("confusion_near_change_s"),
        "confusion_in_short_turns": frac("confusion_s", lambda r: r["short"]),
        "short_turn_share_of_speech": frac("duration", lambda r: r["short"]),
        "missed": frac("missed_s"), "missed_in_overlap": frac("missed_in_overlap_s"),
        "detector_fired_in_overlap": round(sum(r["detector_fired_s"] for r in rows) / ov, 3) if ov else None,
        "second_assigned_in_overlap": round(sum(r["second_assigned_s"] for r in rows) / ov, 3) if ov else None,
    }


if __name__ == "__main__":
    sys.exit(main())
