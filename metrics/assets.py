"""The reference network files the metrics load: a read-only view of the kernel's asset registry.

The declarations (URL, filename, sha256 pin) live in ``kernel.assets.METRIC_WEIGHTS``, where
``anytalker fetch`` reads them too; this module only looks them up and finds the fetched file.
Nothing here downloads: the user fetches or supplies the file (``--weights PATH``).
"""

from __future__ import annotations

from pathlib import Path

from kernel.assets import METRIC_WEIGHTS, assets_dir, expected_sha256, registry

ASSETS: list[dict] = METRIC_WEIGHTS


def asset(name: str) -> dict:
    for a in ASSETS:
        if a["name"] == name:
            return a
    raise KeyError(f"unknown asset {name!r}; known: {', '.join(a['name'] for a in ASSETS)}")


def default_asset_dirs() -> list[Path]:
    """Where a fetched asset is looked for when no explicit path is given: the folder
    ``anytalker fetch`` downloads into ($ANYTALKER_ASSETS, else $ANYTALKER_CACHE/assets, else
    ~/.cache/anytalker/assets)."""
    return [Path(assets_dir())]


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
        return expected_sha256(registry()[name])
    except (KeyError, OSError, ValueError):  # unknown name, or an unreadable / corrupt pins.json
        return None
