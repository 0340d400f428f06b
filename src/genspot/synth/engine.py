"""`genspot synth`: make an aligned archive from real photos.

The archive, read in place by every genspot command (the CNNDetection layout, one source per operator):

    <source>/0_real/<stem>.<ext>   the photo's original bytes, unchanged
    <source>/1_fake/<stem>.<ext>   what the operator made of it, in the photo's own container
                                   (format, size, mode; a JPEG's own quantisation tables and subsampling)
    <source>/masks/<stem>.png      splices only: 255 where the blend weight is at least 0.5
    genspot-synth.json             the manifest: operators, probes, seed, autoencoders' hashes, counts

The stem is the photo key: every member made from one photo shares it (the split keeps them on one
side). Photos are cut into fixed chunks; each chunk is written as its own small zip in
`<out>.parts/`, atomically, so a killed run resumes at the first missing chunk and nothing that
looks like a finished archive exists until every chunk is merged into `<out>` (written to a
temporary name and renamed). Chunks run in worker processes, each with its own copy of the
autoencoders, at most two chunks per worker in flight: memory stays bounded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from genspot.data.image import decode
from genspot.data.inputs import iter_inputs
from genspot.data.sources import ALIGNED_MANIFEST
from genspot.errors import GenspotError
from genspot.progress import progress_bar, warn
from genspot.synth.operators import Operator, mask_png, parse_operator, photo_rng, resample, splice, splice_weight

MANIFEST = ALIGNED_MANIFEST  # genspot-synth.json
SKIPPED = "_skipped.json"  # inside a chunk's zip: its unreadable photos
CHUNK = 16  # photos per chunk: the unit of resumption and of work sent to a process
BATCH = 8  # photos of one size per autoencoder forward pass


@dataclass
class SynthConfig:
    photos: list[str]  # files, folders, zips or globs of real photos
    out: str  # the archive to write (.zip)
    operators: list[str] = field(default_factory=lambda: ["ae:taef2"])
    autoencoders: dict[str, str] = field(default_factory=dict)  # name -> folder with encoder/decoder.safetensors
    seed: int = 0
    limit: int | None = None  # the first N photos (in sorted order) only
    workers: int = 1  # processes; 0 runs in this one
    threads: int | None = None  # torch threads per process (default: cores / processes)
    resume: bool = False
    force: bool = False
    progress: bool = True


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _container(raw: Image.Image) -> dict[str, Any]:
    """How the photo's file was written, to write its fake the same way."""
    out: dict[str, Any] = {"format": raw.format or "PNG", "mode": raw.mode}
    if raw.format == "JPEG":
        from PIL import JpegImagePlugin

        out["qtables"] = getattr(raw, "quantization", None)
        out["subsampling"] = JpegImagePlugin.get_sampling(raw)
    return out


def encode_like(pixels: np.ndarray, container: dict[str, Any]) -> bytes:
    """uint8 (h, w, 3) -> file bytes in the photo's container: its format and mode, and for a JPEG
    its own quantisation tables and chroma subsampling (so quality is no cue between the classes)."""
    img = Image.fromarray(pixels, "RGB")
    mode = container["mode"]
    if mode in ("L", "CMYK") or (mode == "RGBA" and container["format"] != "JPEG"):
        img = img.convert(mode)
    buf = io.BytesIO()
    fmt = container["format"]
    if fmt == "JPEG":
        kw: dict[str, Any] = {}
        if container.get("qtables"):
            kw["qtables"] = container["qtables"]
        if container.get("subsampling", -1) != -1:
            kw["subsampling"] = container["subsampling"]
        img.save(buf, "JPEG", **kw) if kw else img.save(buf, "JPEG", quality=95)
    else:
        img.save(buf, fmt)
    return buf.getvalue()


# -- one chunk, in a worker -----------------------------------------------------------------------

_AES: dict[str, Any] = {}


def _init_worker(autoencoders: dict[str, str], threads: int | None) -> None:
    import torch

    from genspot.synth.taesd import TinyAutoencoder

    if threads:
        torch.set_num_threads(threads)
    _AES.clear()
    for name, folder in autoencoders.items():
        _AES[name] = TinyAutoencoder.load(folder)


def _round_trips(name: str, photos: list[np.ndarray]) -> list[np.ndarray]:
    """Each uint8 (h, w, 3) photo through autoencoder `name`, photos of one size batched together."""
    import torch

    ae = _AES[name]
    out: list[np.ndarray | None] = [None] * len(photos)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(photos):
        by_size.setdefault(p.shape[:2], []).append(i)
    for idx in by_size.values():
        for k in range(0, len(idx), BATCH):
            part = idx[k : k + BATCH]
            x = torch.from_numpy(np.stack([photos[i] for i in part])).permute(0, 3, 1, 2).float().div_(255)
            y = (ae.round_trip(x) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
            for j, i in enumerate(part):
                out[i] = y[j]
    return out  # type: ignore[return-value]


def _make_chunk(args: tuple[int, list[tuple[str, str, bytes]], list[dict], int, str]) -> tuple[int, int, list[tuple[str, str]]]:
    """Write one chunk's members into `<parts>/part-<index>.zip`; returns (index, photos written, skipped)."""
    index, items, op_dicts, seed, parts = args
    ops = [Operator(**d) for d in op_dicts]
    decoded, skipped = [], []
    for stem, ext, data in items:
        try:
            img, _facts = decode(data)
            raw = Image.open(io.BytesIO(data))
            decoded.append((stem, ext, data, np.asarray(img, dtype=np.uint8), _container(raw)))
        except Exception as e:  # noqa: BLE001 - one unreadable photo is reported and skipped, never fatal
            skipped.append((stem + ext, f"not a readable image: {e}"))
    pixels = [d[3] for d in decoded]
    trips = {name: _round_trips(name, pixels) for name in sorted({op.autoencoder for op in ops} - {None})}

    def output(op: Operator, i: int, stem: str) -> tuple[np.ndarray, np.ndarray | None]:
        if op.kind == "ae":
            return trips[op.arg][i], None
        if op.kind == "identity":
            return pixels[i], None
        if op.kind == "up":
            return resample(pixels[i], op.arg), None
        inner, _ = output(parse_operator(op.arg), i, stem)  # splice: the inner operator's output, reused
        h, w = pixels[i].shape[:2]
        weight = splice_weight(h, w, photo_rng(seed, stem, "splice"))
        return splice(pixels[i], inner, weight), mask_png(weight)

    with _atomic_zip(Path(parts) / f"part-{index:06d}.zip") as z:
        for i, (stem, ext, data, _px, container) in enumerate(decoded):
            for op in ops:
                fake, mask = output(op, i, stem)
                z.writestr(f"{op.name}/0_real/{stem}{ext}", data)
                z.writestr(f"{op.name}/1_fake/{stem}{ext}", encode_like(fake, container))
                if mask is not None:
                    buf = io.BytesIO()
                    Image.fromarray(mask, "L").save(buf, "PNG")
                    z.writestr(f"{op.name}/masks/{stem}.png", buf.getvalue())
        if skipped:  # remembered for the manifest, also when a later run resumes past this chunk
            z.writestr(SKIPPED, json.dumps(skipped))
    return index, len(decoded), skipped


# -- the run --------------------------------------------------------------------------------------


def _photos(cfg: SynthConfig) -> tuple[list[tuple[str, str, bytes | None, str | None]], int]:
    """(stem, extension, bytes or None, error or None) of every input photo, sorted by stem; a stem
    that two photos share gets -2, -3... in input order."""
    rows, seen = [], {}
    for item in iter_inputs(cfg.photos):
        p = PurePosixPath((item.rel or item.name).replace("\\", "/").split(":", 1)[-1])
        stem, ext = p.stem, p.suffix.lower() or ".img"
        seen[stem] = seen.get(stem, 0) + 1
        if seen[stem] > 1:
            stem = f"{stem}-{seen[stem]}"
        rows.append((stem, ext, item.data, item.error))
    rows.sort(key=lambda r: r[0])
    total = len(rows)
    if cfg.limit is not None:
        rows = rows[: cfg.limit]
    return rows, total


def synth(cfg: SynthConfig) -> dict[str, Any]:
    """Write the aligned archive `cfg.out`; returns its manifest."""
    out = Path(cfg.out)
    if out.suffix.lower() != ".zip":
        raise GenspotError(f"--out must name a .zip archive, not {out}")
    if not out.parent.is_dir():
        raise GenspotError(f"cannot write {out}: folder {out.parent} does not exist")
    parts = out.with_name(out.name + ".parts")
    if out.exists():
        if not cfg.force:
            raise GenspotError(f"{out} exists; pass --force to replace it")
        out.unlink()
    if parts.exists() and not (cfg.resume or cfg.force):
        raise GenspotError(f"{parts} holds an unfinished run: pass --resume to finish it or --force to start again")
    if parts.exists() and cfg.force:
        shutil.rmtree(parts)
    ops = [parse_operator(o) for o in cfg.operators]
    if not ops:
        raise GenspotError("no operator: pass --op ae:NAME (and splice:OP, up:KIND, identity)")
    if len({o.name for o in ops}) != len(ops):
        raise GenspotError("an operator is named twice")
    needed = sorted({o.autoencoder for o in ops} - {None})
    missing = [n for n in needed if n not in cfg.autoencoders]
    if missing:
        raise GenspotError(f"operator needs autoencoder {missing[0]!r}: pass --autoencoder {missing[0]}=FOLDER")
    from genspot.synth.taesd import ENCODER_FILE, DECODER_FILE, TinyAutoencoder

    aes = {}
    for n in needed:
        TinyAutoencoder.load(cfg.autoencoders[n])  # a bad folder or file fails here, in one line, before any work
        folder = Path(cfg.autoencoders[n]).expanduser()
        aes[n] = {"folder": str(folder), "encoder_sha256": _sha256(folder / ENCODER_FILE), "decoder_sha256": _sha256(folder / DECODER_FILE)}
    rows, total = _photos(cfg)
    bad = [(f"{s}{e}", err) for s, e, _, err in rows if err is not None]
    good = [(s, e, d) for s, e, d, err in rows if err is None]
    if not good:
        raise GenspotError("no readable photo in the input")
    plan = {"operators": [o.name for o in ops], "seed": cfg.seed, "chunk": CHUNK, "stems": hashlib.sha256("\n".join(s for s, _, _ in good).encode()).hexdigest(),
            "autoencoders": {n: {k: v for k, v in a.items() if k != "folder"} for n, a in aes.items()}}  # fmt: skip
    parts.mkdir(exist_ok=True)
    plan_file = parts / "plan.json"
    if plan_file.exists() and json.loads(plan_file.read_text()) != plan:
        raise GenspotError(f"{parts} was started with other photos, operators, seed or weights; pass --force to start again")
    plan_file.write_text(json.dumps(plan, indent=2) + "\n")
    chunks = [good[i : i + CHUNK] for i in range(0, len(good), CHUNK)]
    done = {int(p.stem.split("-")[1]) for p in parts.glob("part-*.zip") if _complete(p)}
    todo = [(i, c, [asdict(o) for o in ops], cfg.seed, str(parts)) for i, c in enumerate(chunks) if i not in done]
    for name, err in bad:
        warn(f"skipped {name}: {err}")
    t0 = time.perf_counter()
    workers = max(0, cfg.workers)
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    n_done = sum(len(chunks[i]) for i in done)
    with progress_bar("synth", total=len(good), unit="photo", enabled=cfg.progress) as bar:
        bar.advance(n_done)
        if workers == 0:
            _init_worker({n: a["folder"] for n, a in aes.items()}, threads)
            results = map(_make_chunk, todo)
            pool = None
        else:
            import multiprocessing as mp

            # spawn, not fork: the parent has run torch (the weights check), and a forked child can
            # inherit its thread pool's locks held, and hang
            pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=({n: a["folder"] for n, a in aes.items()}, threads))
            results = pool.imap_unordered(_make_chunk, todo)  # a pool's task queue feeds workers as they free up
        try:
            for _i, n, sk in results:
                for name, err in sk:
                    warn(f"skipped {name}: {err}")
                bar.advance(n + len(sk))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    seconds = time.perf_counter() - t0
    skipped = list(bad) + [tuple(x) for i in range(len(chunks)) for x in _chunk_skipped(parts / f"part-{i:06d}.zip")]
    written = len(good) + len(bad) - len(skipped)
    manifest = {
        "genspot_synth": 1, "operators": [asdict(o) for o in ops], "probes": [o.name for o in ops if o.probe],
        "training_sources": [o.name for o in ops if not o.probe], "seed": cfg.seed, "photos": written,
        "photos_in_input": total, "limit": cfg.limit, "skipped": [{"name": n, "error": e} for n, e in skipped],
        "autoencoders": plan["autoencoders"], "layout": "<source>/0_real|1_fake/<stem>.<ext>, <source>/masks/<stem>.png",
        "policy": {"container": "the fake is written in its photo's format, size and mode; a JPEG with the photo's own "
                                "quantisation tables and subsampling",
                   "sides": "sides that are not multiples of 8 are padded by reflection for the autoencoder and cropped back",
                   "mask": "255 where the splice's blend weight is at least 0.5"},
    }  # fmt: skip
    _merge(parts, len(chunks), out, manifest)
    shutil.rmtree(parts)
    manifest["seconds"] = round(seconds, 1)
    return manifest


def _chunk_skipped(part: Path) -> list[list[str]]:
    with zipfile.ZipFile(part) as z:
        return json.loads(z.read(SKIPPED)) if SKIPPED in z.namelist() else []


def _complete(part: Path) -> bool:
    try:
        with zipfile.ZipFile(part) as z:
            return z.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False


def _merge(parts: Path, n: int, out: Path, manifest: dict[str, Any]) -> None:
    """Every chunk's members, in chunk order, into one archive: written under a temporary name and
    renamed, so `out` exists only when complete."""
    with _atomic_zip(out) as z:
        z.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
        for i in range(n):
            with zipfile.ZipFile(parts / f"part-{i:06d}.zip") as src:
                for info in src.infolist():
                    if info.filename != SKIPPED:
                        z.writestr(info, src.read(info))


@contextlib.contextmanager
def _atomic_zip(final: Path) -> Iterator[zipfile.ZipFile]:
    """A zip written under a temporary name and renamed into place when complete; a full disk is one line."""
    tmp = final.with_name(final.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            yield z
        os.replace(tmp, final)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise GenspotError(f"the disk is full while writing {final}: free space and run again with --resume") from None
        raise
