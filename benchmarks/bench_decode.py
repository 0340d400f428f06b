"""Decode the CIFAKE train zip into a fresh cache, then reload it from the cache.

    python benchmarks/bench_decode.py [--data ../shared/data/cifake-train.zip] [--repeats 3]
    python benchmarks/bench_decode.py --data ../shared/data/faces256-train.zip --image-size 256 --policy crop --margin 32

Targets (issue 2): decode < 15 s on 2 cores, cached reload < 2 s. Prints medians, and the
cache's size on disk (the crop margin is what a model trained at that size stores: S/8).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifake-train.zip"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--policy", default="resize", choices=["resize", "crop"])
    ap.add_argument("--margin", type=int, default=0, help="crop margin per side (training's stored square)")
    args = ap.parse_args()
    kw = dict(size=args.image_size, policy=args.policy, margin=args.margin, progress=False)
    from genspot.data import load_dataset

    decode, reload = [], []
    for _ in range(args.repeats):
        cache = tempfile.mkdtemp(prefix="genspot-bench-")
        os.environ["GENSPOT_CACHE_DIR"] = cache
        try:
            t = time.perf_counter()
            ds = load_dataset(args.data, **kw)
            decode.append(time.perf_counter() - t)
            t = time.perf_counter()
            ds2 = load_dataset(args.data, **kw)
            reload.append(time.perf_counter() - t)
            assert ds2.from_cache and len(ds2) == len(ds)
            disk = sum(f.stat().st_size for f in Path(cache).rglob("*") if f.is_file())
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    n = len(ds)
    side = args.image_size + 2 * args.margin
    print(f"images: {n:,}  cores: {os.cpu_count()}  stored {side}x{side} ({args.policy}, input {args.image_size})  cache on disk {disk / 1e6:,.1f} MB")
    print(f"decode (zip -> uint8 cache): median {statistics.median(decode):.2f} s  ({n / statistics.median(decode):,.0f} img/s)  runs {[round(x, 2) for x in decode]}")
    print(f"cached reload:               median {statistics.median(reload):.2f} s  runs {[round(x, 2) for x in reload]}")


if __name__ == "__main__":
    main()
