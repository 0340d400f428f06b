"""Bytes -> uint8 tensors, decoded once in parallel and cached on disk.

The cache holds one array of shape (N, 3, S, S) and a JSON index beside it, in a folder
named after the source's content fingerprint and the decode parameters, so a changed
archive or another size never reuses a stale cache. It is written to a temporary folder
and renamed when complete: a killed decode leaves no half-written cache behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genspot.data.image import POLICIES, decode_bytes
from genspot.data.sources import LABELS, LAYOUTS, Source, assign_sources, open_source, reopen, spec_of
from genspot.errors import GenspotError
from genspot.progress import progress_bar, warn

CACHE_VERSION = 2  # 2: GenImage and CNNDetection class folders are read (records of such archives changed)


def cache_root() -> Path:
    env = os.environ.get("GENSPOT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("genspot"))


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
