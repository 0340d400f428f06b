"""Ship a trained run as one of genspot's packaged detectors: measure, calibrate, copy, write the card.

    python scripts/ship_default.py RUN_DIR --data ../shared/data/cifake-train.zip \
        --command "genspot train ..." [--name default|pristine] [--robustness robustness.json --decision note.md]

Steps, all measured here and written into src/genspot/weights/<name>/:
  1. fit temperature scaling on the run's validation split (`genspot calibrate`), ECE before/after;
  2. evaluate on the same validation split (accuracy with a 95% bootstrap interval, F1, ROC-AUC);
  3. copy model.safetensors + config.json (with the temperature) and write MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from genspot.models.io import SHIPPED, shipped_model_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--command", required=True, help="the exact training command, for the card")
    ap.add_argument("--device", default="CPU, 2 cores (fp32 weights, bf16 autocast in training)")
    ap.add_argument("--experiments", default="docs/results/default/experiments.md")
    ap.add_argument("--name", default="default", choices=SHIPPED, help="which packaged detector this run becomes")
    ap.add_argument("--robustness", type=Path, help="robustness.json (this model and others), for the card's robustness table")
    ap.add_argument("--decision", type=Path, help="Markdown: which packaged detector is the default, and why")
    ap.add_argument("--card-only", action="store_true", help="rewrite MODEL_CARD.md from the shipped files, measuring nothing")
    ap.add_argument("--domain-results", type=Path, help="domain.json from `genspot domain eval`, for the card's domain section")
    args = ap.parse_args()
    dest = shipped_model_dir(args.name)

    from genspot.calibrate import calibrate
    from genspot.evaluate import evaluate
    from genspot.models import count_parameters
    from genspot.models.io import CONFIG_FILE, WEIGHTS_FILE, load_model_dir, read_spec, write_config

    if args.card_only:
        m = json.loads((dest / "metrics.json").read_text())
        ev, cal = m["validation"], m["calibration"]
        model, cfg = load_model_dir(dest)
        write_card(args, dest, cfg, ev, cal, count_parameters(model)[0])
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / args.name
        work.mkdir()
        for f in (WEIGHTS_FILE, CONFIG_FILE):
            shutil.copy2(args.run_dir / f, work / f)
        write_config(read_spec(work).to_config(name=args.name), work)
        cal = calibrate(work, args.data, split="val")
        ev = evaluate(work, args.data, split="val")
        ev["model_dir"] = args.name  # what `--model NAME` loads, not the temporary copy scored here
        model, cfg = load_model_dir(work)
        params = count_parameters(model)[0]
        dest.mkdir(parents=True, exist_ok=True)
        for f in (WEIGHTS_FILE, CONFIG_FILE):
            shutil.copyfile(work / f, dest / f)
            (dest / f).chmod(0o644)
    # New weights: figures measured on the old ones (the held-out split's among them) do not carry over.
    (dest / "metrics.json").write_text(json.dumps({"validation": ev, "calibration": cal}, indent=2) + "\n")
    write_card(args, dest, cfg, ev, cal, params)


def robustness_table(path: Path | None, name: str) -> str:
    if path is None or not path.is_file():
        return f"Not measured yet: `genspot robustness {name} --data ../shared/data/cifake-train.zip --out DIR`."
    models = json.loads(path.read_text())["models"]
    m0 = models[0]
    lines = [f"{m0['split']}, n = {m0['n']:,}, from [`{path}`](../../../../{path.with_suffix('.md')}); accuracy and its drop "
             "from clean accuracy in points, per packaged detector:", "",
             "| perturbation | " + " | ".join(f"{m['name']} acc | drop" for m in models) + " |",
             "|---|" + "---:|---:|" * len(models)]
    for i, row in enumerate(m0["rows"]):
        cells = [f"{100 * m['rows'][i]['accuracy']:.2f}% | {m['rows'][i]['drop_pt']:+.2f}" for m in models]
        lines.append(f"| {row['perturbation']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def domain_section(cfg, path: Path | None, name: str) -> str:
    """What the `domain` flag means for this detector (cfg: its ModelSpec), and its measured rates."""
    info = cfg.domain
    if not info:
        return ("No domain statistics: `domain` comes from the size and colour rule alone "
                f"(`genspot domain fit {name} --data ../shared/data/cifake-train.zip` adds the learned score).")
    lo, hi = info["train_sizes"]
    gray = " and ".join(f"{100 * v:.1f}% of {k}" for k, v in info.get("train_gray_share", {}).items()) + " training images"
    text = [
        "Every prediction carries `domain`: `in`, or `out` with a `domain_reason`. `out` means the image is unlike what",
        "this detector was trained on, so its verdict there is closer to a guess; `p_fake` and `label` are computed as",
        "always. It is `out` when any of these holds:", "",
        f"- the image is over {2 * max(hi)} px or under {min(lo) // 2} px on a side (trained on {lo[0]}x{lo[1]} images, resized to its input);",
        f"- it is not {', '.join(info['train_formats'])} (trained on {', '.join(info['train_formats'])} files), or it is grayscale and called "
        f"the class grayscale was concentrated in ({gray});",
        "- its features are far from the training data's: Mahalanobis distance of the penultimate features to the nearest class",
        f"  mean above {info['threshold']:.2f}, the {100 * info['quantile']:.0f}th percentile on half of the validation split (fitted on "
        f"{info['fitted_on']['train_images']:,} training images), computed in the verdict's own forward pass.",
    ]  # fmt: skip
    if path is not None and path.is_file():
        r = json.loads(path.read_text())
        ind = r["in_distribution"]
        a, b = ind["flagged_by_score_ci95"]
        text += ["", f"Fitted by `genspot domain fit {name} --data ../shared/data/cifake-train.zip`; measured by the command on top of "
                 f"[`{path.parent}/domain.md`](../../../../{path.parent}/domain.md): of "
                 f"{ind['n']:,} held-out validation images that neither fit nor threshold saw, {100 * ind['flagged_by_score']:.1f}% "
                 f"[{100 * a:.1f}, {100 * b:.1f}] are flagged by the score and {100 * ind['flagged_by_check']:.1f}% by the whole check "
                 "(the grayscale rule flags the grayscale images called FAKE).", "",
                 "| other images | AUROC of the score | flagged `out` | accuracy there |", "|---|---:|---:|---:|"]  # fmt: skip
        for x in r["sets"]:
            acc = "-" if x.get("accuracy") is None else f"{100 * x['accuracy']:.1f}%"
            text.append(f"| {x['set']} | {x['auroc']:.3f} | {100 * x['flagged_by_check']:.1f}% | {acc} |")
    return "\n".join(text)


def recipe(cfg) -> str:
    """One line per trained network: an ensemble's config keeps each member's training recipe."""
    members = cfg.ensemble or [{"model": cfg.model, "training": cfg["training"]}]
    lines = []
    for i, m in enumerate(members, 1):
        t = m["training"]
        who = f"Member {i} (`{m['model']}`): " if len(members) > 1 else "Recipe: "
        lines.append(f"{who}{t['epochs']} epochs, {t['optimizer']} lr {t['lr']} ({t['schedule']}), weight decay "
                     f"{t['weight_decay']}, label smoothing {t['label_smoothing']}, batch {t['batch_size']}, "
                     f"augmentation `{t['augment']}`, precision {t['precision']}.")
    if len(members) > 1:
        lines.append("The ensemble averages its members' logits (one network); its temperature is fitted on "
                     "their common validation split.")
    return "\n".join(lines)


def architecture(cfg) -> str:
    members = cfg.ensemble
    if not members:
        return f"`{cfg.model}` {dict(cfg.model_kwargs) or ''}".strip()
    return f"`{cfg.model}`: " + " + ".join(f"`{m['model']}`" for m in members) + ", logits averaged"


def write_card(args, dest: Path, cfg, ev, cal, params) -> None:
    from genspot.models.io import WEIGHTS_FILE

    size_mb = (dest / WEIGHTS_FILE).stat().st_size / 1e6
    lo, hi = ev["accuracy_ci95"]
    decision = args.decision.read_text().strip() + "\n" if args.decision and args.decision.is_file() else ""
    metrics_file = dest / "metrics.json"
    heldout = json.loads(metrics_file.read_text()).get("heldout") if metrics_file.is_file() else None
    heldout_text = ("Not scored yet: the official test split is held out from this project and scored independently."
                    if not heldout else
                    f"Scored independently on {heldout['date']}, on {heldout['split']}: accuracy **{100 * heldout['accuracy']:.2f}%** "
                    f"of {heldout['n']:,} images; {100 * heldout['accuracy_without_train_copies']:.2f}% of the "
                    f"{heldout['n_without_train_copies']:,} with no byte-identical copy in the training split.")  # fmt: skip
    usage = ("`genspot predict IMAGE` and `Detector.load()` use this model when no other is given."
             if args.name == "default" else
             f"`genspot predict IMAGE --model {args.name}` and `Detector.load(\"{args.name}\")` use this model.")
    card = f"""# genspot {args.name} detector

{usage}

| | |
|---|---|
| architecture | {architecture(cfg)} ({params:,} parameters, {size_mb:.1f} MB safetensors) |
| input | RGB, {cfg.input_size}x{cfg.input_size}, ImageNet mean/std; test-time augmentation: {cfg.tta} |
| output | 2 logits (REAL, FAKE); `p_fake` = softmax(logits / T)[FAKE], T = {cal['temperature']:.3f} |
| trained on | {cfg.data.n_train:,} images of the CIFAKE training split; {cfg.data.n_val:,} more held out for validation (seed {cfg.data.split_seed}, duplicate groups on one side) |
| device | {args.device} |

## Training command

```bash
{args.command}
```

{recipe(cfg)}
Every run that led here: [experiments.md](../../../../{args.experiments}).

## Validation metrics (n = {ev['n']:,}; the official test split is held out and scored independently)

| metric | value |
|---|---|
| accuracy | {ev['accuracy']:.4f} (95% bootstrap CI {lo:.4f} to {hi:.4f}) |
| FAKE precision / recall / F1 | {ev['precision']:.4f} / {ev['recall']:.4f} / {ev['f1']:.4f} |
| ROC-AUC | {ev['roc_auc']:.5f} |
| confusion matrix (rows true REAL, FAKE) | {ev['confusion_matrix']} |

Reproduce: `genspot evaluate {args.name} --data ../shared/data/cifake-train.zip --split val`.

## Held-out test split

{heldout_text}

## Calibration (temperature scaling fitted on the validation split)

| | before | after |
|---|---|---|
| ECE (15 bins) | {cal['ece_before']:.4f} | {cal['ece_after']:.4f} |
| NLL | {cal['nll_before']:.4f} | {cal['nll_after']:.4f} |

T = {cal['temperature']:.4f}. The temperature was fitted and measured on the same split, so the
"after" figures are optimistic; on other data the calibration holds only as far as the data resembles CIFAKE.

## Speed

Batched inference on this machine: {ev['images_per_second']:,.0f} images/s (decoded 32x32 tensors, {cfg.tta} TTA).
End-to-end figures: `python benchmarks/bench_predict.py --model {args.name}` ([docs/benchmarks.md](../../../../docs/benchmarks.md)).

## Robustness

{robustness_table(args.robustness, args.name)}

{decision}
## Domain check

{domain_section(cfg, args.domain_results, args.name)}

## Intended use

Research and triage on images like CIFAKE's: small photos of everyday objects vs Stable
Diffusion 1.4 images of the same classes. `p_fake` is a calibrated score on that distribution.

## Limits

- Trained only on 32x32 images: Stable Diffusion 1.4 outputs downscaled to 32x32 vs CIFAR-10
  photos, all JPEG-compressed. Larger images are downscaled (`--mode resize`) or scored as
  32x32 tiles (`--mode tiles`); neither is what the model was trained on.
- Not a general deepfake detector: other generators (Midjourney, DALL-E, SDXL, GANs), faces,
  edited photos, screenshots and heavy re-compression or resizing are out of distribution,
  and its score on them means little.
- Part of what it has learned may be dataset artefacts (class content, JPEG history) rather
  than generation traces; the heat maps (`genspot explain`) show where it looks.
- Never use a score alone to accuse a person of fabricating an image.
"""
    (dest / "MODEL_CARD.md").write_text(card)
    print(f"shipped {args.run_dir} -> {dest}: val acc {ev['accuracy']:.4f} [{lo:.4f}, {hi:.4f}], "
          f"T {cal['temperature']:.3f}, ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}, {size_mb:.1f} MB")


if __name__ == "__main__":
    main()
