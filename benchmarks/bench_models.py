"""Parameters and raw training throughput (forward + backward + SGD step) of every zoo model.

    python benchmarks/bench_models.py [--precisions 32,bf16] [--batch-size 128] [--seconds 8] [--compile]
    python benchmarks/bench_models.py --image-size 256 --batch-size 16   # every model at 256 px

Prints one row per model: parameters, and img/s at each precision (channels-last, medians
of per-step times after 2 warm-up steps). These are the numbers quoted in the README.
`--compile` adds a torch.compile'd column beside each precision, in the same run (the
compilation itself happens in the warm-up steps and is left out of the rate).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F


def step_rate(name: str, batch: int, precision: str, seconds: float, compile: bool = False, size: int = 32) -> float:
    from genspot.models import create_model
    from genspot.models.registry import sized_kwargs

    torch.manual_seed(0)
    m = create_model(name, **sized_kwargs(name, size)).train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    if compile:
        m = torch.compile(m)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,))
    times: list[float] = []
    start = time.perf_counter()
    i = 0
    while i < 5 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
        i += 1
    return batch / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=None)
    ap.add_argument("--precisions", default="32,bf16")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--compile", action="store_true", help="also time each precision with torch.compile")
    ap.add_argument("--image-size", type=int, default=32, help="input size S (cifake_cnn and vit_p2 are built for it)")
    args = ap.parse_args()
    from genspot.models import count_parameters, create_model, list_models

    names = args.models.split(",") if args.models else list_models()
    precs = args.precisions.split(",")
    runs = [(p, c) for p in precs for c in ((False, True) if args.compile else (False,))]
    print(f"cores: {os.cpu_count()}  threads: {torch.get_num_threads()}  batch: {args.batch_size}  input {args.image_size}px  torch {torch.__version__}")
    print("| model | parameters | " + " | ".join(f"train img/s ({p}{', compiled' if c else ''})" for p, c in runs) + " |")
    print("|---|---:|" + "---:|" * len(runs))
    for name in names:
        from genspot.models.registry import sized_kwargs

        total, _ = count_parameters(create_model(name, **sized_kwargs(name, args.image_size)))
        rates = [step_rate(name, args.batch_size, p, args.seconds, c, args.image_size) for p, c in runs]
        print(f"| {name} | {total:,} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |", flush=True)


if __name__ == "__main__":
    main()
