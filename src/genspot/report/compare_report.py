"""results.md, learning_curves.png and tradeoff.png for `genspot compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _versus(acc: float, lo: float, reported: dict[str, float]) -> str:
    """Difference to the reported figure, and whether the whole interval lies above it."""
    ref = reported.get("study", reported.get("paper"))
    if ref is None:
        return "-"
    diff = 100 * (acc - ref)
    verdict = "above, interval clear" if lo > ref else "above" if acc > ref else "below"
    return f"{diff:+.2f} pt ({verdict})"


def _budget_text(r: dict[str, Any]) -> str:
    """What a time budget did to a row: planned epochs, or why the model was not trained."""
    b = r.get("budget")
    if not b:
        return ""
    plan = b.get("plan") or {}
    est = plan.get("estimated_epoch_seconds")
    if not r.get("trained", True):
        return f"cannot finish an epoch in {b['minutes']:g} min (an epoch estimated at {est / 60:.1f} min); not trained"
    cut = b.get("stopped_by_budget")
    text = f"{plan.get('epochs', r['epochs_run'])} epochs planned (estimated {est / 60:.1f} min each), {b['fit_minutes']:.1f} min used"
    if cut:
        text += f"; the budget cut epoch {cut['epoch'] + 1} after {cut['steps']} of {cut['steps_per_epoch']} steps"
    return text


def scored_on(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(the split the rows were scored on, "val" or "test"). Under the aligned protocol the archive
    has no test split: the scores are the validation split's (the best epoch's weights, chosen on
    that same split, so slightly optimistic)."""
    scored = [r for r in rows if r.get("test")]
    split = str(scored[0]["test_split"]) if scored else "-"
    return split, "val" if split.startswith("validation") else "test"


def results_markdown(summary: dict[str, Any]) -> str:
    rows = summary["models"]
    split, what = scored_on(rows)
    # The study's and the paper's figures are CIFAKE's: beside another task's rows they would mislead.
    cifake = summary["protocol"] != "aligned"
    lines = [
        f"# genspot compare: {summary['protocol']} protocol",
        "",
        "```bash",
        summary.get("command") or "(command not recorded)",
        "```",
        "",
        f"Data: `{summary['data']}`; seed {summary['seed']}; scored on: {split}.",
        "Accuracy intervals are 95% percentile bootstrap intervals (1,000 resamples).",
        *([f"Budget: {summary['budget']:g} minutes of wall clock per model, validations included."] if summary.get("budget") else []),
        "",
        f"| model | init | params | trainable | s/epoch | train img/s | epochs | best val acc | {what} acc [95% CI] "
        "| F1 | ROC-AUC | infer img/s" + (" | study | paper | vs reported |" if cifake else " |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:" + ("|---:|---:|---|" if cifake else "|"),
    ]
    for r in rows:
        t = r["test"]
        reported = (f" {_pct(r['reported'].get('study'))} | {_pct(r['reported'].get('paper'))} | "
                    f"{_versus(t['accuracy'], t['accuracy_ci95'][0], r['reported']) if t else '-'} |") if cifake else ""  # fmt: skip
        if not t:  # not trained: it cannot finish an epoch in the budget
            lines.append(f"| {r['row']} | {r['init']} | {r['parameters']:,} | {r['trainable_parameters']:,} | "
                         f"{r['median_epoch_seconds']:.0f} (estimated) | - | 0 | - | {_budget_text(r)} | - | - | - |{reported}")  # fmt: skip
            continue
        lo, hi = t["accuracy_ci95"]
        auc = "-" if t["roc_auc"] is None else f"{t['roc_auc']:.4f}"
        lines.append(
            f"| {r['row']} | {r['init']} | {r['parameters']:,} | {r['trainable_parameters']:,} | "
            f"{r['median_epoch_seconds']:.1f} | {r['train_images_per_second']:,.0f} | {r['epochs_run']} | "
            f"{_pct(r['best_val_accuracy'])} | **{_pct(t['accuracy'])}** [{_pct(lo)}, {_pct(hi)}] | {t['f1']:.4f} | {auc} | "
            f"{r['inference_images_per_second']:,.0f} |{reported}"
        )
    budgets = [(r["row"], _budget_text(r)) for r in rows if r.get("budget") and r.get("trained", True)]
    if budgets:
        lines += ["", "Budget use: " + "; ".join(f"{name}: {text}" for name, text in budgets) + "."]
    if cifake:
        lines += [
            "",
            "`study`: what the study reported for the model on its 10k/5k/5k subset; `paper`: the CIFAKE paper's",
            "figure for its CNN on the full official test split (not the same test images as here).",
        ]
    lines += [
        "",
        "## Recipes",
        "",
        "| model | epochs | input | optimizer | lr | weight decay | label smoothing | augment | precision | batch | model options | why |",
        "|---|---:|---|---|---:|---:|---:|---|---|---:|---|---|",
    ]
    for r in rows:
        c = r["recipe"]
        size, patch = c.get("image_size", 32), c.get("patch", 0)
        inputs = f"{size} px" + (f", {patch}-px patches" if patch and patch < size else "")
        lines.append(
            f"| {r['row']} | {c['epochs'] if r.get('trained', True) else 0} | {inputs} | {c['optimizer']} ({c['schedule']}) | "
            f"{c['lr']} | {c['weight_decay']} | {c['label_smoothing']} | {c['augment']} | {c['precision']} | {c['batch_size']} | "
            f"{c['model_kwargs'] or '-'} | {c['why']} |"
        )
    lines += ["", "![learning curves](learning_curves.png)", "", "![trade-off](tradeoff.png)", ""]
    return "\n".join(lines)


def plot_learning_curves(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for r in summary["models"]:
        ax.plot(range(1, len(r["val_curve"]) + 1), [100 * v for v in r["val_curve"]], marker="o", ms=3, label=r["row"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"Validation accuracy per epoch ({summary['protocol']} protocol)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_tradeoff(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["models"] if r.get("test")]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    secs = [r["median_epoch_seconds"] for r in rows]
    smax = max(secs) if secs else 1.0
    for r, s in zip(rows, secs):
        ax.scatter(r["parameters"], 100 * r["test"]["accuracy"], s=40 + 800 * s / smax, alpha=0.6)
        ax.annotate(f"{r['row']}\n{s:.0f} s/epoch", (r["parameters"], 100 * r["test"]["accuracy"]), fontsize=7,
                    xytext=(6, 4), textcoords="offset points")  # fmt: skip
        if r["reported"].get("study") is not None:
            ax.scatter(r["parameters"], 100 * r["reported"]["study"], marker="x", color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel(("validation" if rows and str(rows[0]["test_split"]).startswith("validation") else "test") + " accuracy (%)")
    ax.set_title("Accuracy vs size (marker area: seconds per epoch; x: the study's figure)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_compare_report(summary: dict[str, Any], out: Path) -> None:
    (out / "results.md").write_text(results_markdown(summary))
    plot_learning_curves(summary, out / "learning_curves.png")
    plot_tradeoff(summary, out / "tradeoff.png")
