"""kernel.data: the one data-root resolver and its order."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from kernel import data
from kernel.errors import UserError


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env roots, cwd whose ../shared/data is absent, an empty cache, a repository elsewhere."""
    monkeypatch.delenv("ANYTALKER_DATA", raising=False)
    monkeypatch.delenv("ANYTALKER_SHARED", raising=False)
    monkeypatch.setenv("ANYTALKER_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "work" / "repo"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "elsewhere" / "repo")
    return tmp_path


def _root(path: Path, *files: str) -> Path:
    for f in files:
        (path / f).parent.mkdir(parents=True, exist_ok=True)
        (path / f).write_bytes(b"x")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_order_explicit_then_env_then_shared_then_fetched(isolated, monkeypatch):
    shared = _root(isolated / "work" / "shared" / "data", "a.mp4")
    fetched = _root(isolated / "cache" / "examples", "a.mp4", "b.mp4")
    assert data.resolve_data_root() == shared
    assert data.resolve_data_root(need=("b.mp4",)) == fetched  # first root holding every needed file
    env = _root(isolated / "env", "a.mp4")
    monkeypatch.setenv("ANYTALKER_DATA", str(env))
    assert data.resolve_data_root() == env
    explicit = _root(isolated / "explicit", "a.mp4")
    assert data.resolve_data_root(explicit, need=("a.mp4",)) == explicit
    labels = [label for label, _ in data.candidate_roots()]
    assert labels[0] == "$ANYTALKER_DATA" and labels[1] == "../shared/data" and labels[-1] == "fetched example set"


def test_old_env_name_is_a_deprecated_alias(isolated, monkeypatch):
    old = _root(isolated / "old", "a.mp4")
    monkeypatch.setenv("ANYTALKER_SHARED", str(old))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert data.resolve_data_root() == old
    assert any(issubclass(w.category, DeprecationWarning) and "ANYTALKER_DATA" in str(w.message) for w in caught)
    new = _root(isolated / "new", "a.mp4")
    monkeypatch.setenv("ANYTALKER_DATA", str(new))
    assert data.resolve_data_root() == new  # the current name wins over the alias


def test_nothing_found_names_every_place_tried_and_the_fix(isolated):
    with pytest.raises(UserError) as e:
        data.resolve_data_root(need=("talking/x.mp4",))
    msg = str(e.value)
    assert "talking/x.mp4" in msg and "../shared/data" in msg and "fetched example set" in msg
    assert "ANYTALKER_DATA" in msg and "anytalker fetch --examples" in msg
    assert data.find_data_root() is None
    assert data.default_data_root() == isolated / "work" / "shared" / "data"  # where to put it


def test_explicit_folder_missing_a_needed_file_is_refused(isolated):
    explicit = _root(isolated / "explicit")
    with pytest.raises(UserError, match=r"explicit: not a data folder with a\.mp4; pass --data"):
        data.resolve_data_root(explicit, need=("a.mp4",))
