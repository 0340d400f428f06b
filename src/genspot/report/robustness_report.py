"""robustness.md and robustness.png for `genspot robustness`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FAMILY_AXES = {"jpeg": "JPEG quality", "blur": "blur sigma (px)", "noise": "noise sigma (of 255)"}


def robustness_markdown(result: dict[str, Any], command: str | None = None) -> str:
    models = result["models"]
    lines = ["# Robustness", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    m0 = models[0]
    lines += [
        f"Data: `{result['data']}`, {m0['split']}, n = {m0['n']:,} (seed {result['seed']}). Each perturbation is "
        "applied to the decoded images on the fly; accuracy with its 95% bootstrap interval, ROC-AUC, and the drop "
        "from clean accuracy in points.",
        "",
    ]
    head = "| perturbation | " + " | ".join(f"{m['name']} acc [95% CI] | AUC | drop" for m in models) + " |"
    lines += [head, "|---|" + "---|---:|---:|" * len(models)]
    for i, r in enumerate(m0["rows"]):
        cells = []
        for m in models:
            x = m["rows"][i]
            lo, hi = x["accuracy_ci95"]
            auc = "-" if x["roc_auc"] is None else f"{x['roc_auc']:.4f}"
            cells.append(f"{100 * x['accuracy']:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}] | {auc} | {x['drop_pt']:+.2f}")
        lines.append(f"| {r['perturbation']} | " + " | ".join(cells) + " |")
    lines += ["", "![accuracy per perturbation and strength](robustness.png)", ""]
    return "\n".join(lines)


def robustness_plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), sharey=True)
    for m in result["models"]:
        rows = m["rows"]
        clean = rows[0]["accuracy"]
        for ax, fam in zip(axes[:3], FAMILY_AXES):
            pts = sorted((r["level"], r["accuracy"], r["strength"]) for r in rows if r["family"] == fam)
            if not pts:
                continue
            xs = [0] + [p[0] for p in pts]
            labels = ["clean"] + [p[2] for p in pts]
            ax.plot(xs, [clean] + [p[1] for p in pts], marker="o", label=m["name"])
            ax.set_xticks(xs, labels, rotation=30, fontsize=8)
        other = [r for r in rows if r["family"] not in FAMILY_AXES]
        axes[3].plot(range(len(other)), [r["accuracy"] for r in other], marker="o", linestyle=":", label=m["name"])
        axes[3].set_xticks(range(len(other)), [r["perturbation"] for r in other], rotation=30, fontsize=8)
    for ax, title in zip(axes, list(FAMILY_AXES.values()) + ["other"]):
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
