"""Inputs of the learned sync judge: pose- and scale-normalised mouth landmarks per video frame,
log-mel audio at the video frame rate, and an on-disk cache of the (costly) face analysis.

Lip features: the 40 lip-contour points of the mediapipe mesh (outer + inner lip) and the
chin, expressed in an eye-aligned frame: origin at the midpoint of the outer eye corners,
x along the eye line, unit = inter-ocular distance. Head turns in the image plane and the face
size then drop out; what is left is the mouth's shape and its place under the eyes (jaw drop).

Audio features: 40 log-mel bands (10 ms hop, curation.mel.mel_spectrogram) stacked by 4
into one 160-dim vector per 40 ms video frame (25 fps), after the track's audio is brought to
a fixed RMS so that recording level does not matter.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np

FPS = 25.0
SR = 16000
MELS_PER_FRAME = 4  # 10 ms mel hop, 40 ms video frame
N_MELS = 40
AUDIO_DIM = N_MELS * MELS_PER_FRAME

OUTER_LIP = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
INNER_LIP = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191]
CHIN = [152]
LIP_POINTS = OUTER_LIP + INNER_LIP + CHIN
EYE_OUTER = (33, 263)  # subject's right / left outer eye corner
# inner-lip vertical pairs (upper, lower) for the opening signal of the static-mouth rule
INNER_PAIRS = [(82, 87), (13, 14), (312, 317)]
LIP_DIM = 2 * len(LIP_POINTS)
FACE_TOP, NOSE_TIP = 10, 1  # face height (curation.faces.mouth_opening) and pose reference
STORED_POINTS = sorted(set(LIP_POINTS) | set(EYE_OUTER) | {p for pr in INNER_PAIRS for p in pr} | {FACE_TOP, NOSE_TIP})


def lip_features(landmarks: np.ndarray) -> np.ndarray:
    """(T, LIP_DIM) eye-aligned lip coordinates from (T, 478, >=2) landmarks (or (T, N, 2)
    indexed like ``STORED_POINTS`` when N == len(STORED_POINTS)); NaN rows stay NaN."""
    lm = np.asarray(landmarks, dtype=np.float64)[..., :2]
    idx = _index(lm.shape[1])
    origin, iod, ex, ey = _eye_frame(lm, idx)
    pts = lm[:, [idx[p] for p in LIP_POINTS]] - origin[:, None]
    x = (pts * ex[:, None]).sum(-1) / iod
    y = (pts * ey[:, None]).sum(-1) / iod
    return np.concatenate([x, y], 1).astype(np.float32)


def _eye_frame(lm: np.ndarray, idx: dict[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The eye-aligned frame of (T, P, 2) landmarks: origin (T, 2) between the outer eye
    corners, inter-ocular distance (T, 1; NaN when the corners coincide), unit axes ex (along
    the eye line) and ey (T, 2 each). Shared by the lip features and the mouth crops."""
    right, left = lm[:, idx[EYE_OUTER[0]]], lm[:, idx[EYE_OUTER[1]]]
    origin = (right + left) / 2
    axis = left - right
    iod = np.linalg.norm(axis, axis=1, keepdims=True)
    iod = np.where(iod > 1e-6, iod, np.nan)
    ex = axis / iod
    ey = np.stack([-ex[:, 1], ex[:, 0]], 1)
    return origin, iod, ex, ey


def lip_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T,) inner-lip opening / inter-ocular distance (the static-mouth rule's signal)."""
    lm = np.asarray(landmarks, dtype=np.float64)[..., :2]
    idx = _index(lm.shape[1])
    iod = np.linalg.norm(lm[:, idx[EYE_OUTER[1]]] - lm[:, idx[EYE_OUTER[0]]], axis=1)
    gaps = [np.linalg.norm(lm[:, idx[a]] - lm[:, idx[b]], axis=1) for a, b in INNER_PAIRS]
    return np.mean(gaps, 0) / np.where(iod > 1e-6, iod, np.nan)


def opening_from_lips(lips: np.ndarray) -> np.ndarray:
    """(T,) inner-lip opening in inter-ocular units from ``lip_features`` rows (same value as
    ``lip_opening`` on the landmarks: the eye-aligned frame keeps distances / IOD)."""
    x = np.asarray(lips, dtype=np.float64)
    n = len(LIP_POINTS)
    pos = {p: i for i, p in enumerate(LIP_POINTS)}
    gaps = [np.hypot(x[:, pos[a]] - x[:, pos[b]], x[:, n + pos[a]] - x[:, n + pos[b]]) for a, b in INNER_PAIRS]
    return np.mean(gaps, 0)


def _index(n_points: int) -> dict[int, int]:
    if n_points == len(STORED_POINTS):
        return {p: i for i, p in enumerate(STORED_POINTS)}
    if n_points >= 468:
        return {p: p for p in STORED_POINTS}
    raise ValueError(f"landmarks have {n_points} points: need the 478-point mediapipe mesh "
                     f"or the {len(STORED_POINTS)} STORED_POINTS")


def fill_gaps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation over NaN rows; (filled, valid mask). All-NaN -> zeros, mask False."""
    x = np.asarray(x, dtype=np.float32).copy()
    ok = np.isfinite(x).all(1)
    if not ok.any():
        return np.zeros_like(x), ok
    if not ok.all():
        t = np.arange(len(x))
        for d in range(x.shape[1]):
            x[~ok, d] = np.interp(t[~ok], t[ok], x[ok, d])
    return x, ok


def audio_features(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, AUDIO_DIM) log-mel frames: video frame t owns mel frames 4t..4t+3 of audio
    whose sample 0 is frame 0's instant. Audio shorter than the video is padded with silence."""
    from curation.mel import mel_spectrogram

    wav = np.asarray(audio, dtype=np.float32).reshape(-1)
    need = int(round(n_frames * SR / FPS))
    wav = wav[:need] if wav.size >= need else np.pad(wav, (0, need - wav.size))
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) if wav.size else 0.0
    if rms > 1e-5:
        wav = wav * (0.1 / rms)
    mel = mel_spectrogram(wav)
    want = n_frames * MELS_PER_FRAME
    if len(mel) < want:
        mel = np.pad(mel, ((0, want - len(mel)), (0, 0)))
    mel = np.log(mel[:want] + 1e-6)
    return mel.reshape(n_frames, AUDIO_DIM).astype(np.float32)


# --------------------------------------------------------------------------------------------
# cached face analysis (the mesh is the costly part; a video stream is analysed once)


def cache_dir() -> Path:
    return Path(os.environ.get("ANYTALKER_SYNC_CACHE", Path.home() / ".cache" / "anytalker" / "sync_judge"))


def video_stream_sha256(path: str | os.PathLike) -> str:
    """sha256 of the first video stream's packets: a remux with other audio, or a container
    audio offset, leaves it unchanged, so such variants share one face analysis."""
    res = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                          "-f", "hash", "-hash", "sha256", "-"], capture_output=True, stdin=subprocess.DEVNULL)
    out = res.stdout.decode().strip()
    if res.returncode != 0 or "=" not in out:
        h = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        return "file-" + h
    return out.split("=", 1)[1]


def face_tracks(path: str | os.PathLike, cache: Path | None = None) -> dict:
    """Face analysis of ``path`` at 25 fps, cached on disk by video-stream sha256 and
    ``curation.faces.ANALYSIS_VERSION`` (an analysis made by another face pass is not reused):
    ``{"frame_indices", "fps", "tracks": [{"landmarks" (T, P, 2) STORED_POINTS, "detected"}]}``."""
    from curation.faces import ANALYSIS_VERSION, analyze_video

    cache = cache or cache_dir()
    key = video_stream_sha256(path)
    f = Path(cache) / f"{key}.faces{ANALYSIS_VERSION}.npz"
    if f.is_file():
        z = np.load(f)
        n = int(z["n_tracks"])
        return {"frame_indices": z["frame_indices"], "fps": float(z["fps"]), "key": key,
                "tracks": [{"landmarks": z[f"lm{i}"], "detected": z[f"det{i}"]} for i in range(n)]}
    # (a still or frozen video costs one mesh call: analyze_video reuses the answer for a
    # repeated frame)
    fa = analyze_video(path, fps=FPS, with_landmarks=True)
    tracks = [{"landmarks": tr.landmarks[:, STORED_POINTS, :2].astype(np.float32), "detected": tr.detected}
              for tr in fa.tracks]
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, frame_indices=fa.frame_indices, fps=fa.fps, n_tracks=len(tracks),
                        **{f"lm{i}": t["landmarks"] for i, t in enumerate(tracks)},
                        **{f"det{i}": t["detected"] for i, t in enumerate(tracks)})
    os.replace(tmp, f)
    return {"frame_indices": fa.frame_indices, "fps": fa.fps, "tracks": tracks, "key": key}


def main_track(analysis: dict) -> dict | None:
    """The track detected in the most frames."""
    tracks = analysis["tracks"]
    return max(tracks, key=lambda t: int(np.sum(t["detected"]))) if tracks else None


# --------------------------------------------------------------------------------------------
# mouth crops (optional second lip input, ``TrainConfig.crops``): the pixels the landmarks do not
# describe (teeth, tongue, lip texture)

CROP_VERSION = "1"
CROP_H, CROP_W = 32, 48
# crop window in the eye-aligned frame (inter-ocular units): 1.0 wide, 2/3 high, centred on the
# track's median lip centre, so the mouth's motion (jaw drop included) moves inside a fixed window
CROP_WIDTH_IOD = 1.0
_OVERSAMPLE = 2  # warp at twice the size, then area-average: no aliasing on large faces


def crop_centre(landmarks: np.ndarray, detected: np.ndarray | None = None) -> np.ndarray:
    """(2,) median lip centre of a track in the eye-aligned frame (``lip_features`` units)."""
    lips = lip_features(landmarks)
    if detected is not None:
        lips = lips[np.asarray(detected, bool)]
    n = len(LIP_POINTS)
    xs, ys = lips[:, :n].mean(1), lips[:, n:].mean(1)
    ok = np.isfinite(xs) & np.isfinite(ys)
    if not ok.any():
        return np.array([0.0, 1.0])  # a typical mouth position, only for a track without a mesh
    return np.array([np.median(xs[ok]), np.median(ys[ok])])


def crop_transform(landmarks_t: np.ndarray, centre: np.ndarray, idx: dict[int, int] | None = None) -> np.ndarray | None:
    """(2, 3) affine map from crop pixel (u, v) to image pixel (x, y) for one frame's landmarks
    (the eye-aligned similarity of ``lip_features``); None when the eyes are missing."""
    lm = np.asarray(landmarks_t, dtype=np.float64)[:, :2]
    origins, iods, exs, eys = _eye_frame(lm[None], idx or _index(len(lm)))
    origin, iod, ex, ey = origins[0], float(iods[0, 0]), exs[0], eys[0]
    if not np.isfinite(iod):
        return None
    w, h = CROP_W * _OVERSAMPLE, CROP_H * _OVERSAMPLE
    step = CROP_WIDTH_IOD / w  # eye-aligned units per crop pixel
    # eye-aligned point of crop pixel (u, v): centre + ((u + .5 - w/2) step, (v + .5 - h/2) step)
    x0 = centre[0] + (0.5 - w / 2) * step
    y0 = centre[1] + (0.5 - h / 2) * step
    a = iod * step * ex  # image motion per crop u
    b = iod * step * ey  # image motion per crop v
    t = origin + iod * (x0 * ex + y0 * ey)
    return np.array([[a[0], b[0], t[0]], [a[1], b[1], t[1]]])


def mouth_crops(frames, landmarks: np.ndarray, detected: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """(T, CROP_H, CROP_W) uint8 grayscale mouth crops, warped with the eye-aligned similarity
    (position, scale and roll of the head drop out). ``frames``: a sequence of RGB (H, W, 3)
    uint8 images aligned with ``landmarks`` (T, P, 2) in their pixels. Frames without a mesh are 0."""
    import cv2

    lm = np.asarray(landmarks, dtype=np.float64)[..., :2]
    det = np.asarray(detected, bool)
    centre = crop_centre(lm, det) if centre is None else centre
    idx = _index(lm.shape[1])
    out = np.zeros((len(lm), CROP_H, CROP_W), np.uint8)
    for t, img in enumerate(frames):
        if t >= len(lm) or not det[t] or not np.isfinite(lm[t]).all():
            continue
        m = crop_transform(lm[t], centre, idx)
        if m is None:
            continue
        big = cv2.warpAffine(np.ascontiguousarray(img), m, (CROP_W * _OVERSAMPLE, CROP_H * _OVERSAMPLE),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        gray = cv2.cvtColor(big, cv2.COLOR_RGB2GRAY)
        out[t] = cv2.resize(gray, (CROP_W, CROP_H), interpolation=cv2.INTER_AREA)
    return out


def face_crops(path: str | os.PathLike, analysis: dict | None = None, cache: Path | None = None) -> dict:
    """Mouth crops of every track of ``face_tracks(path)``, cached next to the face analysis
    under their own key (``.mouth{CROP_VERSION}-faces{ANALYSIS_VERSION}``; the landmark file is
    not touched): ``{"crops": [(T, CROP_H, CROP_W) uint8 per track]}``. Decodes the analysed
    frames once more (the suite / training path; curation passes its decoded frames to
    ``mouth_crops`` directly)."""
    from curation.faces import ANALYSIS_VERSION
    from curation.media import VideoReader

    cache = cache or cache_dir()
    analysis = analysis or face_tracks(path, cache)
    f = Path(cache) / f"{analysis['key']}.mouth{CROP_VERSION}-faces{ANALYSIS_VERSION}.npz"
    if f.is_file():
        z = np.load(f)
        return {"crops": [z[f"crop{i}"] for i in range(int(z["n_tracks"]))]}
    idx = np.asarray(analysis["frame_indices"])
    reader = VideoReader(path)
    unique, inverse = np.unique(idx, return_inverse=True)
    tracks = analysis["tracks"]
    centres = [crop_centre(t["landmarks"], t["detected"]) for t in tracks]
    crops = [np.zeros((len(idx), CROP_H, CROP_W), np.uint8) for _ in tracks]
    positions = [[] for _ in unique]  # analysed positions of each decoded frame (24 fps repeats one)
    for pos, u in enumerate(inverse):
        positions[u].append(pos)
    chunk = 64
    for s in range(0, len(unique), chunk):
        imgs = reader.get(unique[s:s + chunk])
        for u, img in zip(range(s, s + len(imgs)), imgs):
            for pos in positions[u]:
                for tr, c, out in zip(tracks, centres, crops):
                    out[pos] = mouth_crops([img], tr["landmarks"][pos:pos + 1], tr["detected"][pos:pos + 1], c)[0]
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, n_tracks=len(crops), **{f"crop{i}": c for i, c in enumerate(crops)})
    os.replace(tmp, f)
    return {"crops": crops}
