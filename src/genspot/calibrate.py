"""Temperature scaling (Guo et al. 2017): one scalar T fitted on validation logits so that
softmax(logits / T) is calibrated; `p_fake` everywhere is this calibrated probability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genspot.data import load_dataset
from genspot.evaluate import predict_raw_logits, select_indices
from genspot.models.io import load_model_dir, resolve_model_dir, write_config
from genspot.models.spec import ModelSpec
from genspot.models.tta import predict_logits


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins of the predicted class (the usual definition)."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimising validation NLL (optimised in log T, so T stays positive)."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


def _logits(model, spec: ModelSpec, ds, idx) -> torch.Tensor:
    # evaluate's scorer (TTA, scoring batches sized to the input); cloned out of inference mode,
    # since the logits feed the temperature fit's autograd
    return predict_raw_logits(model, spec, ds, idx).clone()


def calibrate(model_dir: str | Path, data: str | Path, split: str = "val", progress: bool = True) -> dict[str, Any]:
    """Fit T on the model's validation split, store it in config.json; returns ECE before and after."""
    model, spec = load_model_dir(model_dir)
    ds = load_dataset(data, size=spec.input_size, policy=spec.input_policy, progress=progress)
    idx, desc = select_indices(ds, spec, split)
    logits = _logits(model, spec, ds, idx)
    labels = ds.labels[torch.as_tensor(idx)]
    t = fit_temperature(logits, labels)
    y = labels.numpy()
    before = torch.softmax(logits, 1).numpy()
    after = torch.softmax(logits / t, 1).numpy()
    res = {
        "temperature": t,
        "split": desc,
        "n": int(len(idx)),
        "ece_before": expected_calibration_error(before, y),
        "ece_after": expected_calibration_error(after, y),
        "nll_before": float(F.cross_entropy(logits, labels)),
        "nll_after": float(F.cross_entropy(logits / t, labels)),
    }
    write_config(spec.to_config(temperature=t, calibration=res), resolve_model_dir(model_dir))
    return res


# -- the decision threshold: at most a chosen share of real photos called fake ----------------------


def threshold_margin(real_margins: np.ndarray, fpr: float) -> float:
    """A logit margin m such that at most floor(fpr * n) of these real images have a margin >= m
    (FAKE verdicts): halfway between the k-th and (k+1)-th largest real margins, so that float
    rounding on the way to P(FAKE) cannot move a photo across it (above the largest: by 0.01)."""
    m = np.sort(np.asarray(real_margins, dtype=np.float64))[::-1]
    k = int(np.floor(fpr * len(m) + 1e-9))
    if k >= len(m):
        return float(m[-1])
    if k == 0:
        return float(m[0] + 0.01)
    return float((m[k] + m[k - 1]) / 2) if m[k - 1] > m[k] else float(np.nextafter(m[k], np.inf))


def _margins_of_files(model: torch.nn.Module, spec: ModelSpec, paths: list[str], progress: bool,
                      batch_size: int = 64) -> tuple[np.ndarray, int]:  # fmt: skip
    """The logit margin (FAKE minus REAL) of every readable image under `paths`, as the model sees it
    (its own input policy); unreadable ones are reported and skipped. Returns (margins, skipped)."""
    from genspot.data.batches import normalize
    from genspot.data.image import decode, model_input
    from genspot.data.inputs import count_inputs, iter_inputs
    from genspot.progress import progress_bar, warn

    margins: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    skipped = 0

    def flush() -> None:
        if pending:
            x = normalize(torch.from_numpy(np.stack(pending)), spec.mean, spec.std)
            z = predict_logits(model, spec.tta, x).double()
            margins.append((z[:, spec.positive] - z[:, 1 - spec.positive]).numpy())
            pending.clear()

    with torch.inference_mode(), progress_bar("scoring real photos", total=count_inputs(paths), unit="img", enabled=progress) as bar:
        for item in iter_inputs(paths):
            try:
                if item.error is not None:
                    raise ValueError(item.error)
                img, _ = decode(item.data)  # type: ignore[arg-type]
                pending.append(model_input(img, spec.input_size, spec.input_policy))
            except Exception as e:  # noqa: BLE001 - an unreadable photo is reported and skipped, never fatal
                warn(f"skipped {item.name}: {e}")
                skipped += 1
            if len(pending) >= batch_size:
                flush()
            bar.advance(1)
        flush()
    return (np.concatenate(margins) if margins else np.zeros(0)), skipped


def calibrate_threshold(
    model_dir: str | Path, fpr: float, real_only: list[str] | None = None, data: str | Path | None = None,
    split: str = "val", half: str | None = None, seed: int = 0, progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Set the model's decision threshold so that at most `fpr` of real photos are called FAKE.

    The photos: `real_only` (files, folders, archives: every image is taken as real), or the REAL
    images of `data`'s `split` (the model's validation split by default). `half` ("fit" or
    "check", data only) splits the validation photos in two by a seeded draw over photos (a
    photo's every image on one side): the threshold is set on one half and its false- and
    true-positive rates are measured on the other, which is what the result reports under
    "heldout". The threshold is stored as a logit margin (config.json "threshold"): a later
    temperature fit changes P(FAKE) but no verdict."""
    from genspot.errors import GenspotError

    if not 0.0 <= fpr < 1.0:
        raise GenspotError(f"--fpr must be in [0, 1), got {fpr}")
    if (real_only is None) == (data is None):
        raise GenspotError("give either --real-only PATH (your real photos) or --data ARCHIVE (its REAL images of --split)")
    d = resolve_model_dir(model_dir)
    model, spec = load_model_dir(d)
    res: dict[str, Any] = {"fpr_target": fpr}
    if real_only is not None:
        if half:
            raise GenspotError("--half splits a labelled archive's validation photos; it does not apply to --real-only")
        margins, skipped = _margins_of_files(model, spec, real_only, progress)
        res.update(source=", ".join(real_only), skipped=skipped)
    else:
        ds = load_dataset(data, size=spec.input_size, policy=spec.input_policy, progress=progress)
        idx, desc = select_indices(ds, spec, split)
        logits = _logits(model, spec, ds, idx).double()
        all_margins = (logits[:, spec.positive] - logits[:, 1 - spec.positive]).numpy()
        y = ds.labels.numpy()[idx]
        fit = np.ones(len(idx), dtype=bool)
        if half:
            if half not in ("fit", "check"):
                raise GenspotError(f"--half must be fit or check, got {half!r}")
            from genspot.data.pairs import stem_groups

            g = stem_groups([ds.paths[i] for i in idx])
            first = np.random.default_rng(seed).permutation(int(g.max()) + 1) % 2 == 0
            fit = first[g] if half == "fit" else ~first[g]
        margins = all_margins[fit & (y == 0)]
        res.update(source=f"{data} ({desc}{'; half ' + half + ' of its photos, seed ' + str(seed) if half else ''})")
        if half:
            other = ~fit
            m = threshold_margin(margins, fpr) if len(margins) else 0.0
            res["heldout"] = {
                "n_real": int((other & (y == 0)).sum()), "n_fake": int((other & (y == 1)).sum()),
                "fpr": float((all_margins[other & (y == 0)] >= m).mean()) if (other & (y == 0)).any() else None,
                "tpr": float((all_margins[other & (y == 1)] >= m).mean()) if (other & (y == 1)).any() else None,
            }
    if len(margins) == 0:
        raise GenspotError("no real photos to set the threshold on")
    m = threshold_margin(margins, fpr)
    res.update(margin=m, n_real=int(len(margins)), fpr_fit=float((margins >= m).mean()))
    new = spec.replace(threshold=res)
    res["p_fake"] = new.fake_threshold
    write_config(spec.to_config(threshold=res), d)
    return res
