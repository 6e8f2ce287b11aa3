"""Open a submission (folder or zip) safely: every member is checked BEFORE anything is written.

A submission is untrusted input. Nothing in it is ever executed; a zip is inspected from its
central directory first, and is extracted only when every member passes:

- name: relative, no ``..`` component, no drive letter / backslash, no NUL;
- type: regular files and directories only (symlinks and other special files are refused);
- size: per-member and total uncompressed limits, a file-count limit, and a compression-ratio
  limit (zip bombs); extraction then re-counts the bytes actually inflated, so a member whose
  header lies about its size is stopped at the declared size;
- no encrypted members, no duplicate names, no name used both as a file and as a folder, only
  the compression methods Python's zipfile can read (stored, deflate, bzip2, lzma);
- any error while reading or extracting (CRC error, truncated data, a header that lies) makes the
  archive INVALID with that reason; it never escapes as a traceback.

Folders get the same name/type/size checks (symlinks inside are refused, not followed).
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kernel.errors import UserError

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    max_files: int = 200
    max_member_bytes: int = 2 * GiB
    max_total_bytes: int = 16 * GiB
    max_ratio: float = 100.0  # uncompressed / compressed per member; videos barely compress
    max_json_bytes: int = 1 * MiB  # submission.json holds four short fields
    ratio_min_bytes: int = 1 * MiB  # tiny members (submission.json) may compress well


@dataclass
class Problem:
    file: str
    message: str  # "<what is wrong>; <what to do>"

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class OpenedSubmission:
    source: Path  # what the user passed
    root: Path  # folder holding submission.json and the videos (the folder itself, or the extraction)
    kind: str  # "folder" | "zip"
    files: list[str] = field(default_factory=list)  # relative POSIX paths of regular files under root
    total_bytes: int = 0


def _unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe, or None."""
    if not name or "\x00" in name:
        return "empty name or NUL byte in name"
    if "\\" in name:
        return "backslash in path (Windows separator); zip it with '/' separators"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "'..' path component (would write outside the extraction folder)"
    return None


def _zip_member_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    # unix attributes with a file type (Python's writestr stores permission bits only)
    if info.create_system == 3 and stat.S_IFMT(mode):
        if stat.S_ISLNK(mode):
            return "symlink"
        if stat.S_ISDIR(mode) or info.is_dir():
            return "dir"
        if stat.S_ISREG(mode):
            return "file"
        return "special"
    return "dir" if info.is_dir() else "file"


SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate",
                         zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


def inspect_zip(path: Path, limits: Limits = Limits()) -> tuple[list[zipfile.ZipInfo], list[Problem]]:
    """Check every member of a zip from its directory, without extracting anything."""
    problems: list[Problem] = []
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as e:
        return [], [Problem(path.name, f"not a readable zip archive ({e}); re-create it with `zip -r`")]
    with zf:
        infos = zf.infolist()
    files = [i for i in infos if not i.is_dir()]
    if len(files) > limits.max_files:
        problems.append(Problem(path.name, f"{len(files)} files, more than the limit of {limits.max_files}; "
                                           "include only submission.json and one video per item"))
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        why = _unsafe_name(name)
        if why:
            problems.append(Problem(name, f"unsafe member name: {why}; re-create the zip from inside the submission folder"))
            continue
        norm = str(PurePosixPath(name))
        if norm in seen:
            problems.append(Problem(name, "duplicate member name; keep one copy"))
        seen.add(norm)
        kind = _zip_member_kind(info)
        if kind == "symlink":
            problems.append(Problem(name, "symlink member; put the real file in the zip (zip -r without -y)"))
            continue
        if kind == "special":
            problems.append(Problem(name, "special file (device/fifo) member; remove it"))
            continue
        if kind == "dir":
            continue
        if info.compress_type not in SUPPORTED_COMPRESSION:
            problems.append(Problem(name, f"compression method {info.compress_type} is not supported (only "
                                          f"{', '.join(SUPPORTED_COMPRESSION.values())}); re-create the zip with "
                                          "`zip -r` (deflate)"))
        if info.flag_bits & 0x1:
            problems.append(Problem(name, "encrypted member; submit an unencrypted zip"))
        if info.file_size > limits.max_member_bytes:
            problems.append(Problem(name, f"{info.file_size} bytes uncompressed, over the per-file limit of "
                                          f"{limits.max_member_bytes}; re-encode the video smaller"))
        if info.file_size >= limits.ratio_min_bytes and info.file_size > limits.max_ratio * max(1, info.compress_size):
            problems.append(Problem(name, f"compression ratio {info.file_size / max(1, info.compress_size):.0f}:1 "
                                          f"exceeds {limits.max_ratio:.0f}:1 (zip bomb?); submit real encoded videos"))
        total += info.file_size
    if total > limits.max_total_bytes:
        problems.append(Problem(path.name, f"{total} bytes uncompressed in total, over the limit of "
                                           f"{limits.max_total_bytes}; re-encode the videos smaller"))
    problems.extend(_name_clashes([i for i in infos if _unsafe_name(i.filename) is None]))
    return infos, problems


def _name_clashes(infos: list[zipfile.ZipInfo]) -> list[Problem]:
    """Members whose name is a file and also a folder of other members (``a`` and ``a/b``):
    extraction would fail half-way or replace one with the other."""
    files = {str(PurePosixPath(i.filename)) for i in infos if _zip_member_kind(i) != "dir"}
    folders = set()
    for i in infos:
        parts = PurePosixPath(i.filename).parts
        folders.update("/".join(parts[:k]) for k in range(1, len(parts)))
    return [Problem(name, "is both a file and a folder in the archive; keep one of them")
            for name in sorted(files & folders)]


def _strip_single_top_folder(names: list[str]) -> str:
    """'sub/' when every member lives under one top folder (zipping a folder does that), else ''."""
    tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
    if len(tops) == 1 and all(len(PurePosixPath(n).parts) > 1 for n in names):
        return tops.pop() + "/"
    return ""


def extract_zip(path: Path, dest: Path, infos: list[zipfile.ZipInfo], limits: Limits = Limits()) -> list[str]:
    """Extract already-inspected members into ``dest``; returns the relative file names written.

    Only called after ``inspect_zip`` found no problem. Bytes are copied by hand with a running
    count so that a member inflating past its declared size (or the total limit) is stopped.
    """
    dest = dest.resolve()
    files = [i for i in infos if _zip_member_kind(i) == "file"]
    prefix = _strip_single_top_folder([i.filename for i in files])
    written: list[str] = []
    total = 0
    with zipfile.ZipFile(path) as zf:
        for info in files:
            rel = info.filename[len(prefix):]
            target = (dest / rel).resolve()
            if dest not in target.parents:  # defence in depth: inspect_zip already refused these names
                raise UserError(f"{path}: member {info.filename} resolves outside the extraction folder; "
                                "re-create the zip with relative paths")
            target.parent.mkdir(parents=True, exist_ok=True)
            n = 0
            with zf.open(info) as src, open(target, "xb") as out:
                while True:
                    chunk = src.read(MiB)
                    if not chunk:
                        break
                    n += len(chunk)
                    total += len(chunk)
                    if n > info.file_size or n > limits.max_member_bytes or total > limits.max_total_bytes:
                        out.close()
                        target.unlink()
                        raise UserError(f"{path}: member {info.filename} inflates beyond its declared size "
                                        f"({info.file_size} bytes) or the size limits; the archive is corrupt "
                                        "or malicious, re-create it")
                    out.write(chunk)
            written.append(rel)
    return sorted(written)


def inspect_folder(root: Path, limits: Limits = Limits()) -> tuple[list[str], int, list[Problem]]:
    """Walk a submission folder without following symlinks; returns (files, total bytes, problems)."""
    problems: list[Problem] = []
    files: list[str] = []
    total = 0
    def unreadable(err: OSError) -> None:  # a folder that cannot be listed must not vanish
        problems.append(Problem(os.path.relpath(err.filename or root, root), f"cannot be read ({err.strerror}); "
                                                                            "fix its permissions"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
        for d in list(dirnames):
            p = Path(dirpath) / d
            if p.is_symlink():
                problems.append(Problem(str(p.relative_to(root)), "symlinked folder; copy the real files in"))
                dirnames.remove(d)
        for f in filenames:
            p = Path(dirpath) / f
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                problems.append(Problem(rel, "symlink; copy the real file into the submission"))
                continue
            if not stat.S_ISREG(st.st_mode):
                problems.append(Problem(rel, "not a regular file; remove it"))
                continue
            if st.st_size > limits.max_member_bytes:
                problems.append(Problem(rel, f"{st.st_size} bytes, over the per-file limit of "
                                             f"{limits.max_member_bytes}; re-encode the video smaller"))
            files.append(rel)
            total += st.st_size
    if len(files) > limits.max_files:
        problems.append(Problem(root.name, f"{len(files)} files, more than the limit of {limits.max_files}; "
                                           "include only submission.json and one video per item"))
    if total > limits.max_total_bytes:
        problems.append(Problem(root.name, f"{total} bytes in total, over the limit of {limits.max_total_bytes}"))
    return sorted(files), total, problems


def open_submission(source: str | os.PathLike, workdir: str | os.PathLike,
                    limits: Limits = Limits()) -> tuple[OpenedSubmission | None, list[Problem]]:
    """Open a folder in place, or inspect-then-extract a zip into ``workdir``.

    Returns (None, problems) when the archive is unsafe: nothing has been written then.
    """
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source}: submission not found; pass a folder or a .zip")
    if source.is_symlink():
        return None, [Problem(source.name, "the submission itself is a symlink; pass the real folder or zip")]
    if source.is_dir():
        files, total, problems = inspect_folder(source, limits)
        if problems:
            return None, problems
        return OpenedSubmission(source, source, "folder", files, total), []
    if not zipfile.is_zipfile(source):
        return None, [Problem(source.name, "neither a folder nor a zip archive; pass the submission folder "
                                           "or zip it (zip -r sub.zip submission.json *.mp4)")]
    infos, problems = inspect_zip(source, limits)
    if problems:
        return None, problems
    dest = Path(workdir) / "extracted"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        written = extract_zip(source, dest, infos, limits)
    except (Exception, RecursionError) as e:  # noqa: BLE001 - CRC error, lying header, clash found on disk
        shutil.rmtree(dest, ignore_errors=True)  # nothing half-extracted stays behind
        why = str(e).split("; ")[0] if isinstance(e, UserError) else f"{type(e).__name__}: {str(e)[:200]}"
        return None, [Problem(source.name, f"extraction failed ({why}); the archive is corrupt or malicious, "
                                           "re-create it with `zip -r`")]
    total = sum((dest / f).stat().st_size for f in written)
    return OpenedSubmission(source, dest, "zip", written, total), []
