"""Readers for zip archives and folders laid out with REAL / FAKE directories.

A source lists records (path, label, split) and hands out raw bytes; it never decodes.
Labels come from a directory named REAL or FAKE (any case, any depth), splits from a
directory named train / test / val (any case). Nothing is extracted to disk.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from genspot.errors import GenspotError

LABELS = ("REAL", "FAKE")  # index = class id; FAKE (1) is the positive class
_SPLIT_NAMES = {"train": "train", "test": "test", "val": "val", "valid": "val", "validation": "val"}
NO_SPLIT = "all"  # split name for records whose path has no train/test/val component
# Operating-system litter that is neither data nor worth a warning.
_IGNORED_PARTS = {"__macosx", ".ds_store", "thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class Record:
    path: str  # member name inside the archive, or path relative to the folder (always '/')
    label: int  # index into LABELS
    split: str  # 'train', 'test', 'val' or NO_SPLIT


def classify_path(path: str) -> tuple[int, str] | None:
    """(label, split) from a member path, or None when the path is not under REAL/FAKE."""
    parts = path.split("/")
    dirs = [p.lower() for p in parts[:-1]]
    if not parts[-1] or any(p.lower() in _IGNORED_PARTS or p.startswith("._") for p in parts):
        return None
    label = None
    for d in reversed(dirs):  # the deepest REAL/FAKE directory wins
        if d in ("real", "fake"):
            label = 0 if d == "real" else 1
            break
    if label is None:
        return None
    split = next((_SPLIT_NAMES[d] for d in dirs if d in _SPLIT_NAMES), NO_SPLIT)
    return label, split


class Source:
    """A set of labelled image files: list them, read their bytes, fingerprint them."""

    kind: str
    path: Path

    def names(self) -> list[str]:
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError

    def records(self) -> list[Record]:
        out = []
        for name in self.names():
            c = classify_path(name)
            if c is not None:
                out.append(Record(name, c[0], c[1]))
        return out

    def close(self) -> None:
        pass


class ZipSource(Source):
    kind = "zip"

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise GenspotError(f"cannot read zip archive {path}: {e}") from None
        self._infos = {i.filename: i for i in self._zip.infolist() if not i.is_dir()}

    def names(self) -> list[str]:
        return list(self._infos)

    def read(self, name: str) -> bytes:
        return self._zip.read(self._infos[name])

    def fingerprint(self) -> str:
        # The central directory holds each member's CRC-32 and size: a content fingerprint
        # that costs no decompression.
        h = hashlib.sha256()
        for name, i in self._infos.items():
            h.update(f"{name}\0{i.CRC}\0{i.file_size}\n".encode())
        return "zip-" + h.hexdigest()[:32]

    def close(self) -> None:
        self._zip.close()


class FolderSource(Source):
    kind = "folder"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            names = []
            for root, dirs, files in os.walk(self.path):
                dirs.sort()
                rel = Path(root).relative_to(self.path).as_posix()
                for f in sorted(files):
                    names.append(f if rel == "." else f"{rel}/{f}")
            self._names = names
        return self._names

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def fingerprint(self) -> str:
        # Reading every file just to hash it would cost as much as decoding; names, sizes
        # and modification times change whenever the content does in practice.
        h = hashlib.sha256()
        for name in self.names():
            st = (self.path / name).stat()
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return "dir-" + h.hexdigest()[:32]


def open_source(path: str | os.PathLike) -> Source:
    """Open a zip archive or a folder; raise GenspotError with a one-line reason otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise GenspotError(f"no such file or folder: {p}")
    if p.is_dir():
        return FolderSource(p.resolve())
    if zipfile.is_zipfile(p):
        return ZipSource(p.resolve())
    raise GenspotError(f"{p} is neither a folder nor a zip archive")


def spec_of(source: Source) -> tuple[str, str]:
    """A picklable description that lets a worker process reopen the same source."""
    return source.kind, str(source.path)


def reopen(spec: tuple[str, str]) -> Source:
    kind, path = spec
    return ZipSource(Path(path)) if kind == "zip" else FolderSource(Path(path))
