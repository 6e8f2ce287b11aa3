"""Generation: reference image + one audio per person -> talking video with the mixed audio.

Faces are detected in the reference (``curation.faces.FaceDetector``) or given as boxes, ordered
left -> right and bound to the audios in that order (the paper's convention). Frames are made at
the config's fps (24) in chunks of ``num_frames`` that overlap by one frame; every chunk is
conditioned on the reference image (chaining each chunk on the previous chunk's last frame made
the tiny model's errors compound into mush within three chunks), and the shared frame of a
later chunk is dropped. A JSON sidecar next to the video records the checkpoint, detector and audio front end.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from curation.media import AUDIO_SR, MediaError, load_audio, sha256_file, write_video, write_wav
from model.audio import build_frontend, frame_windows
from model.checkpoint import load_checkpoint
from model.data import crop_face, to_model_range
from model.dit import AnyTalkerDiT
from model.flow import sample
from model.masks import face_token_mask

log = logging.getLogger(__name__)


class GenerateError(RuntimeError):
    """Bad generation input; the message names the file and what to do."""


def load_model(checkpoint: str | Path):
    blob = load_checkpoint(checkpoint)
    cfg = blob["config"]
    frontend = build_frontend(cfg["audio"])
    model = AnyTalkerDiT(cfg, frontend.feature_dim)
    model.load_state_dict(blob["model"])
    model.eval()
    return model, cfg, frontend, blob


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8. Pillow, not cv2.imread: once decord is loaded, OpenCV's libpng fails with
    "bad parameters to zlib" (conflicting zlib symbols) on PNG files."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")).copy()
    except (OSError, UnidentifiedImageError) as e:
        raise GenerateError(f"{path}: cannot read the reference image ({e}); pass a PNG or JPEG file") from e


def detect_faces(rgb: np.ndarray, image_path) -> tuple[list[np.ndarray], dict]:
    try:
        from curation.faces import FaceDetector
    except ImportError as e:
        raise GenerateError(f"{image_path}: the face detector (curation.faces) is unavailable ({e}); "
                            "pass the face boxes with --boxes x1,y1,x2,y2[;x1,y1,x2,y2...]") from e
    det = FaceDetector()
    boxes = [np.asarray(d.box, np.float32) for d in det.detect(rgb)]
    return boxes, {"backend": det.name, "version": det.version}


def parse_boxes(text: str) -> list[np.ndarray]:
    boxes = []
    for part in text.split(";"):
        vals = [float(v) for v in part.replace(" ", "").split(",") if v]
        if len(vals) != 4 or vals[2] <= vals[0] or vals[3] <= vals[1]:
            raise GenerateError(f"--boxes {text!r}: each box must be x1,y1,x2,y2 with x2>x1 and y2>y1, "
                                "boxes separated by ';'")
        boxes.append(np.asarray(vals, np.float32))
    return boxes


def generate(checkpoint: str | Path, image: str | Path, audios: list[str | Path], out: str | Path,
             seconds: float | None = None, steps: int | None = None, cfg_scale: float | None = None,
             boxes: list[np.ndarray] | None = None, seed: int = 0, height: int | None = None,
             progress: bool = True) -> dict:
    t_start = time.time()
    model, cfg, frontend, blob = load_model(checkpoint)
    v, smp = cfg["video"], cfg["sample"]
    fps, patch, T = float(v["fps"]), int(v["patch"]), int(v["num_frames"])
    steps = int(steps or smp["steps"])
    cfg_scale = float(smp["cfg"] if cfg_scale is None else cfg_scale)
    if not audios:
        raise GenerateError("no --audio given; pass one audio file per person, left to right")

    rgb = read_image(image)
    if boxes is None:
        boxes, detector = detect_faces(rgb, image)
    else:
        detector = {"backend": "user_boxes", "version": None}
    boxes = sorted(boxes, key=lambda b: (b[0] + b[2]) / 2)  # identities bound left -> right
    if len(boxes) < len(audios):
        raise GenerateError(f"{image}: found {len(boxes)} face(s) but {len(audios)} audio file(s) were given; "
                            "pass one --audio per visible face (bound left to right) or give the faces with --boxes")
    if len(boxes) > len(audios):
        log.warning("%s: %d faces, %d audios: the %d rightmost face(s) get silence", image, len(boxes),
                    len(audios), len(boxes) - len(audios))

    waves = []
    for a in audios:
        try:
            waves.append(load_audio(a, sr=AUDIO_SR))
        except MediaError as e:
            raise GenerateError(f"{a}: cannot decode the audio ({e}); pass a WAV/FLAC/MP3 file") from e
        if len(waves[-1]) == 0:
            raise GenerateError(f"{a}: the audio is empty; pass a file with speech")
    audio_s = max(len(w) for w in waves) / AUDIO_SR
    seconds = float(seconds) if seconds else audio_s
    n_frames = max(2, int(round(seconds * fps)))
    n_chunks = math.ceil((n_frames - 1) / (T - 1))
    n_total = n_chunks * (T - 1) + 1
    n_samples = int(math.ceil(n_total / fps * AUDIO_SR))
    padded = [np.pad(w[:n_samples], (0, max(0, n_samples - len(w)))) for w in waves]
    padded += [np.zeros(n_samples, np.float32)] * (len(boxes) - len(audios))  # silent extra faces
    feats = np.stack([frame_windows(frontend(w, n_total, fps), int(cfg["model"]["audio_window"])) for w in padded])

    H = int(height or v["height"])
    H -= H % patch
    if H < patch:
        raise GenerateError(f"--height {height}: must be at least the patch size {patch}")
    img_h, img_w = rgb.shape[:2]
    W = max(patch, int(round(H * img_w / img_h / patch)) * patch)
    sx, sy = W / img_w, H / img_h
    ref = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA)
    faces = np.stack([crop_face(rgb, b, int(cfg["model"]["face_size"])) for b in boxes])
    masks = np.stack([face_token_mask(b * np.array([sx, sy, sx, sy], np.float32), H, W, patch) for b in boxes])

    gen = torch.Generator().manual_seed(int(seed))
    faces_t = to_model_range(faces)[None]
    masks_t = torch.from_numpy(masks)[None]
    ref_t = to_model_range(ref)[None]
    frames: list[np.ndarray] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_chunks * steps, desc="generate", unit="step", dynamic_ncols=True)
    for c in range(n_chunks):
        s = c * (T - 1)
        audio_t = torch.from_numpy(feats[:, s:s + T]).float()[None]
        video = sample(model, ref_t, faces_t, audio_t, masks_t, T, steps=steps, cfg_scale=cfg_scale,
                       shift=float(smp.get("shift", 1.0)), generator=gen,
                       on_step=None if bar is None else (lambda: bar.update(1)))
        chunk = ((video[0].permute(1, 2, 3, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        frames.extend(chunk if c == 0 else chunk[1:])
        if bar is not None:
            bar.set_postfix(chunk=f"{c + 1}/{n_chunks}", refresh=False)
    if bar is not None:
        bar.close()
    frames_arr = np.stack(frames[:n_frames])

    out = Path(out)
    mix = np.sum([np.pad(w[:n_samples], (0, max(0, n_samples - len(w)))) for w in waves], 0)
    mix = mix[: int(round(n_frames / fps * AUDIO_SR))]
    peak = float(np.abs(mix).max()) if len(mix) else 0.0
    if peak > 1.0:
        mix = mix / peak
    with tempfile.TemporaryDirectory() as td:
        wav = Path(td) / "mix.wav"
        write_wav(wav, mix, AUDIO_SR)
        write_video(out, frames_arr, fps, audio=wav)
    record = {
        "video": str(out), "frames": int(len(frames_arr)), "fps": fps, "width": W, "height": H,
        "seconds": round(len(frames_arr) / fps, 4), "identities": len(boxes), "audios": [str(a) for a in audios],
        "boxes": [[round(float(x), 1) for x in b] for b in boxes], "image": str(image),
        "model": {"backend": "anytalker-afca", "checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint),
                  "step": int(blob["step"]), "config": cfg.get("name"), "toolkit_version": blob.get("toolkit_version")},
        "face_detector": detector, "audio_frontend": frontend.describe(),
        "sampler": {"name": "euler_flow_matching", "steps": steps, "cfg": cfg_scale, "seed": int(seed)},
        "wall_s": round(time.time() - t_start, 2),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    return record
