"""Leaderboard: ranks comparable results, refuses mixed versions/backends, renders sortable HTML."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from anytalker.cli import main
from kernel.errors import UserError
from benchmarks.leaderboard import build_leaderboard, load_results, render_html
from benchmarks.scoring import RESULTS_FORMAT
from tests.conftest import REPO
from tests.pagecheck import chromium, run_chromium

ARTIFACTS = REPO / "test-artifacts"


def _metric(name, value, version="1", backend="syncnet", backend_version="0.2.3", higher=True, n=29):
    return {"name": name, "version": version, "backend": backend, "backend_version": backend_version,
            "higher_is_better": higher, "value": value, "ci_low": None if value is None else value - 0.1,
            "ci_high": None if value is None else value + 0.1, "ci_level": 0.95,
            "n_scored": n if value is not None else 0, "n_failed": 0 if value is not None else n,
            "failures": {} if value is not None else {"no_face": n}, "params": {}}


def results_doc(model, interactivity, sync_c_star, sync_d=8.0, **overrides) -> dict:
    """A results document as `anytalker bench score` writes it (input for ranking tests)."""
    doc = {
        "format": RESULTS_FORMAT, "benchmark": "interactive_eyes", "version": "v1",
        "manifest_sha256": "a" * 64, "scoring_sha256": "b" * 64, "interval_format": "seconds",
        "items": [f"interact_{n}" for n in range(1, 30)],
        "submission": {"source": f"{model}.zip", "sha256": "c" * 64, "model": model, "revision": "r1",
                       "metadata": {}, "videos": {}},
        "toolkit": {"name": "anytalker-toolkit", "version": "0.1.0"}, "date": "2026-11-25T12:00:00+00:00",
        "ranking": {"primary": "interactivity", "tie_break": ["sync_c_star"]},
        "pinning": {"ok": True, "differences": []},
        "metrics": {
            "interactivity": _metric("interactivity", interactivity, backend="mediapipe", backend_version="0.10.21"),
            "sync_c_star": _metric("sync_c_star", sync_c_star),
            "sync_d": _metric("sync_d", sync_d, higher=False),
        },
        "not_run": {},
    }
    doc.update(overrides)
    return doc


def write(tmp_path: Path, name: str, doc: dict) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_ranks_compatible_results(tmp_path):
    files = [write(tmp_path, "a.json", results_doc("alpha", 0.50, 3.0)),
             write(tmp_path, "b.json", results_doc("beta", 0.80, 2.0)),
             write(tmp_path, "c.json", results_doc("gamma", 0.50, 4.0)),   # ties alpha, wins on sync_c_star
             write(tmp_path, "d.json", results_doc("delta", None, 5.0)),   # no interactivity -> last
             write(tmp_path, "e.json", results_doc("eps", 0.50, 3.0))]     # exact tie with alpha
    board = build_leaderboard(load_results(files))
    assert len(board["groups"]) == 1
    rows = board["groups"][0]["rows"]
    assert [r["model"] for r in rows] == ["beta", "gamma", "alpha", "eps", "delta"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 3, 5]
    assert rows[0]["metrics"]["interactivity"]["value"] == 0.80


def test_refuses_mixed_backends_and_versions_naming_the_difference(tmp_path, capsys):
    a = write(tmp_path, "a.json", results_doc("alpha", 0.5, 3.0))
    other_backend = results_doc("beta", 0.6, 3.0)
    other_backend["metrics"]["sync_c_star"]["backend"] = "syncnet-embedded"
    b = write(tmp_path, "b.json", other_backend)
    with pytest.raises(UserError) as e:
        build_leaderboard(load_results([a, b]))
    msg = str(e.value)
    assert "b.json: cannot be ranked with" in msg
    assert "metric sync_c_star backend: a.json has 'syncnet', b.json has 'syncnet-embedded'" in msg

    other_version = results_doc("gamma", 0.6, 3.0, version="v2")
    other_version["metrics"]["interactivity"]["version"] = "2"
    c = write(tmp_path, "c.json", other_version)
    out_json = tmp_path / "lb.json"
    assert main(["bench", "leaderboard", str(a), str(c), "--output", str(out_json)]) == 2
    err = capsys.readouterr().err
    assert "version: a.json has 'v1', c.json has 'v2'" in err
    assert "metric interactivity version: a.json has '1', c.json has '2'" in err
    assert not out_json.exists()

    subset = results_doc("delta", 0.6, 3.0, items=["interact_11"])
    d = write(tmp_path, "d.json", subset)
    with pytest.raises(UserError, match=r"items: scored on different item sets \(29 vs 1"):
        build_leaderboard(load_results([a, d]))


def test_group_mode_ranks_each_comparable_set(tmp_path, capsys):
    a = write(tmp_path, "a.json", results_doc("alpha", 0.5, 3.0))
    b = write(tmp_path, "b.json", results_doc("beta", 0.7, 3.0))
    odd = results_doc("gamma", 0.9, 3.0)
    odd["metrics"]["interactivity"]["backend_version"] = "0.10.14"
    c = write(tmp_path, "c.json", odd)
    out = tmp_path / "lb.json"
    assert main(["bench", "leaderboard", str(a), str(b), str(c), "--output", str(out), "--group"]) == 0
    board = json.loads(out.read_text())
    assert [[r["model"] for r in g["rows"]] for g in board["groups"]] == [["beta", "alpha"], ["gamma"]]
    assert "backend_version" in board["groups"][1]["differs_from_first_group"][0]
    assert "2 separate rankings" in capsys.readouterr().out


def test_rejects_non_results_files(tmp_path):
    p = write(tmp_path, "x.json", {"format": "something"})
    with pytest.raises(UserError, match="x.json: not a results document"):
        load_results([p])


def _board_html(tmp_path) -> tuple[Path, str]:
    files = [write(tmp_path, "a.json", results_doc("alpha <b>bold</b>", 0.50, 3.0, sync_d=7.0)),
             write(tmp_path, "b.json", results_doc("beta", 0.80, 2.0, sync_d=9.0)),
             write(tmp_path, "c.json", results_doc("<script>alert(1)</script>", 0.20, 4.0, sync_d=6.5))]
    out_html = tmp_path / "leaderboard.html"
    assert main(["bench", "leaderboard", *map(str, files), "--output", str(tmp_path / "lb.json"),
                 "--html", str(out_html)]) == 0
    return out_html, out_html.read_text(encoding="utf-8")


def test_html_has_sortable_table_and_escapes_submission_strings(tmp_path):
    _, page = _board_html(tmp_path)
    assert '<table class="leaderboard"' in page
    headers = re.findall(r"<th [^>]*>", page)
    assert len(headers) == 3 + 3 + 2  # rank/model/revision + 3 metrics + scored/date
    assert all('aria-sort="' in h and "data-type=" in h for h in headers)
    assert 'data-key="interactivity"' in page and "addEventListener('click'" in page
    assert page.count("<tr><td") == 3  # one body row per result
    # untrusted model names are escaped, and the page loads nothing from the network
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?https?:", page)
    # rows in rank order: beta (0.80) > alpha (0.50) > script-model (0.20)
    assert page.index(">beta<") < page.index("alpha &lt;b&gt;") < page.index("&lt;script&gt;")


def test_html_renders_and_sorts_in_headless_chromium(tmp_path):
    exe = chromium()
    html_path, _ = _board_html(tmp_path)
    # the inline JS sorts by sync_d ascending (lower is better) when asked through the URL hash
    res = run_chromium(exe, "--dump-dom", f"{html_path.as_uri()}#sort=sync_d:asc")
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    order = re.findall(r'<td class="text model"[^>]*>([^<]*(?:&lt;[^<]*)*)</td>', dom)
    assert order[:3] == ["&lt;script&gt;alert(1)&lt;/script&gt;", "alpha &lt;b&gt;bold&lt;/b&gt;", "beta"], order
    assert re.search(r'data-key="sync_d"[^>]*aria-sort="ascending"', dom)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "leaderboard.png"
    shot.unlink(missing_ok=True)
    res = run_chromium(exe, f"--screenshot={shot}", "--window-size=1280,520", html_path.as_uri())
    assert res.returncode == 0 and shot.is_file() and shot.stat().st_size > 5000, res.stderr[-2000:]
