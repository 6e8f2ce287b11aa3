"""Training of the overlapped-speech detector on mixtures of single-speaker tracks.

Sources (``default_sources``, any data folder with this layout): every per-speaker track of
``anytalker_benchmark/audio_left|audio_right`` (recording key ``interact_N``: both sides of a
pair share a room), the audio of every ``eval/talking_real`` clip (``*nonspeech*`` skipped) and
every ``eval/audio_only`` file (key: the file stem). Each source's voice activity is known per
10 ms frame from its own track (``activity``: louder than -50 dBFS and than its 95th percentile
minus 35 dB, pauses under 0.15 s filled), so in a mixture the frames where two voices are
active are known exactly.

A mixture (``mix_conversation``) re-times pieces of two different recordings as a quick
conversation, the way real overlap happens: alternating 1-3 s pieces, the gap before each drawn
from -1.0..+0.6 s (negative: the next voice starts under the current one), with probability 0.3
a 0.3-0.8 s backchannel inside the current piece; the second voice at -6..+6 dB, and half of the
mixtures band-limited to telephone band (8 kHz and back). Speaker changes without overlap are
thus in the data as negatives: a 1.2 s d-vector straddling a change looks like a mixture too.

Targets: 1 where two or more voices are active at the grid point, 0 where one is; frames where
none is are not trained on (the diarization only asks inside speech). Everything is seeded.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curation.overlap import FEATURE_VERSION, WEIGHTS_FILE, OverlapModel, frame_features

SR = 16000
HOP = SR // 100
AUDIO_EXTS = (".flac", ".wav", ".mp3", ".ogg", ".m4a")
VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".webm")


@dataclass
class Source:
    key: str  # recording key: sources sharing it are held out together
    name: str  # path relative to the data root
    sha256: str
    wav: np.ndarray
    active: np.ndarray  # bool per 10 ms frame


@dataclass
class TrainConfig:
    n_mixtures: int = 360
    # 0 = logistic regression (v2, shipped): out of fold on the built set it ranked overlap
    # better than a 64- or 32-unit MLP, which over-fitted the training recordings
    hidden: int = 0
    c: float = 0.01  # logistic regression: inverse L2 strength
    alpha: float = 1e-3  # MLP: L2 strength
    max_iter: int = 500
    seed: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def activity(wav: np.ndarray, floor_dbfs: float = -50.0, below_peak_db: float = 35.0,
             bridge_s: float = 0.15) -> np.ndarray:
    n = len(wav) // HOP
    if n == 0:
        return np.zeros(0, bool)
    rms = np.sqrt((wav[: n * HOP].reshape(n, HOP).astype(np.float64) ** 2).mean(1))
    db = 20 * np.log10(rms + 1e-12)
    act = db > max(floor_dbfs, float(np.percentile(db, 95)) - below_peak_db)
    # fill short pauses: a stop consonant or a breath inside a word is not a change of voice
    gap = int(round(bridge_s * 100))
    idx = np.flatnonzero(act)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= gap:
            act[a:b] = True
    return act


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_sources(data: Path) -> list[Source]:
    from curation.media import load_audio

    data = Path(data)
    found: list[tuple[str, Path]] = []
    bench = data / "anytalker_benchmark"
    for side in ("audio_left", "audio_right"):
        d = bench / side
        for p in sorted(d.iterdir()) if d.is_dir() else []:
            if p.suffix.lower() in AUDIO_EXTS:
                found.append((p.stem.rsplit("_", 1)[0], p))
    real = data / "eval" / "talking_real"
    for p in sorted(real.iterdir()) if real.is_dir() else []:
        if p.suffix.lower() in VIDEO_EXTS and "nonspeech" not in p.stem:
            found.append((p.stem, p))
    only = data / "eval" / "audio_only"
    for p in sorted(only.iterdir()) if only.is_dir() else []:
        if p.suffix.lower() in AUDIO_EXTS:
            found.append((p.stem, p))
    out = []
    for key, p in found:
        try:
            wav = load_audio(p)
        except Exception:  # noqa: BLE001 - a file without decodable audio brings no voice
            continue
        act = activity(wav)
        if act.sum() >= 100:  # at least 1 s of voice
            out.append(Source(key, str(p.relative_to(data)), _sha(p), wav, act))
    return out


def _pieces(src: Source, rng, lo: float = 1.0, hi: float = 3.0) -> list[tuple[int, int]]:
    """10 ms frame spans [a, b) of 1-3 s inside the source's voiced stretch, in time order."""
    idx = np.flatnonzero(src.active)
    if idx.size == 0:
        return []
    a, end = int(idx[0]), int(idx[-1]) + 1
    out = []
    while end - a >= int(lo * 100):
        b = min(end, a + int(rng.uniform(lo, hi) * 100))
        if src.active[a:b].sum() >= 30:
            out.append((a, b))
        a = b
    return out


def _narrowband(wav: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(resample_poly(wav, 1, 2), 2, 1)[: len(wav)].astype(np.float32)


def mix_conversation(a: Source, b: Source, rng, max_s: float = 9.0):
    """Two voices re-timed as a conversation. Returns (wav, active voices per 10 ms frame)."""
    pa, pb = _pieces(a, rng), _pieces(b, rng)
    if not pa or not pb:
        return None
    rng.shuffle(pa)
    rng.shuffle(pb)
    gain_b = 10 ** (rng.uniform(-6, 6) / 20)

    def level(src: Source) -> float:
        n = len(src.active)
        fr = src.wav[: n * HOP].reshape(n, HOP)[src.active]
        return float(np.sqrt((fr.astype(np.float64) ** 2).mean()) + 1e-9)

    scale = (0.05 / level(a), 0.05 * gain_b / level(b))
    placed = []  # (start frame, source index, span)
    queues, srcs = [pa, pb], [a, b]
    who, end = 0, 0
    total = int(max_s * 100)
    while end < total and (queues[0] or queues[1]):
        if not queues[who]:
            who = 1 - who
        s, e = queues[who].pop()
        if placed and rng.random() < 0.3 and e - s >= 30:
            # backchannel: a short piece of this voice inside the previous piece of the other
            ps, pw, (x, y) = placed[-1]
            length = int(rng.uniform(0.3, 0.8) * 100)
            if y - x > length + 20:
                st = ps + int(rng.integers(10, y - x - length - 5))
                placed.append((st, who, (s, s + length)))
                who = 1 - who
                continue
        start = max(0, end + int(rng.uniform(-1.0, 0.6) * 100)) if placed else 0
        placed.append((start, who, (s, e)))
        end = max(end, start + (e - s))
        who = 1 - who
    n = max(st + (e - s) for st, _, (s, e) in placed) + 20
    mix = np.zeros(n * HOP, np.float32)
    count = np.zeros(n, np.int8)
    for st, w, (s, e) in placed:
        src = srcs[w]
        mix[st * HOP: (st + e - s) * HOP] += src.wav[s * HOP: e * HOP] * scale[w]
        count[st: st + e - s] += src.active[s:e]
    if rng.random() < 0.5:
        mix = _narrowband(mix)
    return np.clip(mix, -1, 1), count


def build_mixtures(sources: list[Source], n: int, seed: int = 0):
    """``n`` conversations between two sources of different recordings. Returns a list of
    (wav, active-voice count per 10 ms, (key_a, key_b))."""
    rng = np.random.default_rng(seed)
    out = []
    tries = 0
    while len(out) < n and tries < 20 * n:
        tries += 1
        i, j = rng.choice(len(sources), 2, replace=False)
        if sources[i].key == sources[j].key:
            continue
        m = mix_conversation(sources[i], sources[j], rng)
        if m is not None and (m[1] >= 2).any():
            out.append((m[0], m[1], (sources[i].key, sources[j].key)))
    return out


def grid_targets(count: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per grid time: 1 = two or more voices, 0 = one, -1 = none (not trained on); the
    majority over the 10 ms frames within +-50 ms."""
    out = np.full(len(times), -1, np.int8)
    for i, t in enumerate(times):
        c = int(round(t * 100))
        w = count[max(0, c - 5): c + 5]
        if len(w) == 0 or (w >= 1).mean() < 0.5:
            continue
        out[i] = 1 if (w >= 2).mean() >= 0.5 else 0
    return out


def mixture_pool(sources: list[Source], config: TrainConfig, cache: Path | None = None):
    """Features, targets and recording keys of every trained grid point of the mixtures
    (cached on disk by the sources' hashes and the config)."""
    from curation.audio import speaker_embeddings

    key = hashlib.sha256(json.dumps({"s": sorted(s.sha256 for s in sources), "n": config.n_mixtures,
                                     "seed": config.seed, "fv": FEATURE_VERSION}).encode()).hexdigest()[:16]
    path = Path(cache) / f"overlap_pool_{key}.npz" if cache else None
    if path is not None and path.is_file():
        z = np.load(path, allow_pickle=False)
        return z["x"], z["y"], z["keys"], z["mix"]
    xs, ys, ks, ms = [], [], [], []
    for mi, (wav, count, pair) in enumerate(build_mixtures(sources, config.n_mixtures, config.seed)):
        times, emb = speaker_embeddings(wav)
        y = grid_targets(count, times)
        keep = y >= 0
        if not keep.any():
            continue
        xs.append(frame_features(wav, times, emb)[keep])
        ys.append(y[keep])
        ks.append(np.array([f"{pair[0]}|{pair[1]}"] * int(keep.sum())))
        ms.append(np.full(int(keep.sum()), mi))
    x, y, keys, mix = np.concatenate(xs), np.concatenate(ys), np.concatenate(ks), np.concatenate(ms)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, x=x, y=y, keys=keys, mix=mix)
    return x, y, keys, mix


def fit(x: np.ndarray, y: np.ndarray, config: TrainConfig) -> OverlapModel:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    mean = x.mean(0)
    scale = x.std(0) + 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if config.hidden <= 0:
            clf = LogisticRegression(C=config.c, max_iter=config.max_iter).fit((x - mean) / scale, y)
            return OverlapModel(mean, scale, [clf.coef_.T], [clf.intercept_])
        clf = MLPClassifier(hidden_layer_sizes=(config.hidden,), alpha=config.alpha, max_iter=config.max_iter,
                            random_state=config.seed, early_stopping=False)
        clf.fit((x - mean) / scale, y)
    return OverlapModel(mean, scale, clf.coefs_, clf.intercepts_)


def excluding(keys: np.ndarray, held_out: set[str]) -> np.ndarray:
    """Grid points of mixtures that use no recording of ``held_out``."""
    return np.array([not (set(k.split("|")) & held_out) for k in keys], bool)


def train_and_save(data: Path, output: Path, config: TrainConfig | None = None, command: str = "",
                   cache: Path | None = None) -> dict:
    config = config or TrainConfig()
    t0 = time.time()
    sources = default_sources(data)
    if len({s.key for s in sources}) < 2:
        raise ValueError(f"{data}: fewer than two recordings with speech to mix; pass --data with "
                         "anytalker_benchmark/audio_left|right or eval/talking_real")
    x, y, keys, _ = mixture_pool(sources, config, cache)
    model = fit(x, y, config)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model.save(output / WEIGHTS_FILE)
    summary = {
        "command": command, "config": config.to_dict(), "feature_version": FEATURE_VERSION,
        "grid_points": int(len(y)), "overlap_fraction": round(float(y.mean()), 4),
        "train_seconds": round(time.time() - t0, 1),
        "clips": [{"name": s.name, "key": s.key, "sha256": s.sha256} for s in sources],
    }
    (output / "training_clips.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
