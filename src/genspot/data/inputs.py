"""Inputs a person points genspot at: image files, folders (recursive), zip archives, globs.

Yields (name, bytes-or-error) one at a time, never loading a whole folder or archive, so
callers can stream over inputs of any size. A name is the file path, or `archive.zip:member`.

What is read, and how much, is bounded whatever the input:
- only regular files and zip members are read; a FIFO, a device or a socket (a symlink to
  /dev/zero, say) gets an error row instead of a read that never ends;
- a file or zip member over `max_bytes` gets an error row, decided from its size on disk or
  its declared size before anything is read, and reads stop at the cap anyway (a file that
  grows, a zip member whose declared size lies);
- a zip member that inflates more than MAX_ZIP_RATIO times (a zip bomb) is refused unread;
- a path named on the command line is an archive if and only if its name ends in `.zip`
  (so a JPEG with a zip appended is scored as the JPEG it claims to be, as it would be
  inside a folder); inside folders and archives only files with an image suffix are taken.
"""

from __future__ import annotations

import glob
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".jfif"}
DEFAULT_MAX_FILE_BYTES = 20 * 2**20  # as the server's per-file limit
# Image files are compressed already (JPEG, PNG, WebP: about 1x under deflate); even flat
# artwork in BMP rarely passes 100x. A member above this ratio, once over 1 MiB, is a bomb.
MAX_ZIP_RATIO = 200
_RATIO_FROM = 2**20


@dataclass
class InputItem:
    name: str  # the path, or `archive.zip:member`
    data: bytes | None
    error: str | None = None
    rel: str = ""  # name relative to the argument it came from (folder-relative, `zipstem/member`)


# (name, rel, read-the-bytes or None, error or None): what will be read, before reading it.
_Entry = tuple[str, str, Callable[[], bytes] | None, str | None]


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return Path(base).suffix.lower() in IMAGE_SUFFIXES and not base.startswith("._") and "__MACOSX" not in name


def _expand(path: str) -> list[str]:
    if any(ch in path for ch in "*?["):
        found = sorted(glob.glob(path, recursive=True))
        return found or [path]
    return [path]


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return name
    return "not a regular file"


def _file_entry(path: Path, rel: str, max_bytes: int) -> _Entry:
    name = str(path)
    try:
        st = os.stat(path)  # follows symlinks: what would be read
    except OSError as e:
        return name, rel, None, f"cannot read file: {e.strerror or e}"
    if not stat.S_ISREG(st.st_mode):
        return name, rel, None, f"not a regular file ({_kind(st.st_mode)}); only files and zip members are read"
    if st.st_size > max_bytes:
        return name, rel, None, f"file is {_mb(st.st_size)}, over the limit of {_mb(max_bytes)} (--max-file-mb)"

    def read() -> bytes:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:  # it grew since it was measured
            raise _TooLarge(f"file is over the limit of {_mb(max_bytes)} (--max-file-mb)")
        return data

    return name, rel, read, None


class _TooLarge(Exception):
    pass


def _zip_entries(path: Path, max_bytes: int) -> Iterator[_Entry]:
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        yield str(path), path.name, None, f"cannot read zip archive: {e}"
        return
    found = False
    with z:
        for info in z.infolist():
            if info.is_dir() or not _is_image_name(info.filename):
                continue
            found = True
            name, rel = f"{path}:{info.filename}", f"{path.stem}/{info.filename}"
            if info.file_size > max_bytes:
                yield name, rel, None, f"zip member inflates to {_mb(info.file_size)}, over the limit of {_mb(max_bytes)} (--max-file-mb)"
            elif info.file_size >= _RATIO_FROM and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
                yield name, rel, None, (f"zip member inflates {info.file_size / max(info.compress_size, 1):,.0f} times "
                                        f"(over {MAX_ZIP_RATIO}x: a zip bomb?); not read")  # fmt: skip
            else:
                yield name, rel, _member_reader(z, info, max_bytes), None
    if not found:
        yield str(path), path.name, None, "no image files in this zip archive"


def _member_reader(z: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> Callable[[], bytes]:
    def read() -> bytes:
        with z.open(info) as f:  # streamed: a member whose declared size lies stops at the cap
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _TooLarge(f"zip member inflates past the limit of {_mb(max_bytes)} (--max-file-mb)")
        return data

    return read


def _folder_entries(path: Path, max_bytes: int) -> Iterator[_Entry]:
    found = False
    unreadable: list[OSError] = []
    for root, dirs, files in os.walk(path, onerror=unreadable.append):
        dirs.sort()
        while unreadable:  # a folder that cannot be listed is reported, the rest is walked
            e, found = unreadable.pop(0), True
            yield str(e.filename), Path(str(e.filename)).name, None, f"cannot list folder: {e.strerror or e}"
        for f in sorted(files):
            fp = Path(root) / f
            if _is_image_name(fp.as_posix()):
                found = True
                yield _file_entry(fp, fp.relative_to(path).as_posix(), max_bytes)
    for e in unreadable:
        found = True
        yield str(e.filename), Path(str(e.filename)).name, None, f"cannot list folder: {e.strerror or e}"
    if not found:
        yield str(path), path.name, None, "no image files in this folder (by suffix: " + ", ".join(sorted(IMAGE_SUFFIXES)) + ")"


def _entries(paths: list[str | os.PathLike], max_bytes: int) -> Iterator[_Entry]:
    for raw in paths:
        for p in _expand(str(raw)):
            path = Path(p)
            if path.is_dir():
                yield from _folder_entries(path, max_bytes)
            elif path.suffix.lower() == ".zip" and path.exists():
                yield from _zip_entries(path, max_bytes)
            elif path.exists() or path.is_symlink():
                yield _file_entry(path, path.name, max_bytes)
            else:
                yield str(path), path.name, None, "no such file or folder"


def iter_inputs(paths: list[str | os.PathLike], max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Iterator[InputItem]:
    """Every image under the given paths, in a stable order; unreadable inputs carry an error.

    Files named explicitly are always tried (content decides whether they are images);
    inside folders and archives only files with an image suffix are taken. An argument
    that holds no image at all yields one row with an error, never nothing.
    """
    for name, rel, read, error in _entries(paths, max_bytes):
        if error is not None or read is None:
            yield InputItem(name, None, error, rel=rel)
            continue
        try:
            yield InputItem(name, read(), rel=rel)
        except _TooLarge as e:
            yield InputItem(name, None, str(e), rel=rel)
        except OSError as e:
            yield InputItem(name, None, f"cannot read file: {e.strerror or e}", rel=rel)
        except Exception as e:  # noqa: BLE001 - a bad zip member (CRC, method) must not stop the rest
            yield InputItem(name, None, f"unreadable zip member: {e}", rel=rel)


def read_file_capped(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """One image file's bytes under the same rules as iter_inputs; GenspotError with its reason."""
    from genspot.errors import GenspotError

    p = Path(path)
    if not (p.exists() or p.is_symlink()):
        raise GenspotError(f"no such image file: {p}")
    _, _, read, error = _file_entry(p, p.name, max_bytes)
    if error is not None or read is None:
        raise GenspotError(f"{p}: {error}")
    try:
        return read()
    except _TooLarge as e:
        raise GenspotError(f"{p}: {e}") from None


def count_inputs(paths: list[str | os.PathLike]) -> int:
    """How many rows iter_inputs will yield, from names and directories alone (nothing is read):
    the total of a progress bar."""
    return sum(1 for _ in _entries(paths, DEFAULT_MAX_FILE_BYTES))
