"""`anytalker fetch`: pooch downloads verified against sha256 pins (from a local HTTP server),
offline copies, trust-on-first-use pins, and `--list` finding media in the data roots."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from functools import partial

import pytest

from kernel import assets
from anytalker.cli import main
from kernel.errors import UserError


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYTALKER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ANYTALKER_ASSETS", raising=False)
    return tmp_path / "cache"


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "weights.bin").write_bytes(b"weights " * 1000)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def _fake(monkeypatch, url: str, sha: str | None):
    reg = {"fake": assets.Asset("fake", url, sha, None, "fake.bin", "weights")}
    monkeypatch.setattr(assets, "registry", lambda: reg)


def test_download_is_verified_and_a_mismatch_is_not_installed(cache, server, monkeypatch):
    url, root = server
    good = hashlib.sha256((root / "weights.bin").read_bytes()).hexdigest()
    _fake(monkeypatch, f"{url}/weights.bin", good)
    path = assets.fetch("fake")
    assert path.read_bytes() == (root / "weights.bin").read_bytes()
    assert assets.fetch("fake") == path  # present and verified: no second download

    _fake(monkeypatch, f"{url}/weights.bin", "0" * 64)
    with pytest.raises(UserError, match="sha256 mismatch.*NOT installed"):
        assets.fetch("fake", force=True)
    assert not list(path.parent.glob(".fake.bin.*")), "a temporary download was left behind"


def test_unreachable_url_names_the_offline_fix(cache, monkeypatch):
    _fake(monkeypatch, "http://127.0.0.1:9/none.bin", "0" * 64)
    with pytest.raises(UserError, match="download failed.*--from PATH"):
        assets.fetch("fake")


def test_offline_copy_with_pin_records_the_hash(cache, tmp_path, monkeypatch):
    src = tmp_path / "local.bin"
    src.write_bytes(b"offline copy")
    _fake(monkeypatch, "http://127.0.0.1:9/none.bin", None)
    with pytest.raises(UserError, match="no checksum"):
        assets.fetch("fake", source=str(src))
    assets.fetch("fake", source=str(src), pin=True)
    pins = json.loads((cache / "assets" / "pins.json").read_text())
    assert pins["fake"] == hashlib.sha256(b"offline copy").hexdigest()
    src.write_bytes(b"tampered")
    with pytest.raises(UserError, match="sha256 mismatch"):
        assets.fetch("fake", source=str(src), force=True)


def test_list_finds_example_media_in_the_data_root(cache, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    (data / "audio" / "sample.rttm").write_text("SPEAKER sample 1 0 1 <NA> <NA> a <NA> <NA>\n")
    (data / "anytalker_benchmark" / "audio_left").mkdir(parents=True)
    (data / "anytalker_benchmark" / "audio_left" / "interact_11_left.flac").write_bytes(b"x")
    monkeypatch.setenv("ANYTALKER_DATA", str(data))
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    assert main(["fetch", "--list", "--json", "-"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["assets"]}
    assert rows["example:audio/sample.rttm"]["present"] and rows["example:audio/sample.rttm"]["found_in"] == "$ANYTALKER_DATA"
    left = rows["example:anytalker_benchmark/audio_left/interact_11_left.wav"]
    assert left["present"] and left["found_in"].endswith("as .flac")
    assert main(["fetch", "--list", "--data", str(tmp_path / "elsewhere")]) == 0
    assert "present ($ANYTALKER_DATA)" in capsys.readouterr().out
