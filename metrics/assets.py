"""Reference network files the metrics load (read by ``anytalker fetch``).

Nothing here is downloaded at import time or by the metrics: the user fetches or supplies the
file (``--weights PATH``). ``sha256`` is None where no trustworthy published hash could be
verified here (no network): it must be pinned on first fetch (compute it with
``curation.media.sha256_file`` and record it in this list).
"""

from __future__ import annotations

import os
from pathlib import Path

ASSETS: list[dict] = [
    {
        "name": "inception-2015-12-05",
        "filename": "inception-2015-12-05.pt",
        # the TorchScript file as clean-fid and StyleGAN2-ADA / StyleGAN3's metrics download it
        "url": "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
        "alt_urls": [],
        "sha256": None,  # must be pinned on first fetch
        "size": None,  # about 95 MB; record the exact size on first fetch
        "format": "torchscript",
        "used_by": ["fid"],
        "notes": "TF Inception-v3 (2015-12-05) ported to TorchScript; call model(x, return_features=True) -> (N, 2048) pool3 features",
    },
    {
        "name": "i3d_torchscript",
        "filename": "i3d_torchscript.pt",
        "url": "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
        "alt_urls": [],
        "sha256": None,  # must be pinned on first fetch
        "size": None,  # about 50 MB; record the exact size on first fetch
        "format": "torchscript",
        "used_by": ["fvd"],
        "notes": "Kinetics-400 I3D as used by StyleGAN-V; model(x, rescale=False, resize=False, return_features=True) -> (N, 400) logits; x in [-1, 1], (N, 3, T, 224, 224)",
    },
    {
        "name": "syncnet_v2",
        "filename": "syncnet_v2.model",
        "url": "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
        "alt_urls": [],
        "sha256": None,  # must be pinned on first fetch
        "size": None,
        "format": "torch state_dict (joonson/syncnet_python)",
        "used_by": ["sync_c", "sync_d", "sync_c_star"],
        "notes": "joonson's SyncNet weights; loaded by curation.sync.get_sync_backend('syncnet', weights=PATH)",
    },
]


def asset(name: str) -> dict:
    for a in ASSETS:
        if a["name"] == name:
            return a
    raise KeyError(f"unknown asset {name!r}; known: {', '.join(a['name'] for a in ASSETS)}")


def default_asset_dirs() -> list[Path]:
    """Where a fetched asset is looked for when no explicit path is given: the folder
    ``anytalker fetch`` downloads into ($ANYTALKER_ASSETS, else $ANYTALKER_CACHE/assets, else
    ~/.cache/anytalker/assets)."""
    try:
        from anytalker.assets import assets_dir

        return [Path(assets_dir())]
    except ImportError:  # fetch module absent from this build
        return [Path(os.environ.get("ANYTALKER_ASSETS", Path.home() / ".cache" / "anytalker" / "assets"))]


def find_asset(name: str) -> Path | None:
    fn = asset(name)["filename"]
    for d in default_asset_dirs():
        if (d / fn).is_file():
            return d / fn
    return None


def pinned_sha256(name: str) -> str | None:
    """The published sha256 of an asset, or the one ``anytalker fetch --pin`` recorded."""
    pin = asset(name).get("sha256")
    if pin:
        return pin
    try:
        from anytalker.assets import expected_sha256, registry

        return expected_sha256(registry()[name])
    except (ImportError, KeyError, OSError, ValueError):
        return None
