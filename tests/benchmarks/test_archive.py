"""Unsafe submissions are refused before anything is written outside (or inside) the temp dir."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import pytest

from benchmarks.archive import Limits, inspect_zip, open_submission
from benchmarks.manifest import load_benchmark
from benchmarks.submission import validate_submission

META = json.dumps({"benchmark": "interactive_eyes", "version": "v1", "model": "m", "revision": "r"})


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def _assert_rejected(zip_path: Path, tmp_path: Path, match: str, limits: Limits = Limits()) -> None:
    work = tmp_path / "work"
    work.mkdir()
    report, opened = validate_submission(zip_path, load_benchmark(), ["interact_11"], work, limits)
    assert opened is None and not report.ok
    archive = report.checks[0]
    assert archive.name == "archive" and not archive.ok
    assert any(match in p.message for p in archive.problems), [str(p) for p in archive.problems]
    assert all(c.skipped for c in report.checks[1:])
    assert "nothing was extracted" in report.render()
    assert not (work / "extracted").exists()  # refused before writing anything


def test_dotdot_member_rejected_without_writing_outside(tmp_path):
    z = _zip(tmp_path / "sub.zip", [("submission.json", META.encode()),
                                    ("../../escaped.txt", b"pwned"),
                                    ("a/../../../escaped2.txt", b"pwned")])
    _assert_rejected(z, tmp_path, "'..' path component")
    for candidate in (tmp_path / "escaped.txt", tmp_path.parent / "escaped.txt", tmp_path / "work" / "escaped.txt",
                      tmp_path / "escaped2.txt", tmp_path.parent / "escaped2.txt"):
        assert not candidate.exists(), candidate


def test_absolute_member_rejected(tmp_path):
    target = tmp_path / "abs_target.txt"
    z = _zip(tmp_path / "sub.zip", [("submission.json", META.encode()), (str(target), b"pwned")])
    assert zipfile.ZipFile(z).namelist()[1].startswith("/")  # zipfile kept the absolute name
    _assert_rejected(z, tmp_path, "absolute path")
    assert not target.exists()


def test_symlink_member_rejected(tmp_path):
    link = zipfile.ZipInfo("interact_11.mp4")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = _zip(tmp_path / "sub.zip", [("submission.json", META.encode()), (link, b"/etc/passwd")])
    _assert_rejected(z, tmp_path, "symlink member")


def test_oversized_member_rejected(tmp_path):
    z = _zip(tmp_path / "sub.zip", [("submission.json", META.encode()), ("interact_11.mp4", bytes(5000))])
    _assert_rejected(z, tmp_path, "over the per-file limit", Limits(max_member_bytes=4096))


def test_zip_bomb_ratio_and_total_rejected(tmp_path):
    z = _zip(tmp_path / "bomb.zip", [("submission.json", META.encode()), ("interact_11.mp4", bytes(4 << 20))],
             compression=zipfile.ZIP_DEFLATED)
    assert zipfile.ZipFile(z).getinfo("interact_11.mp4").compress_size < 40_000
    _, problems = inspect_zip(z)
    assert any("compression ratio" in p.message for p in problems)
    _, problems = inspect_zip(z, Limits(max_total_bytes=1 << 20, max_ratio=1e9))
    assert any("in total" in p.message for p in problems)


def test_too_many_files_rejected(tmp_path):
    z = _zip(tmp_path / "many.zip", [(f"f{i}.txt", b"x") for i in range(12)])
    _, problems = inspect_zip(z, Limits(max_files=10))
    assert any("more than the limit of 10" in p.message for p in problems)


def test_not_a_zip_and_folder_symlink(tmp_path):
    bogus = tmp_path / "sub.tar"
    bogus.write_bytes(b"not an archive")
    opened, problems = open_submission(bogus, tmp_path / "w")
    assert opened is None and "neither a folder nor a zip" in problems[0].message

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "submission.json").write_text(META)
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"x")
    (folder / "interact_11.mp4").symlink_to(secret)
    opened, problems = open_submission(folder, tmp_path / "w2")
    assert opened is None
    assert [p.file for p in problems] == ["interact_11.mp4"] and "symlink" in problems[0].message


def test_safe_zip_with_top_folder_extracts_inside_workdir(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mysub/", b"")
        zf.writestr("mysub/submission.json", META)
        zf.writestr("mysub/notes.txt", "hello")
    z = tmp_path / "ok.zip"
    z.write_bytes(buf.getvalue())
    opened, problems = open_submission(z, tmp_path / "w")
    assert problems == [] and opened.kind == "zip"
    assert opened.files == ["notes.txt", "submission.json"]  # single top folder unwrapped
    assert opened.root == (tmp_path / "w" / "extracted").resolve()
    assert (opened.root / "submission.json").read_text() == META
