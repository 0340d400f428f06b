"""Decode the CIFAKE train zip into a fresh cache, then reload it from the cache.

    python benchmarks/bench_decode.py [--data ../shared/data/cifake-train.zip] [--repeats 3]

Targets (issue 2): decode < 15 s on 2 cores, cached reload < 2 s. Prints medians.
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
    args = ap.parse_args()
    from genspot.data import load_dataset

    decode, reload = [], []
    for _ in range(args.repeats):
        cache = tempfile.mkdtemp(prefix="genspot-bench-")
        os.environ["GENSPOT_CACHE_DIR"] = cache
        try:
            t = time.perf_counter()
            ds = load_dataset(args.data, progress=False)
            decode.append(time.perf_counter() - t)
            t = time.perf_counter()
            ds2 = load_dataset(args.data, progress=False)
            reload.append(time.perf_counter() - t)
            assert ds2.from_cache and len(ds2) == len(ds)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    n = len(ds)
    print(f"images: {n:,}  cores: {os.cpu_count()}")
    print(f"decode (zip -> uint8 cache): median {statistics.median(decode):.2f} s  ({n / statistics.median(decode):,.0f} img/s)  runs {[round(x, 2) for x in decode]}")
    print(f"cached reload:               median {statistics.median(reload):.2f} s  runs {[round(x, 2) for x in reload]}")


if __name__ == "__main__":
    main()
