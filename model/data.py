"""Training data: curated shard rows -> batches of (video, reference, faces, audio, face masks).

* Rows come only from a complete manifest (``model.shard_reader``). Each accepted row is a clip
  span of a source video; it is resampled to the config's fps (``curation.media.sample_indices``)
  and cut into windows of ``num_frames`` (4n+1) frames on a fixed grid; only a window's frames
  are decoded (decord, ``curation.media.VideoReader``) and the cropped result is cached (LRU).
* Face-centred: each sample is a crop centred on one face (side = crop_scale x face side,
  clamped to the frame) resized to H x W, so the face fills the crop and the mouth spans many
  patches. Generation crops the reference image the same way (``crop_region``) and composites
  the generated crop back.
* The identity reference frame comes from another window of the same clip (probability
  ``1 - train.ref_is_context``), the window's own frame 0 is the context frame: the mouth in
  the reference is then not the mouth to draw, and the model must take it from the audio.
* Two-person mode (probability ``concat_prob`` per batch, stage 1): the face crops of sample k
  and k+1 are concatenated left | right (width 2W), with both audios, both face crops and both
  face masks (identities bound left -> right). Stage 2 uses real multi-person clips as they are.
* ``mouth_masks`` (H/p x W/p) mark the token cells of the lower middle of each face box, which
  the loss weighs ``train.mouth_weight`` times more.
* Each batch is a pure function of (seed, step, rank), so a resumed run sees the same data.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from curation.media import MediaError, VideoReader, load_audio, sample_indices
from model.audio import frame_windows
from model.masks import face_token_mask, mouth_token_mask, square_box
from model.trainset import LIP_POINTS
from model.shard_reader import ShardError, read_clip_rows

log = logging.getLogger(__name__)


@dataclass
class ClipItem:
    row: dict
    video_path: Path
    audio_paths: list[Path]  # one per person, left -> right
    persons: list[dict]  # sorted by index (0 = leftmost)
    indices: np.ndarray  # source frame indices at the config fps
    num_windows: int
    start_s: float
    decode_scale: float = 1.0  # decode downscaled when the crop has more pixels than needed
    decode_size: tuple[int, int] = (-1, -1)
    failed: bool = False
    audio_feats: list[np.ndarray] = field(default_factory=list)
    wave: np.ndarray | None = None  # the first person's audio of the span (16 kHz; the sync judge's loss reads it)
    lips: np.ndarray | None = None  # (frames of the span, K, 2) source px (trainset ``lips`` column), NaN = none
    lips_at_fps: np.ndarray | None = None  # (len(indices), K, 2) the lips of each sampled frame (``lip_track``)


def _box_at(person: dict, frame: int) -> np.ndarray:
    """The person's box on the tracked frame nearest ``frame`` (``ref_box`` when none)."""
    frames, boxes = person.get("frames") or [], person.get("boxes") or []
    best, best_d = None, None
    for f, b in zip(frames, boxes):
        if b is None or any(v is None for v in b):
            continue
        d = abs(int(f) - frame)
        if best_d is None or d < best_d:
            best, best_d = b, d
    return np.asarray(best if best is not None else person["ref_box"], np.float32)


def crop_region(boxes: list[np.ndarray], frame_w: int, frame_h: int, aspect: float, crop_scale: float):
    """Integer (x0, y0, w, h) of aspect ``aspect`` (w/h) centred on the faces, height
    crop_scale x the largest face side (wide enough for all faces), clamped inside the frame."""
    bx = np.stack(boxes)
    side = float(np.max(np.maximum(bx[:, 2] - bx[:, 0], bx[:, 3] - bx[:, 1])))
    union_w = float(bx[:, 2].max() - bx[:, 0].min())
    ch = max(crop_scale * side, 1.3 * union_w / aspect if len(boxes) > 1 else 0.0)
    ch = min(ch, frame_h)
    cw = ch * aspect
    if cw > frame_w:
        cw, ch = frame_w, frame_w / aspect
    cx = (bx[:, 0].min() + bx[:, 2].max()) / 2
    cy = (bx[:, 1].min() + bx[:, 3].max()) / 2
    x0 = int(round(np.clip(cx - cw / 2, 0, frame_w - cw)))
    y0 = int(round(np.clip(cy - ch / 2, 0, frame_h - ch)))
    return x0, y0, max(1, int(round(cw))), max(1, int(round(ch)))


def crop_face(frame: np.ndarray, box, size: int) -> np.ndarray:
    """Square face crop (box side x1.2) from an RGB frame, zero-padded at borders, size x size."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = square_box(box, 1.2)
    side = max(2, int(round(x2 - x1)))
    x1, y1 = int(round(x1)), int(round(y1))
    out = np.zeros((side, side, 3), np.uint8)
    sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(w, x1 + side), min(h, y1 + side)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1: sy2 - y1, sx1 - x1: sx2 - x1] = frame[sy1:sy2, sx1:sx2]
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)


def map_box(box, x0: int, y0: int, cw: int, ch: int, out_w: int, out_h: int) -> np.ndarray:
    sx, sy = out_w / cw, out_h / ch
    x1, y1, x2, y2 = box
    return np.array([(x1 - x0) * sx, (y1 - y0) * sy, (x2 - x0) * sx, (y2 - y0) * sy], np.float32)


def map_points(points: np.ndarray, x0: int, y0: int, cw: int, ch: int, out_w: int, out_h: int) -> np.ndarray:
    """(..., 2) source-pixel points -> the pixels of the (x0, y0, cw, ch) region resized to out_w x out_h
    (``map_box`` for points: lip landmarks and eye corners into a crop)."""
    return (points - np.array([x0, y0], np.float32)) * np.array([out_w / cw, out_h / ch], np.float32)


def to_model_range(frames_uint8: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(frames_uint8)).float() / 127.5 - 1.0
    return t.movedim(-1, -3)


class ShardTrainingSource:
    def __init__(self, run_dir: str | Path, cfg: dict, frontend, cache_entries: int = 2048):
        self.cfg = cfg
        self.frontend = frontend
        v, m, tr = cfg["video"], cfg["model"], cfg["train"]
        self.T, self.H, self.W = int(v["num_frames"]), int(v["height"]), int(v["width"])
        self.fps, self.patch, self.crop_scale = float(v["fps"]), int(v["patch"]), float(v["crop_scale"])
        self.face_size, self.window = int(m["face_size"]), int(m["audio_window"])
        self.batch_size, self.concat_prob = int(tr["batch_size"]), float(tr["concat_prob"])
        self.ref_is_context = float(tr.get("ref_is_context", 0.25))
        self.stage, self.seed = int(tr["stage"]), int(cfg.get("seed", 0))
        self.manifest, rows = read_clip_rows(run_dir)
        data_root = Path(self.manifest.get("data_root") or ".")
        self.skipped: collections.Counter = collections.Counter()
        self.items: list[ClipItem] = []
        for row in rows:
            item = self._make_item(row, data_root)
            if item is not None:
                self.items.append(item)
        single = [i for i, it in enumerate(self.items) if len(it.persons) == 1]
        multi = [i for i, it in enumerate(self.items) if len(it.persons) >= 2]
        if self.stage == 2:
            pool = multi
            if not pool:
                raise ShardError(f"{run_dir}: train.stage 2 needs real multi-person clips and the shards have "
                                 "none; curate with pipelines/configs/multi_person.yaml or use stage 1")
        else:
            pool = single or multi  # stage 1 learns from single-person clips (+ concatenation)
        if not pool:
            raise ShardError(f"{run_dir}: no usable clip rows ({dict(self.skipped)} skipped); every clip needs "
                             f"status ok, persons with ref_box, an audio_ref and >= {self.T} frames at {self.fps} fps")
        # the last ``train.motion_holdout`` of each clip's windows (at least one when the clip has
        # three or more) is not trained on: the motion head's held-out figure is measured there
        frac = float(tr.get("motion_holdout", 0.0))
        self.heldout_windows = []
        self.pool_windows = []
        self.motion_spans: dict[int, tuple[int, int]] = {}  # item -> (training frames, all frames)
        for i in pool:
            n_win = self.items[i].num_windows
            n_held = max(1, int(round(frac * n_win))) if frac > 0 and n_win >= 3 else 0
            self.pool_windows += [(i, w) for w in range(n_win - n_held)]
            self.heldout_windows += [(i, w) for w in range(n_win - n_held, n_win)]
            if self.items[i].lips is not None and len(self.items[i].persons) == 1:
                # the motion head trains on sequences at any offset inside the training windows'
                # frames and is measured on the held-out windows' frames (``motion_sequences``)
                self.motion_spans[i] = ((n_win - n_held) * self.T, n_win * self.T)
        self.concat_enabled = self.stage == 1 and bool(single) and self.concat_prob > 0
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._cache_entries = cache_entries
        self._readers: collections.OrderedDict = collections.OrderedDict()

    # --- rows -> items -------------------------------------------------------------------------
    def _make_item(self, row: dict, data_root: Path) -> ClipItem | None:
        if row.get("status", "ok") != "ok":
            self.skipped["status_not_ok"] += 1
            return None
        persons = sorted(row.get("persons") or [], key=lambda p: p.get("index", 0))
        if not persons or any(p.get("ref_box") is None for p in persons):
            self.skipped["no_persons"] += 1
            return None
        video = data_root / row["source_path"]
        if not video.is_file():
            self.skipped["source_missing"] += 1
            return None
        audios = []
        for p in persons:
            ref = p.get("audio_ref")
            if not ref:
                break
            audios.append(data_root / (ref[4:] if ref.startswith("mix:") else ref))
        if len(audios) != len(persons) or not all(a.is_file() for a in audios):
            self.skipped["audio_missing"] += 1
            return None
        fps = float(row.get("fps") or 0)
        if fps <= 0:
            self.skipped["no_fps"] += 1
            return None
        idx = sample_indices(int(row["start_frame"]), int(row["end_frame"]), fps, self.fps)
        n_win = len(idx) // self.T
        if n_win < 1:
            self.skipped["too_short"] += 1
            return None
        start_s = float(row["start_s"]) if row.get("start_s") is not None else int(row["start_frame"]) / fps
        item = ClipItem(row, video, audios, persons, idx, n_win, start_s)
        lips = row.get("lips")
        if lips is not None and len(persons) == 1:
            arr = np.asarray(lips, np.float32)
            if arr.size % (2 * len(LIP_POINTS)) == 0:
                item.lips = arr.reshape(-1, len(LIP_POINTS), 2)
        w0, h0 = int(row.get("width") or 0), int(row.get("height") or 0)
        if w0 > 0 and h0 > 0:
            # the crop is resized to H rows: decoding at ~2x that (not full resolution) keeps the
            # area filter's antialiasing while cutting decode-side conversion and resize cost
            side = min(max(b[2] - b[0], b[3] - b[1]) for b in (p["ref_box"] for p in persons))
            crop_h = min(h0, self.crop_scale * side)
            scale = min(1.0, max(2.0 * self.H / max(crop_h, 1.0), self.face_size / max(side, 1.0)))
            if scale < 0.9:
                item.decode_scale = scale
                item.decode_size = (max(2, int(round(w0 * scale / 2)) * 2), max(2, int(round(h0 * scale / 2)) * 2))
        return item

    def describe(self) -> dict:
        return {"clips": len(self.items), "windows": len(self.pool_windows), "skipped": dict(self.skipped),
                "heldout_windows": len(self.heldout_windows),
                "clips_with_lips": sum(it.lips is not None for it in self.items),
                "stage": self.stage, "concat": self.concat_enabled,
                "two_person_clips": sum(len(it.persons) >= 2 for it in self.items)}

    # --- decoding + caching ------------------------------------------------------------------------
    def _reader(self, path: Path, size: tuple[int, int]) -> VideoReader:
        key = (path, size)
        r = self._readers.pop(key, None) or VideoReader(path, width=size[0], height=size[1])
        self._readers[key] = r
        while len(self._readers) > 4:
            self._readers.popitem(last=False)
        return r

    def _audio_feats(self, item: ClipItem) -> list[np.ndarray]:
        if not item.audio_feats:
            n = len(item.indices)
            dur = n / self.fps
            for path in item.audio_paths:
                audio = load_audio(path, start_s=item.start_s, end_s=item.start_s + dur)
                item.audio_feats.append(frame_windows(self.frontend(audio, n, self.fps), self.window))
                if item.wave is None:
                    item.wave = np.asarray(audio, np.float32)
        return item.audio_feats

    def window_sample(self, item_idx: int, window: int, out_w: int) -> dict:
        """Decoded + cropped window: frames (T, H, out_w, 3) uint8, faces (I, s, s, 3) uint8,
        masks (I, H/p, out_w/p), audio (I, T, window, F) float32.

        A miss decodes every window of the clip in one sequential pass (one seek instead of one
        per window: long GOPs make per-window seeks cost most of the decode) and caches them all.
        """
        key = (item_idx, window, out_w)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        item = self.items[item_idx]
        all_idx = item.indices[: item.num_windows * self.T]
        frames_all = self._reader(item.video_path, item.decode_size).get(all_idx)
        fh, fw = frames_all.shape[1:3]
        sx = fw / float(item.row.get("width") or fw)
        sy = fh / float(item.row.get("height") or fh)
        feats = self._audio_feats(item)
        widths = {out_w}
        for w, width in ((w, width) for w in range(item.num_windows) for width in sorted(widths)):
            idx = all_idx[w * self.T:(w + 1) * self.T]
            frames = frames_all[w * self.T:(w + 1) * self.T]
            boxes = [_box_at(p, int(idx[0])) * np.array([sx, sy, sx, sy], np.float32) for p in item.persons]
            x0, y0, cw, ch = crop_region(boxes, fw, fh, width / self.H, self.crop_scale)
            crops = np.stack([cv2.resize(f[y0:y0 + ch, x0:x0 + cw], (width, self.H), interpolation=cv2.INTER_AREA)
                              for f in frames])
            faces = np.stack([crop_face(frames[0], b, self.face_size) for b in boxes])
            mapped = [map_box(b, x0, y0, cw, ch, width, self.H) for b in boxes]
            masks = np.stack([face_token_mask(b, self.H, width, self.patch) for b in mapped])
            mouth = np.max([mouth_token_mask(b, self.H, width, self.patch) for b in mapped], 0)
            audio = np.stack([a[w * self.T:(w + 1) * self.T] for a in feats])
            lips = np.full((len(item.persons), self.T, len(LIP_POINTS), 2), np.nan, np.float32)
            if item.lips is not None:
                rel = idx - int(item.row["start_frame"])
                inside = (rel >= 0) & (rel < len(item.lips))
                src = item.lips[np.clip(rel, 0, len(item.lips) - 1)] * np.array([sx, sy], np.float32)
                crop_px = map_points(src, x0, y0, cw, ch, width, self.H)
                lips[0] = np.where(inside[:, None, None], crop_px, np.nan)
            self._cache[(item_idx, w, width)] = {"frames": crops, "faces": faces, "masks": masks, "mouth": mouth,
                                                 "audio": audio.astype(np.float32), "lips": lips}
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)
        return self._cache[key]

    def _safe_sample(self, pick: int, out_w: int, ref_pick: float = 1.0) -> dict:
        """A window sample with its identity reference (frame 0 and face crops of another window
        of the same clip, chosen by ``ref_pick`` in [0, 1); its own frame 0 when ``ref_pick`` <
        ``ref_is_context`` or the clip has one window). An item that fails to decode is marked and
        the next window is used (bad input never stops training; the count is in ``skipped``)."""
        for k in range(len(self.pool_windows)):
            item_idx, window = self.pool_windows[(pick + k) % len(self.pool_windows)]
            if self.items[item_idx].failed:
                continue
            try:
                smp = self.window_sample(item_idx, window, out_w)
                n_win = self.items[item_idx].num_windows
                if ref_pick < self.ref_is_context or n_win == 1:
                    return {**smp, "ref": smp["frames"][0], "ref_lips": smp["lips"][:, 0]}
                u = (ref_pick - self.ref_is_context) / max(1e-9, 1.0 - self.ref_is_context)
                other = (window + 1 + int(u * (n_win - 1))) % n_win
                ref = self.window_sample(item_idx, other, out_w)
                return {**smp, "ref": ref["frames"][0], "faces": ref["faces"], "ref_lips": ref["lips"][:, 0]}
            except MediaError as e:
                log.warning("skipping clip %s: %s", self.items[item_idx].row.get("clip_id"), e)
                self.items[item_idx].failed = True
                self.skipped["decode_error"] += 1
        raise ShardError("every clip in the shards failed to decode; check the data root in manifest.json")

    # --- batches -----------------------------------------------------------------------------------
    def lip_track(self, item_idx: int) -> np.ndarray:
        """(len(indices), K, 2) source-pixel lips of the clip's frames at the config fps (NaN
        where the mesh found none); the motion head's units are mouth widths, so no crop mapping."""
        item = self.items[item_idx]
        if item.lips_at_fps is None:
            rel = np.asarray(item.indices) - int(item.row["start_frame"])
            inside = (rel >= 0) & (rel < len(item.lips))
            lips = item.lips[np.clip(rel, 0, len(item.lips) - 1)].copy()
            lips[~inside] = np.nan
            item.lips_at_fps = lips
        return item.lips_at_fps

    def _ref_window(self, item_idx: int, rng: np.random.Generator, n_train: int) -> int:
        """A training window whose first frame has lips (the reference, as generation takes a
        training frame); window 0 when none has."""
        lips = self.lip_track(item_idx)
        ok = [w for w in range(max(1, n_train // self.T)) if np.isfinite(lips[w * self.T]).all()]
        return int(rng.choice(ok)) if ok else 0

    def _sequence(self, item_idx: int, start: int, length: int, ref_window: int, judge_audio: bool = False) -> dict:
        item = self.items[item_idx]
        feats = self._audio_feats(item)[0]  # (frames, window, F)
        lips = self.lip_track(item_idx)
        faces = self.window_sample(item_idx, ref_window, self.W)["faces"]
        out = {"faces": faces[:1], "audio": feats[start:start + length, self.window // 2][None].astype(np.float32),
               "lips": lips[start:start + length][None], "ref_lips": lips[ref_window * self.T][None]}
        if judge_audio:
            from model.sync_guidance import judge_audio_span

            out["judge_audio"] = judge_audio_span(item.wave, start / self.fps, length, self.fps)
        return out

    def motion_sequences(self, step: int, rank: int = 0, size: int = 32, length: int = 48,
                         judge_audio: bool = False) -> dict | None:
        """The motion head's batch (``train.motion_batch`` sequences of ``train.motion_seq_frames``
        frames): single-person clips with lips, any offset inside the training frames (clips
        weighted by their number of offsets), a reference from a random training window of the
        clip; with ``judge_audio`` also the sync judge's audio features of each sequence
        (``model.sync_guidance.judge_audio_span``, for the judge's loss on the head). Needs no DiT pass and decodes nothing new (the reference face comes from the window
        cache), so the head sees every training frame many times cheaply. A pure function of
        (seed, step, rank); None when no clip has lips."""
        rng = np.random.default_rng([self.seed, int(step), int(rank), 0x5E0])
        spans = {i: n for i, (n, _) in self.motion_spans.items() if n >= length and not self.items[i].failed}
        if not spans:
            return None
        ids = np.array(sorted(spans))
        w = np.array([spans[i] - length + 1 for i in ids], np.float64)
        samples = []
        for i in rng.choice(ids, size=int(size), p=w / w.sum()):
            i = int(i)
            start = int(rng.integers(0, spans[i] - length + 1))
            try:
                samples.append(self._sequence(i, start, length, self._ref_window(i, rng, spans[i]), judge_audio))
            except MediaError as e:
                log.warning("skipping clip %s: %s", self.items[i].row.get("clip_id"), e)
                self.items[i].failed = True
                self.skipped["decode_error"] += 1
        if not samples:
            return None
        out = {"faces": to_model_range(np.stack([s["faces"] for s in samples])),
               "audio": torch.from_numpy(np.stack([s["audio"] for s in samples])),
               "lips": torch.from_numpy(np.stack([s["lips"] for s in samples])),
               "ref_lips": torch.from_numpy(np.stack([s["ref_lips"] for s in samples]))}
        if judge_audio:
            out["judge_audio"] = torch.from_numpy(np.stack([s["judge_audio"] for s in samples]))
        return out

    def heldout_sequences(self) -> list[dict]:
        """Per clip with lips, its held-out frames (the windows of ``train.motion_holdout``) as one
        sequence (batch of 1), the reference from training window 0 (generation's case)."""
        out = []
        for i, (n_train, n_all) in sorted(self.motion_spans.items()):
            if n_all - n_train < self.T or self.items[i].failed:
                continue
            s = self._sequence(i, n_train, n_all - n_train, 0)
            out.append({"faces": to_model_range(s["faces"][None]), "audio": torch.from_numpy(s["audio"][None]),
                        "lips": torch.from_numpy(s["lips"][None]), "ref_lips": torch.from_numpy(s["ref_lips"][None]),
                        "clip_id": self.items[i].row.get("clip_id")})
        return out

    def lip_deformations(self, max_frames: int = 20000) -> torch.Tensor:
        """(N, K, 2) deformations (``model.motion.deformation``, in mouth widths of the
        reference) of training frames from a random training reference of their clip: the
        sample the motion head's PCA basis is fitted on (held-out frames excluded)."""
        from model.motion import deformation, mouth_width

        rng = np.random.default_rng([self.seed, 0xBA515])
        parts = []
        for i, (n_train, _) in sorted(self.motion_spans.items()):
            lips = torch.from_numpy(self.lip_track(i)[:n_train])
            ok = torch.isfinite(lips).all(-1).all(-1)
            if int(ok.sum()) < 2:
                continue
            good = torch.nonzero(ok)[:, 0].numpy()
            refs = lips[rng.choice(good, size=len(good))]
            d = deformation(lips[good][:, None], refs)[:, 0] / mouth_width(refs)[:, None, None]
            parts.append(d)
        if not parts:
            return torch.zeros(0, len(LIP_POINTS), 2)
        d = torch.cat(parts)
        if len(d) > max_frames:
            d = d[torch.from_numpy(rng.choice(len(d), max_frames, replace=False))]
        return d

    def batch(self, step: int, rank: int = 0) -> dict:
        rng = np.random.default_rng([self.seed, int(step), int(rank)])
        two_person = self.concat_enabled and rng.random() < self.concat_prob
        n_draw = self.batch_size * (2 if two_person else 1)
        picks = rng.integers(0, len(self.pool_windows), size=n_draw)
        ref_picks = rng.random(n_draw)
        if two_person:
            samples = []
            for k in range(self.batch_size):
                a = self._safe_sample(int(picks[2 * k]), self.W, ref_picks[2 * k])
                b = self._safe_sample(int(picks[2 * k + 1]), self.W, ref_picks[2 * k + 1])
                za, zb = np.zeros_like(a["masks"][0]), np.zeros_like(b["masks"][0])
                samples.append({
                    "frames": np.concatenate([a["frames"], b["frames"]], axis=2),
                    "ref": np.concatenate([a["ref"], b["ref"]], axis=1),
                    "faces": np.concatenate([a["faces"][:1], b["faces"][:1]]),
                    "masks": np.stack([np.concatenate([a["masks"][0], zb], 1), np.concatenate([za, b["masks"][0]], 1)]),
                    "mouth": np.concatenate([a["mouth"], b["mouth"]], 1),
                    "audio": np.concatenate([a["audio"][:1], b["audio"][:1]]),
                    # the right crop's landmarks move by one crop width
                    "lips": np.concatenate([a["lips"][:1], b["lips"][:1] + np.array([self.W, 0], np.float32)]),
                    "ref_lips": np.concatenate([a["ref_lips"][:1],
                                                b["ref_lips"][:1] + np.array([self.W, 0], np.float32)]),
                })
            mode = "two_person_concat"
        else:
            samples = [self._safe_sample(int(p), self.W, r) for p, r in zip(picks, ref_picks)]
            mode = "as_is" if any(len(s["faces"]) > 1 for s in samples) else "single"
        return collate(samples, mode)


def collate(samples: list[dict], mode: str = "") -> dict:
    """Stack samples, padding identities (zero face, zero audio, zero mask) to the batch max."""
    n_id = max(len(s["faces"]) for s in samples)

    def pad(x, value=0):
        if len(x) == n_id:
            return x
        return np.concatenate([x, np.full((n_id - len(x), *x.shape[1:]), value, x.dtype)])

    video = to_model_range(np.stack([s["frames"] for s in samples]))  # (B, T, 3, H, W)
    video = video.permute(0, 2, 1, 3, 4).contiguous()
    ref = (to_model_range(np.stack([s["ref"] for s in samples])) if all("ref" in s for s in samples)
           else video[:, :, 0].clone())
    mouth = (torch.from_numpy(np.stack([s["mouth"] for s in samples])).float()
             if all("mouth" in s for s in samples) else None)
    return {
        "video": video,
        "ref": ref,
        **({"mouth_masks": mouth} if mouth is not None else {}),
        # (B, I, T, K, 2) / (B, I, K, 2) lip landmarks in crop px, NaN where unknown
        **({"lips": torch.from_numpy(np.stack([pad(s["lips"], np.nan) for s in samples])),
            "ref_lips": torch.from_numpy(np.stack([pad(s["ref_lips"], np.nan) for s in samples]))}
           if all("lips" in s and "ref_lips" in s for s in samples) else {}),
        "faces": to_model_range(np.stack([pad(s["faces"]) for s in samples])),
        "audio": torch.from_numpy(np.stack([pad(s["audio"]) for s in samples])),
        "face_masks": torch.from_numpy(np.stack([pad(s["masks"]) for s in samples])),
        "num_identities": torch.tensor([len(s["faces"]) for s in samples]),
        "mode": mode,
    }


class StepBatches(torch.utils.data.Dataset):
    """Batch i = source.batch(first_step + i, rank), for a torch DataLoader (workers prefetch)."""

    def __init__(self, source: ShardTrainingSource, first_step: int, last_step: int, rank: int = 0):
        self.source, self.first, self.last, self.rank = source, first_step, last_step, rank

    def __len__(self):
        return max(0, self.last - self.first + 1)

    def __getitem__(self, i):
        return self.source.batch(self.first + i, self.rank)
