"""Cross-validate the overlapped-speech detector on a built diarization set and choose its
threshold, with fold models that never saw the scored file's recordings.

    python -m benchmarks.validity.calibrate_overlap --data ../shared/data --built /tmp/diar --json OUT

* The detector's training mixtures (``curation.overlap.train``) come from the same recordings
  as the built set (``build_diarization_set``). The recordings are grouped (two recordings used
  in one built file share a group: a 3-speaker file or an ``xconv_A__B`` conversation) and the
  groups split into ``--folds`` folds; fold k's model is trained on the mixtures that use no
  recording of fold k, and scores only the built files of fold k.
* Frame level, out of fold: ROC AUC of the overlap probability against the reference (grid
  points inside reference speech; positive = two or more reference speakers), and precision /
  recall at each threshold.
* DER (count given, collar 0, pyannote.metrics, overlap scored) of ``curation.audio.diarize``
  without the detector and with it at each setting of ``SETTINGS`` (threshold x minimum cosine
  of the second voice); then leave-one-fold-out: each fold scored at the setting chosen on the
  other folds. Components (false alarm, missed, confusion) for each.
* The ship rule (``setting_to_ship``): the setting with the lowest in-sample DER over all folds
  goes into ``OVERLAP_THRESHOLD`` / ``OVERLAP_MIN_SECOND_SIM`` of ``curation/audio.py`` only when
  the leave-one-fold-out DER is not worse than without the detector; else the detector stays off.

d-vectors and VAD of the built files are cached in ``--cache`` (default ``~/.cache/anytalker``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
# DER settings: (overlap threshold, minimum cosine of the second voice; 0 = no such gate).
# The gate keeps a second label only where that voice is also close to the window's d-vector
SETTINGS = [(1.0, 0.0)] + [(t, 0.0) for t in THRESHOLDS] + [
    (t, s) for t in (0.5, 0.7, 0.8, 0.9) for s in (0.6, 0.7, 0.75)]
# --vad-grid: does VAD bridging / padding / the turn bridge, calibrated here with the detector
# on, lower the false alarm or the confusion? (calibrate_diarization chose them without it)
VAD_BRIDGES = (0.0, 0.25, 0.5)
VAD_PADS = (0.0, 0.05, 0.1)
TURN_BRIDGES = (1.0, 1.5, 2.0)


def source_keys(name: str, other_keys: set[str]) -> set[str]:
    """The recordings a built file is made of (benchmark pairs by ``interact_N``, other
    sources by their stem appearing in the name)."""
    keys = set(re.findall(r"interact_\d+(?![0-9])", name))
    keys |= {k for k in other_keys if k in name}
    return keys


def assign_folds(file_keys: list[set[str]], n_folds: int) -> tuple[np.ndarray, list[set[str]]]:
    """Union the recordings that occur together, then deal the groups to folds (largest first,
    to the fold with fewest files). Returns each file's fold and each fold's recordings."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    for ks in file_keys:
        ks = sorted(ks)
        for k in ks[1:]:
            parent[find(k)] = find(ks[0])
    comp_files: dict[str, list[int]] = {}
    for i, ks in enumerate(file_keys):
        root = find(sorted(ks)[0]) if ks else f"__file{i}"
        comp_files.setdefault(root, []).append(i)
    fold_of_file = np.zeros(len(file_keys), int)
    sizes = [0] * n_folds
    fold_keys: list[set[str]] = [set() for _ in range(n_folds)]
    for root, files in sorted(comp_files.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        f = int(np.argmin(sizes))
        sizes[f] += len(files)
        fold_of_file[files] = f
        fold_keys[f] |= {k for k in parent if find(k) == root}
    return fold_of_file, fold_keys


def _cached_analysis(wav_path: Path, cache: Path):
    from benchmarks.validity.diarization import analyse
    from curation.media import load_audio

    import hashlib

    key = hashlib.sha256(wav_path.read_bytes()).hexdigest()[:20]
    path = cache / f"diar_analysis_{key}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        raw = [tuple(r) for r in z["raw"].tolist()]
        return load_audio(wav_path), raw, (z["t"], z["e"]), (z["ft"], z["fe"])
    wav, raw, (t, e), (ft, fe) = analyse(wav_path, frame_embeddings=True)
    np.savez(path, raw=np.array(raw, np.float64).reshape(-1, 2), t=t, e=e, ft=ft, fe=fe)
    return wav, raw, (t, e), (ft, fe)


def reference_overlap(ref, times: np.ndarray) -> np.ndarray:
    """Per grid time: number of reference speakers active."""
    from benchmarks.validity.diarization import reference_speakers

    return reference_speakers(ref, times)


def vad_grid(args, pairs, fold, probs, setting: tuple[float, float], der, comp_dict) -> dict:
    """Leave-one-fold-out over (detector off / at ``setting``) x VAD bridge x pad x turn bridge."""
    threshold, min_sim = setting
    import itertools

    from benchmarks.validity.diarization import components, diarize_file, load_rttm
    from curation.intervals import bridge_within_turns

    grid = list(itertools.product(sorted({1.0, threshold}), VAD_BRIDGES, VAD_PADS, TURN_BRIDGES))
    comps = np.zeros((len(pairs), len(grid), 4))
    for i, (wav_path, rttm, _) in enumerate(pairs):
        ref = load_rttm(rttm)
        n_true = len(ref.labels())
        wav, raw, emb, frame_emb = _cached_analysis(wav_path, args.cache)
        for thr, b, p in itertools.product(sorted({1.0, threshold}), VAD_BRIDGES, VAD_PADS):
            if n_true == 1 and thr < 1:
                continue  # one voice: identical to the detector off
            turns = diarize_file(wav, raw, emb, frame_emb, n_true, 4, b, p, turn_bridge_s=0.0,
                                 overlap_threshold=thr, overlap_prob=(emb[0], probs[i]),
                                 overlap_min_second_sim=min_sim)
            for tb in TURN_BRIDGES:
                c = components(ref, bridge_within_turns(turns, tb))
                row = [c["total"], c["false_alarm"], c["missed"], c["confusion"]]
                comps[i, grid.index((thr, b, p, tb))] = row
                if n_true == 1 and threshold < 1:
                    comps[i, grid.index((threshold, b, p, tb))] = row
    loo = np.zeros((len(pairs), 4))
    chosen = []
    for f in np.unique(fold):
        rest = comps[fold != f]
        j = int(np.argmin([der(rest[:, jj]) for jj in range(len(grid))]))
        chosen.append(dict(zip(("overlap_threshold", "vad_bridge_s", "vad_pad_s", "turn_bridge_s"), grid[j])))
        loo[fold == f] = comps[fold == f, j]
    best = int(np.argmin([der(comps[:, j]) for j in range(len(grid))]))
    return {
        "best_in_sample": dict(zip(("overlap_threshold", "vad_bridge_s", "vad_pad_s", "turn_bridge_s"), grid[best])),
        "best_in_sample_components": comp_dict(comps[:, best]),
        "leave_one_fold_out": {"chosen_per_fold": chosen, **comp_dict(loo)},
        "grid_der": {f"thr={g[0]},bridge={g[1]},pad={g[2]},turn_bridge={g[3]}": comp_dict(comps[:, j])
                     for j, g in enumerate(grid)},
    }


def main(argv: list[str] | None = None) -> int:
    import torch
    from sklearn.metrics import roc_auc_score

    from benchmarks.validity.diarization import components, diarize_file, find_pairs, load_rttm, weighted
    from curation import audio
    from curation.overlap import overlap_probability
    from curation.overlap.train import TrainConfig, default_sources, excluding, fit, mixture_pool

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="data root the detector trains from")
    ap.add_argument("--built", type=Path, required=True, help="built diarization set (X.wav + X.rttm)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "anytalker")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--vad-grid", action="store_true",
                    help="also score VAD bridge x pad x turn bridge with the detector off / at the chosen threshold")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pairs = find_pairs(args.built)
    if not pairs:
        print(f"error: {args.built}: no X.wav with an X.rttm beside it; build one with "
              "python -m benchmarks.validity.build_diarization_set", file=sys.stderr)
        return 2
    sources = default_sources(args.data)
    other = {s.key for s in sources if not s.key.startswith("interact_")}
    names = [p[0].stem for p in pairs]
    file_keys = [source_keys(n, other) for n in names]
    fold, fold_keys = assign_folds(file_keys, args.folds)
    config = TrainConfig()
    x, y, keys, _ = mixture_pool(sources, config, args.cache)
    print(f"pool: {len(y)} grid points, overlap {y.mean():.3f}; {time.time() - t0:.0f} s", file=sys.stderr)
    models = [fit(x[m], y[m], config) for m in (excluding(keys, fk) for fk in fold_keys)]
    print(f"fold models: {time.time() - t0:.0f} s", file=sys.stderr)

    comps = np.zeros((len(pairs), len(SETTINGS), 4))  # settings x (total, fa, miss, conf)
    frame_p, frame_y, n_true_all, probs = [], [], [], []
    for i, (wav_path, rttm, _) in enumerate(pairs):
        ref = load_rttm(rttm)
        n_true = len(ref.labels())
        n_true_all.append(n_true)
        wav, raw, emb, frame_emb = _cached_analysis(wav_path, args.cache)
        prob = overlap_probability(wav, emb[0], emb[1], models[fold[i]])
        probs.append(prob)
        in_ref = reference_overlap(ref, emb[0])
        keep = in_ref >= 1
        frame_p.append(prob[keep])
        frame_y.append(in_ref[keep] >= 2)
        for j, (thr, min_sim) in enumerate(SETTINGS):
            if n_true == 1 and j > 0:
                comps[i, j] = comps[i, 0]  # one voice: no second speaker to add
                continue
            turns = diarize_file(wav, raw, emb, frame_emb, n_true, 4, overlap_threshold=thr,
                                 overlap_prob=(emb[0], prob), overlap_min_second_sim=min_sim)
            c = components(ref, turns)
            comps[i, j] = [c["total"], c["false_alarm"], c["missed"], c["confusion"]]
        if i % 40 == 0:
            print(f"{i}/{len(pairs)} files, {time.time() - t0:.0f} s", file=sys.stderr)

    def der(rows: np.ndarray) -> float:
        return float(rows[:, 1:].sum() / max(rows[:, 0].sum(), 1e-9))

    def comp_dict(rows: np.ndarray) -> dict:
        return weighted([{"total": r[0], "false_alarm": r[1], "missed": r[2], "confusion": r[3]} for r in rows])

    # leave-one-fold-out: each fold at the setting (off or a threshold) chosen on the others
    loo = np.zeros((len(pairs), 4))
    chosen_per_fold = []
    for f in range(args.folds):
        rest = comps[fold != f]
        j = int(np.argmin([der(rest[:, jj]) for jj in range(len(SETTINGS))]))
        chosen_per_fold.append(SETTINGS[j])
        loo[fold == f] = comps[fold == f, j]
    best = int(np.argmin([der(comps[:, j]) for j in range(len(SETTINGS))]))
    p_all, y_all = np.concatenate(frame_p), np.concatenate(frame_y)
    nb = np.array([n.endswith("_nb") for n in names])
    res = {
        "n_files": len(pairs), "n_folds": args.folds, "files_per_fold": np.bincount(fold).tolist(),
        "training": {**config.to_dict(), "pool_grid_points": int(len(y)), "pool_overlap_fraction": round(float(y.mean()), 4),
                     "n_sources": len(sources), "n_recordings": len({s.key for s in sources})},
        "frame_level_out_of_fold": {
            "grid_points_in_reference_speech": int(len(y_all)), "overlap_fraction": round(float(y_all.mean()), 4),
            "roc_auc": round(float(roc_auc_score(y_all, p_all)), 4) if 0 < y_all.mean() < 1 else None,
            "by_threshold": {str(t): {"precision": round(float(y_all[p_all >= t].mean()), 4) if (p_all >= t).any() else None,
                                      "recall": round(float((p_all[y_all] >= t).mean()), 4)} for t in THRESHOLDS},
        },
        "der_given_count": {("off" if j == 0 else f"thr={t},min_second_sim={ms}"): {
            "all": comp_dict(comps[:, j]), "wideband": round(der(comps[~nb, j]), 4), "narrowband": round(der(comps[nb, j]), 4)}
            for j, (t, ms) in enumerate(SETTINGS)},
        "leave_one_fold_out": {"settings_chosen": chosen_per_fold, **comp_dict(loo)},
        "without_detector": comp_dict(comps[:, 0]),
        "chosen_setting_in_sample": SETTINGS[best],
        "seconds": round(time.time() - t0, 1),
        "backend": audio.diarization_backend_name("default"),
    }
    # the ship rule: the detector is used only when the leave-one-fold-out DER is not worse
    shipped = SETTINGS[best] if der(loo) <= der(comps[:, 0]) else SETTINGS[0]
    res["setting_to_ship"] = {"overlap_threshold": shipped[0], "overlap_min_second_sim": shipped[1]}
    if args.vad_grid:
        res["vad_grid"] = vad_grid(args, pairs, fold, probs, shipped, der, comp_dict)
        res["seconds"] = round(time.time() - t0, 1)
    from benchmarks.validity.diarization import print_report

    return print_report(res, args.json)


if __name__ == "__main__":
    sys.exit(main())
