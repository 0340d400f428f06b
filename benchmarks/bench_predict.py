"""Scoring speed of a model directory: end to end vs decode alone vs model alone, and latency.

    python benchmarks/bench_predict.py [--model default] [--data ../shared/data/cifake-train.zip] [--limit 20000]
                                       [--workers 0 1 2]
    python benchmarks/bench_predict.py --runtime torch onnx [--limit 5000]
    python benchmarks/bench_predict.py --large runs/faces/npr-256      # a 4000x3000 JPEG: latency, peak RSS

In one run, over the same images of the zip:
  (a) decode alone: read + decode + resize to 32x32 (`Detector.predict_paths`' own decoding);
  (b) model alone: batched inference on already-decoded uint8 tensors;
  (c) end to end: `Detector.predict_paths` over the zip (read, decode, infer, results), with
      decoding in-process and in 1 and 2 worker processes (the scaling of issue 8).
Target (issue 5): (c) >= 80% of the slower of (a) and (b). Then single-image latency p50 for a
32x32 JPEG and a 1024x1024 JPEG, in resize and tiles mode.

With `--runtime torch onnx`: PyTorch against ONNX Runtime (fp32, the model exported once into the
cache first), in one process, in alternating rounds (medians of 3): model alone in batches of 256
on the decoded images, and single-image p50 latency of `Detector.predict` on a 32x32 JPEG
(decode, domain check and all). Target (issue 28): ONNX Runtime's single-image latency at most
1/1.5 of PyTorch's, and no slower in batch.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import statistics
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifake-train.zip"))
    ap.add_argument("--limit", type=int, default=20000, help="images from the zip (0: all)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="decode processes to try for (c)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="scoring precision (Detector.load)")
    ap.add_argument("--runtime", nargs="+", default=["torch"], choices=["torch", "onnx"], help="two: compare them")
    ap.add_argument("--large", default=None, help="model directory: time a 4000x3000 JPEG with it, and the command's peak RSS")
    args = ap.parse_args()
    if args.large:
        large_image(args.large)
        return
    from genspot.data.image import image_from_bytes, to_array
    from genspot.predict import Detector

    if len(args.runtime) > 1:
        compare_runtimes(args)
        return

    det = Detector.load(args.model, precision=args.precision, runtime=args.runtime[0])
    with zipfile.ZipFile(args.data) as z:
        names = [i.filename for i in z.infolist() if not i.is_dir()]
        names = names[: args.limit] if args.limit else names
        sub = Path("/tmp") / f"genspot-bench-{len(names)}.zip"
        if not sub.exists():  # the same images as a zip of their own, so (c) reads exactly them
            with zipfile.ZipFile(sub, "w") as out:
                for n in names:
                    out.writestr(n, z.read(n))
        blobs = [z.read(n) for n in names]
    n = len(blobs)
    t = time.perf_counter()
    arrays = [to_array(image_from_bytes(b), det.size) for b in blobs]
    decode = n / (time.perf_counter() - t)
    x = torch.from_numpy(np.stack(arrays))
    t = time.perf_counter()
    for i in range(0, n, 256):
        det.p_fake(x[i : i + 256])
    model = n / (time.perf_counter() - t)
    e2e = {}
    for w in args.workers:
        t = time.perf_counter()
        count = sum(1 for _ in det.predict_paths([str(sub)], batch_size=256, workers=w))
        e2e[w] = count / (time.perf_counter() - t)
    print(f"model {det.name} ({det.spec.model}, TTA {det.spec.tta}, {det.precision}), {n:,} images, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")
    print(f"(a) decode alone   {decode:8,.0f} img/s (one process)")
    print(f"(b) model alone    {model:8,.0f} img/s")
    for w, r in e2e.items():
        how = "decode in-process" if w == 0 else f"{w} decode worker{'s' if w > 1 else ''}"
        print(f"(c) end to end     {r:8,.0f} img/s  = {r / min(decode, model):.2f} of the slower (target >= 0.80), {how}")
    rng = np.random.default_rng(0)
    for size in (32, 1024):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        for mode in ("resize", "tiles"):
            lat = []
            for _ in itertools.repeat(None, 30 if size == 32 else 10):
                t = time.perf_counter()
                det.predict(data, mode=mode)
                lat.append(time.perf_counter() - t)
            print(f"latency {size}x{size} JPEG, {mode:6s}: p50 {1000 * statistics.median(lat):7.1f} ms")


def compare_runtimes(args: argparse.Namespace) -> None:
    from genspot.data.image import image_from_bytes, to_array
    from genspot.predict import Detector

    dets = {rt: Detector.load(args.model, runtime=rt) for rt in args.runtime}
    size = next(iter(dets.values())).size
    with zipfile.ZipFile(args.data) as z:
        names = [i.filename for i in z.infolist() if not i.is_dir()][: args.limit or None]
        x = torch.from_numpy(np.stack([to_array(image_from_bytes(z.read(n)), size) for n in names]))
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    batch: dict[str, list[float]] = {rt: [] for rt in dets}
    single: dict[str, list[float]] = {rt: [] for rt in dets}
    for d in dets.values():  # warm-up: first calls allocate
        d.p_fake(x[:256])
        d.predict(jpeg)
    for _ in range(3):
        for rt, d in dets.items():
            t = time.perf_counter()
            for i in range(0, len(x), 256):
                d.p_fake(x[i : i + 256])
            batch[rt].append(len(x) / (time.perf_counter() - t))
            lat = []
            for _ in range(100):
                t = time.perf_counter()
                d.predict(jpeg)
                lat.append(time.perf_counter() - t)
            single[rt].append(statistics.median(lat))
    d0 = dets[args.runtime[0]]
    print(f"model {d0.name} ({d0.spec.model}, TTA {d0.spec.tta}, fp32), {len(x):,} images, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs; medians of 3 alternating rounds")
    for rt in dets:
        print(f"{rt:5s}  model alone {statistics.median(batch[rt]):8,.0f} img/s   single 32x32 JPEG p50 "
              f"{1000 * statistics.median(single[rt]):6.2f} ms")
    if {"torch", "onnx"} <= dets.keys():
        b = statistics.median(batch["onnx"]) / statistics.median(batch["torch"])
        s = statistics.median(single["torch"]) / statistics.median(single["onnx"])
        print(f"onnx / torch: batch throughput {b:.2f}x (target >= 1.0), single-image latency {s:.2f}x faster (target >= 1.5)")


def large_image(model: str) -> None:
    """p50 latency of Detector.predict on a 4000x3000 JPEG (12 MP), and the peak RSS of one
    `genspot predict` of it in a fresh process (torch and the model included)."""
    import resource
    import subprocess
    import sys
    import tempfile

    from genspot.predict import Detector

    det = Detector.load(model)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC)  # photo-like: smooth, not noise
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    det.predict(data)
    lat = []
    for _ in range(10):
        t = time.perf_counter()
        det.predict(data)
        lat.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "large.jpg"
        path.write_bytes(data)
        subprocess.run([sys.executable, "-m", "genspot.cli", "predict", str(path), "--model", model, "--format", "json"],
                       check=True, capture_output=True)  # fmt: skip
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
    print(f"model {det.name} ({det.spec.model}, {det.size}px, {det.policy}); 4000x3000 JPEG, {len(data) / 1e6:.1f} MB")
    print(f"Detector.predict p50 {1000 * statistics.median(lat):.0f} ms (10 runs); genspot predict peak RSS {peak_mb:,.0f} MB (target < 2,048)")


if __name__ == "__main__":
    main()
