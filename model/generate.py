"""Generation: reference image + one audio per person -> talking video with the mixed audio.

Faces are detected in the reference (``curation.faces.FaceDetector``) or given as boxes, ordered
left -> right and bound to the audios in that order (the paper's convention).

Face-centred: each identity's face region is cropped from the reference exactly as training
crops its samples (``model.data.crop_region``, side = crop_scale x face side) and resized to the
config's crop size (96 x 96 in ``tiny``); the identities' crops are generated together as one
batch, each with its own face tokens and its own audio injected by AFCA within its face mask.
Frames are made at the config's fps (24) in chunks of ``num_frames``: frame 0 of the first chunk
is the reference, frame 0 of every later chunk is the previous chunk's last generated frame (the
context), so every later frame is generated and nothing restarts from the reference; the
reference stays the identity condition throughout. The generated crop's change from the reference
crop is resized to the face region of the output and added to the reference within a feathered
face mask (the enlarged face box), so the background and the rest of the picture stay the
reference's pixels. A JSON sidecar next to the video records the checkpoint, detector and audio front end.
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
from model.data import crop_face, crop_region, map_box, map_points, to_model_range
from model.dit import AnyTalkerDiT
from model.flow import sample, warped_context
from model.motion import destination, lip_opening
from model.trainset import LIP_POINTS
from model.warp import mouth_mask
from model.masks import face_token_mask, mask_box

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


MAX_DEFAULT_HEIGHT = 512


def feather_mask(box, width: int, height: int) -> np.ndarray:
    """(height, width) float mask in [0, 1]: the enlarged face box as an ellipse, edges blurred."""
    x1, y1, x2, y2 = mask_box(box)
    m = np.zeros((height, width), np.float32)
    centre = (int(round((x1 + x2) / 2)), int(round((y1 + y2) / 2)))
    axes = (max(1, int(round((x2 - x1) / 2))), max(1, int(round((y2 - y1) / 2))))
    cv2.ellipse(m, centre, axes, 0, 0, 360, 1.0, -1)
    k = max(3, int(round(min(axes) * 0.3)) | 1)
    return cv2.GaussianBlur(m, (k, k), 0)


EYE_CORNERS = [33, 263]  # the outer eye corners: the sync judge's eye-aligned frame (sync guidance)


def reference_lips(rgb: np.ndarray, boxes: list[np.ndarray]) -> tuple[list[np.ndarray | None], dict]:
    """Per face box, the reference's lip landmarks (``LIP_POINTS``) followed by its outer eye
    corners (``EYE_CORNERS``), full-image px, from the mesh the training set's labels came from
    (``curation.faces.FaceMesh``); None where it finds no face (that identity's context is then
    the unwarped reference)."""
    try:
        from curation.faces import FaceMesh
    except ImportError as e:
        log.warning("no face mesh (%s): the reference is not warped", e)
        return [None] * len(boxes), {"backend": None, "error": str(e)}
    mesh = FaceMesh()
    detections = None
    try:
        out = []
        for b in boxes:
            box = np.asarray(b, np.float64)
            lm = mesh.landmarks(rgb, box)
            if lm is None:
                # without eye keypoints the mesh's region of interest is upright; a rolled head
                # (the syncnet example's reference, ~40 degrees) is then not found, the
                # identity is not warped and every frame is the reference (round 6's identical
                # frames). The detector's eyes orient it, as in the training set's face pass.
                detections = detect_eyes(rgb) if detections is None else detections
                eyes = matching_eyes(box, detections)
                lm = None if eyes is None else mesh.landmarks(rgb, box, eyes)
            out.append(None if lm is None else np.asarray(lm, np.float32)[LIP_POINTS + EYE_CORNERS, :2])
        return out, {"backend": mesh.name, "version": getattr(mesh, "version", None)}
    finally:
        mesh.close()


def detect_eyes(rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(box, eye keypoints (2, 2)) of every face the detector finds in ``rgb``."""
    from curation.faces import FaceDetector

    return [(np.asarray(d.box, np.float64), np.asarray(d.eyes, np.float64)) for d in FaceDetector().detect(rgb)
            if getattr(d, "eyes", None) is not None]


def matching_eyes(box: np.ndarray, detections: list[tuple[np.ndarray, np.ndarray]], min_iou: float = 0.3):
    """The eye keypoints of the detection that overlaps ``box`` most (IoU >= ``min_iou``), else None."""
    from curation.faces import iou_matrix

    if not detections:
        return None
    iou = iou_matrix(box[None], np.stack([b for b, _ in detections]))[0]
    k = int(np.argmax(iou))
    return detections[k][1] if iou[k] >= min_iou else None


def generate(checkpoint: str | Path, image: str | Path, audios: list[str | Path], out: str | Path,
             seconds: float | None = None, steps: int | None = None, cfg_scale: float | None = None,
             boxes: list[np.ndarray] | None = None, seed: int = 0, height: int | None = None,
             progress: bool = True, sync_guidance: bool | None = None) -> dict:
    """``sync_guidance``: None = the config's ``sample.sync_guidance_steps``; False = off; True =
    on (the config's steps, or ``model.sync_guidance.DEFAULT_STEPS`` for a checkpoint without them)."""
    t_start = time.time()
    model, cfg, frontend, blob = load_model(checkpoint)
    v, smp = cfg["video"], cfg["sample"]
    fps, patch, T = float(v["fps"]), int(v["patch"]), int(v["num_frames"])
    crop_h, crop_w, crop_scale = int(v["height"]), int(v["width"]), float(v["crop_scale"])
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

    img_h, img_w = rgb.shape[:2]
    H = int(height or min(img_h, MAX_DEFAULT_HEIGHT))
    H -= H % 2
    if H < 16:
        raise GenerateError(f"--height {height}: must be at least 16 px")
    W = max(2, int(round(H * img_w / img_h / 2)) * 2)
    sx, sy = W / img_w, H / img_h
    ref_out = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA).astype(np.float32)

    # one face-centred crop per identity, cut from the full-resolution reference
    crops, crop_boxes, faces, masks = [], [], [], []
    for b in boxes:
        x0, y0, cw, ch = crop_region([b], img_w, img_h, crop_w / crop_h, crop_scale)
        crops.append(cv2.resize(rgb[y0:y0 + ch, x0:x0 + cw], (crop_w, crop_h), interpolation=cv2.INTER_AREA))
        crop_boxes.append((x0, y0, cw, ch))
        faces.append(crop_face(rgb, b, int(cfg["model"]["face_size"]))[None])
        masks.append(face_token_mask(map_box(b, x0, y0, cw, ch, crop_w, crop_h), crop_h, crop_w, patch)[None])
    ref_lips_t = eyes_t = None
    lips_record: dict = {"warp_context": bool(model.warp_context), "motion_head": model.motion is not None}
    if model.warp_context or model.motion is not None:
        lips_full, mesh_info = reference_lips(rgb, boxes)
        lips_record.update(mesh=mesh_info, reference_lips_found=[lp is not None for lp in lips_full])
        rows = []
        for lp, (x0, y0, cw, ch) in zip(lips_full, crop_boxes):
            if lp is None:
                rows.append(np.full((len(LIP_POINTS) + len(EYE_CORNERS), 2), np.nan, np.float32))
            else:
                rows.append(map_points(lp, x0, y0, cw, ch, crop_w, crop_h))
        points = torch.from_numpy(np.stack(rows))  # (I, K + 2, 2) crop px
        ref_lips_t = points[:, None, :len(LIP_POINTS)]  # (I, 1, K, 2)
        eyes_t = points[:, len(LIP_POINTS):]  # (I, 2, 2)
        if not any(lips_record["reference_lips_found"]):
            log.warning("%s: the face mesh found no lips on the reference; frames are not warped", image)
    ref_t = to_model_range(np.stack(crops))  # (I, 3, h, w): the identities are the batch
    faces_t = to_model_range(np.stack(faces))  # (I, 1, 3, s, s)
    masks_t = torch.from_numpy(np.stack(masks))  # (I, 1, h/p, w/p)

    gen = torch.Generator().manual_seed(int(seed))
    crop_frames = [ref_t]  # frame 0: the reference crops
    context = ref_t
    motion_gain = 1.0
    if model.motion is not None:
        g = smp.get("motion_gain", "auto")
        motion_gain = model.motion.amplitude_gain() if g == "auto" else float(g)
        lips_record["motion_gain"] = round(motion_gain, 4)
    residual_region = str(smp.get("residual_region", "all"))
    if residual_region not in ("all", "mouth"):
        raise GenerateError(f"{checkpoint}: sample.residual_region is {residual_region!r}; use all or mouth")
    lips_record["residual_region"] = residual_region
    dst = None
    openings: list[torch.Tensor] = []  # predicted inner-lip opening change per chunk (I, T-1), crop px
    deform_all = None
    if model.warp_context and model.motion is not None:
        # the whole clip's lip motion in one pass of the head (no per-chunk restart: the head's
        # temporal context runs across chunk borders; it needs only audio, face and lips)
        from model.motion import centre_features

        from model.sync_guidance import SyncGuidance, guide_coefficients

        with torch.no_grad():
            coeffs = model.motion.with_gain(model.motion.coefficients(
                model.encode_faces(faces_t), centre_features(torch.from_numpy(feats).float())[:, None], ref_lips_t),
                motion_gain)  # (I, 1, n_total, C)
        # classifier guidance by the sync judge: each identity's lips toward its own audio
        guidance = SyncGuidance.from_config(smp, sync_guidance)
        coeffs_i, lips_record["sync_guidance"] = guide_coefficients(model.motion, coeffs[:, 0], ref_lips_t[:, 0], eyes_t,
                                                                     padded[:len(audios)] + [None] * (len(boxes) - len(audios)),
                                                                     fps, guidance)
        with torch.no_grad():
            deform_all = model.motion.to_deformation(coeffs_i[:, None], ref_lips_t)  # (I, 1, n_total, K, 2) crop px
        # the lips the frames are meant to show (crop px): ``benchmarks.model_quality`` compares the
        # rendered mouth with it (does the video show what the head and the guidance chose?)
        lips_record["intended_opening_px"] = [[round(float(v), 3) for v in row] for row in
                                              lip_opening(destination(ref_lips_t, deform_all)[:, 0])[:, :n_frames]]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_chunks, desc="generate", unit="chunk")
    for c in range(n_chunks):
        s = c * (T - 1)
        audio_t = torch.from_numpy(feats[:, s:s + T]).float()[:, None]  # (I, 1, T, window, F)
        if model.warp_context:
            dst = None
            if deform_all is not None:
                dst = destination(ref_lips_t, deform_all[:, :, s:s + T])
                openings.append(lip_opening(dst[:, 0, 1:]) - lip_opening(ref_lips_t[:, 0])[:, None])
            context = warped_context(model, context if context.dim() == 4 else context[:, :, 0], ref_t,
                                     ref_lips_t, dst, T)
        video = sample(model, ref_t, faces_t, audio_t, masks_t, T, steps=steps, cfg_scale=cfg_scale,
                       shift=float(smp.get("shift", 1.0)), generator=gen, context=context)
        if residual_region == "mouth" and context.dim() == 5 and dst is not None:
            # the DiT's residual on the warped reference is kept around the predicted lips only
            # (``sample.residual_region``): elsewhere the warped reference is the frame
            pts = dst[:, 0].flatten(0, 1)  # (I*T, K, 2)
            m = mouth_mask(pts, crop_h, crop_w).unflatten(0, (dst.shape[0], T)).transpose(1, 2)  # (I, 1, T, h, w)
            video = torch.cat([video[:, :, :1], context[:, :, 1:] + m[:, :, 1:] * (video[:, :, 1:] - context[:, :, 1:])], 2)
        crop_frames.extend(video[:, :, f] for f in range(1, T))
        context = video[:, :, -1]
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    crop_video = torch.stack(crop_frames[:n_frames], 1)  # (I, F, 3, h, w) in [-1, 1]
    residual = ((crop_video - ref_t[:, None]) * 127.5).permute(0, 1, 3, 4, 2).numpy()  # (I, F, h, w, 3)

    frames_arr = np.repeat(ref_out[None], n_frames, 0)
    for i, (b, (x0, y0, cw, ch)) in enumerate(zip(boxes, crop_boxes)):
        ox0, oy0 = int(round(x0 * sx)), int(round(y0 * sy))
        ox1, oy1 = min(W, int(round((x0 + cw) * sx))), min(H, int(round((y0 + ch) * sy)))
        if ox1 - ox0 < 2 or oy1 - oy0 < 2:
            continue
        mask = feather_mask(b * np.array([sx, sy, sx, sy], np.float32), W, H)[oy0:oy1, ox0:ox1, None]
        for f in range(1, n_frames):
            up = cv2.resize(residual[i, f], (ox1 - ox0, oy1 - oy0), interpolation=cv2.INTER_LINEAR)
            frames_arr[f, oy0:oy1, ox0:ox1] += mask * up
    frames_arr = frames_arr.round().clip(0, 255).astype(np.uint8)

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
    wall = time.time() - t_start
    record = {
        "video": str(out), "frames": int(len(frames_arr)), "fps": fps, "width": W, "height": H,
        "seconds": round(len(frames_arr) / fps, 4), "identities": len(boxes), "audios": [str(a) for a in audios],
        "boxes": [[round(float(x), 1) for x in b] for b in boxes], "image": str(image),
        "face_crops": {"size": [crop_w, crop_h], "regions_xywh": [list(map(int, r)) for r in crop_boxes]},
        "model": {"backend": "anytalker-afca", "checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint),
                  "step": int(blob["step"]), "config": cfg.get("name"), "toolkit_version": blob.get("toolkit_version")},
        "face_detector": detector, "audio_frontend": frontend.describe(),
        "sampler": {"name": "euler_flow_matching", "steps": steps, "cfg": cfg_scale, "seed": int(seed),
                    "chunks": n_chunks, "chunk_frames": T},
        "mouth_motion": {**lips_record, **({"predicted_opening_change_px": {
            "mean": [round(float(v), 3) for v in torch.cat(openings, 1).nanmean(1)],
            "std": [round(float(v), 3) for v in torch.cat(openings, 1).std(1)]}} if openings else {})},
        # consecutive frames equal before encoding (the benchmark counts them after decoding: a
        # difference here that decoding loses is the encoder's, not the model's)
        "identical_consecutive_frames_before_encoding": int(sum(np.array_equal(frames_arr[k], frames_arr[k + 1])
                                                                for k in range(len(frames_arr) - 1))),
        "threads": torch.get_num_threads(),
        "wall_s": round(wall, 2), "seconds_per_generated_second": round(wall / max(len(frames_arr) / fps, 1e-9), 3),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    return record
