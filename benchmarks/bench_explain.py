"""Explanation throughput: Grad-CAM++ maps/s against the model's own training-step img/s.

    python benchmarks/bench_explain.py [--models cifake_cnn,spot_resnet_s] [--n 2000]

For each model (random weights: speed does not depend on them), in one process:
  (a) training step img/s (forward + backward + SGD step, batch 64, fp32, channels-last);
  (b) Grad-CAM++ maps/s on in-memory batches of 64 (`explain_batch`);
  (c) end to end `genspot explain` over a generated zip of --n JPEGs: read, decode, explain,
      write the .npy and the .png for every image.
Target (issue 4): (b) >= 50% of (a). Prints all three and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_models import step_rate  # noqa: E402


def maps_rate(name: str, batch: int, seconds: float) -> float:
    from genspot.explain import explain_batch
    from genspot.models import create_model
    from genspot.models.spec import ModelSpec

    torch.manual_seed(0)
    m = create_model(name).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    cfg = ModelSpec(model=name)
    times, start = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        explain_batch(m, cfg, x, method="gradcam++")
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times[1:])


def end_to_end(name: str, n: int, d: Path) -> float:
    from genspot.data.synthetic import make_toy_archive
    from genspot.explain.run import explain_paths
    from genspot.models import create_model
    from genspot.models.io import save_model_dir
    from genspot.models.registry import IMAGENET_MEAN, IMAGENET_STD

    model_dir = d / f"model-{name}"
    save_model_dir(create_model(name), {"model": name, "model_kwargs": {}, "class_names": ["REAL", "FAKE"],
                   "positive_class": "FAKE", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}, model_dir)  # fmt: skip
    data = d / "imgs.zip"
    if not data.exists():
        make_toy_archive(data, n // 2, seed=0)
    from genspot.predict import Detector

    s = explain_paths([str(data)], Detector.load(model_dir), d / f"out-{name}", method="gradcam++", progress=False)
    return s.written / s.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="cifake_cnn,spot_resnet_s")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}  threads: {torch.get_num_threads()}  batch 64, fp32, Grad-CAM++")
    with tempfile.TemporaryDirectory() as d:
        for name in args.models.split(","):
            train = step_rate(name, 64, "32", args.seconds)
            maps = maps_rate(name, 64, args.seconds)
            e2e = end_to_end(name, args.n, Path(d))
            print(f"{name:14s} train step {train:7,.0f} img/s | Grad-CAM++ {maps:7,.0f} maps/s ({maps / train:.2f} of train) "
                  f"| end to end with PNG + npy {e2e:6,.0f} img/s ({e2e / train:.2f})", flush=True)


if __name__ == "__main__":
    main()
