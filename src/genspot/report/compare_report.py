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


def results_markdown(summary: dict[str, Any]) -> str:
    rows = summary["models"]
    lines = [
        f"# genspot compare: {summary['protocol']} protocol",
        "",
        "```bash",
        summary.get("command") or "(command not recorded)",
        "```",
        "",
        f"Data: `{summary['data']}`; seed {summary['seed']}; test split: {rows[0]['test_split'] if rows else '-'}.",
        "Accuracy intervals are 95% percentile bootstrap intervals (1,000 resamples).",
        "",
        "| model | init | params | trainable | s/epoch | train img/s | epochs | best val acc | test acc [95% CI] "
        "| F1 | ROC-AUC | infer img/s | study | paper | vs reported |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        t = r["test"]
        lo, hi = t["accuracy_ci95"]
        auc = "-" if t["roc_auc"] is None else f"{t['roc_auc']:.4f}"
        lines.append(
            f"| {r['row']} | {r['init']} | {r['parameters']:,} | {r['trainable_parameters']:,} | "
            f"{r['median_epoch_seconds']:.1f} | {r['train_images_per_second']:,.0f} | {r['epochs_run']} | "
            f"{_pct(r['best_val_accuracy'])} | **{_pct(t['accuracy'])}** [{_pct(lo)}, {_pct(hi)}] | {t['f1']:.4f} | {auc} | "
            f"{r['inference_images_per_second']:,.0f} | {_pct(r['reported'].get('study'))} | {_pct(r['reported'].get('paper'))} | "
            f"{_versus(t['accuracy'], lo, r['reported'])} |"
        )
    lines += [
        "",
        "`study`: what the study reported for the model on its 10k/5k/5k subset; `paper`: the CIFAKE paper's",
        "figure for its CNN on the full official test split (not the same test images as here).",
        "",
        "## Recipes",
        "",
        "| model | epochs | optimizer | lr | weight decay | label smoothing | augment | precision | batch | model options | why |",
        "|---|---:|---|---:|---:|---:|---|---|---:|---|---|",
    ]
    for r in rows:
        c = r["recipe"]
        lines.append(
            f"| {r['row']} | {c['epochs']} | {c['optimizer']} ({c['schedule']}) | {c['lr']} | {c['weight_decay']} | "
            f"{c['label_smoothing']} | {c['augment']} | {c['precision']} | {c['batch_size']} | "
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

    rows = summary["models"]
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
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs size (marker area: seconds per epoch; x: the study's figure)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_compare_report(summary: dict[str, Any], out: Path) -> None:
    (out / "results.md").write_text(results_markdown(summary))
    plot_learning_curves(summary, out / "learning_curves.png")
    plot_tradeoff(summary, out / "tradeoff.png")
