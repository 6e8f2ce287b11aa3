"""FID and FVD: Fréchet distance between Gaussian fits of network features of generated and
real videos.

- FID: TorchScript ``inception-2015-12-05.pt`` (clean-fid / StyleGAN2-ADA port of the TF
  Inception-v3), 2048-d pool features, computed exactly as clean-fid's ``mode="clean"``:
  each uint8 RGB frame resized per channel with PIL bicubic in float mode ``F`` to 299x299, not
  quantised (``cleanfid.resize.make_resizer("PIL", False, "bicubic", (299, 299))``), then
  ``model.layers((x - 128) / 128)`` (``cleanfid.inception_torchscript.InceptionV3W`` with
  ``resize_inside=False``); a network without ``layers`` is called as ``model(x,
  return_features=True)`` on the same [0, 255] input.
- FVD: TorchScript ``i3d_torchscript.pt`` (StyleGAN-V / fvd-comparison), 400-d logits,
  ``model(x, rescale=False, resize=False, return_features=True)`` with ``x`` float
  (N, 3, 16, 224, 224) in [-1, 1], each frame preprocessed as the reference FVD code does
  (VideoGPT's ``preprocess_single``, reused by StyleGAN-V-based FVD scripts): uint8 / 255, the
  shorter side scaled to 224 with ``torch.nn.functional.interpolate(mode="bilinear",
  align_corners=False)`` (no antialiasing; the longer side ``ceil(side * 224 / shorter)``), the
  centre 224x224 cropped, ``(x - 0.5) * 2``; float throughout, never quantised
  (``reference_fvd_preprocess``). The clip is the first ``clip_len`` frames of the video.

The networks cannot be downloaded by this package; the user supplies or fetches them
(``metrics/assets.py``). The frame / clip protocol is recorded in every result's params.
The real set is the samples' ``reference_path`` files (videos or images).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from kernel.errors import UserError
from metrics.assets import asset, find_asset, pinned_sha256
from metrics.base import NAN, ItemResult, Metric, MetricResult, MetricSkip, Sample

log = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


# ---------------------------------------------------------------------------------------------
# math
# ---------------------------------------------------------------------------------------------
def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors to fit a Gaussian, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), with pytorch-fid's safeguards: an eps
    offset on the diagonals when the product's square root is not finite (singular product), and
    a check that the imaginary part left by numerical error is negligible."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on singular products; handled below
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("Fréchet distance: singular product; adding %g to the covariance diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Fréchet distance: imaginary component {np.max(np.abs(covmean.imag)):.3g} "
                             "in sqrtm(S1 S2); the feature sets are too small or degenerate")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


# ---------------------------------------------------------------------------------------------
# network loading
# ---------------------------------------------------------------------------------------------
class TorchScriptFeatureNet:
    """A TorchScript feature network loaded from a user-supplied file (real loader, CPU)."""

    def __init__(self, path, asset_name: str, call_kwargs: dict):
        import torch

        from kernel.media import sha256_file

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: weights file not found; run `anytalker fetch {asset_name}` "
                            f"or pass --weights PATH to {asset(asset_name)['filename']}")
        try:
            self.net = torch.jit.load(str(self.path), map_location="cpu").eval()
        except Exception as e:  # noqa: BLE001 - any load failure is a bad file for the user
            raise UserError(f"{self.path}: cannot load as TorchScript ({type(e).__name__}: {e}); "
                            f"pass the TorchScript {asset(asset_name)['filename']} file") from None
        self.sha256 = sha256_file(self.path)
        pinned = pinned_sha256(asset_name)
        if pinned and pinned != self.sha256:
            log.warning("%s: sha256 %s differs from the pinned %s of %s: results are labelled with "
                        "this file's hash", self.path, self.sha256[:16], pinned[:16], asset_name)
        self.matches_reference = bool(pinned) and pinned == self.sha256
        self.asset_name = asset_name
        self.call_kwargs = call_kwargs

    @property
    def version(self) -> str:
        tag = "pinned" if self.matches_reference else "unpinned"
        return f"sha256:{self.sha256[:16]} ({tag})"

    def __call__(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        import torch

        out = []
        clean_fid_layers = self.call_kwargs.get("clean_fid_layers") and hasattr(self.net, "layers")
        kwargs = {k: v for k, v in self.call_kwargs.items() if k != "clean_fid_layers"}
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                t = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size]))
                if clean_fid_layers:
                    # clean-fid InceptionV3W(resize_inside=False): normalise, then the layers
                    f = self.net.layers.forward((t - 128) / 128)
                else:
                    f = self.net(t, **kwargs)
                out.append(f.reshape(f.shape[0], -1).float().cpu().numpy())
        return np.concatenate(out, axis=0).astype(np.float64)


def _resolve_weights(path: str | None, asset_name: str, metric: str) -> Path:
    if path:
        return Path(path)
    found = find_asset(asset_name)
    if found is None:
        fn = asset(asset_name)["filename"]
        raise UserError(f"{fn}: {metric} needs the reference network file, which is not downloaded "
                        f"by this package; run `anytalker fetch {asset_name}` or pass --weights PATH/{fn}")
    return found


# ---------------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------------
def _read_image(path: Path) -> np.ndarray:
    """RGB uint8 (1, H, W, 3), decoded by PIL as clean-fid does (JPEG decoders differ)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))[None]
    except (UnidentifiedImageError, OSError) as e:
        raise MetricSkip("decode_error", f"{path}: cannot read image ({e})") from None


def _evenly_spaced(n_total: int, n: int) -> list[int]:
    if n_total <= 0:
        return []
    if n >= n_total:
        return list(range(n_total))
    return [int(round(x)) for x in np.linspace(0, n_total - 1, n)]


def clean_resize(frames: np.ndarray, size: int = 299) -> np.ndarray:
    """clean-fid's ``mode="clean"`` resizer on uint8 RGB frames (N, H, W, 3): each channel as a
    float32 PIL image (mode ``F``), bicubic to ``size`` x ``size``, kept as float32 (no
    quantisation, no clipping)."""
    from PIL import Image

    out = np.empty((len(frames), size, size, 3), np.float32)
    for n, frame in enumerate(frames):
        for c in range(3):
            img = Image.fromarray(np.asarray(frame[:, :, c], dtype=np.float32), mode="F")
            out[n, :, :, c] = np.asarray(img.resize((size, size), resample=Image.BICUBIC))
    return out


def reference_fvd_preprocess(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """The reference FVD frame preprocessing (VideoGPT ``preprocess_single``, as in the
    StyleGAN-V FVD scripts) on uint8 RGB frames (T, H, W, 3): [0, 1] float, shorter side
    bilinearly resized to ``size`` (PyTorch ``align_corners=False``, no antialias), centre crop
    ``size`` x ``size``, mapped to [-1, 1]. Returns float32 (T, size, size, 3), not quantised."""
    import math

    import torch
    import torch.nn.functional as F

    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0  # TCHW
    _, _, h, w = video.shape
    scale = size / min(h, w)
    target = (size, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), size)
    video = F.interpolate(video, size=target, mode="bilinear", align_corners=False)
    h, w = video.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    video = video[:, :, top:top + size, left:left + size]
    return ((video - 0.5) * 2).permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)


def _resize(frames: np.ndarray, size: int, interp: str) -> np.ndarray:
    import cv2

    flag = {"bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR}[interp]
    return np.stack([cv2.resize(f, (size, size), interpolation=flag) for f in frames])


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
class _FrechetMetric(Metric):
    """Set-level metric: ``score`` extracts features per item (value NaN), ``aggregate`` fits the
    Gaussians over all scored items and computes the distance; the CI bootstraps over items."""

    higher_is_better = False
    requires = ("video_path", "reference_path")
    asset_name = ""

    def __init__(self, **options):
        super().__init__(**options)
        self._net: TorchScriptFeatureNet | None = None
        self._features: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._real_cache: dict[str, np.ndarray] = {}
        self.backend = self.asset_name
        self.backend_version = "not loaded"

    # subclass hooks
    def _call_kwargs(self) -> dict:
        raise NotImplementedError

    def _inputs(self, path: Path) -> np.ndarray:
        raise NotImplementedError

    def protocol(self) -> dict:
        raise NotImplementedError

    @property
    def net(self) -> TorchScriptFeatureNet:
        if self._net is None:
            path = _resolve_weights(self.params.get("weights"), self.asset_name, self.name)
            self._net = TorchScriptFeatureNet(path, self.asset_name, self._call_kwargs())
            self.backend_version = self._net.version
        return self._net

    def features(self, path) -> np.ndarray:
        path = Path(path)
        if not path.exists():
            raise MetricSkip("not_found", f"{path} does not exist")
        x = self._inputs(path)
        if len(x) == 0:
            raise MetricSkip("too_short", f"{path}: no frames / clips under the protocol {self.protocol()}")
        return self.net(x, int(self.params["batch_size"]))

    def score(self, sample: Sample) -> ItemResult:
        fake = self.features(sample.video_path)
        ref = str(sample.reference_path)
        if ref not in self._real_cache:
            self._real_cache[ref] = self.features(ref)
        real = self._real_cache[ref]
        self._features[sample.item_id] = (fake, real)
        return ItemResult(sample.item_id, True, NAN, {"n_fake_features": len(fake), "n_real_features": len(real)})

    def evaluate(self, samples: list[Sample], progress: bool = False) -> MetricResult:
        _ = self.net  # a missing / unloadable network is a user error for the whole run, not per item
        self._features.clear()
        return super().evaluate(samples, progress)

    def aggregate(self, items: list[ItemResult]) -> MetricResult:
        ok = [it for it in items if it.ok and it.item_id in self._features]
        fakes = [self._features[it.item_id][0] for it in ok]
        reals = [self._features[it.item_id][1] for it in ok]
        # the real set is every distinct reference once (items sharing a reference share its features)
        value, lo, hi = NAN, NAN, NAN
        extra = dict(self.protocol())
        if ok:
            fake_all = np.concatenate(fakes)
            real_all = np.concatenate(list({id(r): r for r in reals}.values()))
            extra.update(n_fake_features=int(len(fake_all)), n_real_features=int(len(real_all)),
                         feature_dim=int(fake_all.shape[1]))
            if len(fake_all) >= 2 and len(real_all) >= 2:
                eps = float(self.params["eps"])
                value = frechet_distance(*gaussian_stats(fake_all), *gaussian_stats(real_all), eps=eps)
                lo, hi = self._bootstrap(fakes, reals, value, eps)
            else:
                extra["note"] = "fewer than 2 feature vectors in a set: distance undefined"
        res = self._result(items, value, lo, hi, extra, ci_method="percentile (resampling items)")
        return res

    def _bootstrap(self, fakes, reals, value, eps) -> tuple[float, float]:
        """Percentile interval (``scipy.stats.bootstrap``) over items: each resample redraws the
        items, and the real set is the distinct references of the drawn items."""
        from scipy.stats import bootstrap

        n_boot = int(self.params["n_boot"])
        if len(fakes) < 2 or n_boot <= 0:  # no spread to resample: no interval (null), not [v, v]
            return NAN, NAN

        def distance(idx) -> float:
            idx = np.asarray(idx, dtype=int)
            f = np.concatenate([fakes[i] for i in idx])
            r = np.concatenate(list({id(reals[i]): reals[i] for i in idx}.values()))
            if len(f) < 2 or len(r) < 2:
                return NAN
            try:
                return frechet_distance(*gaussian_stats(f), *gaussian_stats(r), eps=eps)
            except ValueError:
                return NAN

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = bootstrap((np.arange(len(fakes)),), distance, n_resamples=n_boot, confidence_level=self.ci_level,
                           method="percentile", vectorized=False, rng=np.random.default_rng(0)).confidence_interval
        if not (np.isfinite(ci.low) and np.isfinite(ci.high)):
            return NAN, NAN
        # percentile bootstrap of a biased statistic can exclude the point estimate; widen to keep it
        return float(min(ci.low, value)), float(max(ci.high, value))


class FID(_FrechetMetric):
    name = "fid"
    version = "2"
    asset_name = "inception-2015-12-05"
    backends = ("inception-2015-12-05",)
    description = "Fréchet Inception Distance over sampled frames (2048-d Inception pool features); lower is better"
    params = {"weights": None, "frames_per_video": 16, "image_size": 299, "resize": "clean-fid",
              "batch_size": 8, "n_boot": 50, "eps": 1e-6}

    def _call_kwargs(self) -> dict:
        return {"return_features": True, "clean_fid_layers": self.params["resize"] == "clean-fid"}

    def protocol(self) -> dict:
        resize = ("clean-fid (PIL bicubic, float, per channel; layers((x-128)/128))"
                  if self.params["resize"] == "clean-fid" else f"opencv {self.params['resize']}")
        return {"frames_per_video": self.params["frames_per_video"], "frame_sampling": "evenly spaced",
                "image_size": self.params["image_size"], "resize": resize,
                "input_range": "[0, 255] float", "features": "pool3 2048-d"}

    def _inputs(self, path: Path) -> np.ndarray:
        from curation.media import VideoReader

        if path.suffix.lower() in IMAGE_EXTS:
            frames = _read_image(path)
        else:
            vr = VideoReader(path)
            frames = vr.get(_evenly_spaced(len(vr), int(self.params["frames_per_video"])))
        if self.params["resize"] == "clean-fid":
            frames = clean_resize(frames, int(self.params["image_size"]))
        else:
            frames = _resize(frames, int(self.params["image_size"]), self.params["resize"])
        return frames.transpose(0, 3, 1, 2).astype(np.float32)


class FVD(_FrechetMetric):
    name = "fvd"
    version = "2"
    asset_name = "i3d_torchscript"
    backends = ("i3d_torchscript",)
    description = "Fréchet Video Distance over 16-frame clips (400-d I3D logits); lower is better"
    params = {"weights": None, "clip_len": 16, "clip_stride": 1, "clips_per_video": 1, "image_size": 224,
              "resize": "reference", "batch_size": 2, "n_boot": 50, "eps": 1e-6}

    def _call_kwargs(self) -> dict:
        return {"rescale": False, "resize": False, "return_features": True}

    def protocol(self) -> dict:
        return {"clip_len": self.params["clip_len"], "clip_stride": self.params["clip_stride"],
                "clips_per_video": self.params["clips_per_video"], "clip_starts": "evenly spaced",
                "image_size": self.params["image_size"], "resize": self._resize_name(),
                "input_range": "[-1, 1] float", "features": "I3D logits 400-d"}

    def _resize_name(self) -> str:
        if self.params["resize"] == "reference":
            return ("reference FVD (VideoGPT / StyleGAN-V: shorter side bilinear, align_corners=False, "
                    "no antialias, centre crop, float, (x/255-0.5)*2)")
        return f"opencv {self.params['resize']} to a square, (x/127.5-1)"

    def _frames_to_input(self, frames: np.ndarray) -> np.ndarray:
        size = int(self.params["image_size"])
        if self.params["resize"] == "reference":
            return reference_fvd_preprocess(frames, size)
        return _resize(frames, size, self.params["resize"]).astype(np.float32) / 127.5 - 1.0

    def _inputs(self, path: Path) -> np.ndarray:
        from curation.media import VideoReader

        if path.suffix.lower() in IMAGE_EXTS:
            raise MetricSkip("no_video", f"{path}: FVD needs video references, got an image")
        vr = VideoReader(path)
        clip_len, stride = int(self.params["clip_len"]), int(self.params["clip_stride"])
        span = (clip_len - 1) * stride + 1
        if len(vr) < span:
            raise MetricSkip("too_short", f"{path}: {len(vr)} frames < one {clip_len}-frame clip (stride {stride})")
        starts = _evenly_spaced(len(vr) - span + 1, int(self.params["clips_per_video"]))
        clips = []
        for s in starts:
            clips.append(self._frames_to_input(vr.get(range(s, s + span, stride))))
        # (N, T, H, W, C) -> (N, C, T, H, W)
        return np.stack(clips).transpose(0, 4, 1, 2, 3)


__all__ = ["FID", "FVD", "frechet_distance", "gaussian_stats", "reference_fvd_preprocess", "TorchScriptFeatureNet"]
