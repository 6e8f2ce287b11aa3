"""Masks: the AFCA temporal audio mask and the per-identity face masks on the token grid."""

from __future__ import annotations

import numpy as np
import torch

from model.config import TEMPORAL_COMPRESSION, check_num_frames, latent_frames

FACE_MASK_SCALE_W = 1.2  # the paper's face-mask enlargement of the square reference face box
FACE_MASK_SCALE_H = 1.1


def audio_attention_mask(num_frames: int, audio_tokens_per_frame: int, num_face_tokens: int = 0) -> torch.Tensor:
    """Boolean (latent_frames, num_face_tokens + num_frames * audio_tokens_per_frame); True = attend.

    Face tokens are visible to every latent frame. Latent frame 0 (video frame 0 alone) sees all
    audio tokens; latent frame l >= 1 sees only the audio tokens of its 4 video frames
    (l-1)*4+1 ... 4l (0-based video frame indices).
    """
    check_num_frames(num_frames)
    lat = latent_frames(num_frames)
    a = audio_tokens_per_frame
    mask = torch.zeros(lat, num_face_tokens + num_frames * a, dtype=torch.bool)
    mask[:, :num_face_tokens] = True
    mask[0, num_face_tokens:] = True
    for l in range(1, lat):
        f0 = (l - 1) * TEMPORAL_COMPRESSION + 1
        f1 = l * TEMPORAL_COMPRESSION  # inclusive
        mask[l, num_face_tokens + f0 * a: num_face_tokens + (f1 + 1) * a] = True
    return mask


def square_box(box, scale: float = 1.0) -> np.ndarray:
    x1, y1, x2, y2 = [float(v) for v in box]
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * scale
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def mask_box(box) -> np.ndarray:
    """Square face box enlarged x1.2 in width and x1.1 in height (the paper's face mask)."""
    x1, y1, x2, y2 = square_box(box)
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1
    w, h = side * FACE_MASK_SCALE_W, side * FACE_MASK_SCALE_H
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def face_token_mask(box, height: int, width: int, patch: int) -> np.ndarray:
    """(height/patch, width/patch) float mask in {0,1}: token cells at least 25 % covered by the
    enlarged face box, plus the cell holding the box centre (so tiny faces are never empty)."""
    gh, gw = height // patch, width // patch
    x1, y1, x2, y2 = mask_box(box)
    ys = np.arange(gh + 1) * patch
    xs = np.arange(gw + 1) * patch
    cover_y = np.clip(np.minimum(ys[1:], y2) - np.maximum(ys[:-1], y1), 0, None) / patch
    cover_x = np.clip(np.minimum(xs[1:], x2) - np.maximum(xs[:-1], x1), 0, None) / patch
    m = (cover_y[:, None] * cover_x[None, :] >= 0.25).astype(np.float32)
    cy = int(np.clip((y1 + y2) / 2 // patch, 0, gh - 1))
    cx = int(np.clip((x1 + x2) / 2 // patch, 0, gw - 1))
    m[cy, cx] = 1.0
    return m


def mouth_box(box) -> np.ndarray:
    """The mouth region of a face box: the middle 60 % of its width, from 55 % of its height to
    5 % below it (face detector boxes end at the chin)."""
    x1, y1, x2, y2 = [float(v) for v in box]
    w, h = x2 - x1, y2 - y1
    return np.array([x1 + 0.2 * w, y1 + 0.55 * h, x2 - 0.2 * w, y2 + 0.05 * h], np.float32)


def mouth_token_mask(box, height: int, width: int, patch: int) -> np.ndarray:
    """(height/patch, width/patch) {0,1} mask of the token cells the mouth box touches."""
    gh, gw = height // patch, width // patch
    x1, y1, x2, y2 = mouth_box(box)
    m = np.zeros((gh, gw), np.float32)
    r0, r1 = int(np.clip(y1 // patch, 0, gh - 1)), int(np.clip(np.ceil(y2 / patch), 1, gh))
    c0, c1 = int(np.clip(x1 // patch, 0, gw - 1)), int(np.clip(np.ceil(x2 / patch), 1, gw))
    m[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)] = 1.0
    return m
