"""Run folders and inputs on any pyarrow filesystem: local paths, ``file://``, ``s3://`` (including
S3-compatible servers via ``?endpoint_override=host:port&scheme=http``), ``gs://``, ``hdfs://``.

Writes go to a temporary name and are then moved: a rename on local disks; on object stores a
copy + delete, which is why readers only ever open files listed in a marker or the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs


def is_uri(s: str | os.PathLike) -> bool:
    return "://" in str(s)


class Storage:
    """A folder on a pyarrow filesystem; all paths are relative to it ("" = the folder)."""

    def __init__(self, location: str | os.PathLike):
        self.location = str(location)
        if is_uri(location):
            self.fs, self.root = pafs.FileSystem.from_uri(self.location)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), str(Path(location).absolute())
        self.root = self.root.rstrip("/")
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    def __str__(self) -> str:
        return self.location

    def path(self, rel: str = "") -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def local_path(self, rel: str = "") -> Path | None:
        return Path(self.path(rel)) if self.is_local else None

    def exists(self, rel: str = "") -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def is_file(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type == pafs.FileType.File

    def makedirs(self, rel: str = "") -> None:
        self.fs.create_dir(self.path(rel), recursive=True)

    def listdir(self, rel: str = "") -> list[str]:
        if not self.exists(rel):
            return []
        sel = pafs.FileSelector(self.path(rel), allow_not_found=True, recursive=False)
        return sorted(Path(i.path).name for i in self.fs.get_file_info(sel))

    def walk_files(self, rel: str = "") -> list[str]:
        sel = pafs.FileSelector(self.path(rel), allow_not_found=True, recursive=True)
        base = self.path(rel).rstrip("/") + "/"
        return sorted(i.path[len(base):] for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.File)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Atomic on local disks (temp file, fsync, rename); temp + move elsewhere."""
        parent = rel.rpartition("/")[0]
        name = rel.rpartition("/")[2]
        tmp = f"{parent}/.{name}.tmp-{os.getpid()}" if parent else f".{name}.tmp-{os.getpid()}"
        if self.is_local:
            p, t = Path(self.path(rel)), Path(self.path(tmp))
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(t, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(t, p)
            return
        if parent:
            self.makedirs(parent)
        with self.fs.open_output_stream(self.path(tmp)) as f:
            f.write(data)
        self.fs.move(self.path(tmp), self.path(rel))

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            pass

    def delete_dir(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_dir(self.path(rel))

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        with self.fs.open_input_stream(self.path(rel)) as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        return h.hexdigest()

    def size(self, rel: str) -> int:
        return int(self.fs.get_file_info(self.path(rel)).size or 0)

    def download(self, rel: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.fs.open_input_stream(self.path(rel)) as src, open(dest, "wb") as out:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                out.write(b)
        return dest
