"""kernel.assets: the registry (example media + metric weights), sha256-verified fetch, pins;
metrics.assets reads the same declarations; the old anytalker.* names still work."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from kernel import assets
from kernel.errors import UserError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYTALKER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ANYTALKER_ASSETS", raising=False)
    return tmp_path / "cache"


def test_registry_holds_example_media_and_the_metric_weights():
    reg = assets.registry()
    assert {"inception-2015-12-05", "i3d_torchscript", "syncnet_v2", "s3fd"} <= set(reg)
    assert sum(a.kind == "media" for a in reg.values()) == len(assets.EXAMPLE_MEDIA)
    assert all(a.sha256 and len(a.sha256) == 64 for a in reg.values() if a.kind == "media")


def test_metrics_read_the_kernel_declarations(cache):
    from metrics import assets as metric_assets

    assert metric_assets.ASSETS is assets.METRIC_WEIGHTS
    assert metric_assets.find_asset("syncnet_v2") is None
    f = cache / "assets" / "syncnet_v2.model"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"weights")
    assert metric_assets.find_asset("syncnet_v2") == f


def test_fetch_from_a_local_copy_pins_then_refuses_a_different_file(cache, tmp_path):
    src = tmp_path / "syncnet_v2.model"
    src.write_bytes(b"first")
    with pytest.raises(UserError, match="no checksum"):
        assets.fetch("syncnet_v2", source=str(src))
    got = assets.fetch("syncnet_v2", source=str(src), pin=True)
    assert got.read_bytes() == b"first"
    from metrics.assets import pinned_sha256

    assert pinned_sha256("syncnet_v2") == hashlib.sha256(b"first").hexdigest()
    src.write_bytes(b"tampered")
    with pytest.raises(UserError, match="sha256 mismatch"):
        assets.fetch("syncnet_v2", source=str(src), force=True)
    assert got.read_bytes() == b"first"  # the pinned file is left in place
    with pytest.raises(UserError, match="unknown asset"):
        assets.fetch("no-such-asset")


def test_importing_the_kernel_loads_no_project_package_and_no_media_library():
    code = ("import sys, kernel, kernel.assets, kernel.data, kernel.errors, kernel.media; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'anytalker', 'curation', 'pipelines', 'metrics', 'model', 'benchmarks', 'numpy', 'cv2', 'torch'}); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
