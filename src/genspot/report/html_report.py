"""`genspot report`: every result genspot wrote under some folders, as one self-contained HTML page.

It reads what the other commands left behind (compare's results.json, explain-eval's
faithfulness.json + grid.png, robustness's robustness.json + .png), found recursively under the
given folders; images are inlined as data URIs, styles are inline: the file opens anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from genspot import __version__

CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1150px;margin:0 auto;padding:0 16px 40px;color:#1d232a}
h1{margin:20px 0 4px} h2{margin-top:34px;border-bottom:2px solid #e3e7eb;padding-bottom:4px}
.how{background:#f3f6fa;border-left:4px solid #2563eb;padding:8px 12px;margin:10px 0;font-size:14px}
table{border-collapse:collapse;margin:10px 0;font-size:13px} th,td{border:1px solid #dde3e8;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left} th{background:#f6f7f9} img{max-width:100%;height:auto}
.grid{display:flex;flex-wrap:wrap;gap:14px} .cm td{min-width:56px} code{background:#f1f3f5;padding:1px 4px;border-radius:3px}
.best{font-weight:700} .muted{color:#66707a;font-size:13px}
"""

HOW = {
    "compare": "One row per model, all trained under one protocol and seed. Test accuracy comes with a 95% "
    "bootstrap interval: two models whose intervals overlap are not clearly different. <i>study</i> is what the "
    "study reported on its own 10k/5k/5k subset, <i>paper</i> the CIFAKE paper's CNN on the official test split.",
    "curves": "Validation accuracy after each epoch. A curve still rising at its end had more to give; a gap "
    "between models at equal epochs says more about the architecture than the final number does.",
    "tradeoff": "Accuracy against size: up and to the left is better. The marker's area is the time one epoch "
    "took on this machine.",
    "confusion": "Rows are the true class, columns the predicted one. Off-diagonal cells are the errors: REAL "
    "called FAKE (false alarms) and FAKE called REAL (misses).",
    "roc": "The trade-off between catching FAKE images (true positive rate) and false alarms on REAL ones, over "
    "every threshold; the area under it (AUC) is the chance that a random FAKE image scores above a random REAL one.",
    "explain": "How faithful each heat-map method is to the model, measured, not judged by eye. ROAD removes the "
    "pixels a map calls most (MoRF) or least (LeRF) relevant and watches the score: a faithful map makes MoRF hurt "
    "and LeRF not. Deletion/insertion AUC do the same by blanking/revealing pixels. The randomisation check compares "
    "maps of the trained and a randomly initialised model: a faithful method gives a rank correlation near 0. "
    "The random row is the baseline every method must beat. Best per column in bold.",
    "robustness": "Accuracy after each perturbation, applied to the evaluation images. The drop is against clean "
    "accuracy; 50% is a coin flip. JPEG, resizing and blur are what images meet when shared online.",
}


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fig(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}">'


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _find(dirs: list[Path], name: str) -> list[Path]:
    found: list[Path] = []
    for d in dirs:
        found += sorted(d.rglob(name)) if d.is_dir() else ([d] if d.name == name else [])
    return found


def _compare_section(path: Path) -> str:
    r = json.loads(path.read_text())
    rows = r["models"]
    out = [f"<h3>{html.escape(r.get('protocol', ''))} protocol <span class='muted'>({html.escape(str(path.parent))})</span></h3>"]
    if r.get("command"):
        out.append(f"<p><code>{html.escape(r['command'])}</code></p>")
    out.append(f"<div class='how'>{HOW['compare']}</div><table><tr><th>model</th><th>init</th><th>parameters</th>"
               "<th>s/epoch</th><th>epochs</th><th>best val acc</th><th>test acc [95% CI]</th><th>F1</th><th>ROC-AUC</th>"
               "<th>study</th><th>paper</th></tr>")  # fmt: skip
    best = max(rows, key=lambda m: m["test"]["accuracy"])["row"] if rows else None
    for m in rows:
        t = m["test"]
        lo, hi = t["accuracy_ci95"]
        cls = " class='best'" if m["row"] == best else ""
        out.append(f"<tr{cls}><td>{html.escape(m['row'])}</td><td>{html.escape(m.get('init', ''))}</td><td>{m['parameters']:,}</td>"
                   f"<td>{m['median_epoch_seconds']:.1f}</td><td>{m['epochs_run']}</td><td>{_pct(m['best_val_accuracy'])}</td>"
                   f"<td>{_pct(t['accuracy'])} [{_pct(lo)}, {_pct(hi)}]</td><td>{t['f1']:.4f}</td>"
                   f"<td>{t['roc_auc']:.4f}</td><td>{_pct(m['reported'].get('study'))}</td><td>{_pct(m['reported'].get('paper'))}</td></tr>")  # fmt: skip
    out.append("</table>")
    for name, key, alt in (("learning_curves.png", "curves", "learning curves"), ("tradeoff.png", "tradeoff", "trade-off")):
        if (path.parent / name).is_file():
            out.append(f"<h4 id='{key}'>{alt}</h4><div class='how'>{HOW[key]}</div>{_img(path.parent / name, alt)}")
    out.append(f"<h4 id='confusion'>confusion matrices (test)</h4><div class='how'>{HOW['confusion']}</div><div class='grid'>")
    for m in rows:
        cm = m["test"].get("confusion_matrix")
        if cm:
            out.append(f"<table class='cm'><tr><th>{html.escape(m['row'])}</th><th>pred REAL</th><th>pred FAKE</th></tr>"
                       f"<tr><td>true REAL</td><td>{cm[0][0]:,}</td><td>{cm[0][1]:,}</td></tr>"
                       f"<tr><td>true FAKE</td><td>{cm[1][0]:,}</td><td>{cm[1][1]:,}</td></tr></table>")  # fmt: skip
    out.append("</div>")
    out.append(f"<h4 id='roc'>ROC curves (test)</h4><div class='how'>{HOW['roc']}</div>{_roc(rows)}")
    return "\n".join(out)


def _roc(rows: list[dict[str, Any]]) -> str:
    with_curve = [m for m in rows if m["test"].get("roc_curve")]
    if not with_curve:
        return "<p class='muted'>No ROC points recorded in these results (compare records them since genspot 0.1).</p>"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for m in with_curve:
        c = m["test"]["roc_curve"]
        for ax in axes:
            ax.plot(c["fpr"], c["tpr"], label=f"{m['row']} (AUC {m['test']['roc_auc']:.4f})")
    axes[0].plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    axes[1].set_xlim(0, 0.2)
    axes[1].set_ylim(0.6, 1.0)
    for ax, title in zip(axes, ("ROC", "ROC, low false-positive corner")):
        ax.set_xlabel("false positive rate (REAL called FAKE)")
        ax.set_ylabel("true positive rate (FAKE caught)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _fig(fig)


def _explain_section(path: Path) -> str:
    from genspot.explain.faithfulness import DIRECTION

    r = json.loads(path.read_text())
    metrics = [k for k in DIRECTION if any(v.get(k) is not None for v in r["methods"].values())]
    best = {}
    for k in metrics:
        vals = {m: v[k] for m, v in r["methods"].items() if v.get(k) is not None}
        pick = (lambda m: abs(vals[m])) if k == "randomization_spearman" else vals.get
        best[k] = (min if DIRECTION[k].startswith("lower") else max)(vals, key=pick)
    out = [f"<h3>{html.escape(r['model'])} <span class='muted'>n = {r['n']}, {html.escape(r['split'])}</span></h3>",
           "<table><tr><th>method</th>" + "".join(f"<th>{k}<br><span class='muted'>{DIRECTION[k]}</span></th>" for k in metrics) + "</tr>"]  # fmt: skip
    for m, v in r["methods"].items():
        cells = "".join(
            f"<td{' class=best' if best[k] == m else ''}>{'-' if v.get(k) is None else f'{v[k]:.4f}'}</td>" for k in metrics
        )
        out.append(f"<tr><td>{html.escape(m)}</td>{cells}</tr>")
    out.append("</table>")
    if (path.parent / "grid.png").is_file():
        out.append(f"<details><summary>8 REAL and 8 FAKE images x each method</summary>{_img(path.parent / 'grid.png', 'CAM grid')}</details>")
    return "\n".join(out)


def _robustness_section(path: Path) -> str:
    r = json.loads(path.read_text())
    models = r["models"]
    out = [f"<p class='muted'>{html.escape(str(path.parent))}: {html.escape(models[0]['split'])}, n = {models[0]['n']:,}</p>",
           "<table><tr><th>perturbation</th>" + "".join(f"<th>{html.escape(m['name'])}</th><th>drop</th>" for m in models) + "</tr>"]  # fmt: skip
    for i, row in enumerate(models[0]["rows"]):
        cells = "".join(f"<td>{_pct(m['rows'][i]['accuracy'])}</td><td>{m['rows'][i]['drop_pt']:+.2f}</td>" for m in models)
        out.append(f"<tr><td>{html.escape(row['perturbation'])}</td>{cells}</tr>")
    out.append("</table>")
    if (path.parent / "robustness.png").is_file():
        out.append(_img(path.parent / "robustness.png", "robustness curves"))
    return "\n".join(out)


def build_report(dirs: list[str | Path], title: str = "genspot report") -> str:
    """The whole page as one HTML string; raises nothing for missing parts, it says they are missing."""
    dirs = [Path(d) for d in dirs]
    sections = []
    compares = _find(dirs, "results.json")
    compares = [p for p in compares if "models" in json.loads(p.read_text()) and "protocol" in json.loads(p.read_text())]
    sections.append(("comparison", "Model comparison",
                     "\n".join(_compare_section(p) for p in compares) or "<p class='muted'>No compare results found.</p>"))  # fmt: skip
    faith = _find(dirs, "faithfulness.json")
    sections.append(("explanations", "Explanations and their faithfulness",
                     f"<div class='how'>{HOW['explain']}</div>" + ("\n".join(_explain_section(p) for p in faith)
                                                                   or "<p class='muted'>No explain-eval results found.</p>")))  # fmt: skip
    rob = _find(dirs, "robustness.json")
    sections.append(("robustness", "Robustness",
                     f"<div class='how'>{HOW['robustness']}</div>" + ("\n".join(_robustness_section(p) for p in rob)
                                                                      or "<p class='muted'>No robustness results found.</p>")))  # fmt: skip
    toc = "".join(f"<li><a href='#{sid}'>{t}</a></li>" for sid, t, _ in sections)
    body = "\n".join(f"<section id='{sid}'><h2>{t}</h2>\n{content}</section>" for sid, t, content in sections)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='muted'>genspot {__version__}; made from {', '.join(html.escape(str(d)) for d in dirs)}</p>"
            f"<ul>{toc}</ul>{body}</body></html>")  # fmt: skip
