"""Inputs a person points genspot at: image files, folders (recursive), zip archives, globs.

Yields (name, bytes-or-error) one at a time, never loading a whole folder or archive, so
callers can stream over inputs of any size. A name is the file path, or `archive.zip:member`.
"""

from __future__ import annotations

import glob
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".jfif"}


@dataclass
class InputItem:
    name: str  # the path, or `archive.zip:member`
    data: bytes | None
    error: str | None = None
    rel: str = ""  # name relative to the argument it came from (folder-relative, `zipstem/member`)


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return Path(base).suffix.lower() in IMAGE_SUFFIXES and not base.startswith("._") and "__MACOSX" not in name


def _expand(path: str) -> list[str]:
    if any(ch in path for ch in "*?["):
        found = sorted(glob.glob(path, recursive=True))
        return found or [path]
    return [path]


def iter_inputs(paths: list[str | os.PathLike]) -> Iterator[InputItem]:
    """Every image under the given paths, in a stable order; unreadable inputs carry an error.

    Files named explicitly are always tried (content decides whether they are images);
    inside folders and archives only files with an image suffix are taken.
    """
    for raw in paths:
        for p in _expand(str(raw)):
            path = Path(p)
            if path.is_dir():
                for root, dirs, files in os.walk(path):
                    dirs.sort()
                    for f in sorted(files):
                        fp = Path(root) / f
                        if _is_image_name(fp.as_posix()):
                            yield _read_file(fp, fp.relative_to(path).as_posix())
            elif path.is_file() and zipfile.is_zipfile(path):
                try:
                    with zipfile.ZipFile(path) as z:
                        for info in z.infolist():
                            if info.is_dir() or not _is_image_name(info.filename):
                                continue
                            name, rel = f"{path}:{info.filename}", f"{path.stem}/{info.filename}"
                            try:
                                yield InputItem(name, z.read(info), rel=rel)
                            except Exception as e:  # noqa: BLE001 - a bad member must not stop the rest
                                yield InputItem(name, None, f"unreadable zip member: {e}", rel=rel)
                except (zipfile.BadZipFile, OSError) as e:
                    yield InputItem(str(path), None, f"cannot read zip archive: {e}", rel=path.name)
            elif path.is_file():
                yield _read_file(path, path.name)
            else:
                yield InputItem(str(path), None, "no such file or folder", rel=path.name)


def _read_file(path: Path, rel: str) -> InputItem:
    try:
        return InputItem(str(path), path.read_bytes(), rel=rel)
    except OSError as e:
        return InputItem(str(path), None, f"cannot read file: {e.strerror or e}", rel=rel)
