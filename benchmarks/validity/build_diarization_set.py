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
* **2-speaker conversations** (``conv_NAME_sK.wav``, ``--n-conv`` seeds per pair): the two
  voices of one benchmark pair (same room and microphone, as in a real conversation) cut into
  1-2.5 s pieces at their quietest 10 ms frame and re-timed as quick turn-taking: A B A B ...,
  the gap before each piece drawn from -0.6..+0.5 s (a negative gap overlaps the two voices,
  mixed by summing), and with probability 0.25 a piece of 0.3-0.7 s laid entirely inside the
  other voice's piece (a backchannel). The reference turn of a piece runs from its first to its
  last loud frame. Each conversation has several speaker changes, overlapped speech and
  changes without a pause; the plain ``two_*`` files have one change in a clean pause.
* **Latched 2-speaker conversations** (``lconv_NAME_sK.wav``, ``--n-latched`` per pair): the
  same, with the gap before each turn drawn from -0.3..+0.2 s (``LATCHED_GAP_S``: real
  conversation changes speaker within ~0.2 s, so the change falls inside one stretch of voice
  activity, where the d-vector windows straddle both voices) and with probability 0.2 a turn
  that is only the first 0.3-0.8 s of its piece (a short turn of its own, ``P_SHORT_TURN``).
* **2-speaker conversations of longer voices** (``xconv_A__B.wav``): the same re-timing with
  1.5-4 s pieces, between two of the real talking clips of ``eval/talking_real/`` (one person
  each, their own voice; ``*nonspeech*`` skipped), each voice used once: file i of the sorted
  list talks with file i + n/2, so two clips of the same person (adjacent names) never meet.
  Each voice brings 5-20 s of speech (the benchmark pairs bring about 4 s).

* **Narrowband copies** (``--narrowband``): every file again as ``X_nb.wav`` (same RTTM),
  band-limited the way telephone-band recordings are: down to 8 kHz (polyphase anti-alias
  low-pass) and back to 16 kHz, so nothing above 4 kHz is left. The per-speaker material is
  wideband; telephone-band conversations (such as pyannote's ``sample.wav``) bring voices that
  the d-vectors hold closer together, and a labelling chosen on wideband audio alone was worse
  there (docs/calibration.md).

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
# latched conversations (lconv_): the gap before a turn, s (negative = overlapping the end of the
# previous turn), and the chance that a turn is a short one of its own (0.3-0.8 s). Fixed from the
# turn-taking literature (most transitions within ~200 ms, Stivers et al. 2009), not from any file
LATCHED_GAP_S = (-0.3, 0.2)
P_SHORT_TURN = 0.2
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


def _quiet_cut(wav: np.ndarray, lo_s: float, hi_s: float) -> float:
    """The quietest 10 ms frame between ``lo_s`` and ``hi_s`` (a cut between words when there is
    one)."""
    hop = SR // 100
    a, b = int(lo_s * 100), int(hi_s * 100)
    if b <= a:
        return lo_s
    frames = wav[a * hop: b * hop]
    n = len(frames) // hop
    if n == 0:
        return lo_s
    rms = np.sqrt((frames[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))
    return (a + int(np.argmin(rms))) / 100


def split_turn(wav: np.ndarray, turn: tuple[float, float], rng, lo_s: float = 1.0, hi_s: float = 2.5) -> list[np.ndarray]:
    """A turn cut into pieces of about ``lo_s``-``hi_s`` s, each cut at the quietest frame of
    the last 0.4 s before the drawn length."""
    s, e = turn
    pieces = []
    while e - s > hi_s:
        target = s + rng.uniform(lo_s, hi_s)
        cut = _quiet_cut(wav, max(s + lo_s * 0.6, target - 0.4), target)
        pieces.append(wav[int(s * SR): int(cut * SR)])
        s = cut
    if e - s > 0.3:
        pieces.append(wav[int(s * SR): int(e * SR)])
    return pieces


def conversation(pieces_a: list[np.ndarray], pieces_b: list[np.ndarray], labels: tuple[str, str], rng,
                 gap_range: tuple[float, float] = (-0.6, 0.5), p_backchannel: float = 0.25,
                 p_short_turn: float = 0.0):
    """Re-time two voices' pieces as alternating turns (see the module doc). With probability
    ``p_short_turn`` a turn is only the first 0.3-0.8 s of its piece (a short turn of its own,
    the rest kept for that voice's next turn). Returns the mixed waveform and reference turns
    ``[(start, end, label), ...]``."""
    queues = [list(pieces_a), list(pieces_b)]
    placed = []  # (start_s, samples, label)
    who, end, last_start = 0, 0.0, 0.0
    while queues[0] or queues[1]:
        if not queues[who]:
            who = 1 - who
        piece = queues[who].pop(0)
        prev_len = end - last_start
        if placed and rng.random() < p_backchannel and prev_len > 1.2:
            # a short interjection inside the other voice's piece; the other voice goes on
            short = piece[: int(rng.uniform(0.3, 0.7) * SR)]
            start = last_start + rng.uniform(0.2, prev_len - len(short) / SR - 0.1)
            placed.append((max(start, last_start), short, labels[who]))
            rest = piece[len(short):]
            if len(rest) > 0.3 * SR:
                queues[who].insert(0, rest)
            who = 1 - who
            continue
        if p_short_turn > 0 and rng.random() < p_short_turn and len(piece) > 1.2 * SR:
            short_len = int(rng.uniform(0.3, 0.8) * SR)
            queues[who].insert(0, piece[short_len:])
            piece = piece[:short_len]
        start = max(0.0, end + rng.uniform(*gap_range)) if placed else 0.0
        placed.append((start, piece, labels[who]))
        last_start, end = start, max(end, start + len(piece) / SR)
        who = 1 - who
    total = int(np.ceil(max(st + len(p) / SR for st, p, _ in placed) * SR)) + 1
    mix = np.zeros(total, np.float32)
    ref = []
    for st, p, lab in placed:
        i = int(round(st * SR))
        mix[i: i + len(p)] += p
        ext = loud_extent(p)
        if ext is not None:
            ref.append((round(st + ext[0], 3), round(st + ext[1], 3), lab))
    return np.clip(mix, -1, 1), ref


def build(data: Path, out: Path, n_three: int = 6, n_conv: int = 2, n_latched: int = 1) -> dict:
    from curation.media import load_audio, write_wav

    out.mkdir(parents=True, exist_ok=True)
    counts = {1: 0, 2: 0, 3: 0, "conversations": 0}
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
    for name, left, right, tl, tr in pairs:
        if not tl or not tr or sum(e - s for s, e in tl) < 1.5 or sum(e - s for s, e in tr) < 1.5:
            continue
        for k in range(n_conv):
            rng = np.random.default_rng([k, len(name)] + [ord(c) for c in name])
            pa = [p for t in tl for p in split_turn(left, t, rng)]
            pb = [p for t in tr for p in split_turn(right, t, rng)]
            first_left = tl[0][0] <= tr[0][0]
            a, b = (pa, pb) if first_left else (pb, pa)
            la, lb = (f"{name}_left", f"{name}_right") if first_left else (f"{name}_right", f"{name}_left")
            mix, ref = conversation(a, b, (la, lb), rng)
            uri = f"conv_{name}_s{k}"
            write_wav(out / f"{uri}.wav", mix)
            write_rttm(out / f"{uri}.rttm", uri, ref)
            counts["conversations"] += 1
        for k in range(n_latched):
            # latched turn-taking (issue 13, round 6): most speaker changes of real conversation
            # come within about 0.2 s, often overlapping the end of the other turn, so the change
            # falls inside one stretch of voice activity; with short turns of their own
            rng = np.random.default_rng([100 + k, len(name)] + [ord(c) for c in name])
            pa = [p for t in tl for p in split_turn(left, t, rng)]
            pb = [p for t in tr for p in split_turn(right, t, rng)]
            first_left = tl[0][0] <= tr[0][0]
            a, b = (pa, pb) if first_left else (pb, pa)
            la, lb = (f"{name}_left", f"{name}_right") if first_left else (f"{name}_right", f"{name}_left")
            mix, ref = conversation(a, b, (la, lb), rng, gap_range=LATCHED_GAP_S, p_short_turn=P_SHORT_TURN)
            uri = f"lconv_{name}_s{k}"
            write_wav(out / f"{uri}.wav", mix)
            write_rttm(out / f"{uri}.rttm", uri, ref)
            counts["conversations"] += 1
    real_dir = data / "eval" / "talking_real"
    voices = []
    for p in sorted(real_dir.iterdir()) if real_dir.is_dir() else []:
        if p.suffix.lower() not in (".mp4", ".mkv", ".mov", ".avi", ".webm") or "nonspeech" in p.stem:
            continue
        try:
            wav = load_audio(p)
        except Exception:  # noqa: BLE001 - a clip without a decodable audio track brings no voice
            continue
        ext = loud_extent(wav)
        if ext is not None and ext[1] - ext[0] >= 3.0:
            voices.append((p.stem, wav, ext))
    half = len(voices) // 2
    for i in range(half):
        (na, wa, ea), (nb, wb, eb) = voices[i], voices[i + half]
        rng = np.random.default_rng([i] + [ord(c) for c in na + nb])
        mix, ref = conversation(split_turn(wa, ea, rng, 1.5, 4.0), split_turn(wb, eb, rng, 1.5, 4.0), (na, nb), rng)
        uri = f"xconv_{na}__{nb}"
        write_wav(out / f"{uri}.wav", mix)
        write_rttm(out / f"{uri}.rttm", uri, ref)
        counts["conversations"] += 1
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


def narrowband(wav: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz -> 16 kHz (polyphase, scipy's anti-alias filter): telephone bandwidth."""
    from scipy.signal import resample_poly

    wav = np.asarray(wav, np.float32)
    return np.clip(resample_poly(resample_poly(wav, 1, 2), 2, 1)[: len(wav)], -1, 1).astype(np.float32)


def add_narrowband_copies(out: Path) -> int:
    """``X_nb.wav`` + ``X_nb.rttm`` beside every ``X.wav`` + ``X.rttm`` of ``out``."""
    from curation.media import load_audio, write_wav

    n = 0
    for rttm in sorted(out.glob("*.rttm")):
        wav_path = rttm.with_suffix(".wav")
        if rttm.stem.endswith("_nb") or not wav_path.is_file():
            continue
        uri = rttm.stem + "_nb"
        write_wav(out / f"{uri}.wav", narrowband(load_audio(wav_path)))
        lines = [" ".join([f[0], uri, *f[2:]]) for f in (ln.split() for ln in rttm.read_text().splitlines()) if f]
        (out / f"{uri}.rttm").write_text("\n".join(lines) + "\n")
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="data folder with anytalker_benchmark/ and eval/audio_only/")
    ap.add_argument("--output", type=Path, required=True, help="folder to write X.wav + X.rttm into")
    ap.add_argument("--n-three", type=int, default=6, help="how many 3-speaker files to build")
    ap.add_argument("--n-conv", type=int, default=2, help="conversations built per benchmark pair (seeds)")
    ap.add_argument("--n-latched", type=int, default=1, help="latched conversations (lconv_) built per benchmark pair")
    ap.add_argument("--narrowband", action="store_true", help="also write a telephone-band copy X_nb.wav of every file")
    args = ap.parse_args(argv)
    if args.output.resolve().is_relative_to(args.data.resolve()):
        print(f"error: {args.output}: inside --data; write the built set elsewhere", file=sys.stderr)
        return 2
    summary = build(args.data, args.output, args.n_three, args.n_conv, args.n_latched)
    if args.narrowband:
        summary["narrowband_copies"] = add_narrowband_copies(args.output)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
