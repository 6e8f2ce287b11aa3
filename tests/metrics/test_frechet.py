"""Fréchet distance math on Gaussians with a known distance, and the TorchScript loading path
of FID / FVD with small networks scripted and saved by the test (the real Inception / I3D files
cannot be downloaded here)."""

from __future__ import annotations

import numpy as np
import pytest

from metrics import Sample, get_metric
from metrics.frechet import frechet_distance, gaussian_stats


def _analytic_fd(mu1, s1, mu2, s2) -> float:
    # Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2), all symmetric PSD: eigen decompositions only
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(w)) @ v.T
    m = r1 @ s2 @ r1
    tr = np.sqrt(np.clip(np.linalg.eigvalsh(m), 0, None)).sum()
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * tr)


def _random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    # diagonal covariances: FD = ||mu1 - mu2||^2 + sum (sqrt(s1) - sqrt(s2))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(5.0 + 1 + 1 + 4)
    # general SPD covariances
    for d in (2, 8, 32):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_analytic_fd(mu1, s1, mu2, s2), rel=1e-6, abs=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_from_samples_converges_to_the_true_distance():
    rng = np.random.default_rng(1)
    d = 4
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    x = rng.multivariate_normal(mu1, s1, 20000)
    y = rng.multivariate_normal(mu2, s2, 20000)
    est = frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
    assert est == pytest.approx(_analytic_fd(mu1, s1, mu2, s2), rel=0.05)


def test_singular_covariances_stay_finite():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 64)), rng.normal(size=(5, 64)) + 1.0  # rank 4 in 64-d
    v = frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
    assert np.isfinite(v) and v > 0
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_stats(x[:1])


# --- loading path -----------------------------------------------------------------------------
def _save_inception_like(path):
    import torch
    from torch import nn

    class TinyInception(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 16, 5, stride=4)
            self.fc = nn.Linear(16, 10)

        def forward(self, x, return_features: bool = False):
            f = torch.relu(self.conv(x.float() / 255.0)).mean(dim=(2, 3))
            return f if return_features else self.fc(f)

    torch.jit.script(TinyInception()).save(str(path))


def _save_i3d_like(path):
    import torch
    from torch import nn

    class TinyI3D(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv3d(3, 12, (3, 7, 7), stride=(2, 4, 4))
            self.head = nn.Linear(12, 12)

        def forward(self, x, rescale: bool = False, resize: bool = False, return_features: bool = False):
            logits = self.head(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))
            return logits if return_features else torch.softmax(logits, 1)

    torch.jit.script(TinyI3D()).save(str(path))


@pytest.fixture(scope="module")
def videos(tmp_path_factory, ffmpeg):
    from tests.conftest import run_ffmpeg

    d = tmp_path_factory.mktemp("frechet")
    out = {}
    for name, src in {"bars": "testsrc=s=96x96:d=1.28:r=25", "bars2": "testsrc2=s=96x96:d=1.28:r=25",
                      "noise": "nullsrc=s=96x96:d=1.28:r=25,geq=random(1)*255:128:128",
                      "noise2": "nullsrc=s=96x96:d=1.28:r=25,geq=random(2)*255:64:192"}.items():
        p = d / f"{name}.mp4"
        run_ffmpeg("-f", "lavfi", "-i", src, "-pix_fmt", "yuv420p", str(p))
        out[name] = str(p)
    return out


def test_fid_loads_a_torchscript_network_and_separates_sets(tmp_path, videos):
    weights = tmp_path / "inception-2015-12-05.pt"
    _save_inception_like(weights)
    fid = get_metric("fid", weights=str(weights), frames_per_video=8, n_boot=20)
    same = fid.evaluate([Sample("a", videos["bars"], reference_path=videos["bars"]),
                         Sample("b", videos["noise"], reference_path=videos["noise"])])
    fid2 = get_metric("fid", weights=str(weights), frames_per_video=8, n_boot=20)
    diff = fid2.evaluate([Sample("a", videos["bars"], reference_path=videos["noise"]),
                          Sample("b", videos["bars2"], reference_path=videos["noise2"])])
    assert same.n_scored == 2 and diff.n_scored == 2
    assert same.value == pytest.approx(0.0, abs=1e-6)
    assert diff.value > 1e-3 + same.value
    assert diff.ci_low <= diff.value <= diff.ci_high
    assert diff.backend == "inception-2015-12-05" and diff.backend_version.startswith("sha256:")
    assert diff.params["frames_per_video"] == 8 and diff.params["image_size"] == 299
    assert diff.params["n_fake_features"] == 16 and diff.params["feature_dim"] == 16
    assert not diff.higher_is_better


def test_fvd_loads_a_torchscript_network_and_records_the_clip_protocol(tmp_path, videos):
    weights = tmp_path / "i3d_torchscript.pt"
    _save_i3d_like(weights)
    fvd = get_metric("fvd", weights=str(weights), clips_per_video=2, image_size=64, n_boot=10)
    r = fvd.evaluate([Sample("a", videos["bars"], reference_path=videos["noise"]),
                      Sample("b", videos["bars2"], reference_path=videos["noise2"]),
                      Sample("img_ref", videos["bars"], reference_path=str(tmp_path / "missing.png"))])
    assert r.n_scored == 2 and r.failures == {"not_found": 1}
    assert np.isfinite(r.value) and r.value > 0
    assert r.params["clip_len"] == 16 and r.params["clips_per_video"] == 2
    assert r.params["n_fake_features"] == 4 and r.params["feature_dim"] == 12


def test_missing_or_wrong_weights_are_user_errors(tmp_path, videos):
    from kernel.errors import UserError

    with pytest.raises(UserError, match="anytalker fetch inception-2015-12-05"):
        get_metric("fid", weights=str(tmp_path / "nope.pt")).evaluate([Sample("a", videos["bars"], reference_path=videos["bars"])])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torchscript archive")
    with pytest.raises(UserError, match="cannot load as TorchScript"):
        get_metric("fvd", weights=str(bad)).evaluate([Sample("a", videos["bars"], reference_path=videos["bars"])])


def test_fid_finds_a_fetched_network_and_reports_its_pin(tmp_path, videos, monkeypatch):
    import json

    from curation.media import sha256_file

    monkeypatch.setenv("ANYTALKER_ASSETS", str(tmp_path))
    weights = tmp_path / "inception-2015-12-05.pt"  # where `anytalker fetch` puts it
    _save_inception_like(weights)
    r = get_metric("fid", frames_per_video=4, n_boot=0).evaluate(
        [Sample("a", videos["bars"], reference_path=videos["noise"])])
    assert r.backend_version.endswith("(unpinned)")
    (tmp_path / "pins.json").write_text(json.dumps({"inception-2015-12-05": sha256_file(weights)}))
    r = get_metric("fid", frames_per_video=4, n_boot=0).evaluate(
        [Sample("a", videos["bars"], reference_path=videos["noise"])])
    assert r.backend_version == f"sha256:{sha256_file(weights)[:16]} (pinned)"
    assert np.isfinite(r.value)


# --- parity with clean-fid ----------------------------------------------------------------------
def _save_inception_with_layers(path):
    """The interface of inception-2015-12-05.pt: ``forward(img, return_features)`` resizing to
    299 inside, and the ``layers`` module that clean-fid calls directly."""
    import torch
    from torch import nn

    class Layers(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(1)
            self.conv = nn.Conv2d(3, 4, 9, stride=8)

        def forward(self, x):
            return torch.tanh(self.conv(x)).mean(dim=(2, 3))

    class InceptionLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, img, return_features: bool = False):
            x = torch.nn.functional.interpolate(img.float(), size=(299, 299), mode="bilinear", align_corners=False)
            return self.layers((x - 128) / 128)

    torch.jit.script(InceptionLike()).save(str(path))


def _clean_fid_reference(net_path, fake_files, real_files) -> float:
    """clean-fid 0.1.35's ``compute_fid(fdir1, fdir2, mode="clean")`` steps, written out from its
    source (clean-fid cannot be installed here: it requires torchvision, whose wheels pull
    another torch): ``ResizeDataset.__getitem__`` (PIL ``convert("RGB")``,
    ``make_resizer("PIL", False, "bicubic", (299, 299))``, ``ToTensor`` on float32 = CHW
    without scaling), ``InceptionV3W.forward`` (``layers((x - 128) / 128)``),
    ``fid_from_feats`` (mean, ``np.cov(rowvar=False)``, ``frechet_distance``)."""
    import torch
    from PIL import Image
    from scipy import linalg

    net = torch.jit.load(str(net_path)).eval()

    def resize_single_channel(x_np):
        img = Image.fromarray(x_np.astype(np.float32), mode="F")
        img = img.resize((299, 299), resample=Image.BICUBIC)
        return np.asarray(img).reshape(299, 299, 1)

    def feats(files):
        out = []
        for f in files:
            img_np = np.array(Image.open(f).convert("RGB"))
            x = np.concatenate([resize_single_channel(img_np[:, :, i]) for i in range(3)], axis=2).astype(np.float32)
            t = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
            with torch.no_grad():
                out.append(net.layers.forward((t - 128) / 128).view(1, -1).numpy())
        return np.concatenate(out).astype(np.float64)

    def frechet(mu1, s1, mu2, s2, eps=1e-6):
        diff = mu1 - mu2
        covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
        if not np.isfinite(covmean).all():
            offset = np.eye(s1.shape[0]) * eps
            covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
        if np.iscomplexobj(covmean):
            covmean = covmean.real
        return diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)

    f1, f2 = feats(fake_files), feats(real_files)
    return float(frechet(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)))


def test_fid_equals_clean_fid_on_the_same_network(tmp_path):
    from PIL import Image

    weights = tmp_path / "inception-2015-12-05.pt"
    _save_inception_with_layers(weights)
    rng = np.random.default_rng(0)
    fake, real = [], []
    for i in range(12):
        for kind, files, shift in (("fake", fake, 40), ("real", real, 0)):
            h, w = int(rng.integers(48, 120)), int(rng.integers(48, 120))
            yy, xx = np.mgrid[0:h, 0:w]
            img = np.stack([(xx * (3 + i) + shift) % 256, (yy * (2 + i)) % 256,
                            rng.integers(0, 256, (h, w))], -1).astype(np.uint8)
            p = tmp_path / f"{kind}_{i}.{'jpg' if i % 2 else 'png'}"
            Image.fromarray(img).save(p, quality=90)
            files.append(p)
    fid = get_metric("fid", weights=str(weights), n_boot=0)
    ours = fid.evaluate([Sample(f"s{i}", str(f), reference_path=str(r)) for i, (f, r) in enumerate(zip(fake, real))])
    ref = _clean_fid_reference(weights, fake, real)
    assert ours.n_scored == 12
    assert ref > 1e-3
    assert ours.value == pytest.approx(ref, abs=1e-3), (ours.value, ref)
    # the previous OpenCV resize is measurably different on the same features
    cv = get_metric("fid", weights=str(weights), n_boot=0, resize="bicubic")
    other = cv.evaluate([Sample(f"s{i}", str(f), reference_path=str(r)) for i, (f, r) in enumerate(zip(fake, real))])
    assert abs(other.value - ref) > abs(ours.value - ref)


def _bilinear_numpy(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Independent bilinear resize (half-pixel centres, source index clamped at 0 and at the
    last pixel, no antialias: PyTorch's ``align_corners=False`` rule) of a float (H, W, C) image."""
    h, w = img.shape[:2]

    def axis(n_in, n_out):
        x = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        i0 = np.minimum(np.floor(x).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (x - i0)[:, None]

    y0, y1, wy = axis(h, out_h)
    x0, x1, wx = axis(w, out_w)
    rows = img[y0] * (1 - wy[:, :, None]) + img[y1] * wy[:, :, None]  # (out_h, W, C)
    return rows[:, x0] * (1 - wx[None]) + rows[:, x1] * wx[None]


def _reference_fvd_clip(frames: np.ndarray, size: int) -> np.ndarray:
    """VideoGPT / StyleGAN-V FVD preprocessing written out with numpy: (T, H, W, 3) uint8 ->
    (3, T, size, size) float in [-1, 1]."""
    import math

    out = []
    for f in frames.astype(np.float64) / 255.0:
        h, w = f.shape[:2]
        scale = size / min(h, w)
        th, tw = (size, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), size)
        r = _bilinear_numpy(f, th, tw)
        top, left = (th - size) // 2, (tw - size) // 2
        out.append((r[top:top + size, left:left + size] - 0.5) * 2)
    return np.stack(out).transpose(3, 0, 1, 2)


def test_fvd_preprocessing_and_value_match_an_independent_reference_implementation(tmp_path, ffmpeg):
    import scipy.linalg
    import torch

    from curation.media import VideoReader
    from metrics.frechet import reference_fvd_preprocess
    from tests.conftest import run_ffmpeg

    weights = tmp_path / "i3d_torchscript.pt"
    _save_i3d_like(weights)
    size = 40
    # landscape, portrait and odd sizes: the shorter side is scaled, the longer one cropped
    fake, real = [], []
    for i, (w, h) in enumerate([(96, 64), (50, 90), (77, 77), (120, 45), (64, 96), (81, 59)]):
        for kind, files, src in (("fake", fake, f"testsrc2=s={w}x{h}:d=0.8:r=25"),
                                 ("real", real, f"mandelbrot=s={w}x{h}:r=25:start_scale={1 + i},trim=duration=0.8")):
            p = tmp_path / f"{kind}_{i}.mp4"
            run_ffmpeg("-f", "lavfi", "-i", src, "-pix_fmt", "yuv444p", "-c:v", "libx264", "-qp", "0", str(p))
            files.append(str(p))
    frames = VideoReader(fake[1]).get(range(16))
    ours = reference_fvd_preprocess(frames, size)
    ref = _reference_fvd_clip(frames, size)
    assert ours.shape == (16, size, size, 3)
    assert np.abs(ours.transpose(3, 0, 1, 2) - ref).max() < 1e-5
    # the FVD value: our metric vs the reference formula on independently preprocessed clips
    net = torch.jit.load(str(weights)).eval()

    def feats(files):
        clips = np.stack([_reference_fvd_clip(VideoReader(f).get(range(16)), size) for f in files])
        with torch.no_grad():
            return net(torch.from_numpy(clips).float(), rescale=False, resize=False, return_features=True).numpy()

    f1, f2 = feats(fake).astype(np.float64), feats(real).astype(np.float64)
    m1, s1, m2, s2 = f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)
    sq, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    expected = float(np.real(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * sq)))
    fvd = get_metric("fvd", weights=str(weights), image_size=size, n_boot=0)
    r = fvd.evaluate([Sample(f"s{i}", f, reference_path=g) for i, (f, g) in enumerate(zip(fake, real))])
    assert r.n_scored == 6 and expected > 1e-3
    assert r.value == pytest.approx(expected, abs=1e-3, rel=1e-4), (r.value, expected)
    assert "reference FVD" in r.params["resize"]
    # the previous OpenCV area resize to a square is measurably different on the same features
    old = get_metric("fvd", weights=str(weights), image_size=size, n_boot=0, resize="area")
    other = old.evaluate([Sample(f"s{i}", f, reference_path=g) for i, (f, g) in enumerate(zip(fake, real))])
    assert abs(other.value - expected) > abs(r.value - expected) + 1e-3
