"""Reference scores of the shipped detectors: `python tests/shipped_reference.py tests/data/shipped_scores.json`
wrote the committed file at commit 035636e (before ModelSpec), with ../shared/data/cifake-train.zip beside
the checkout. tests/test_spec.py holds today's scores against it: a refactor may not move any of them."""
import io, json, sys
import numpy as np
from PIL import Image

def images():
    rng = np.random.default_rng(1234)
    out = []
    for i, (w, h, fmt) in enumerate([(32, 32, "JPEG"), (32, 32, "PNG"), (300, 200, "PNG"), (64, 100, "JPEG"), (20, 20, "JPEG"), (256, 256, "JPEG")] * 3):
        small = rng.integers(0, 255, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
        a = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        a = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO(); Image.fromarray(a).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        out.append(buf.getvalue())
    return out

if __name__ == "__main__":
    from genspot import Detector
    res = {}
    for name in ("default", "pristine"):
        det = Detector.load(name)
        for mode in ("auto", "tiles", "crop"):
            rows = [det.predict(b, mode=mode) for b in images()]
            res[f"{name}/{mode}"] = [[r.p_fake, r.domain, r.domain_score] for r in rows]
        e = [det.explain(b, method="gradcam")["map"] for b in images()[:4]]
        res[f"{name}/gradcam_sum"] = [float(m.sum()) for m in e]
    from pathlib import Path
    z = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifake-train.zip"
    from genspot.data import load_dataset
    from genspot.evaluate import predict_scores, select_indices
    from genspot.models.io import load_model_dir
    ds = load_dataset(z, progress=False)
    for name in ("default", "pristine"):
        model, cfg = load_model_dir(name)
        idx, _ = select_indices(ds, cfg, "val")
        idx = np.sort(np.random.default_rng(0).choice(idx, 512, replace=False))
        res[f"{name}/cifake_val_512"] = {"indices_sum": int(idx.sum()), "p_fake": [float(v) for v in predict_scores(model, cfg, ds, idx)]}
    json.dump(res, open(sys.argv[1], "w"))
