"""Scoring speed of a model directory: end to end vs decode alone vs model alone, and latency.

    python benchmarks/bench_predict.py [--model default] [--data ../shared/data/cifake-train.zip] [--limit 20000]
                                       [--workers 0 1 2]

In one run, over the same images of the zip:
  (a) decode alone: read + decode + resize to 32x32 (`Detector.predict_paths`' own decoding);
  (b) model alone: batched inference on already-decoded uint8 tensors;
  (c) end to end: `Detector.predict_paths` over the zip (read, decode, infer, results), with
      decoding in-process and in 1 and 2 worker processes (the scaling of issue 8).
Target (issue 5): (c) >= 80% of the slower of (a) and (b). Then single-image latency p50 for a
32x32 JPEG and a 1024x1024 JPEG, in resize and tiles mode.
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
    args = ap.parse_args()
    from genspot.data.decode import image_from_bytes, to_array
    from genspot.predict import Detector

    det = Detector.load(args.model, precision=args.precision)
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
    print(f"model {det.name} ({det.config['model']}, TTA {det.config.get('tta', 'none')}, {det.precision}), {n:,} images, "
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


if __name__ == "__main__":
    main()
