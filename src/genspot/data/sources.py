"""Readers for zip archives and folders in the layouts people download, read in place.

A source lists records (path, label, split, source) and hands out raw bytes; it never decodes.
Nothing is extracted to disk. The layouts (any case, any depth; the deepest class directory wins):

- CIFAKE and other REAL / FAKE folders: `[train|test|val/]REAL|FAKE/...`;
- GenImage: `<generator>/{train,val}/{nature,ai}/...` (nature: REAL, ai: FAKE);
- CNNDetection / ForenSynths: `<generator>/[<class>/]{0_real,1_fake}/...`.

Splits come from a directory named train / test / val (valid, validation). The **source** of a
record is where its images came from: the first directory above its class directory that is
neither a split nor a class directory (GenImage's and CNNDetection's generator folders). A
directory that every record shares (an archive's wrapper folder) says nothing and is skipped.
Records with no such directory get `real` or `fake` by their label, as CIFAKE's do.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from genspot.errors import GenspotError

LABELS = ("REAL", "FAKE")  # index = class id; FAKE (1) is the positive class
# Directory names that give the class: CIFAKE's, GenImage's and CNNDetection's.
LABEL_DIRS = {"real": 0, "fake": 1, "nature": 0, "ai": 1, "0_real": 0, "1_fake": 1}
LAYOUTS = "REAL/FAKE folders (CIFAKE), <generator>/{train,val}/{nature,ai} (GenImage), <generator>/[<class>/]{0_real,1_fake} (CNNDetection)"
_SPLIT_NAMES = {"train": "train", "test": "test", "val": "val", "valid": "val", "validation": "val"}
NO_SPLIT = "all"  # split name for records whose path has no train/test/val component
# The manifest at the root of an aligned archive (genspot synth): its members are grouped by photo.
ALIGNED_MANIFEST = "genspot-synth.json"


def is_aligned(path: str | Path) -> bool:
    """Whether an archive or folder was written by genspot synth (a fake and its photo share a file stem)."""
    p = Path(path)
    if p.is_dir():
        return (p / ALIGNED_MANIFEST).is_file()
    if p.is_file() and zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            return any(n == ALIGNED_MANIFEST or n.endswith("/" + ALIGNED_MANIFEST) for n in z.namelist())
    return False
# Operating-system litter that is neither data nor worth a warning.
_IGNORED_PARTS = {"__macosx", ".ds_store", "thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class Record:
    path: str  # member name inside the archive, or path relative to the folder (always '/')
    label: int  # index into LABELS
    split: str  # 'train', 'test', 'val' or NO_SPLIT
    source: str = ""  # the generator's folder name; 'real' / 'fake' where the layout names none


def classify_path(path: str) -> tuple[int, str] | None:
    """(label, split) from a member path, or None when the path is not under REAL/FAKE."""
    parts = path.split("/")
    dirs = [p.lower() for p in parts[:-1]]
    if not parts[-1] or any(p.lower() in _IGNORED_PARTS or p.startswith("._") for p in parts):
        return None
    label = None
    for d in reversed(dirs):  # the deepest class directory wins
        if d in LABEL_DIRS:
            label = LABEL_DIRS[d]
            break
    if label is None:
        return None
    split = next((_SPLIT_NAMES[d] for d in dirs if d in _SPLIT_NAMES), NO_SPLIT)
    return label, split


def _free_dirs(path: str) -> list[str]:
    """The directories above a record's (deepest) class directory that name neither a split nor a class."""
    dirs = path.split("/")[:-1]
    low = [d.lower() for d in dirs]
    last = max(i for i, d in enumerate(low) if d in LABEL_DIRS)
    return [dirs[i] for i in range(last) if low[i] not in _SPLIT_NAMES and low[i] not in LABEL_DIRS]


def assign_sources(paths: list[str], labels: list[int]) -> list[str]:
    """The source of each record (see the module's docstring): a folder every record shares is skipped."""
    free = [_free_dirs(p) for p in paths]
    depth = 0
    while free and all(len(f) > depth for f in free) and len({f[depth] for f in free}) == 1:
        depth += 1  # a wrapper folder: the same for every record
    deeper = any(len(f) > depth for f in free)
    out = []
    for f, y in zip(free, labels):
        if len(f) > depth:
            out.append(f[depth])
        elif depth and not deeper:  # every record sits in the same folders: one source, named by the deepest
            out.append(f[depth - 1])
        else:
            out.append("real" if y == 0 else "fake")
    return out


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
        found = []
        for name in self.names():
            c = classify_path(name)
            if c is not None:
                found.append((name, c[0], c[1]))
        sources = assign_sources([f[0] for f in found], [f[1] for f in found])
        return [Record(n, y, s, src) for (n, y, s), src in zip(found, sources)]

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
