"""What `genspot predict` writes: rows streamed as JSON / JSONL / CSV, or a table a person reads,
heat maps beside them, and the one-line summary. The command line is a thin shell over
`write_predictions`; the Detector (predict.py) makes the rows."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from genspot.errors import GenspotError
from genspot.predict import ROW_KEYS, Detector, Prediction

FORMATS = ("table", "json", "jsonl", "csv")


def tile_heatmap(img: Image.Image, grid: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The image with each tile tinted by its P(FAKE), and a colour scale under it
    (blue: REAL, p_fake 0; red: FAKE, p_fake 1)."""
    from PIL import ImageDraw

    from genspot.explain.render import _font, colorize

    heat = Image.fromarray(colorize(grid.astype(np.float32), "coolwarm")).resize(img.size, Image.Resampling.NEAREST)
    tinted = Image.blend(img.convert("RGB"), heat, alpha)
    w, bar_h, text_h = max(tinted.width, 240), 12, 18
    canvas = Image.new("RGB", (w, tinted.height + bar_h + text_h + 6), "white")
    canvas.paste(tinted, (0, 0))
    ramp = colorize(np.tile(np.linspace(0, 1, w - 20, dtype=np.float32), (bar_h, 1)), "coolwarm")
    canvas.paste(Image.fromarray(ramp), (10, tinted.height + 4))
    draw, font, y = ImageDraw.Draw(canvas), _font(), tinted.height + bar_h + 5
    draw.text((10, y), "p_fake 0 (REAL)", fill="black", font=font)
    right = "1 (FAKE)"
    draw.text((w - 10 - draw.textlength(right, font=font), y), right, fill="black", font=font)
    draw.text((w // 2 - draw.textlength("0.5", font=font) / 2, y), "0.5", fill="black", font=font)
    return canvas


class RowWriter:
    """Writes prediction rows one at a time as json (an array), jsonl or csv."""

    def __init__(self, fmt: str, stream: io.TextIOBase) -> None:
        import csv

        if fmt not in ("json", "jsonl", "csv"):
            raise GenspotError(f"unknown format {fmt!r}")
        self.fmt, self.stream, self.first = fmt, stream, True
        if fmt == "csv":
            self.csv = csv.DictWriter(stream, fieldnames=ROW_KEYS, extrasaction="ignore")
            self.csv.writeheader()
        elif fmt == "json":
            stream.write("[")

    def write(self, row: Prediction) -> None:
        import json

        if self.fmt == "csv":
            self.csv.writerow(row.as_dict())
        elif self.fmt == "jsonl":
            self.stream.write(json.dumps(row.as_dict()) + "\n")
        else:
            self.stream.write(("\n  " if self.first else ",\n  ") + json.dumps(row.as_dict()))
        self.first = False

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if not self.first else "]\n")
        self.stream.flush()


def write_rows(rows: list[Prediction], fmt: str, stream: io.TextIOBase) -> None:
    """All rows at once (the streaming RowWriter underneath)."""
    w = RowWriter(fmt, stream)
    for r in rows:
        w.write(r)
    w.close()


@dataclass
class Tally:
    """Counts over the rows written, and the summary line they make."""

    n: int = 0
    fake: int = 0
    errors: int = 0
    out: int = 0

    def add(self, p: Prediction) -> None:
        self.n += 1
        self.fake += p.label == "FAKE"
        self.errors += p.error is not None
        self.out += p.domain == "out"

    def line(self) -> str:
        real = self.n - self.fake - self.errors
        return (f"{self.n:,} image{'' if self.n == 1 else 's'}: {self.fake:,} FAKE, {real:,} REAL, "
                f"{self.errors:,} error{'' if self.errors == 1 else 's'}; {self.out:,} out of the model's domain")


def predictions_table(rows: list[Prediction], title: str) -> Table:
    """The rows as a table: a FAKE verdict red, REAL green, errors yellow. Out of the model's domain the
    verdict column says "cannot tell" in a neutral colour (never a green REAL or red FAKE; the JSON
    keeps label and p_fake) and the domain column says why. The short columns never wrap, so a
    narrow terminal folds paths and reasons, not "label" into "labe / l"."""
    t = Table(title=title)
    for col in ("path", "label", "p_fake", "domain", "error"):
        short = col in ("label", "p_fake")
        t.add_column(col, justify="right" if col == "p_fake" else "left", overflow="fold", no_wrap=short,
                     min_width=len("cannot tell") if col == "label" else 6 if col == "p_fake" else None)
    for r in rows:
        out = r.domain == "out" and r.label is not None
        style = "dim" if out else "red" if r.label == "FAKE" else "green" if r.label == "REAL" else "yellow"
        shown = "cannot tell" if out else r.label or "-"
        dom = "-" if r.domain is None else "in" if r.domain == "in" else f"[yellow]out of domain[/]: {r.domain_reason}"
        t.add_row(r.path, f"[{style}]{shown}[/]", "-" if r.p_fake is None else f"{r.p_fake:.4f}", dom, r.error or "")
    return t


def write_heatmap(det: Detector, pred: Prediction, folder: Path, mode: str, method: str | None) -> None:
    """The tile map (tiles mode) or a heat map by `method` of one scored image, named as genspot explain names them."""
    from genspot.explain.render import explanation_panel, safe_stem, save_png

    stem = safe_stem(pred.rel or pred.path)
    if mode == "tiles":
        save_png(tile_heatmap(pred.image, pred.tile_grid), folder / f"{stem}_tiles.png")  # type: ignore[arg-type]
    elif method:
        e = det.explain(pred.image, method=method, mode=mode)
        cap = f"{e['label']}  p(fake)={e['p_fake']:.3f}   {method} for {e['target']}"
        save_png(explanation_panel(e["image"], e["map"], cap), folder / f"{stem}_{method}.png")


def write_predictions(det: Detector, paths: list[str], fmt: str = "table", out_file: Path | None = None,
                      mode: str = "auto", heatmaps: Path | None = None, explain: str | None = None,
                      batch_size: int = 256, workers: int = 1, max_bytes: int = 20 * 2**20,
                      console: Console | None = None, progress: bool = True) -> Tally:  # fmt: skip
    """Score every image under `paths` and write the rows: streamed to `out_file` or stdout as they
    come (constant memory on inputs of any size); only the table, which a person reads, holds them all."""
    from genspot.data.inputs import count_inputs
    from genspot.progress import progress_bar

    if fmt not in FORMATS:
        raise GenspotError(f"unknown format {fmt!r}; choose table, json, jsonl or csv")
    if explain and not heatmaps:
        raise GenspotError("--explain needs --heatmaps DIR to write the heat maps into")
    if explain and mode == "tiles":
        raise GenspotError("--explain explains one S x S input (--mode auto, resize or crop); in tiles mode --heatmaps writes the tile map")
    if heatmaps:
        heatmaps.mkdir(parents=True, exist_ok=True)
    tally, table_rows = Tally(), []
    sink = out_file.open("w", newline="") if out_file and fmt != "table" else sys.stdout
    writer = RowWriter(fmt, sink) if fmt != "table" else None
    try:
        show = progress and (fmt == "table" or out_file is not None)
        with progress_bar("scoring", total=count_inputs(paths) if show else None, unit="img", enabled=show) as bar:
            for pred in det.predict_paths(paths, mode=mode, batch_size=batch_size, keep_images=heatmaps is not None,
                                          workers=workers, max_bytes=max_bytes):  # fmt: skip
                if heatmaps and pred.error is None and pred.image is not None:
                    write_heatmap(det, pred, heatmaps, mode, explain)
                    pred.image = None
                tally.add(pred)
                if writer:
                    writer.write(pred)
                else:
                    table_rows.append(pred)
                bar.advance(1)
        if writer:
            writer.close()
    finally:
        if sink is not sys.stdout:
            sink.close()
    if fmt == "table":
        target = Console(file=out_file.open("w"), width=200) if out_file else (console or Console())
        target.print(predictions_table(table_rows, f"genspot predict ({det.name}, {mode})"))
        target.print(tally.line())
    return tally
