"""Validation accuracy of an average of several models' calibrated P(FAKE): is a short ensemble worth it?

    python scripts/ensemble_val.py default robust --data ../shared/data/cifake-train.zip

All models must share one validation split (same data, split seed and fraction); each is scored
with its own TTA and temperature, then the probabilities are averaged. Prints one JSON object:
each model alone and the ensemble, accuracy with a 95% bootstrap interval and ROC-AUC.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="model directories, `default` or `robust`")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    args = ap.parse_args()

    from genspot.data import load_dataset
    from genspot.evaluate import classification_metrics, predict_scores, select_indices
    from genspot.models.io import load_model_dir

    ds, idx, scores, out = None, None, [], {}
    for md in args.models:
        model, cfg = load_model_dir(md)
        if ds is None:
            ds = load_dataset(args.data, size=int(cfg.get("input_size", 32)), progress=False)
        this_idx, _ = select_indices(ds, cfg, args.split)
        if idx is not None and not np.array_equal(idx, this_idx):
            raise SystemExit(f"error: {md} has another {args.split} split than {args.models[0]}; an ensemble needs one")
        idx = this_idx
        scores.append(predict_scores(model, cfg, ds, idx))
    y = ds.labels[torch.as_tensor(idx)].numpy()
    for md, s in zip(args.models, scores):
        out[md] = classification_metrics(y, s)
    out["ensemble(" + "+".join(args.models) + ")"] = classification_metrics(y, np.mean(scores, 0))
    keep = ("n", "accuracy", "accuracy_ci95", "roc_auc", "f1")
    print(json.dumps({k: {f: v[f] for f in keep} for k, v in out.items()}, indent=2))


if __name__ == "__main__":
    main()
