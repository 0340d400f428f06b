"""Wall time of the localisation benchmark over N splices, every method but Score-CAM.

    python benchmarks/bench_localise.py --model docs/results/aligned/model --data aligned.zip [--n 500]

The model directory is copied to a temporary folder with its threshold set so that it calls every
splice FAKE: the run then maps exactly N of the splices it holds out (its validation photos, 676
for the aligned models), after scoring all of them as a real run does. The old
faithfulness scores are off (`--faithfulness-n 0`), as the goal (issue 35) is stated for the maps
and their scores. Goal: under 15 minutes on 2 cores for 500 splices. Prints the wall time (the
dataset already decoded in the cache: run `genspot explain-eval --localise` once first) and each
method's ms per splice.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--sources", default="splice:ae:taef2")
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    from genspot.explain.localise import PATCH, LocaliseConfig, evaluate_localisation
    from genspot.explain.methods import METHODS

    with tempfile.TemporaryDirectory() as d:
        model = Path(d) / "model"
        shutil.copytree(args.model, model)
        cfg = json.loads((model / "config.json").read_text())
        cfg["threshold"] = {"margin": -1e6}  # every splice is called FAKE: exactly n are mapped
        (model / "config.json").write_text(json.dumps(cfg))
        methods = [m for m in (*METHODS, PATCH) if m != "scorecam"]
        t0 = time.perf_counter()
        r = evaluate_localisation(LocaliseConfig(model_dir=str(model), data=args.data, out=str(Path(d) / "out"), methods=methods,
                                                 sources=args.sources.split(","), n=args.n, faithfulness_n=0))  # fmt: skip
        wall = time.perf_counter() - t0
    print(f"cores: {os.cpu_count()}  threads: {torch.get_num_threads()}  model {args.model} ({r['model']}), {r['methods']['random']['n']} splices")
    print(f"wall {wall / 60:.1f} min for {r['counts']['sample']} splices (scoring {r['counts']['usable']} candidates first; goal: < 15 min for 500)")
    for m, row in r["methods"].items():
        print(f"  {m:10s} {row['ms_per_image']:8.1f} ms per splice")
    print(f"  predict    {r['predict_ms_per_image']:8.1f} ms per splice")


if __name__ == "__main__":
    main()
