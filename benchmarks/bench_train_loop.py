"""Is the training loop the bottleneck? genspot's Lightning loop vs the model's raw step.

    python benchmarks/bench_train_loop.py [--models cifake_cnn,spot_resnet_s] [--precision 32] [--n 20000]
    python benchmarks/bench_train_loop.py --recipe fast   # the recipe's model, precision, batch and augmentation
    python benchmarks/bench_train_loop.py --models npr --image-size 256 --patch 64 --batch-size 64 --augment flip

For each model, in one process: (a) raw throughput of forward + backward + optimizer step on
a fixed, pre-normalised batch (no data handling at all); (b) images/s of `genspot.train.fit`
(batching from the uint8 cache, augmentation, Lightning, validation excluded), median of epochs 2-3; raw is the median of 3 runs around it.
Target (issue 2): (b) within 10% of (a). Prints both and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_models import step_rate  # noqa: E402  (the raw step: forward + backward + SGD step)


def loop_throughput(name: str, data: Path, out: Path, batch: int, precision: str, augment: str = "flip-crop", size: int = 32,
                    patch: int = 0) -> float:  # fmt: skip
    from genspot.train import TrainConfig, fit

    fit(TrainConfig(model=name, data=str(data), out=str(out), epochs=3, batch_size=batch, precision=precision,
                    augment=augment, val_fraction=0.05, progress=False, device="cpu", image_size=size, patch=patch))  # fmt: skip
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["images_per_second"] for r in rows[1:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="cifake_cnn,spot_resnet_s")
    ap.add_argument("--precision", default="32")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--augment", default="flip-crop")
    ap.add_argument("--recipe", default=None, help="take model, precision, batch size and augmentation from this recipe")
    ap.add_argument("--n", type=int, default=20000, help="toy training images (generated)")
    ap.add_argument("--image-size", type=int, default=32, help="input size S; above 32 the toy images are made at 1.25 S and cropped")
    ap.add_argument("--patch", type=int, default=0, help="train on P x P patches of the S x S input (the raw step then runs at P)")
    args = ap.parse_args()
    if args.recipe:
        from genspot.recipes import recipe

        r = recipe(args.recipe)
        args.models, args.precision, args.batch_size, args.augment = r["model"], r["precision"], r["batch_size"], r["augment"]
    from genspot.data.synthetic import make_toy_archive

    with tempfile.TemporaryDirectory() as d:
        os.environ["GENSPOT_CACHE_DIR"] = str(Path(d) / "cache")
        data = make_toy_archive(Path(d) / "toy.zip", args.n // 2, seed=0, size=args.image_size + args.image_size // 4 if args.image_size > 32 else 32)
        print(f"cores: {os.cpu_count()}  torch threads: {torch.get_num_threads()}  precision: {args.precision}  batch: {args.batch_size}"
              f"  augment: {args.augment}")  # fmt: skip
        for name in args.models.split(","):
            # The machine is noisy: raw runs before and after the loop, medians of each.
            step = args.patch or args.image_size  # the size each training step sees
            raws = [step_rate(name, args.batch_size, args.precision, 6.0, size=step)]
            loop = loop_throughput(name, data, Path(d) / name, args.batch_size, args.precision, args.augment, args.image_size, args.patch)
            raws += [step_rate(name, args.batch_size, args.precision, 6.0, size=step) for _ in range(2)]
            raw = statistics.median(raws)
            print(f"{name:16s} raw step {raw:8,.0f} img/s   genspot loop {loop:8,.0f} img/s   loop/raw {loop / raw:.2f}")


if __name__ == "__main__":
    main()
