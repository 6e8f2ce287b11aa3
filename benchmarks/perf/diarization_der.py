"""Diarization error rate of the default (offline) diarization backend on the shared
two-speaker recording ``audio/sample.wav`` against its reference ``audio/sample.rttm``.

Scored with pyannote.metrics' DiarizationErrorRate (no forgiveness collar, overlapped speech
scored), once with the speaker count given (oracle, 2) and once estimated. The same figures,
with a collar too and on any folder: ``python -m benchmarks.validity diarization``. Prints DER and its
components (false alarm, missed detection, confusion, as fractions of reference speech).

    .venv/bin/python -m benchmarks.perf.diarization_der [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kernel.data import default_data_root  # noqa: E402

DEFAULT_DATA = default_data_root()


def load_rttm(path: Path):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=path.stem)
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            start, dur = float(f[3]), float(f[4])
            ann[Segment(start, start + dur)] = f[7]
    return ann


def turns_to_annotation(turns, uri: str):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for i, (s, e, spk) in enumerate(turns):
        ann[Segment(s, e), i] = spk
    return ann


def score(turns, reference) -> dict:
    """DER components as fractions of the reference speech duration."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # uem approximated by the union of extents
        comp = DiarizationErrorRate(collar=0.0, skip_overlap=False)(
            reference, turns_to_annotation(turns, reference.uri), detailed=True
        )
    total = comp["total"]
    return {
        "der": round(comp["diarization error rate"], 4),
        "false_alarm": round(comp["false alarm"] / total, 4),
        "missed": round(comp["missed detection"] / total, 4),
        "confusion": round(comp["confusion"] / total, 4),
        "reference_speech_s": round(total, 3),
    }


def run(data_root: Path) -> dict:
    import torch

    from curation import audio
    from curation.media import load_audio

    torch.set_num_threads(1)
    wav_path, rttm_path = data_root / "audio" / "sample.wav", data_root / "audio" / "sample.rttm"
    for p in (wav_path, rttm_path):
        if not p.is_file():
            raise SystemExit(f"{p}: missing; point --data at the shared data set (or set ANYTALKER_DATA)")
    wav = load_audio(wav_path)
    reference = load_rttm(rttm_path)
    voiced = audio.raw_vad_segments(wav)
    speech = audio.postprocess_vad(voiced, len(wav) / audio.SR)
    out = {"backend": audio.diarization_backend_name("default"), "vad_backend": audio.vad_backend_name()}
    for label, n in (("oracle_2_speakers", 2), ("estimated_speakers", None)):
        turns = audio.diarize(wav, num_speakers=n, speech=speech, voiced=voiced)
        out[label] = {**score(turns, reference), "num_speakers_found": len({t[2] for t in turns})}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data root")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args(argv)
    res = run(args.data)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"diarization backend: {res['backend']} (VAD: {res['vad_backend']})")
    print(f"{'setting':22s} {'DER':>7s} {'false alarm':>12s} {'missed':>8s} {'confusion':>10s} {'speakers':>9s}")
    for label in ("oracle_2_speakers", "estimated_speakers"):
        r = res[label]
        print(f"{label:22s} {r['der']:7.3f} {r['false_alarm']:12.3f} {r['missed']:8.3f} "
              f"{r['confusion']:10.3f} {r['num_speakers_found']:9d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
