"""Minutes to 95 / 96 / 97 / 98% validation accuracy for a training recipe, from a cold cache.

    python benchmarks/bench_time_to_accuracy.py fast:0,1
    python benchmarks/bench_time_to_accuracy.py fast:0,1 default:0:20     # RECIPE:SEEDS[:MAX_MINUTES]

Each (recipe, seed) run: the archive is decoded into a fresh, empty cache (timed: decode), then
`genspot train --recipe R --seed S` runs as its own process reading that cache, validating after
every epoch on the seed-0 split's 10,000 validation images (duplicate groups on one side), single
view. Minutes to X% count from the start of the decode to the end of the first epoch whose
validation accuracy reaches X. The final accuracy is `genspot evaluate --split val` of the saved
(best) model with its test-time augmentation, and a 95% bootstrap interval; its time is not counted.
A third field stops a run at that many minutes of wall time (the last finished epoch counts); thresholds it did
not reach by then print as "> N". Writes JSON and Markdown into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.95, 0.96, 0.97, 0.98)


def genspot(*args: str) -> list[str]:
    return [sys.executable, "-m", "genspot.cli", *args]


def run_one(recipe: str, seed: int, data: Path, work: Path, max_minutes: float | None, extra: list[str]) -> dict:
    from genspot.data import load_dataset

    cache = work / f"cache-{recipe}-{seed}"
    env = {**os.environ, "GENSPOT_CACHE_DIR": str(cache)}
    os.environ["GENSPOT_CACHE_DIR"] = str(cache)  # the decode below fills the run's own empty cache
    t_start = time.time()
    ds = load_dataset(data, progress=False)
    decode_s = time.time() - t_start
    del ds
    out = work / f"{recipe}-seed{seed}"
    cmd = genspot("train", "--recipe", recipe, "--seed", str(seed), "--split-seed", "0", "--data", str(data), "--out", str(out), *extra)
    print(f"[{recipe} seed {seed}] decoded in {decode_s:.1f} s; {' '.join(cmd[2:])}", flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stopped = False
    try:
        proc.wait(timeout=None if max_minutes is None else max(1.0, max_minutes * 60 - (time.time() - t_start)))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # Lightning finishes cleanly on an interrupt; then stop it hard
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stopped = True
    wall_s = time.time() - t_start
    if proc.returncode not in (0, None) and not stopped:
        raise SystemExit(f"training failed: {proc.stderr.read()[-2000:]}")
    log = out / "metrics.jsonl"
    rows = [json.loads(ln) for ln in log.read_text().splitlines() if ln] if log.is_file() else []
    if max_minutes is not None:
        rows = [r for r in rows if r["finished_at"] - t_start <= max_minutes * 60]
    reached = {}
    for th in THRESHOLDS:
        hit = next((r for r in rows if (r["val_accuracy"] or 0) >= th), None)
        reached[f"{th:.2f}"] = None if hit is None else round((hit["finished_at"] - t_start) / 60, 2)
    train_s = sum(r["train_seconds"] for r in rows)
    val_s = sum(r["epoch_seconds"] - r["train_seconds"] for r in rows)
    last = (rows[-1]["finished_at"] - t_start) if rows else wall_s
    r: dict = {"accuracy": None, "n": None}
    if (out / "config.json").is_file():  # a run stopped before its first epoch ended saved no model
        ev = subprocess.run(genspot("evaluate", str(out), "--data", str(data), "--split", "val", "--json"),
                            env=env, capture_output=True, text=True, check=True)  # fmt: skip
        r = json.loads(ev.stdout)
    return {
        "recipe": recipe, "seed": seed, "epochs_run": len(rows), "stopped_at_minutes": max_minutes if stopped else None,
        "minutes_to": reached, "per_epoch_val_accuracy": [r_["val_accuracy"] for r_ in rows],
        "best_single_view": max((r_["val_accuracy"] for r_ in rows), default=None),
        "final_accuracy": r["accuracy"], "final_ci95": r.get("accuracy_ci95"), "final_tta": json.loads((out / "config.json").read_text()).get("tta") if r["n"] else None,
        "n_val": r["n"], "wall_minutes": round(last / 60, 2),
        "split_seconds": {"decode": round(decode_s, 1), "training": round(train_s, 1), "validation": round(val_s, 1),
                          "start_and_checkpoints": round(last - decode_s - train_s - val_s, 1)},
        "median_images_per_second": statistics.median(r_["images_per_second"] for r_ in rows) if rows else None,
    }  # fmt: skip


def fmt_min(v: float | None, cap: float | None) -> str:
    if v is not None:
        return f"{v:.1f}"
    return f"> {cap:g}" if cap else "not reached"


def markdown(results: list[dict], command: str, machine: str) -> str:
    lines = [f"`{command}`", "", machine, "",
             "| recipe | seed | min to 95% | 96% | 97% | 98% | final val acc [95% CI] | wall min | decode / train / val / rest (s) | img/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        m, cap = r["minutes_to"], r["stopped_at_minutes"]
        ci = r["final_ci95"] or [float("nan")] * 2
        s = r["split_seconds"]
        final = "no epoch finished" if r["final_accuracy"] is None else (
            f"{100 * r['final_accuracy']:.2f}% [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}] ({r['final_tta']} TTA)")
        lines.append(
            f"| {r['recipe']} | {r['seed']} | " + " | ".join(fmt_min(m[k], cap) for k in ("0.95", "0.96", "0.97", "0.98"))
            + f" | {final} | {r['wall_minutes']:.1f}"
            + (f" (stopped at {cap:g})" if cap else "")
            + f" | {s['decode']:.0f} / {s['training']:.0f} / {s['validation']:.0f} / {s['start_and_checkpoints']:.0f}"
            + f" | {r['median_images_per_second'] or 0:,.0f} |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="*", default=["fast:0"], help="RECIPE:SEEDS[:MAX_MINUTES], e.g. fast:0,1 default:0:20")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cifake-train.zip")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-time-to-accuracy")
    ap.add_argument("--keep", action="store_true", help="keep the run directories and caches (in --out/work)")
    ap.add_argument("--render", action="store_true", help="only write the Markdown again from --out's JSON")
    args, extra = ap.parse_known_args()  # anything else goes to genspot train (e.g. --epochs 2 for a dry run)
    if args.render:
        render(args.out)
        return
    plan = []
    for spec in args.runs:
        parts = spec.split(":")
        if not 1 <= len(parts) <= 3:
            raise SystemExit(f"bad run {spec!r}: RECIPE:SEEDS[:MAX_MINUTES]")
        seeds = [int(x) for x in parts[1].split(",")] if len(parts) > 1 and parts[1] else [0]
        plan.append((parts[0], seeds, float(parts[2]) if len(parts) > 2 else None))
    args.out.mkdir(parents=True, exist_ok=True)
    import platform

    machine = f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), {time.strftime('%Y-%m-%d')}"
    results = []
    with tempfile.TemporaryDirectory(dir=args.out if args.keep else None) as tmp:
        work = args.out / "work" if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for recipe, ss, cap in plan:
            for seed in ss:
                r = run_one(recipe, seed, args.data, work, cap, extra)
                results.append(r)
                print(json.dumps(r), flush=True)
    command = "python benchmarks/bench_time_to_accuracy.py " + " ".join(sys.argv[1:])
    (args.out / "time_to_accuracy.json").write_text(json.dumps({"command": command, "machine": machine, "runs": results}, indent=2) + "\n")
    render(args.out)


def render(out: Path) -> None:
    """time_to_accuracy.md (and stdout) from the run's time_to_accuracy.json."""
    saved = json.loads((out / "time_to_accuracy.json").read_text())
    results = saved["runs"]
    md = markdown(results, saved["command"], saved["machine"])
    for recipe in dict.fromkeys(r["recipe"] for r in results):
        rs = [r for r in results if r["recipe"] == recipe]
        if len(rs) > 1:
            to97 = [r["minutes_to"]["0.97"] for r in rs]
            med = f"{statistics.median(to97):.1f}" if all(m is not None for m in to97) else "not reached by every seed"
            acc = statistics.median(r["final_accuracy"] or 0 for r in rs)
            md += f"\n{recipe}, median over {len(rs)} seeds: minutes to 97% {med}, final accuracy {100 * acc:.2f}%\n"
    (out / "time_to_accuracy.md").write_text(md)
    print(md)

if __name__ == "__main__":
    main()
