"""Bytes -> uint8 tensors, decoded once in parallel and cached on disk.

The cache holds one array of shape (N, 3, S, S) and a JSON index beside it, in a folder
named after the source's content fingerprint and the decode parameters, so a changed
archive or another size never reuses a stale cache. It is written to a temporary folder
and renamed when complete: a killed decode leaves no half-written cache behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from genspot.data.sources import LABELS, LAYOUTS, Source, assign_sources, open_source, reopen, spec_of
from genspot.errors import GenspotError
from genspot.progress import progress_bar, warn

CACHE_VERSION = 2  # 2: GenImage and CNNDetection class folders are read (records of such archives changed)
# Refuse images over this many pixels before decoding them (decompression bombs).
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Pillow warns (on stderr, once per place) about metadata it tolerates, e.g. "Corrupt EXIF
# data": noise beside a per-image result; what it cannot decode still raises.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def cache_root() -> Path:
    env = os.environ.get("GENSPOT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("genspot"))


class ImageTooLarge(ValueError):
    """More pixels than genspot decodes (a decompression bomb, or just too big)."""


def open_image(data: bytes) -> Image.Image:
    """Open (not yet decode) an image, refusing decompression bombs before any pixel is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge(f"image too large (over {MAX_PIXELS:,} pixels)") from None
        except UnidentifiedImageError:
            raise ValueError("not a recognised image format") from None
    if img.width * img.height > MAX_PIXELS:
        raise ImageTooLarge(f"image too large ({img.width}x{img.height} pixels, limit {MAX_PIXELS:,})")
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image -> RGB: EXIF orientation, palettes, alpha over white, CMYK, 16-bit, first frame."""
    img.load()  # decodes the first frame of an animation; truncated files fail here
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        peak = 1.0 if img.mode == "F" else 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img if img.mode == "RGB" else img.convert("RGB")


def image_from_bytes(data: bytes) -> Image.Image:
    """Decode any common image file (PNG, JPEG, WebP, BMP, GIF, TIFF) to RGB."""
    return to_rgb(open_image(data))


def to_array(img: Image.Image, size: int) -> np.ndarray:
    """RGB image -> uint8 (3, size, size); other sizes are resized with antialiasing."""
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))  # a writable copy


POLICIES = ("resize", "crop")


def crop_array(img: Image.Image, size: int) -> np.ndarray:
    """RGB image -> uint8 (3, size, size): the centre square at native resolution, no resampling.

    An image smaller than `size` on a side cannot be cropped: its shorter side is scaled up to
    `size` first (bicubic), the one case where this policy resamples (the domain check flags it)."""
    w, h = img.size
    if min(w, h) < size:
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
        w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


def stored_crop(img: Image.Image, size: int, margin: int) -> np.ndarray:
    """uint8 (3, size + 2 margin, size + 2 margin) around the centre, for random size x size training
    crops at native resolution; its centre size x size square is exactly crop_array(img, size).

    An image too small for the margin keeps its centre crop and gets the margin by mirroring its
    edge pixels (nothing is resampled for the margin's sake)."""
    full = size + 2 * margin
    if min(img.size) >= full:
        return crop_array(img, full)
    return np.ascontiguousarray(np.pad(crop_array(img, size), ((0, 0), (margin, margin), (margin, margin)), mode="reflect"))


def input_array(img: Image.Image, size: int, policy: str = "resize") -> np.ndarray:
    """What a model with this input policy sees of an RGB image: `resize` (the whole image, with
    antialiasing, as CIFAKE was made) or `crop` (the centre size x size square at native
    resolution: generator traces live in single pixels, and resampling erases them)."""
    if policy == "crop":
        return crop_array(img, size)
    if policy != "resize":
        raise GenspotError(f"unknown input policy {policy!r}; choose {' or '.join(POLICIES)}")
    return to_array(img, size)


def decode_bytes(data: bytes, size: int, policy: str = "resize", margin: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Raw file bytes -> (uint8 (3, size, size), or with a crop margin (3, size + 2 margin, ...), original (width, height))."""
    img = open_image(data)
    orig = img.size
    if policy == "resize" and img.format == "JPEG" and min(orig) >= 4 * size:
        img.draft("RGB", (size, size))  # libjpeg scales by 1/2..1/8 while decoding: big photos stay cheap
    if margin:
        return stored_crop(to_rgb(img), size, margin), orig
    return input_array(to_rgb(img), size, policy), orig


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=10).hexdigest()


@dataclass
class DecodedSet:
    """Every readable labelled image of a source, decoded to uint8 (N, 3, S, S)."""

    images: torch.Tensor
    labels: torch.Tensor  # int64, index into LABELS
    paths: list[str]
    splits: np.ndarray  # str, per image
    hashes: list[str]  # content hash of the raw file bytes (finds byte-identical duplicates)
    sizes: np.ndarray  # (N, 2) original width, height
    skipped: list[tuple[str, str]]  # (path, reason) of members that could not be decoded
    fingerprint: str
    source: str
    image_size: int
    decode_seconds: float = 0.0
    from_cache: bool = False
    extra: dict = field(default_factory=dict)
    margin: int = 0  # images are stored (image_size + 2 margin) square around the centre: room for random crops

    def __post_init__(self) -> None:
        # Where each image came from (a generator's folder, or real / fake): derived from the
        # paths, so caches written before sources existed give them too.
        if "sources" not in self.extra:
            self.extra["sources"] = np.array(assign_sources(self.paths, self.labels.tolist()), dtype=object)

    @property
    def sources(self) -> np.ndarray:
        return self.extra["sources"]

    def __len__(self) -> int:
        return len(self.paths)

    def split_names(self) -> list[str]:
        order = {"train": 0, "val": 1, "test": 2}
        return sorted(set(self.splits.tolist()), key=lambda s: (order.get(s, 9), s))

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)


_worker_source: Source | None = None


def _init_worker(spec: tuple[str, str]) -> None:
    # Opening a zip parses its whole central directory (~0.5 s for 100k members): once per worker.
    global _worker_source
    _worker_source = reopen(spec)


def _decode_chunk(args: tuple) -> tuple[int, list]:
    """Worker: decode names[start:stop] straight into the shared memmap; return per-image info."""
    names, start, out_path, size, policy, margin = args
    src = _worker_source
    assert src is not None
    out = np.load(out_path, mmap_mode="r+")
    info = []
    for k, name in enumerate(names):
        try:
            data = src.read(name)
        except Exception as e:  # noqa: BLE001 - a broken member must not stop the run
            info.append((None, None, f"unreadable: {e}"))
            continue
        h = content_hash(data)
        try:
            arr, wh = decode_bytes(data, size, policy, margin)
        except Exception as e:  # noqa: BLE001
            info.append((h, None, f"{type(e).__name__}: {e}".strip()))
            continue
        out[start + k] = arr
        info.append((h, wh, None))
    out.flush()
    return start, info


def _mp_context() -> mp.context.BaseContext:
    # fork starts workers in milliseconds; the workers only touch numpy and PIL.
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _cache_dir(fingerprint: str, size: int, policy: str = "resize", margin: int = 0) -> Path:
    extra = "" if policy == "resize" else f"|{policy}"  # resize keeps the keys caches already have
    extra += f"|margin={margin}" if margin else ''
    key = hashlib.sha256(f"v{CACHE_VERSION}|{fingerprint}|size={size}|rgb{extra}".encode()).hexdigest()[:20]
    return cache_root() / "decoded" / key


def load_dataset(
    path: str | os.PathLike,
    *,
    size: int = 32,
    workers: int | None = None,
    cache: bool = True,
    progress: bool = True,
    policy: str = "resize",
    margin: int = 0,
) -> DecodedSet:
    """Read every labelled image of a zip archive or folder, decoding once and caching the result.

    Each image becomes uint8 (3, size, size) by the input policy: `resize` or `crop` (input_array).
    With the crop policy, `margin` > 0 stores (3, size + 2 margin, ...) around the centre instead
    (stored_crop), so that training can take random size x size crops at native resolution.

    The cache is written by the decoding processes straight into its on-disk array and read back
    as a memory map: memory stays bounded whatever the archive's size."""
    if policy not in POLICIES:
        raise GenspotError(f"unknown input policy {policy!r}; choose {' or '.join(POLICIES)}")
    if margin and policy != "crop":
        raise GenspotError("a crop margin needs the crop input policy")
    src = open_source(path)
    try:
        fp = src.fingerprint()
        cdir = _cache_dir(fp, size, policy, margin)
        if cache and (cdir / "index.json").exists():
            ds = _read_cache(cdir)
            ds.source = str(src.path)
            return ds
        # Several processes (DDP ranks started by torchrun, parallel jobs) may ask at once:
        # one decodes under the lock, the others wait and read its cache.
        with _cache_lock(cdir if cache else None):
            if cache and (cdir / "index.json").exists():
                ds = _read_cache(cdir)
                ds.source = str(src.path)
                return ds
            ds = _decode_all(src, fp, size, workers, progress, policy, margin, cdir if cache else None)
    finally:
        src.close()
    for name, reason in ds.skipped:
        warn(f"skipped {name}: {reason}")
    return ds


@contextlib.contextmanager
def _cache_lock(cdir: Path | None):
    if cdir is None or sys.platform.startswith("win"):
        yield
        return
    import fcntl

    cdir.parent.mkdir(parents=True, exist_ok=True)
    with open(cdir.parent / f".{cdir.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _decode_all(src: Source, fp: str, size: int, workers: int | None, progress: bool, policy: str = "resize",
                margin: int = 0, cdir: Path | None = None) -> DecodedSet:  # fmt: skip
    """Decode every record in parallel into an on-disk array. With `cdir` (caching on) the array is
    the cache's own file, compacted on disk if some images failed, and the set is returned as a
    memory map of it; without, the images are returned in memory."""
    t0 = time.perf_counter()
    records = src.records()
    if not records:
        raise GenspotError(f"{src.path}: found no images in a layout genspot reads ({LAYOUTS})")
    n = len(records)
    stored = size + 2 * margin
    workers = max(1, min(workers or os.cpu_count() or 1, 64, max(1, n // 512)))
    if cdir is not None:
        folder = cdir.with_name(cdir.name + f".tmp{os.getpid()}")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        out_path = folder / "decoding.npy"
    else:
        folder = cache_root() / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        out_path = folder / f"decode-{os.getpid()}-{time.time_ns()}.npy"
    arr = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.uint8, shape=(n, 3, stored, stored))
    del arr
    try:
        chunk = max(256, min(4096, n // (workers * 8) + 1))
        spec = spec_of(src)
        names = [r.path for r in records]
        jobs = [(names[i : i + chunk], i, str(out_path), size, policy, margin) for i in range(0, n, chunk)]
        info: list = [None] * n
        with progress_bar("decoding", total=n, unit="img", enabled=progress) as bar:
            if workers == 1:
                _init_worker(spec)
                results = map(_decode_chunk, jobs)
                pool = None
            else:
                pool = _mp_context().Pool(workers, initializer=_init_worker, initargs=(spec,))
                results = pool.imap_unordered(_decode_chunk, jobs)
            try:
                for start, chunk_info in results:
                    info[start : start + len(chunk_info)] = chunk_info
                    bar.advance(len(chunk_info))
            finally:
                if pool is not None:
                    pool.terminate()
        ok = np.array([i[2] is None for i in info], dtype=bool)
        if cdir is None:
            decoded = np.load(out_path, mmap_mode="r")
            images = torch.from_numpy(np.ascontiguousarray(decoded[ok]) if not ok.all() else np.array(decoded))
            del decoded
        else:
            images = torch.from_numpy(_compact(out_path, folder / "images.npy", ok))
    except BaseException:
        if cdir is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        if cdir is None:
            out_path.unlink(missing_ok=True)
    keep = [r for r, good in zip(records, ok) if good]
    ds = DecodedSet(
        images=images,
        labels=torch.tensor([r.label for r in keep], dtype=torch.int64),
        paths=[r.path for r in keep],
        splits=np.array([r.split for r in keep], dtype=object),
        hashes=[i[0] for i in info if i[2] is None],
        sizes=np.array([i[1] for i in info if i[2] is None], dtype=np.int32).reshape(-1, 2),
        skipped=[(r.path, i[2]) for r, i in zip(records, info) if i[2] is not None],
        fingerprint=fp,
        source=str(src.path),
        image_size=size,
        decode_seconds=time.perf_counter() - t0,
        margin=margin,
    )
    if cdir is not None:
        _write_index(ds, folder, margin)
        try:
            os.replace(folder, cdir)  # the open memory map follows its file into the final folder
        except OSError:  # another process finished the same cache first: use that one
            shutil.rmtree(folder, ignore_errors=True)
            ds = _read_cache(cdir)
            ds.decode_seconds, ds.from_cache = time.perf_counter() - t0, False
    return ds


def _compact(src_path: Path, dst_path: Path, ok: np.ndarray, rows: int = 1024) -> np.ndarray:
    """The rows of the .npy at src_path where ok holds, as the .npy at dst_path (copied in slices of
    `rows`: memory stays bounded), returned as a copy-on-write memory map."""
    if ok.all():
        os.replace(src_path, dst_path)
    else:
        decoded = np.load(src_path, mmap_mode="r")
        keep = np.flatnonzero(ok)
        if len(keep) == 0:  # nothing decoded: an empty array (an empty file cannot be memory-mapped)
            np.save(dst_path, np.zeros((0, *decoded.shape[1:]), dtype=np.uint8))
            del decoded
            src_path.unlink()
            return np.load(dst_path)
        out = np.lib.format.open_memmap(dst_path, mode="w+", dtype=np.uint8, shape=(len(keep), *decoded.shape[1:]))
        for i in range(0, len(keep), rows):
            out[i : i + rows] = decoded[keep[i : i + rows]]
        out.flush()
        del out, decoded
        src_path.unlink()
    return np.load(dst_path, mmap_mode="c")


def _write_index(ds: DecodedSet, folder: Path, margin: int = 0) -> None:
    index = {
        "cache_version": CACHE_VERSION,
        "fingerprint": ds.fingerprint,
        "source": ds.source,
        "image_size": ds.image_size,
        "margin": margin,
        "paths": ds.paths,
        "labels": ds.labels.tolist(),
        "splits": ds.splits.tolist(),
        "hashes": ds.hashes,
        "sizes": ds.sizes.tolist(),
        "skipped": ds.skipped,
        "decode_seconds": ds.decode_seconds,
    }
    (folder / "index.json").write_text(json.dumps(index))


def _read_cache(cdir: Path) -> DecodedSet:
    t0 = time.perf_counter()
    index = json.loads((cdir / "index.json").read_text())
    # Copy-on-write memory map: instant to open, pages come from the OS cache as batches touch
    # them, and several processes (DDP ranks) share one copy.
    images = torch.from_numpy(np.load(cdir / "images.npy", mmap_mode="c"))
    return DecodedSet(
        images=images,
        labels=torch.tensor(index["labels"], dtype=torch.int64),
        paths=index["paths"],
        splits=np.array(index["splits"], dtype=object),
        hashes=index["hashes"],
        sizes=np.array(index["sizes"], dtype=np.int32).reshape(-1, 2),
        skipped=[tuple(s) for s in index["skipped"]],
        fingerprint=index["fingerprint"],
        source=index["source"],
        image_size=index["image_size"],
        decode_seconds=time.perf_counter() - t0,
        from_cache=True,
        margin=index.get("margin", 0),
    )


def label_counts(ds: DecodedSet, idx: np.ndarray | None = None) -> dict[str, int]:
    labels = ds.labels.numpy() if idx is None else ds.labels.numpy()[idx]
    c = Counter(labels.tolist())
    return {name: int(c.get(i, 0)) for i, name in enumerate(LABELS)}
