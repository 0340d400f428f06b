"""How well the domain check works: `genspot domain eval`.

In-distribution: the "check half" of the model's validation split, which neither the fit (a
training sample) nor the threshold (the other half) saw; its flagged share estimates the false
alarm rate (the target is at most 5%). Out of distribution: the same images under each
robustness perturbation, the same images in grayscale, large generated scenes, and any other
data set named (faces256, say), each decoded exactly as `genspot predict` decodes. For each: the
learned score's AUROC against the check half, and the share flagged by the score alone and by
the whole check (rule + score).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from genspot.domain import DomainStats, ImageFacts, _halves, features_of, formats_of, rule_reasons
from genspot.errors import GenspotError

N_LARGE = 200


def _auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(an outside image scores above an inside one), ties counting half (Mann-Whitney U).

    Computed from ranks, not with torchmetrics: its AUROC reads scores outside [0, 1] as
    logits and squashes them with a sigmoid, and distances of 20-40 all saturate to 1.0."""
    _, inv, counts = np.unique(np.r_[inside, outside], return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inv]  # tied values share their average rank
    n_in, n_out = len(inside), len(outside)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def _large_scenes(n: int, seed: int) -> list[bytes]:
    """Large smooth random scenes (1024x768 JPEG, quality 90): photo-sized images no CIFAKE model has seen."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((1024, 768), Image.Resampling.BICUBIC)
        a = np.asarray(img, dtype=np.int16) + rng.normal(0, 6, (768, 1024, 3)).astype(np.int16)
        buf = io.BytesIO()
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _decoded(blobs: list[tuple[str, bytes]], size: int, policy: str = "resize") -> tuple[torch.Tensor, list[ImageFacts]]:
    from genspot.data.image import read_input

    arrays, facts = [], []
    for _, data in blobs:
        a, f = read_input(data, size, policy)
        arrays.append(a)
        facts.append(f)
    return torch.from_numpy(np.stack(arrays)), facts


def _files(path: str) -> list[tuple[str, bytes]]:
    from genspot.data.inputs import iter_inputs

    items = [(it.name, it.data) for it in iter_inputs([path]) if it.data is not None]
    if not items:
        raise GenspotError(f"no readable images in {path}")
    return items


def evaluate_domain(model_dir: str, data: str | Path, others: dict[str, str] | None = None, n: int = 2000, seed: int = 0,
                    progress: bool = True) -> dict[str, Any]:
    """The domain check's rates on held-out in-distribution images and on each other set."""
    from genspot.data import load_dataset
    from genspot.data.splits import splits_from_config
    from genspot.data.perturb import SUITE
    from genspot.models.io import load_model_dir, resolve_model_dir
    d = resolve_model_dir(model_dir)
    model, cfg = load_model_dir(d)
    stats = DomainStats.load(d, cfg)
    if stats is None:
        raise GenspotError(f"{model_dir} has no domain statistics; run `genspot domain fit {model_dir} --data ...` first")
    info, size = cfg.domain, cfg.input_size
    ds = load_dataset(data, size=size, progress=progress, policy=cfg.input_policy)
    if cfg.data.fingerprint != ds.fingerprint:
        raise GenspotError(f"{data} is not the data {model_dir} was trained on (fingerprints differ)")
    s = splits_from_config(ds, cfg.data)
    _, check = _halves(s.val, info["fitted_on"]["seed"])
    threshold = stats.threshold

    def scores_of(images: torch.Tensor, label: str) -> tuple[np.ndarray, np.ndarray]:
        feats, p = features_of(model, cfg, images, progress=f"domain: {label}" if progress else None, with_p_fake=True)
        return stats.score(feats), p

    def accuracy(p: np.ndarray, y: np.ndarray | None) -> float | None:
        return None if y is None else round(float(((p >= cfg.fake_threshold).astype(np.int64) == y).mean()), 4)

    def flags(images: torch.Tensor, facts: list[ImageFacts | None], sc: np.ndarray, p: np.ndarray) -> tuple[float, float]:
        names = cfg.class_names
        verdicts = [cfg.label_of(float(v)) for v in p] if "FAKE" in names else [None] * len(p)
        rule = np.array([bool(rule_reasons(f, a, cfg, "auto", v)) for f, a, v in zip(facts, images.numpy(), verdicts)])
        learned = sc > threshold
        return float(learned.mean()), float((learned | rule).mean())

    # In distribution: the check half, with each image's own size and format.
    formats = formats_of(ds, check)
    in_facts = [ImageFacts(int(ds.sizes[i, 0]), int(ds.sizes[i, 1]), f, "RGB") for i, f in zip(check, formats)]
    in_images = ds.images[check]
    in_scores, in_p = scores_of(in_images, "validation check half")
    learned_share, all_share = flags(in_images, in_facts, in_scores, in_p)
    lo, hi = _share_ci(in_scores > threshold)
    result: dict[str, Any] = {
        "model": cfg.name or str(model_dir), "threshold": threshold, "quantile": info["quantile"],
        "in_distribution": {"set": f"validation check half (seed {info['fitted_on']['seed']}; not used to fit or threshold)",
                            "n": int(len(check)), "flagged_by_score": learned_share, "flagged_by_score_ci95": [lo, hi],
                            "flagged_by_check": all_share, "score_median": float(np.median(in_scores)),
                            "accuracy": accuracy(in_p, ds.labels[check].numpy())},
        "sets": [],
    }  # fmt: skip

    def add(name: str, what: str, images: torch.Tensor, facts: list[ImageFacts | None], y: np.ndarray | None = None) -> None:
        sc, p = scores_of(images, name)
        learned, combined = flags(images, facts, sc, p)
        result["sets"].append({"set": name, "what": what, "n": int(len(images)), "auroc": round(_auroc(in_scores, sc), 4),
                               "flagged_by_score": learned, "flagged_by_check": combined, "score_median": float(np.median(sc)),
                               "accuracy": accuracy(p, y)})  # fmt: skip

    sample = np.sort(np.random.default_rng(seed).permutation(check)[:n])
    base, y = ds.images[sample], ds.labels[sample].numpy()
    base_facts = [ImageFacts(int(ds.sizes[i, 0]), int(ds.sizes[i, 1]), "JPEG", "RGB") for i in sample]
    for p in SUITE:
        if p.family == "clean":
            continue
        add(f"perturbed: {p.name}", f"{n:,} check-half images under {p.name}", p.fn(base), base_facts, y)
    gray = torch.from_numpy(np.stack([np.repeat(np.asarray(Image.fromarray(a.transpose(1, 2, 0)).convert("L"))[None], 3, 0)
                                      for a in base.numpy()]))  # fmt: skip
    add("grayscale", f"{n:,} check-half images in grayscale (luminance copied to R, G, B)", gray,
        [ImageFacts(f.width, f.height, "JPEG", "L") for f in base_facts], y)
    large, large_facts = _decoded([("", b) for b in _large_scenes(N_LARGE, seed)], size, cfg.input_policy)
    add("large scenes", f"{N_LARGE} generated 1024x768 JPEG scenes (smooth random colour fields with noise), resized as predict does", large, large_facts)
    for name, path in (others or {}).items():
        files = _files(path)
        images, facts = _decoded(files, size, cfg.input_policy)
        labels = [_label_of(n) for n, _ in files]
        y_other = np.array(labels) if all(v is not None for v in labels) else None
        add(name, f"{len(images):,} images of {path}, resized as predict does", images, facts, y_other)
    return result


def _label_of(name: str) -> int | None:
    from genspot.data.sources import classify_path

    c = classify_path(name.split(":", 1)[-1])
    return None if c is None else c[0]


def _share_ci(flags: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    from genspot.evaluate import bootstrap_ci

    return bootstrap_ci(flags.astype(np.int64), n_boot=n_boot, seed=seed)


def domain_markdown(r: dict[str, Any], command: str) -> str:
    ind = r["in_distribution"]
    lo, hi = ind["flagged_by_score_ci95"]
    lines = [
        f"# Domain check of `{r['model']}`", "", "```bash", command, "```", "",
        f"Learned score: Mahalanobis distance of the model's penultimate features to the nearest class mean; "
        f"threshold {r['threshold']:.2f} (the {100 * r['quantile']:.0f}th percentile on one half of the validation split).", "",
        f"**In distribution** ({ind['set']}, n = {ind['n']:,}): flagged by the score {100 * ind['flagged_by_score']:.2f}% "
        f"[{100 * lo:.2f}, {100 * hi:.2f}] (target at most 5%); by the whole check (rule + score) {100 * ind['flagged_by_check']:.2f}%; "
        f"the model's accuracy there {100 * ind['accuracy']:.2f}%.", "",
        "| set | n | AUROC of the score (against the check half) | flagged by the score | flagged by the check (rule + score) | the model's accuracy |",
        "|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for x in r["sets"]:
        acc = "-" if x.get("accuracy") is None else f"{100 * x['accuracy']:.1f}%"
        lines.append(f"| {x['set']} | {x['n']:,} | {x['auroc']:.3f} | {100 * x['flagged_by_score']:.1f}% | {100 * x['flagged_by_check']:.1f}% | {acc} |")
    lines += ["", "Sets: " + "; ".join(f"**{x['set']}**: {x['what']}" for x in r["sets"]) + ".", ""]
    return "\n".join(lines)
