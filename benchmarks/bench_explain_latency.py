"""Single-image explain latency against prediction, per method, with the same model.

    python benchmarks/bench_explain_latency.py --model docs/results/aligned/model [--size 256] [--rounds 15]
        [--methods cam,gradcam,gradcam++,layercam,eigencam]

In one process, on one JPEG of the model's input size (a seeded photo-like image), in alternating
rounds: p50 of `Detector.predict` (decode, score, domain check) and of `Detector.explain` with each
method (decode, the same scoring, the map for the verdict). Goal (issue 35): the default method
(one forward and one backward pass) at most 2.5x a prediction. Prints p50 in ms and the ratio.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import numpy as np
import torch
from PIL import Image


def photo_jpeg(size: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)
    noisy = np.clip(np.asarray(img, np.int16) + rng.integers(-8, 9, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--size", type=int, default=None, help="image side (default: the model's input size)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--methods", default=None, help="comma-separated (default: the model's default method)")
    args = ap.parse_args()
    from genspot.predict import Detector

    det = Detector.load(args.model)
    size = args.size or det.size
    data = photo_jpeg(size)
    methods = args.methods.split(",") if args.methods else [det.spec.default_method]
    print(f"cores: {os.cpu_count()}  threads: {torch.get_num_threads()}  model {args.model} ({det.spec.model}, {det.size} px), "
          f"one {size}x{size} JPEG, {args.rounds} rounds; default method {det.spec.default_method}")
    det.predict(data)  # warm up every path once
    for m in methods:
        det.explain(data, method=m)
    times: dict[str, list[float]] = {"predict": []} | {m: [] for m in methods}
    for _ in range(args.rounds):
        t = time.perf_counter()
        det.predict(data)
        times["predict"].append(time.perf_counter() - t)
        for m in methods:
            t = time.perf_counter()
            det.explain(data, method=m)
            times[m].append(time.perf_counter() - t)
    p50 = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(f"predict      p50 {p50['predict']:8.1f} ms")
    for m in methods:
        print(f"{m:12s} p50 {p50[m]:8.1f} ms  ({p50[m] / p50['predict']:.2f}x predict)")


if __name__ == "__main__":
    main()
