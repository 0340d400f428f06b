"""Heat maps of an aligned detector on its validation photos: each photo, its TAEF2 round trip and
its splice (with the splice's mask), under CAM, Grad-CAM and Grad-CAM++.

    python scripts/aligned_grid.py --model runs/photo --data aligned.zip --out docs/results/aligned/grid.png

Rows: a validation photo (REAL), its `ae:taef2` fake, its `splice:ae:taef2` fake; columns: the
image with P(FAKE), the splice mask (splice rows), then each method's map for FAKE as an overlay.
The photos are a seeded draw from the model's validation split (never trained on).
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, ImageDraw

from genspot.data import load_dataset
from genspot.data.batches import normalize
from genspot.data.splits import splits_from_config
from genspot.explain.methods import explain_batch
from genspot.explain.render import overlay
from genspot.models.io import load_model_dir

METHODS = ("cam", "gradcam", "gradcam++")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    model, spec = load_model_dir(a.model)
    ds = load_dataset(a.data, size=spec.input_size, policy=spec.input_policy, progress=False)
    val = splits_from_config(ds, spec.data).val
    stems = sorted({PurePosixPath(ds.paths[i]).stem for i in val})
    picks = [stems[i] for i in sorted(np.random.default_rng(a.seed).choice(len(stems), a.photos, replace=False))]
    where = {p: i for i, p in enumerate(ds.paths)}
    rows, masks, names = [], [], []
    z = zipfile.ZipFile(a.data)
    members = set(z.namelist())
    for s in picks:
        for src, cls, title in (("ae:taef2", "0_real", "photo"), ("ae:taef2", "1_fake", "ae:taef2"), ("splice:ae:taef2", "1_fake", "splice")):
            path = next(p for p in where if p.startswith(f"{src}/{cls}/{s}."))
            rows.append(where[path])
            names.append((title, s[:22]))
            m = f"{src}/masks/{s}.png"
            if m in members:
                mk = Image.open(io.BytesIO(z.read(m))).convert("L")
                w, h = mk.size
                left, top = (w - spec.input_size) // 2, (h - spec.input_size) // 2  # the model's centre crop
                masks.append(np.asarray(mk.crop((left, top, left + spec.input_size, top + spec.input_size))))
            else:
                masks.append(None)
    x_u8 = ds.images[torch.as_tensor(rows)]
    x = normalize(x_u8, spec.mean, spec.std)
    imgs = x_u8.numpy().transpose(0, 2, 3, 1)
    cols = []
    p_fake = None
    for m in METHODS:
        r = explain_batch(model, spec, x, method=m, target="fake")
        p_fake = r["p_fake"] if p_fake is None else p_fake
        cols.append([overlay(img, mp) for img, mp in zip(imgs, r["maps"])])
    cell, head, left = 128, 20, 170
    titles = ["image", "mask"] + [m for m in METHODS]
    canvas = Image.new("RGB", (left + cell * len(titles), head + cell * len(rows)), "white")
    d = ImageDraw.Draw(canvas)
    for j, t in enumerate(titles):
        d.text((left + j * cell + 4, 4), t, fill="black")
    for i in range(len(rows)):
        y = head + i * cell
        d.text((4, y + cell // 2 - 22), names[i][0], fill="black")
        d.text((4, y + cell // 2 - 8), names[i][1], fill="gray")
        d.text((4, y + cell // 2 + 6), f"P(FAKE) {float(p_fake[i]):.3f}", fill="black")
        canvas.paste(Image.fromarray(imgs[i]).resize((cell, cell)), (left, y))
        if masks[i] is not None:
            canvas.paste(Image.fromarray(masks[i]).convert("RGB").resize((cell, cell)), (left + cell, y))
        for j, col in enumerate(cols):
            canvas.paste(Image.fromarray(col[i]).resize((cell, cell)), (left + (j + 2) * cell, y))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(a.out)
    print(f"{len(rows)} rows x {len(titles)} columns into {a.out}")


if __name__ == "__main__":
    main()
