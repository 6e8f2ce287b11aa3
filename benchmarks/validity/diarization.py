"""Diarization error rate of the default backend on every ``X.wav`` with an ``X.rttm`` beside it.

    python -m benchmarks.validity diarization --data DIR --json OUT

Files are found recursively under DIR (``--data ../shared/data`` finds ``audio/sample.wav``; a
folder built by ``benchmarks.validity.build_diarization_set`` works as it is). An ``X.uem``
beside the pair limits scoring to its regions; without it the scored region is the union of the
reference and hypothesis extents (pyannote.metrics' approximation).

DER = (false alarm + missed + confusion) / reference speech, pyannote.metrics
``DiarizationErrorRate(skip_overlap=False)``: overlapped speech is scored. ``der_*`` keys use
collar 0; the ``with_collar`` block repeats them with ``--collar`` (default 0.5 s). **pyannote's
``collar`` is the total width**: 0.5 removes 0.25 s on each side of every reference boundary,
the NIST md-eval ``-c 0.25`` convention. Every average is over files, weighted by each file's
scored reference speech. ``count_correct`` is the fraction of files whose estimated speaker count
equals the number of speakers in the RTTM.
"""

from __future__ import annotations

import warnings
from pathlib import Path

CHECK = "diarization"
AUDIO_EXTS = (".wav", ".flac")


def add_arguments(parser) -> None:
    parser.add_argument("--collar", type=float, default=0.5,
                        help="total collar width in s for the with_collar block (pyannote convention; 0.5 = +-0.25 s)")
    parser.add_argument("--max-speakers", type=int, default=4, help="upper bound for the estimated speaker count")
    parser.add_argument("--per-file", action="store_true", help="include every file's figures in the JSON")
    parser.add_argument("--overlap-threshold", type=float, default=None,
                        help="overlap-detector threshold (default: curation.audio.OVERLAP_THRESHOLD; >= 1 = off)")


def load_rttm(path: Path):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=path.stem)
    for i, line in enumerate(path.read_text().splitlines()):
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            start, dur = float(f[3]), float(f[4])
            if dur > 0:
                ann[Segment(start, start + dur), i] = f[7]
    return ann


def load_uem(path: Path):
    from pyannote.core import Segment, Timeline

    segs = []
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) >= 4:
            segs.append(Segment(float(f[2]), float(f[3])))
    return Timeline(segs).support()


def find_pairs(data: Path) -> list[tuple[Path, Path, Path | None]]:
    out = []
    for rttm in sorted(data.rglob("*.rttm")):
        audio = next((rttm.with_suffix(e) for e in AUDIO_EXTS if rttm.with_suffix(e).is_file()), None)
        if audio is None:
            continue
        uem = rttm.with_suffix(".uem")
        out.append((audio, rttm, uem if uem.is_file() else None))
    return out


def reference_speakers(ref, times):
    """Per time: how many reference speakers are active."""
    import numpy as np

    out = np.zeros(len(times), int)
    for seg, _, _ in ref.itertracks(yield_label=True):
        out += (times >= seg.start) & (times < seg.end)
    return out


def components(reference, turns, uem=None, collar: float = 0.0) -> dict:
    from pyannote.metrics.diarization import DiarizationErrorRate

    from curation.intervals import annotation

    hyp = annotation(turns, uri=reference.uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "uem approximated by the union of extents"
        c = DiarizationErrorRate(collar=collar, skip_overlap=False)(reference, hyp, uem=uem, detailed=True)
    return {"total": c["total"], "false_alarm": c["false alarm"], "missed": c["missed detection"],
            "confusion": c["confusion"]}


def weighted(rows: list[dict]) -> dict:
    total = sum(r["total"] for r in rows)
    if total <= 0:
        return {"der": None, "false_alarm": None, "missed": None, "confusion": None}
    fa, miss, conf = (sum(r[k] for r in rows) / total for k in ("false_alarm", "missed", "confusion"))
    return {"der": round(fa + miss + conf, 4), "false_alarm": round(fa, 4), "missed": round(miss, 4),
            "confusion": round(conf, 4)}


def analyse(audio_path: Path, frame_embeddings: bool | None = None):
    """The expensive, parameter-free part: audio, raw VAD, sliding d-vectors (clustering grid and,
    when resegmentation is on or ``frame_embeddings``, the resegmentation grid; else None)."""
    from curation import audio
    from curation.media import load_audio

    wav = load_audio(audio_path)
    want = audio.RESEGMENT_PASSES > 0 if frame_embeddings is None else frame_embeddings
    return (wav, audio.raw_vad_segments(wav), audio.speaker_embeddings(wav),
            audio.speaker_embeddings(wav, window_s=audio.RESEGMENT_WINDOW_S) if want else None)


def diarize_file(wav, raw_vad, embeddings, frame_embeddings, num_speakers, max_speakers, bridge_s=None,
                 pad_s=None, count_threshold=None, detect_overlap=None, resegment_passes=None, **tuning):
    from curation import audio

    speech = audio.postprocess_vad(raw_vad, len(wav) / audio.SR, bridge_s, pad_s)
    if num_speakers is None and count_threshold is not None:
        times, emb = embeddings
        prints = audio.segment_voiceprints(times, emb, raw_vad)
        num_speakers = audio.estimate_speaker_count(prints, max_speakers, count_threshold)
    return audio.diarize(wav, num_speakers=num_speakers, max_speakers=max_speakers, speech=speech,
                         embeddings=embeddings, voiced=raw_vad, frame_embeddings=frame_embeddings,
                         detect_overlap=detect_overlap, resegment_passes=resegment_passes, **tuning)


def print_report(res: dict, json_path: Path | None) -> int:
    """The calibration scripts' ending: the report as JSON on stdout, and in ``json_path`` if given."""
    import json

    text = json.dumps(res, indent=2)
    if json_path:
        Path(json_path).write_text(text)
    print(text)
    return 0


def run(args) -> dict:
    import torch

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from curation import audio
    from curation.overlap import backend_name as overlap_backend_name
    from curation.overlap import overlap_probability

    torch.set_num_threads(1)
    data = Path(args.data)
    pairs = find_pairs(data)
    if not pairs:
        return {"error": f"{data}: no X.wav with an X.rttm beside it", "n_files": 0}
    o_thr = audio.OVERLAP_THRESHOLD if getattr(args, "overlap_threshold", None) is None else args.overlap_threshold
    given, estimated, given_c, estimated_c, per_file, correct = [], [], [], [], [], []
    ov_prob, ov_true = [], []
    for audio_path, rttm, uem_path in pairs:
        ref = load_rttm(rttm)
        uem = load_uem(uem_path) if uem_path else None
        n_true = len(ref.labels())
        wav, raw_vad, emb, frame_emb = analyse(audio_path)
        # the overlap detector on its own, frame by frame (grid points inside reference speech)
        n_ref = reference_speakers(ref, emb[0])
        ov_prob.append(overlap_probability(wav, emb[0], emb[1])[n_ref >= 1])
        ov_true.append(n_ref[n_ref >= 1] >= 2)
        # the v6 change-point refinement's 0.5 s d-vectors, once for both runs (1 voice: unused)
        short = audio.speaker_embeddings(wav, window_s=audio.CHANGE_WINDOW_S) if audio.REFINE_CHANGES else None
        t_given = diarize_file(wav, raw_vad, emb, frame_emb, n_true, args.max_speakers, overlap_threshold=o_thr,
                               change_embeddings=short)
        t_est = diarize_file(wav, raw_vad, emb, frame_emb, None, args.max_speakers, overlap_threshold=o_thr,
                             change_embeddings=short)
        n_est = len({t[2] for t in t_est})
        correct.append(n_est == n_true)
        rows = [components(ref, t_given, uem), components(ref, t_est, uem),
                components(ref, t_given, uem, args.collar), components(ref, t_est, uem, args.collar)]
        for bucket, r in zip((given, estimated, given_c, estimated_c), rows):
            bucket.append(r)
        per_file.append({"file": str(audio_path.relative_to(data)), "speakers": n_true, "estimated_speakers": n_est,
                         "der_given_count": weighted([rows[0]])["der"], "der_estimated_count": weighted([rows[1]])["der"]})
    g, e, gc, ec = weighted(given), weighted(estimated), weighted(given_c), weighted(estimated_c)
    p_all, y_all = np.concatenate(ov_prob), np.concatenate(ov_true)
    det_thr = o_thr if 0 < o_thr < 1 else 0.5
    overlap_detection = {
        "grid_points_in_reference_speech": int(len(y_all)), "overlap_fraction": round(float(y_all.mean()), 4) if len(y_all) else None,
        "roc_auc": round(float(roc_auc_score(y_all, p_all)), 4) if 0 < y_all.sum() < len(y_all) else None,
        "threshold": det_thr,
        "precision": round(float(y_all[p_all >= det_thr].mean()), 4) if (p_all >= det_thr).any() else None,
        "recall": round(float((p_all[y_all] >= det_thr).mean()), 4) if y_all.any() else None,
        "backend": overlap_backend_name(),
    }
    out = {
        "der_given_count": g["der"], "der_estimated_count": e["der"],
        "count_correct": round(sum(correct) / len(correct), 4),
        "given_count": g, "estimated_count": e,
        "false_alarm_given_count": g["false_alarm"], "missed_given_count": g["missed"],
        "confusion_given_count": g["confusion"],
        "false_alarm_estimated_count": e["false_alarm"], "missed_estimated_count": e["missed"],
        "confusion_estimated_count": e["confusion"],
        "with_collar": {"collar_total_s": args.collar, "given_count": gc, "estimated_count": ec},
        "collar_convention": "pyannote.metrics collar = total width (0.5 -> +-0.25 s around each reference boundary)",
        "n_files": len(pairs), "scored_speech_s": round(sum(r["total"] for r in given), 3),
        "backend": audio.diarization_backend_name("default"), "vad_backend": audio.vad_backend_name(),
        "vad_bridge_s": audio.VAD_BRIDGE_S, "vad_pad_s": audio.VAD_PAD_S, "turn_bridge_s": audio.TURN_BRIDGE_S,
        "centroid_margin_s": audio.CENTROID_MARGIN_S, "centroid_passes": audio.CENTROID_PASSES,
        "centroid_trim": audio.CENTROID_TRIM,
        "count_linkage_threshold": audio.COUNT_LINKAGE_THRESHOLD,
        "resegment_window_s": audio.RESEGMENT_WINDOW_S, "resegment_passes": audio.RESEGMENT_PASSES,
        "refine_changes": audio.REFINE_CHANGES, "change_window_s": audio.CHANGE_WINDOW_S,
        "change_radius_s": audio.CHANGE_RADIUS_S,
        "detect_overlap": audio.DETECT_OVERLAP,
        "overlap_threshold": o_thr, "overlap_detection": overlap_detection,
        "overlap_detector": overlap_backend_name() if 0 < o_thr < 1 else "off",
    }
    if getattr(args, "per_file", False) or len(per_file) <= 5:
        out["files"] = per_file
    return out
