"""Round trips per second through TAEF2 at 256x256, fp32, on this machine's cores: genspot synth's
engine against a straightforward loop (one image at a time, torch's default threads) over the same
network and the same photos, measured in one run.

    python benchmarks/bench_synth.py [--photos ../shared/data/photos-train.zip] [--n 48] [--workers 2]

The engine's figure is end to end (read, decode, round trip, encode in the photo's container, write
the archive), for `ae:taef2` alone; the loop's is the network alone, so the ratio understates the
engine's advantage on the network itself.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def photos(path: Path, n: int) -> list[bytes]:
    with zipfile.ZipFile(path) as z:
        names = sorted(x for x in z.namelist() if x.lower().endswith(".jpg"))[:n]
        return [z.read(x) for x in names]


def plain_loop(blobs: list[bytes], weights: Path) -> float:
    """Round trips per second, one image at a time: decode, to tensor, encoder, decoder."""
    import torch
    from PIL import Image

    from genspot.synth.taesd import TinyAutoencoder

    ae = TinyAutoencoder.load(weights)
    t0 = time.perf_counter()
    for b in blobs:
        x = torch.from_numpy(np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
        with torch.no_grad():
            ae.decoder(ae.encoder(x)).clamp(0, 1)
    return len(blobs) / (time.perf_counter() - t0)


def engine(src: Path, n: int, weights: Path, workers: int) -> float:
    from genspot.synth.engine import SynthConfig, synth

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        m = synth(SynthConfig(photos=[str(src)], out=str(Path(d) / "a.zip"), operators=["ae:taef2"], autoencoders={"taef2": str(weights)},
                              limit=n, workers=workers, progress=False))  # fmt: skip
        return m["photos"] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=ROOT / ".." / "shared" / "data" / "photos-train.zip")
    ap.add_argument("--weights", type=Path, default=ROOT / ".." / "shared" / "weights" / "taef2")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    blobs = photos(args.photos, args.n)
    loop, eng = [], {w: [] for w in args.workers}
    for _ in range(args.repeats):  # alternated, so drift on a noisy machine hits both
        loop.append(plain_loop(blobs, args.weights))
        for w in args.workers:
            eng[w].append(engine(args.photos, args.n, args.weights, w))
    base = statistics.median(loop)
    print(f"{args.n} photos of 256x256, fp32, medians of {args.repeats}")
    print(f"plain loop (one image at a time): {base:.2f} round trips/s")
    for w, v in eng.items():
        print(f"genspot synth, workers {w}: {statistics.median(v):.2f} photos/s end to end = {statistics.median(v) / base:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
