"""Change-point refinement (labelling v6) on / off, side by side in one run, on a labelled folder.

    python -m benchmarks.validity.refine_changes_ab --data /tmp/diar [--json OUT] [--files N]

For every ``X.wav`` + ``X.rttm``: DER (collar 0, overlap scored) with the speaker count given
and estimated, ``curation.audio.diarize(..., refine=False)`` vs ``refine=True`` (everything else
the module's defaults; both share one set of d-vectors). Reported: duration-weighted DER and
components per setting, per kind of built file, and the leave-one-recording-out figure of the
on/off decision (each recording scored with the setting that is better on the other
recordings, ``calibrate_diarization.recording_groups``). Speaker-count accuracy by class
(1, 2, 3 speakers) is reported for both (the count is estimated before labelling, so it must be
identical). The refinement has no tuned parameter (``CHANGE_WINDOW_S`` and ``CHANGE_RADIUS_S``
are derived in ``curation/audio.py``), so the on/off choice is the only decision cross-validated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    import torch

    from benchmarks.validity.calibrate_diarization import of_kind, recording_groups
    from benchmarks.validity.diarization import analyse, components, diarize_file, find_pairs, load_rttm, print_report, weighted
    from curation import audio

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--files", type=int, default=0, help="only the first N files (0 = all)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pairs = find_pairs(args.data)
    if args.files:
        pairs = pairs[: args.files]
    if not pairs:
        print(f"error: {args.data}: no X.wav with an X.rttm beside it", file=sys.stderr)
        return 2
    settings = {"off": False, "on": True}
    names, truth, est_count = [], [], {k: [] for k in settings}
    rows = {(k, c): [] for k in settings for c in ("given", "estimated")}
    for wav_path, rttm, uem_path in pairs:
        ref = load_rttm(rttm)
        n_true = len(ref.labels())
        wav, raw, emb, frame_emb = analyse(wav_path)
        short = audio.speaker_embeddings(wav, window_s=audio.CHANGE_WINDOW_S) if n_true >= 2 else None
        names.append(wav_path.stem)
        truth.append(n_true)
        for key, on in settings.items():
            for count_key, n in (("given", n_true), ("estimated", None)):
                turns = diarize_file(wav, raw, emb, frame_emb, n, 4, refine=on, change_embeddings=short)
                rows[(key, count_key)].append(components(ref, turns))
                if n is None:
                    est_count[key].append(len({t[2] for t in turns}))
    groups = recording_groups(names)
    truth_a = np.minimum(np.array(truth), 3)

    def der(rs):
        return weighted(rs)["der"]

    def loo(count_key: str) -> dict:
        chosen = []
        for i, g in enumerate(groups):
            other = [j for j in range(len(names)) if groups[j] != g]
            best = min(settings, key=lambda k: der([rows[(k, count_key)][j] for j in other]))
            chosen.append(rows[(best, count_key)][i])
        return weighted(chosen)

    kinds = [k for k in ("one_", "two_", "conv_", "lconv_", "xconv_", "three_", "_nb") if any(of_kind(n, k) for n in names)]
    out = {
        "n_files": len(names), "backend": audio.diarization_backend_name(),
        "change_window_s": audio.CHANGE_WINDOW_S, "change_radius_s": audio.CHANGE_RADIUS_S,
        "settings": {}, "leave_one_recording_out": {c: loo(c) for c in ("given", "estimated")},
    }
    for key in settings:
        ok = np.array(est_count[key]) == np.array(truth)
        out["settings"][key] = {
            "given_count": weighted(rows[(key, "given")]), "estimated_count": weighted(rows[(key, "estimated")]),
            "given_by_kind": {kind: der([r for r, n in zip(rows[(key, "given")], names) if of_kind(n, kind)]) for kind in kinds},
            "count_accuracy_by_class": {int(k): round(float(ok[truth_a == k].mean()), 3) for k in (1, 2, 3) if (truth_a == k).any()},
        }
    return print_report(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
