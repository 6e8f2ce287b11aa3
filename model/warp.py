"""Warp a reference crop's mouth to other lip landmarks: a smooth displacement field around the
lips (Gaussian radial basis functions on the control points), sampled backwards with
``grid_sample``.

For every output pixel p the displacement D(p) is the RBF-weighted mean of the control points'
displacements d_k = dst_k - src_k (weights exp(-|p - dst_k|^2 / 2 sigma^2)), faded out by the
distance to the nearest control point (over twice the width), so pixels far from the lips keep the reference's value exactly; the output pixel
takes the reference's colour at p - D(p). At a control point surrounded by points that move alike
the field equals their displacement, so the lips land where asked. Differentiable and batched
(training warps every frame of a batch this way); NaN control points (no landmark) are ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_centres(height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) y and x coordinates of the pixel centres (i + 0.5), in ``like``'s dtype and device."""
    ys = torch.arange(height, dtype=like.dtype, device=like.device) + 0.5
    xs = torch.arange(width, dtype=like.dtype, device=like.device) + 0.5
    return torch.meshgrid(ys, xs, indexing="ij")


def mouth_sigma(src: torch.Tensor) -> torch.Tensor:
    """(N,) RBF width per image: a fifth of the lip landmarks' horizontal extent (the mouth
    width), at least 1.5 px; NaN points ignored. Every pixel within about two widths of the lip
    contour moves with it (lips, the skin just around them, the chin's top)."""
    x = src[..., 0]
    ok = torch.isfinite(x)
    hi = torch.where(ok, x, torch.full_like(x, -1e9)).amax(-1)
    lo = torch.where(ok, x, torch.full_like(x, 1e9)).amin(-1)
    width = torch.where(ok.any(-1), hi - lo, torch.zeros_like(hi))
    return (width / 5.0).clamp(min=1.5)


def displacement_field(src: torch.Tensor, dst: torch.Tensor, height: int, width: int,
                       sigma: torch.Tensor | None = None) -> torch.Tensor:
    """(N, K, 2) source and destination points in pixel coordinates (x, y; pixel centres at
    i + 0.5) -> (N, H, W, 2) displacement D(p) in pixels (output pixel p samples p - D(p))."""
    n = src.shape[0]
    valid = torch.isfinite(src).all(-1) & torch.isfinite(dst).all(-1)  # (N, K)
    d = torch.where(valid[..., None], dst - src, torch.zeros_like(src))
    ctrl = torch.where(valid[..., None], dst, torch.zeros_like(dst))
    sigma = mouth_sigma(src) if sigma is None else sigma.expand(n)
    gy, gx = pixel_centres(height, width, src)
    p = torch.stack([gx, gy], -1).reshape(1, height * width, 1, 2)  # (1, HW, 1, 2)
    dist2 = (p - ctrl[:, None]).pow(2).sum(-1)  # (N, HW, K)
    w = torch.exp(-dist2 / (2 * sigma.view(n, 1, 1) ** 2)) * valid[:, None].to(src.dtype)
    total = w.sum(-1, keepdim=True)
    mean_d = (w[..., None] * d[:, None]).sum(2) / total.clamp(min=1e-8)  # (N, HW, 2)
    # 1 on a control point, 0 far from every one; twice as wide as the interpolation, so the
    # lips' thickness and the mouth between the contours move whole with their points
    fade = torch.exp(-dist2.amin(-1, keepdim=True) / (2 * (2 * sigma.view(n, 1, 1)) ** 2))
    return (mean_d * fade).reshape(n, height, width, 2)


def warp_to_landmarks(image: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                      sigma: torch.Tensor | None = None) -> torch.Tensor:
    """image (N, C, H, W); src, dst (N, K, 2) pixel coordinates -> the image with the content at
    ``src`` moved to ``dst`` (border pixels replicate)."""
    n, _, h, w = image.shape
    disp = displacement_field(src.to(image.dtype), dst.to(image.dtype), h, w, sigma)
    gy, gx = pixel_centres(h, w, image)
    sx = gx[None] - disp[..., 0]
    sy = gy[None] - disp[..., 1]
    grid = torch.stack([sx / w * 2 - 1, sy / h * 2 - 1], -1)  # align_corners=False convention
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def mouth_mask(points: torch.Tensor, height: int, width: int, reach: float = 0.35) -> torch.Tensor:
    """(N, K, 2) lip points (pixel coordinates, NaN ignored) -> (N, 1, H, W) soft mask of the mouth
    region: exp(-d^2 / 2 s^2) with d the distance to the nearest lip point and s = ``reach`` x the
    mouth width (an image without points gets an all-zero mask)."""
    n = points.shape[0]
    valid = torch.isfinite(points).all(-1)
    ctrl = torch.where(valid[..., None], points, torch.full_like(points, 1e6))
    s = mouth_sigma(points) * 5.0 * reach  # mouth_sigma is a fifth of the mouth width
    gy, gx = pixel_centres(height, width, points)
    p = torch.stack([gx, gy], -1).reshape(1, height * width, 1, 2)
    d2 = (p - ctrl[:, None]).pow(2).sum(-1).amin(-1)  # (N, HW)
    return torch.exp(-d2 / (2 * s.view(n, 1) ** 2)).reshape(n, 1, height, width)
