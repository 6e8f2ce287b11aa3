"""Build a labelled diarization folder (``X.wav`` + ``X.rttm``) from per-speaker recordings.

    python -m benchmarks.validity.build_diarization_set --data ../shared/data --output /tmp/diar

Sources (any folder with the same layout works):

* **2 speakers**: every ``anytalker_benchmark/audio_left/NAME_left.*`` with its
  ``audio_right/NAME_right.*``. Each per-speaker track is digital silence (exact zeros) while the
  other person talks, so the reference turn of a speaker is where their track is not silent:
  pauses inside a turn (room tone) are part of the turn, as annotators mark them. The two
  tracks are summed into ``two_NAME.wav``.
* **1 speaker**: every speech-only file of ``eval/audio_only/`` (turn = first to last
  non-silent 10 ms frame, -50 dBFS) and each side of the benchmark pairs on its own
  (``one_NAME_left.wav``: the turn where that track is not silent).
* **3 speakers**: the turns of three different benchmark pairs concatenated with 0.3 s gaps,
  A B C A B C where the turns allow (``three_*.wav``); speaker labels are ``NAME_left`` etc.

Nothing is written into ``--data``. The figures of the ``diarization`` check on this folder are
leave-one-file-out or held-out figures only when the judged parameters were not tuned on it
(see docs/calibration.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SR = 16000
AUDIO_EXTS = (".flac", ".wav", ".mp3", ".ogg", ".m4a")


def nonsilent_turns(wav: np.ndarray, bridge_s: float = 0.5, floor_dbfs: float = -70.0) -> list[tuple[float, float]]:
    """Where a per-speaker track is not (near-)digital silence (10 ms RMS above ``floor_dbfs``;
    room tone inside a turn is about -60 dBFS, the muted parts below -90), gaps < bridge_s filled."""
    from curation.intervals import bridge_and_pad

    hop = SR // 100
    n = len(wav) // hop
    rms = np.sqrt((wav[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))
    active = 20 * np.log10(rms + 1e-12) > floor_dbfs
    d = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    segs = [(a * hop / SR, b * hop / SR) for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]
    out = []
    for s, e in bridge_and_pad(segs, bridge_s=bridge_s, pad_s=0.0):
        # the turn runs from its first to its last loud frame: trailing room tone is not speech
        ext = loud_extent(wav[int(s * SR): int(e * SR)])
        if ext is not None:
            out.append((round(s + ext[0], 3), round(s + ext[1], 3)))
    return out


def loud_extent(wav: np.ndarray, dbfs: float = -50.0) -> tuple[float, float] | None:
    hop = SR // 100
    n = len(wav) // hop
    if n == 0:
        return None
    rms = np.sqrt((wav[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))
    on = np.flatnonzero(20 * np.log10(rms + 1e-12) > dbfs)
    if on.size == 0:
        return None
    return on[0] * hop / SR, (on[-1] + 1) * hop / SR


def write_rttm(path: Path, uri: str, turns) -> None:
    lines = [f"SPEAKER {uri} 1 {s:.3f} {e - s:.3f} <NA> <NA> {k} <NA> <NA>" for s, e, k in sorted(turns) if e > s]
    path.write_text("\n".join(lines) + "\n")


def _find(folder: Path, stem: str) -> Path | None:
    for ext in AUDIO_EXTS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def build(data: Path, out: Path, n_three: int = 6) -> dict:
    from curation.media import load_audio, write_wav

    out.mkdir(parents=True, exist_ok=True)
    counts = {1: 0, 2: 0, 3: 0}
    bench = data / "anytalker_benchmark"
    pairs = []
    left_dir, right_dir = bench / "audio_left", bench / "audio_right"
    for lp in sorted(left_dir.glob("*_left.*")) if left_dir.is_dir() else []:
        name = lp.stem[: -len("_left")]
        rp = _find(right_dir, f"{name}_right")
        if rp is None:
            continue
        left, right = load_audio(lp), load_audio(rp)
        n = max(len(left), len(right))
        left, right = np.pad(left, (0, n - len(left))), np.pad(right, (0, n - len(right)))
        tl, tr = nonsilent_turns(left), nonsilent_turns(right)
        pairs.append((name, left, right, tl, tr))
        for side, wav, tt in (("left", left, tl), ("right", right, tr)):
            if sum(e - s for s, e in tt) >= 1.0:
                uri = f"one_{name}_{side}"
                write_wav(out / f"{uri}.wav", wav)
                write_rttm(out / f"{uri}.rttm", uri, [(s, e, f"{name}_{side}") for s, e in tt])
                counts[1] += 1
        if tl and tr:
            uri = f"two_{name}"
            write_wav(out / f"{uri}.wav", np.clip(left + right, -1, 1))
            write_rttm(out / f"{uri}.rttm", uri, [(s, e, f"{name}_left") for s, e in tl]
                       + [(s, e, f"{name}_right") for s, e in tr])
            counts[2] += 1
    only = data / "eval" / "audio_only"
    for p in sorted(only.iterdir()) if only.is_dir() else []:
        if p.suffix.lower() not in AUDIO_EXTS:
            continue
        wav = load_audio(p)
        ext = loud_extent(wav)
        if ext is None:
            continue
        uri = f"one_{p.stem}"
        write_wav(out / f"{uri}.wav", wav)
        write_rttm(out / f"{uri}.rttm", uri, [(ext[0], ext[1], p.stem)])
        counts[1] += 1
    # three speakers: turn pieces of three different pairs, alternating
    by_pair = {}
    for name, left, right, tl, tr in pairs:
        for side, wav, tt in (("left", left, tl), ("right", right, tr)):
            if tt and tt[0][1] - tt[0][0] >= 2.0:
                by_pair.setdefault(name, []).append((name, side, wav, tt[0]))
    names = sorted(by_pair)
    for k in range(min(n_three, len(names) // 3)):
        # three different recordings, sides alternating, so voices are distinct
        trio = [by_pair[n][(k + j) % len(by_pair[n])] for j, n in enumerate(names[3 * k: 3 * k + 3])]
        pieces, ref, t = [], [], 0.0
        for half in (0, 1):  # A B C A B C: the first half of each turn, then the second
            for name, side, wav, (s, e) in trio:
                mid = (s + e) / 2
                lo, hi = (s, mid) if half == 0 else (mid, e)
                seg = wav[int(lo * SR): int(hi * SR)]
                ref.append((t, t + len(seg) / SR, f"{name}_{side}"))
                pieces += [seg, np.zeros(int(0.3 * SR), np.float32)]
                t += len(seg) / SR + 0.3
        uri = "three_" + "_".join(f"{n}{s[0]}" for n, s, _, _ in trio)
        write_wav(out / f"{uri}.wav", np.concatenate(pieces))
        write_rttm(out / f"{uri}.rttm", uri, ref)
        counts[3] += 1
    return {"output": str(out), "files_by_speaker_count": counts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="data folder with anytalker_benchmark/ and eval/audio_only/")
    ap.add_argument("--output", type=Path, required=True, help="folder to write X.wav + X.rttm into")
    ap.add_argument("--n-three", type=int, default=6, help="how many 3-speaker files to build")
    args = ap.parse_args(argv)
    if args.output.resolve().is_relative_to(args.data.resolve()):
        print(f"error: {args.output}: inside --data; write the built set elsewhere", file=sys.stderr)
        return 2
    print(build(args.data, args.output, args.n_three))
    return 0


if __name__ == "__main__":
    sys.exit(main())
