"""A corpus of bad and odd inputs, made on the spot: what each kind is, and what genspot must do with it.

    python tests/bad_inputs.py DIR          # write the corpus into DIR and print what it holds
    python tests/bad_inputs.py --markdown   # the table in docs/bad-input.md

Every kind is one file (or, for archives, one argument) with an expected outcome:
- "scored": a verdict (label and p_fake), no error;
- "error": a row with an error and no verdict, while every other input is still scored;
- "ignored": no row (operating-system litter that is not data).
The corpus test (tests/test_bad_input_corpus.py) runs it through `genspot predict`,
`genspot explain` and the server, and holds each to its outcome.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Kind:
    name: str  # the file name in the corpus folder (or the archive's name)
    what: str  # in words, for the docs
    outcome: str  # scored | error | ignored
    make: Callable[[Path], None]  # writes the file at the given path
    archive: bool = False  # passed as its own argument (zip archives), not found in the folder
    upload: bool = True  # has bytes a client could upload (not a FIFO, device or huge sparse file)


def _rgb(h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _enc(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _jpeg(**kw) -> bytes:
    return _enc(Image.fromarray(_rgb()), "JPEG", quality=90, **kw)


def _png() -> bytes:
    return _enc(Image.fromarray(_rgb()), "PNG")


def _chunk(t: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def _png_raw(w: int, h: int, idat: bytes) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + idat + _chunk(b"IEND", b"")


def _png_syntax_error() -> bytes:
    """A PNG whose second IDAT chunk has a type that is not a chunk type: Pillow raises SyntaxError."""
    raw = b"".join(b"\x00" + _rgb(1, 32, seed=y).tobytes() for y in range(32))
    z = zlib.compress(raw)
    half = len(z) // 2
    broken = struct.pack(">I", len(z) - half) + b"\x00\x01\x02\x03" + z[half:] + b"\0\0\0\0"
    return _png_raw(32, 32, _chunk(b"IDAT", z[:half]) + broken)


def _png_bomb() -> bytes:
    """A small PNG whose header claims 100,000 x 100,000 pixels."""
    return _png_raw(100_000, 100_000, _chunk(b"IDAT", zlib.compress(b"\x00" * 1000)))


def _write(data: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data)


def _pil(img: Callable[[], Image.Image], fmt: str, **kw) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(_enc(img(), fmt, **kw))


def _exif_rotated() -> bytes:
    img = Image.fromarray(_rgb(24, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    return _enc(img, "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [Image.fromarray(_rgb(seed=i)).convert("P") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def _palette_transparent() -> bytes:
    img = Image.fromarray(_rgb()).convert("P")
    return _enc(img, "PNG", transparency=0)


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for n, d in members.items():
            z.writestr(n, d)
    return buf.getvalue()


def _zip_bomb(p: Path) -> None:
    # 40 MB of zeros deflate to about 40 KB: over the ratio limit, and over the 20 MB cap.
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z, z.open("FAKE/bomb.png", "w") as f:
        block = b"\0" * 2**20
        for _ in range(40):
            f.write(block)


def _zip_ratio_bomb(p: Path) -> None:
    # Under the size cap (10 MB), but 10 MB of zeros inflate from about 10 KB: a bomb by ratio.
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb.bmp", b"BM" + b"\0" * (10 * 2**20))


def _zip_bad_crc(p: Path) -> None:
    data = bytearray(_zip({"x.png": _png(), "ok.jpg": _jpeg()}, zipfile.ZIP_STORED))
    i = data.find(b"\x89PNG") + 20  # inside the stored PNG's bytes: its CRC no longer matches
    data[i] ^= 0xFF
    p.write_bytes(bytes(data))


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _sparse(p: Path) -> None:
    with open(p, "wb") as f:
        f.truncate(8 * 2**30)  # 8 GiB that take no disk


def _symlink_to(target: str) -> Callable[[Path], None]:
    return lambda p: os.symlink(target, p)


KINDS: list[Kind] = [
    # -- not images at all, or broken ones: an error row each --------------------------------
    Kind("empty.jpg", "an empty file (0 bytes)", "error", _write(b"")),
    Kind("one-byte.png", "a single byte", "error", _write(b"\x89")),
    Kind("text.jpg", "plain text named .jpg", "error", _write(b"hello, I am not an image\n" * 10)),
    Kind("page.png", "an HTML page named .png", "error", _write(b"<!doctype html><html><body>hi</body></html>")),
    Kind("random.jpg", "64 KB of random bytes", "error", _write(np.random.default_rng(1).bytes(65536))),
    Kind("truncated.jpg", "a JPEG cut in half", "error", lambda p: p.write_bytes(_jpeg()[: len(_jpeg()) // 2])),
    Kind("truncated.png", "a PNG cut in half", "error", lambda p: p.write_bytes(_png()[: len(_png()) // 2])),
    Kind("jpeg-zeros.jpg", "a JPEG marker followed by 2 MB of zeros", "error", _write(b"\xff\xd8\xff\xe0" + b"\0" * 2 * 2**20)),
    Kind("png-signature.png", "the PNG signature alone", "error", _write(b"\x89PNG\r\n\x1a\n")),
    Kind("png-syntaxerror.png", "a PNG on which Pillow raises SyntaxError (a chunk type that is not one)", "error",
         _write(_png_syntax_error())),
    Kind("png-bad-ihdr-crc.png", "a PNG whose header checksum is wrong", "error",
         lambda p: p.write_bytes(_png()[:29] + b"\0\0\0\0" + _png()[33:])),
    Kind("png-bomb.png", "a decompression bomb: a small PNG claiming 100,000 x 100,000 pixels", "error", _write(_png_bomb())),
    Kind("png-zero-width.png", "a PNG claiming 0 x 32 pixels", "error", _write(_png_raw(0, 32, _chunk(b"IDAT", zlib.compress(b""))))),
    Kind("gif-header.gif", "a GIF header alone", "error", _write(b"GIF89a\x20\x00\x20\x00")),
    Kind("bmp-header.bmp", "a BMP header alone", "error", _write(b"BM" + b"\0" * 12)),
    Kind("tiff-header.tif", "a TIFF header alone", "error", _write(b"II*\x00\x08\x00\x00\x00")),
    Kind("webp-garbage.webp", "a RIFF/WEBP header with garbage after it", "error", _write(b"RIFF\x20\x00\x00\x00WEBPVP8 " + b"\x01" * 40)),
    Kind("zip-named.jpg", "a zip archive named .jpg (inside a folder, only images are read)", "error", _write(_zip({"a.jpg": b"x"}))),
    Kind("document.png", "a PDF named .png", "error", _write(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")),
    Kind("drawing.png", "an SVG named .png", "error", _write(b'<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"/>')),
    Kind("heic.jpg", "HEIC-like bytes (an ISO media box) named .jpg", "error", _write(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64)),
    # -- things that are not regular files, or are too big to read: an error row, nothing read ----
    Kind("pipe.jpg", "a FIFO (named pipe): reading it would never end", "error", _fifo, upload=False),
    Kind("huge-sparse.jpg", "an 8 GiB sparse file: over the 20 MB cap, refused by its size before any read", "error", _sparse,
         upload=False),
    Kind("zero-device.jpg", "a symlink to /dev/zero: a character device, not read", "error", _symlink_to("/dev/zero"), upload=False),
    Kind("dangling.jpg", "a symlink to nothing", "error", _symlink_to("/nonexistent/genspot-corpus"), upload=False),
    # -- odd but valid images: each gets a verdict ---------------------------------------------
    Kind("polyglot.jpg", "a JPEG with a zip archive appended: scored as the JPEG it is", "scored",
         lambda p: p.write_bytes(_jpeg() + _zip({"hidden.png": _png()}))),
    Kind("one-pixel.png", "a 1 x 1 image", "scored", _pil(lambda: Image.fromarray(_rgb(1, 1)), "PNG")),
    Kind("strip.png", "a 1 x 4,000 strip", "scored", _pil(lambda: Image.fromarray(_rgb(1, 4000)), "PNG")),
    Kind("large.jpg", "a 1,600 x 1,200 photo-sized JPEG", "scored", _pil(lambda: Image.fromarray(_rgb(1200, 1600)), "JPEG", quality=85)),
    Kind("gray.png", "grayscale (mode L)", "scored", _pil(lambda: Image.fromarray(_rgb()[:, :, 0]), "PNG")),
    Kind("gray16.png", "16-bit grayscale (mode I;16)", "scored",
         _pil(lambda: Image.fromarray((_rgb()[:, :, 0].astype(np.uint16) * 257)), "PNG")),
    Kind("rgba.png", "RGBA with transparency", "scored", _pil(lambda: Image.fromarray(np.dstack([_rgb(), _rgb(seed=2)[:, :, :1]])), "PNG")),
    Kind("la.png", "grayscale with alpha (mode LA)", "scored", _pil(lambda: Image.fromarray(_rgb()[:, :, :2].copy(), "LA"), "PNG")),
    Kind("palette.png", "a palette image with a transparent colour", "scored", _write(_palette_transparent())),
    Kind("bilevel.png", "a 1-bit image (mode 1)", "scored", _pil(lambda: Image.fromarray(_rgb()).convert("1"), "PNG")),
    Kind("cmyk.jpg", "a CMYK JPEG", "scored", _pil(lambda: Image.fromarray(_rgb()).convert("CMYK"), "JPEG")),
    Kind("float.tif", "a 32-bit float TIFF (mode F)", "scored",
         _pil(lambda: Image.fromarray(_rgb()[:, :, 0].astype(np.float32) / 255.0), "TIFF")),
    Kind("animated.gif", "an animated GIF (its first frame is scored)", "scored", _write(_animated_gif())),
    Kind("exif-rotated.jpg", "a JPEG with an EXIF rotation", "scored", _write(_exif_rotated())),
    Kind("progressive.jpg", "a progressive JPEG", "scored", _pil(lambda: Image.fromarray(_rgb()), "JPEG", progressive=True)),
    Kind("lossless.webp", "a lossless WebP", "scored", _pil(lambda: Image.fromarray(_rgb()), "WEBP", lossless=True)),
    Kind("bitmap.bmp", "a BMP", "scored", _pil(lambda: Image.fromarray(_rgb()), "BMP")),
    Kind("png-named.jpg", "a PNG named .jpg (content decides)", "scored", _write(_png())),
    Kind("UPPER.JPG", "an upper-case suffix", "scored", _write(_jpeg())),
    Kind("фото 🙂.png", "a Unicode file name with a space and an emoji", "scored", _write(_png())),
    Kind("comma,semi;colon.png", "a file name with CSV-hostile characters", "scored", _write(_png())),
    # -- litter: no row ---------------------------------------------------------------------------
    Kind("._resource.jpg", "a macOS AppleDouble file (._name)", "ignored", _write(b"\x00\x05\x16\x07" + b"\0" * 60)),
    # -- archives named on the command line ----------------------------------------------------
    Kind("empty.zip", "a zip archive with no entries: one row saying so", "error", _write(_zip({})), archive=True),
    Kind("not-a-zip.zip", "random bytes named .zip", "error", _write(np.random.default_rng(2).bytes(4096)), archive=True),
    Kind("bomb.zip", "a zip whose member inflates to 40 MB of zeros (over the cap; refused unread)", "error", _zip_bomb, archive=True),
    Kind("ratio-bomb.zip", "a zip whose 10 MB member inflates from about 10 KB (over 200x: refused unread)", "error",
         _zip_ratio_bomb, archive=True),
    Kind("bad-crc.zip", "a zip with one corrupted member and one good one: an error row and a verdict", "error+scored",
         _zip_bad_crc, archive=True),
]


def make_corpus(root: Path) -> tuple[Path, list[Path]]:
    """Write every kind under root: (the folder of files, the archive paths)."""
    folder = root / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    archives = []
    for k in KINDS:
        p = (root / k.name) if k.archive else (folder / k.name)
        k.make(p)
        if k.archive:
            archives.append(p)
    return folder, archives


def markdown() -> str:
    rows = ["| input | what it is | what genspot does |", "|---|---|---|"]
    does = {"scored": "a verdict", "error": "an error row; the rest are scored", "ignored": "no row (not data)",
            "error+scored": "an error row for the bad member, a verdict for the good one"}  # fmt: skip
    for k in KINDS:
        rows.append(f"| `{k.name}`{' (archive argument)' if k.archive else ''} | {k.what} | {does[k.outcome]} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        sys.stdout.write(markdown())
    elif len(sys.argv) == 2:
        folder, archives = make_corpus(Path(sys.argv[1]))
        print(f"{len(KINDS)} kinds: folder {folder}, archives {' '.join(map(str, archives))}")
    else:
        sys.exit("usage: python tests/bad_inputs.py DIR | --markdown")
