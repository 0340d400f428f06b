"""Whole-image effect of training with splices: each source scored on the validation photos of two
models trained with one recipe, one with splices among its fakes and one without.

    python scripts/splice_training_scores.py    # writes docs/results/localise/splice-training.json
"""

import json

from genspot.crossgen import score_sources
from genspot.data import load_dataset

ds = load_dataset("aligned.zip", size=256, policy="crop", progress=False)
out = {}
for name, d in [("safe-3ep", "runs/loc/safe-3ep"), ("safe-splice-3ep", "runs/loc/safe-splice-3ep")]:
    out[name] = score_sources(d, ds, ["ae:taef2", "splice:ae:taef2"])
    for r in out[name]:
        print(name, r["source"], r["n"], r.get("roc_auc"), r.get("roc_auc_ci95"), r.get("tpr_at_fpr"), flush=True)
with open("docs/results/localise/splice-training.json", "w") as f:
    json.dump(out, f, indent=2, default=float)
